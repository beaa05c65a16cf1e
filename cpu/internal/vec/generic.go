package vec

import "github.com/loomrt/loom/graph"

// The Go versions of the routines. They are what runs without AVX2, and the
// reference the assembly is tested against.

// dotLanes is the number of partial sums of a dot product: four AVX2
// registers of eight lanes. The Go versions keep the same partial sums and
// add them in the same order as the assembly, so the two differ only in the
// rounding of each multiply-add (fused in the assembly).
const dotLanes = 32

// dotAccumulate adds the products of a and b (whole steps of 32, then of 8
// elements) into the partial sums and returns how many elements it used.
func dotAccumulate(s *[dotLanes]float32, a, b []float32) int {
	n := len(a)
	i := 0
	for ; i+dotLanes <= n; i += dotLanes {
		x, y := a[i:i+dotLanes], b[i:i+dotLanes]
		for j := range s {
			s[j] += x[j] * y[j]
		}
	}
	for ; i+8 <= n; i += 8 {
		x, y := a[i:i+8], b[i:i+8]
		for j := range 8 {
			s[j] += x[j] * y[j]
		}
	}
	return i
}

// reduceLanes adds the 32 partial sums in the assembly's order: the four
// registers pairwise ((0+1)+(2+3)), then the eight lanes of the result
// halving the width each time (lane j + lane j+4, then j+2, then j+1).
func reduceLanes(s *[dotLanes]float32) float32 {
	var v [8]float32
	for j := range v {
		v[j] = (s[j] + s[j+8]) + (s[j+16] + s[j+24])
	}
	for w := 4; w >= 1; w /= 2 {
		for j := range w {
			v[j] += v[j+w]
		}
	}
	return v[0]
}

// dotTail is the sum of the last len(a) < 8 products, added in order. The
// assembly leaves the tail to it.
func dotTail(a, b []float32) float32 {
	var t float32
	for i := range a {
		t += a[i] * b[i]
	}
	return t
}

func dotF32Go(a, b []float32) float32 {
	var s [dotLanes]float32
	i := dotAccumulate(&s, a, b)
	return reduceLanes(&s) + dotTail(a[i:], b[i:])
}

// dotWidenGo is the dot product of a row w of 16-bit floats, widened by
// widen, with x, accumulated exactly as dotF32Go accumulates.
func dotWidenGo(w []uint16, x []float32, widen func([]float32, []uint16)) float32 {
	var s [dotLanes]float32
	var buf [dotLanes]float32
	n := len(w)
	i := 0
	for ; i+dotLanes <= n; i += dotLanes {
		widen(buf[:], w[i:i+dotLanes])
		dotAccumulate(&s, buf[:], x[i:i+dotLanes])
	}
	for ; i+8 <= n; i += 8 {
		widen(buf[:8], w[i:i+8])
		dotAccumulate(&s, buf[:8], x[i:i+8])
	}
	widen(buf[:n-i], w[i:])
	return reduceLanes(&s) + dotTail(buf[:n-i], x[i:n])
}

func dotBF16Go(w []uint16, x []float32) float32 { return dotWidenGo(w, x, bf16ToF32Go) }
func dotF16Go(w []uint16, x []float32) float32  { return dotWidenGo(w, x, f16ToF32Go) }

func axpyF32Go(y []float32, alpha float32, x []float32) {
	for i := range y {
		y[i] += alpha * x[i]
	}
}

func axpyBF16Go(y []float32, alpha float32, w []uint16) {
	for i := range y {
		y[i] += alpha * graph.BF16ToF32(w[i])
	}
}

func axpyF16Go(y []float32, alpha float32, w []uint16) {
	for i := range y {
		y[i] += alpha * graph.F16ToF32(w[i])
	}
}

func scaleF32Go(y []float32, alpha float32) {
	for i := range y {
		y[i] *= alpha
	}
}

func bf16ToF32Go(dst []float32, src []uint16) {
	for i, h := range src {
		dst[i] = graph.BF16ToF32(h)
	}
}

func f16ToF32Go(dst []float32, src []uint16) {
	for i, h := range src {
		dst[i] = graph.F16ToF32(h)
	}
}

func f32ToBF16Go(dst []uint16, src []float32) {
	for i, f := range src {
		dst[i] = graph.F32ToBF16(f)
	}
}

func f32ToF16Go(dst []uint16, src []float32) {
	for i, f := range src {
		dst[i] = graph.F32ToF16(f)
	}
}

package vec

import "github.com/loomrt/loom/graph"

// The Go versions of the routines. They are what runs without AVX2, and the
// reference the assembly is tested against.

// dotLanes is the number of partial sums of a dot product: four AVX2
// registers of eight lanes. The Go version keeps the same partial sums and
// adds them in the same order as the assembly.
const dotLanes = 32

func dotF32Go(a, b []float32) float32 {
	var s [dotLanes]float32
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
	return reduceLanes(&s) + dotTail(a[i:], b[i:n])
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

// dotTail is the scalar sum of the last len(a) < 8 products, added in order.
func dotTail(a, b []float32) float32 {
	var t float32
	for i := range a {
		t += a[i] * b[i]
	}
	return t
}

func axpyF32Go(y []float32, alpha float32, x []float32) {
	for i := range y {
		y[i] += alpha * x[i]
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

package vec

import (
	"github.com/loomrt/loom/graph"
)

// The Go versions of the routines. They are what runs without AVX2, and the
// reference the assembly is tested against.

// dotLanes is the number of partial sums of a dot product: four AVX2
// registers of eight lanes. The Go versions keep the same partial sums and
// add them in the same order as the assembly, so the two differ only in the
// rounding of each multiply-add (fused in the assembly).
const dotLanes = 32

// dotAccumulate adds the products of a and b (whole steps of 32, then of 8
// elements) into the partial sums and returns how many elements it used.
// It takes the 32 partial sums 8 at a time through all the steps, so that
// they live in registers; each partial sum still adds its products in
// order.
func dotAccumulate(s *[dotLanes]float32, a, b []float32) int {
	n := len(a)
	whole := n / dotLanes * dotLanes
	for g := 0; g < dotLanes && whole > 0; g += 8 {
		s0, s1, s2, s3, s4, s5, s6, s7 := s[g], s[g+1], s[g+2], s[g+3], s[g+4], s[g+5], s[g+6], s[g+7]
		for i := g; i < whole; i += dotLanes {
			x, y := a[i:i+8], b[i:i+8]
			s0, s1, s2, s3 = s0+x[0]*y[0], s1+x[1]*y[1], s2+x[2]*y[2], s3+x[3]*y[3]
			s4, s5, s6, s7 = s4+x[4]*y[4], s5+x[5]*y[5], s6+x[6]*y[6], s7+x[7]*y[7]
		}
		s[g], s[g+1], s[g+2], s[g+3], s[g+4], s[g+5], s[g+6], s[g+7] = s0, s1, s2, s3, s4, s5, s6, s7
	}
	i := whole
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

// dotTail is the sum of the last few products (fewer than 8, or than 16
// for DotBF16Packed), added in order. The assembly leaves the tail to it.
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

// widenGo widens 16-bit floats, bfloat16 if bf16 else float16. A static
// call (not a func value) lets its callers keep their buffers on the stack.
func widenGo(bf16 bool, dst []float32, src []uint16) {
	if bf16 {
		bf16ToF32Go(dst, src)
	} else {
		f16ToF32Go(dst, src)
	}
}

// widenChunk is how many 16-bit values the Go dot products widen at a
// time: a multiple of 32, so that chunks keep the lanes of one pass.
const widenChunk = 256

// dotWidenGo is the dot product of a row w of 16-bit floats (bfloat16 if
// bf16 else float16) with x, accumulated exactly as dotF32Go accumulates.
func dotWidenGo(bf16 bool, w []uint16, x []float32) float32 {
	var s [dotLanes]float32
	var buf [widenChunk]float32
	n := len(w)
	body := n &^ 7
	for i := 0; i < body; i += widenChunk {
		m := min(widenChunk, body-i)
		widenGo(bf16, buf[:m], w[i:i+m])
		dotAccumulate(&s, buf[:m], x[i:i+m])
	}
	widenGo(bf16, buf[:n-body], w[body:])
	return reduceLanes(&s) + dotTail(buf[:n-body], x[body:n])
}

func dotBF16Go(w []uint16, x []float32) float32 { return dotWidenGo(true, w, x) }
func dotF16Go(w []uint16, x []float32) float32  { return dotWidenGo(false, w, x) }

// packOrder is the reordering of a block of 16 that PackBF16X applies:
// element i of a reordered block is element packOrder[i] of the original.
var packOrder = [16]int{0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15}

func packBF16X(dst, x []float32) {
	n := len(x) &^ 15
	for b := 0; b < n; b += 16 {
		for i, j := range packOrder {
			dst[b+i] = x[b+j]
		}
	}
	copy(dst[n:], x[n:])
}

// widenPackedBF16 widens whole blocks of 16 bfloat16 values into dst in
// PackBF16X's order.
func widenPackedBF16(dst []float32, w []uint16) {
	for b := 0; b < len(w); b += 16 {
		for i, j := range packOrder {
			dst[b+i] = graph.BF16ToF32(w[b+j])
		}
	}
}

func dotBF16PackedGo(w []uint16, xp []float32) float32 {
	var s [dotLanes]float32
	var buf [widenChunk]float32
	n := len(w)
	whole := n &^ (dotLanes - 1)
	for i := 0; i < whole; i += widenChunk {
		m := min(widenChunk, whole-i)
		widenPackedBF16(buf[:m], w[i:i+m])
		dotAccumulate(&s, buf[:m], xp[i:i+m])
	}
	i := whole
	if i+16 <= n {
		// A last block of 16: its halves go to lanes 0-7 and 8-15, the
		// assembly's two registers.
		widenPackedBF16(buf[:16], w[i:i+16])
		for j, v := range buf[:16] {
			s[j] += v * xp[i+j]
		}
		i += 16
	}
	bf16ToF32Go(buf[:n-i], w[i:])
	return reduceLanes(&s) + dotTail(buf[:n-i], xp[i:n])
}

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

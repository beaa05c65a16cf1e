// Package vec holds the SIMD routines that CPU kernels share: dot products,
// axpy and scaling of float32 rows, and conversions between float32 and the
// 16-bit storage types.
//
// On amd64 CPUs with AVX2, FMA and F16C (checked at start-up with CPUID and
// XGETBV) the routines run in assembly; elsewhere they run in Go. Both give
// the same results: the conversions bit for bit; DotF32 and AxpyF32 differ
// only in that the assembly fuses each multiply-add into one rounding (see
// the package tests for the bound).
package vec

// DotF32 returns Σ a[i]·b[i]. The sum is accumulated in float32 in 32
// interleaved partial sums (lane i%32), which are then added in a fixed
// order, so the result depends only on the inputs. It panics if the lengths
// differ.
func DotF32(a, b []float32) float32 {
	if len(a) != len(b) {
		panic("vec.DotF32: slices of different lengths")
	}
	return dotF32(a, b)
}

// AxpyF32 computes y[i] += alpha·x[i]. It panics if the lengths differ.
func AxpyF32(y []float32, alpha float32, x []float32) {
	if len(x) != len(y) {
		panic("vec.AxpyF32: slices of different lengths")
	}
	axpyF32(y, alpha, x)
}

// ScaleF32 computes y[i] *= alpha.
func ScaleF32(y []float32, alpha float32) { scaleF32(y, alpha) }

// BF16ToF32 widens bfloat16 bits to float32, exactly. It panics if dst is
// shorter than src.
func BF16ToF32(dst []float32, src []uint16) {
	if len(dst) < len(src) {
		panic("vec.BF16ToF32: dst shorter than src")
	}
	bf16ToF32(dst[:len(src)], src)
}

// F16ToF32 widens IEEE float16 bits to float32, exactly (as
// graph.F16ToF32, NaN payloads included). It panics if dst is shorter than
// src.
func F16ToF32(dst []float32, src []uint16) {
	if len(dst) < len(src) {
		panic("vec.F16ToF32: dst shorter than src")
	}
	f16ToF32(dst[:len(src)], src)
}

// F32ToBF16 rounds float32 values to bfloat16 bits, to nearest even, with
// graph.F32ToBF16's semantics: NaN stays a quiet NaN with its sign and never
// rounds into Inf. It panics if dst is shorter than src.
func F32ToBF16(dst []uint16, src []float32) {
	if len(dst) < len(src) {
		panic("vec.F32ToBF16: dst shorter than src")
	}
	f32ToBF16(dst[:len(src)], src)
}

// F32ToF16 rounds float32 values to IEEE float16 bits, to nearest even, with
// graph.F32ToF16's semantics (overflow to ±Inf, NaN kept quiet with its sign
// and top payload bits). It panics if dst is shorter than src.
func F32ToF16(dst []uint16, src []float32) {
	if len(dst) < len(src) {
		panic("vec.F32ToF16: dst shorter than src")
	}
	f32ToF16(dst[:len(src)], src)
}

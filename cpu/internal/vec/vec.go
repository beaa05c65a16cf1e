// Package vec holds the SIMD routines that CPU kernels share: dot products,
// axpy and scaling of float32 rows, and conversions between float32 and the
// 16-bit storage types (bfloat16, IEEE float16).
//
// On amd64 CPUs with AVX2, FMA and F16C, enabled by the operating system
// (checked at start-up with CPUID and XGETBV), the routines run in
// assembly; elsewhere they run in Go. The two agree bit for bit on the
// conversions and on ScaleF32. The dot products and axpys accumulate in the
// same order in both, but the assembly fuses each multiply-add into one
// rounding, so their results may differ by a few units in the last place
// (the tests bound it).
package vec

// DotF32 returns Σ a[i]·b[i], accumulated in float32 in 32 partial sums
// (lane i mod 32 for the elements before the last len%8, which are summed
// in order apart) that are added in a fixed order: the result depends only
// on the inputs. It panics if the lengths differ.
func DotF32(a, b []float32) float32 {
	if len(a) != len(b) {
		panic("vec.DotF32: slices of different lengths")
	}
	return use.dotF32(a, b)
}

// DotBF16 returns Σ w[i]·x[i] where w holds bfloat16 bits, widened to
// float32 in registers and accumulated as DotF32 does. It panics if the
// lengths differ.
func DotBF16(w []uint16, x []float32) float32 {
	if len(w) != len(x) {
		panic("vec.DotBF16: slices of different lengths")
	}
	return use.dotBF16(w, x)
}

// DotF16 returns Σ w[i]·x[i] where w holds IEEE float16 bits, widened to
// float32 in registers and accumulated as DotF32 does. It panics if the
// lengths differ.
func DotF16(w []uint16, x []float32) float32 {
	if len(w) != len(x) {
		panic("vec.DotF16: slices of different lengths")
	}
	return use.dotF16(w, x)
}

// AxpyF32 computes y[i] += alpha·x[i]. It panics if the lengths differ.
func AxpyF32(y []float32, alpha float32, x []float32) {
	if len(x) != len(y) {
		panic("vec.AxpyF32: slices of different lengths")
	}
	use.axpyF32(y, alpha, x)
}

// AxpyBF16 computes y[i] += alpha·w[i] where w holds bfloat16 bits. It
// panics if the lengths differ.
func AxpyBF16(y []float32, alpha float32, w []uint16) {
	if len(w) != len(y) {
		panic("vec.AxpyBF16: slices of different lengths")
	}
	use.axpyBF16(y, alpha, w)
}

// AxpyF16 computes y[i] += alpha·w[i] where w holds IEEE float16 bits. It
// panics if the lengths differ.
func AxpyF16(y []float32, alpha float32, w []uint16) {
	if len(w) != len(y) {
		panic("vec.AxpyF16: slices of different lengths")
	}
	use.axpyF16(y, alpha, w)
}

// ScaleF32 computes y[i] *= alpha.
func ScaleF32(y []float32, alpha float32) { use.scaleF32(y, alpha) }

// BF16ToF32 widens bfloat16 bits to float32, exactly, into dst[:len(src)].
// It panics if dst is shorter than src.
func BF16ToF32(dst []float32, src []uint16) {
	if len(dst) < len(src) {
		panic("vec.BF16ToF32: dst shorter than src")
	}
	use.bf16ToF32(dst[:len(src)], src)
}

// F16ToF32 widens IEEE float16 bits to float32, exactly (as
// graph.F16ToF32, NaN payloads included), into dst[:len(src)]. It panics if
// dst is shorter than src.
func F16ToF32(dst []float32, src []uint16) {
	if len(dst) < len(src) {
		panic("vec.F16ToF32: dst shorter than src")
	}
	use.f16ToF32(dst[:len(src)], src)
}

// F32ToBF16 rounds float32 values to bfloat16 bits into dst[:len(src)],
// with graph.F32ToBF16's semantics: to nearest even, NaN kept a quiet NaN
// with its sign, never rounded into Inf. It panics if dst is shorter than
// src.
func F32ToBF16(dst []uint16, src []float32) {
	if len(dst) < len(src) {
		panic("vec.F32ToBF16: dst shorter than src")
	}
	use.f32ToBF16(dst[:len(src)], src)
}

// F32ToF16 rounds float32 values to IEEE float16 bits into dst[:len(src)],
// with graph.F32ToF16's semantics: to nearest even, overflow to ±Inf, NaN
// kept quiet with its sign and top payload bits. It panics if dst is
// shorter than src.
func F32ToF16(dst []uint16, src []float32) {
	if len(dst) < len(src) {
		panic("vec.F32ToF16: dst shorter than src")
	}
	use.f32ToF16(dst[:len(src)], src)
}

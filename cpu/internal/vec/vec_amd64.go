package vec

// hasAssembly is whether the CPU and the operating system support AVX2,
// FMA and F16C, which the assembly needs.
var hasAssembly = hasAVX2FMAF16C()

// hasAVX512 is whether the CPU and the operating system also support the
// AVX-512 subset the CPU kernels' AVX-512 routines use: AVX512F, AVX512BW
// and AVX512_VNNI, with the ZMM and mask registers saved.
var hasAVX512 = hasAssembly && hasAVX512VNNI()

// The routines: the assembly where it is selected, else the Go versions.

func dotF32(a, b []float32) float32 {
	if assembly {
		return dotF32AVX2(a, b)
	}
	return dotF32Go(a, b)
}

func dotBF16(w []uint16, x []float32) float32 {
	if assembly {
		return dotBF16AVX2(w, x)
	}
	return dotBF16Go(w, x)
}

func dotF16(w []uint16, x []float32) float32 {
	if assembly {
		return dotF16AVX2(w, x)
	}
	return dotF16Go(w, x)
}

func dotBF16Packed(w []uint16, xp []float32) float32 {
	if assembly {
		return dotBF16PackedAVX2(w, xp)
	}
	return dotBF16PackedGo(w, xp)
}

func axpyF32(y []float32, alpha float32, x []float32) {
	if assembly {
		axpyF32AVX2(y, alpha, x)
		return
	}
	axpyF32Go(y, alpha, x)
}

func axpyBF16(y []float32, alpha float32, w []uint16) {
	if assembly {
		axpyBF16AVX2(y, alpha, w)
		return
	}
	axpyBF16Go(y, alpha, w)
}

func axpyF16(y []float32, alpha float32, w []uint16) {
	if assembly {
		axpyF16AVX2(y, alpha, w)
		return
	}
	axpyF16Go(y, alpha, w)
}

func scaleF32(y []float32, alpha float32) {
	if assembly {
		scaleF32AVX2(y, alpha)
		return
	}
	scaleF32Go(y, alpha)
}

func bf16ToF32(dst []float32, src []uint16) {
	if assembly {
		bf16ToF32AVX2(dst, src)
		return
	}
	bf16ToF32Go(dst, src)
}

func f16ToF32(dst []float32, src []uint16) {
	if assembly {
		f16ToF32AVX2(dst, src)
		return
	}
	f16ToF32Go(dst, src)
}

func f32ToBF16(dst []uint16, src []float32) {
	if assembly {
		f32ToBF16AVX2(dst, src)
		return
	}
	f32ToBF16Go(dst, src)
}

func f32ToF16(dst []uint16, src []float32) {
	if assembly {
		f32ToF16AVX2(dst, src)
		return
	}
	f32ToF16Go(dst, src)
}

// cpuid executes CPUID for a leaf and sub-leaf (cpuid_amd64.s).
func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)

// xgetbv returns XCR0, the register state the operating system saves.
func xgetbv() (eax, edx uint32)

// hasAVX2FMAF16C reports whether the CPU has AVX2, FMA and F16C and the
// operating system saves the YMM registers across context switches.
func hasAVX2FMAF16C() bool {
	if maxLeaf, _, _, _ := cpuid(0, 0); maxLeaf < 7 {
		return false
	}
	const fma, osxsave, avx, f16c = 1 << 12, 1 << 27, 1 << 28, 1 << 29
	const leaf1 = fma | osxsave | avx | f16c
	if _, _, ecx, _ := cpuid(1, 0); ecx&leaf1 != leaf1 {
		return false
	}
	const xmmYmmState = 1<<1 | 1<<2
	if xcr0, _ := xgetbv(); xcr0&xmmYmmState != xmmYmmState {
		return false
	}
	const avx2 = 1 << 5
	_, ebx, _, _ := cpuid(7, 0)
	return ebx&avx2 != 0
}

// hasAVX512VNNI reports whether the CPU has AVX512F, AVX512BW and
// AVX512_VNNI and the operating system saves the opmask and all 512-bit
// registers (XCR0 bits 5–7) beside the YMM state.
func hasAVX512VNNI() bool {
	const zmmState = 1<<1 | 1<<2 | 1<<5 | 1<<6 | 1<<7
	if xcr0, _ := xgetbv(); xcr0&zmmState != zmmState {
		return false
	}
	const avx512f, avx512bw, vnni = 1 << 16, 1 << 30, 1 << 11
	_, ebx, ecx, _ := cpuid(7, 0)
	return ebx&(avx512f|avx512bw) == avx512f|avx512bw && ecx&vnni != 0
}

// The assembly bodies (vec_amd64.s) handle the first len&^7 elements
// (len&^15 for dotBF16PackedBody); the
// wrappers below finish the last few in Go, the same way the Go versions
// do, so that the tails agree bit for bit.

//go:noescape
func dotF32Body(a, b []float32) float32

//go:noescape
func dotBF16Body(w []uint16, x []float32) float32

//go:noescape
func dotF16Body(w []uint16, x []float32) float32

//go:noescape
func dotBF16PackedBody(w []uint16, xp []float32) float32

//go:noescape
func axpyF32Body(y []float32, alpha float32, x []float32)

//go:noescape
func axpyBF16Body(y []float32, alpha float32, w []uint16)

//go:noescape
func axpyF16Body(y []float32, alpha float32, w []uint16)

//go:noescape
func scaleF32Body(y []float32, alpha float32)

//go:noescape
func bf16ToF32Body(dst []float32, src []uint16)

//go:noescape
func f16ToF32Body(dst []float32, src []uint16)

//go:noescape
func f32ToBF16Body(dst []uint16, src []float32)

//go:noescape
func f32ToF16Body(dst []uint16, src []float32)

func dotF32AVX2(a, b []float32) float32 {
	n := len(a) &^ 7
	return dotF32Body(a[:n], b[:n]) + dotTail(a[n:], b[n:])
}

// dotWidenAVX2 is a dot product of a 16-bit row (bfloat16 if bf16 else
// float16) with x, its tail widened and summed as dotWidenGo does.
func dotWidenAVX2(bf16 bool, w []uint16, x []float32) float32 {
	n := len(w) &^ 7
	var buf [8]float32
	widenGo(bf16, buf[:len(w)-n], w[n:])
	tail := dotTail(buf[:len(w)-n], x[n:])
	if bf16 {
		return dotBF16Body(w[:n], x[:n]) + tail
	}
	return dotF16Body(w[:n], x[:n]) + tail
}

func dotBF16AVX2(w []uint16, x []float32) float32 { return dotWidenAVX2(true, w, x) }
func dotF16AVX2(w []uint16, x []float32) float32  { return dotWidenAVX2(false, w, x) }

// dotBF16PackedAVX2 leaves the last len%16 elements to the Go tail.
func dotBF16PackedAVX2(w []uint16, xp []float32) float32 {
	n := len(w) &^ 15
	var buf [16]float32
	bf16ToF32Go(buf[:len(w)-n], w[n:])
	return dotBF16PackedBody(w[:n], xp[:n]) + dotTail(buf[:len(w)-n], xp[n:])
}

func axpyF32AVX2(y []float32, alpha float32, x []float32) {
	n := len(y) &^ 7
	axpyF32Body(y[:n], alpha, x[:n])
	axpyF32Go(y[n:], alpha, x[n:])
}

func axpyBF16AVX2(y []float32, alpha float32, w []uint16) {
	n := len(y) &^ 7
	axpyBF16Body(y[:n], alpha, w[:n])
	axpyBF16Go(y[n:], alpha, w[n:])
}

func axpyF16AVX2(y []float32, alpha float32, w []uint16) {
	n := len(y) &^ 7
	axpyF16Body(y[:n], alpha, w[:n])
	axpyF16Go(y[n:], alpha, w[n:])
}

func scaleF32AVX2(y []float32, alpha float32) {
	n := len(y) &^ 7
	scaleF32Body(y[:n], alpha)
	scaleF32Go(y[n:], alpha)
}

func bf16ToF32AVX2(dst []float32, src []uint16) {
	n := len(src) &^ 7
	bf16ToF32Body(dst[:n], src[:n])
	bf16ToF32Go(dst[n:], src[n:])
}

func f16ToF32AVX2(dst []float32, src []uint16) {
	n := len(src) &^ 7
	f16ToF32Body(dst[:n], src[:n])
	f16ToF32Go(dst[n:], src[n:])
}

func f32ToBF16AVX2(dst []uint16, src []float32) {
	n := len(src) &^ 7
	f32ToBF16Body(dst[:n], src[:n])
	f32ToBF16Go(dst[n:], src[n:])
}

func f32ToF16AVX2(dst []uint16, src []float32) {
	n := len(src) &^ 7
	f32ToF16Body(dst[:n], src[:n])
	f32ToF16Go(dst[n:], src[n:])
}

package vec

// asmImpls is the assembly where the CPU and the operating system support
// AVX2, FMA and F16C; nil otherwise. It is a variable initialiser, not an
// init function, so that it is set before dispatch.go's init selects it.
var asmImpls = func() *impls {
	if !hasAVX2FMAF16C() {
		return nil
	}
	return &impls{
		dotF32AVX2, dotBF16AVX2, dotF16AVX2,
		axpyF32AVX2, axpyBF16AVX2, axpyF16AVX2,
		scaleF32AVX2,
		bf16ToF32AVX2, f16ToF32AVX2, f32ToBF16AVX2, f32ToF16AVX2,
	}
}()

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

// The assembly bodies (vec_amd64.s) handle the first len&^7 elements; the
// wrappers below finish the last few in Go, the same way the Go versions
// do, so that the tails agree bit for bit.

//go:noescape
func dotF32Body(a, b []float32) float32

//go:noescape
func dotBF16Body(w []uint16, x []float32) float32

//go:noescape
func dotF16Body(w []uint16, x []float32) float32

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

// dotWidenAVX2 is a dot product of a 16-bit row with x, its tail widened
// by widen and summed by dotTail as dotWidenGo does.
func dotWidenAVX2(body func([]uint16, []float32) float32, widen func([]float32, []uint16), w []uint16, x []float32) float32 {
	n := len(w) &^ 7
	var buf [8]float32
	widen(buf[:len(w)-n], w[n:])
	return body(w[:n], x[:n]) + dotTail(buf[:len(w)-n], x[n:])
}

func dotBF16AVX2(w []uint16, x []float32) float32 {
	return dotWidenAVX2(dotBF16Body, bf16ToF32Go, w, x)
}

func dotF16AVX2(w []uint16, x []float32) float32 {
	return dotWidenAVX2(dotF16Body, f16ToF32Go, w, x)
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

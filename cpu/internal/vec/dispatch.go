package vec

// impls is one implementation of every routine.
type impls struct {
	dotF32    func(a, b []float32) float32
	dotBF16   func(w []uint16, x []float32) float32
	dotF16    func(w []uint16, x []float32) float32
	axpyF32   func(y []float32, alpha float32, x []float32)
	axpyBF16  func(y []float32, alpha float32, w []uint16)
	axpyF16   func(y []float32, alpha float32, w []uint16)
	scaleF32  func(y []float32, alpha float32)
	bf16ToF32 func(dst []float32, src []uint16)
	f16ToF32  func(dst []float32, src []uint16)
	f32ToBF16 func(dst []uint16, src []float32)
	f32ToF16  func(dst []uint16, src []float32)
}

var goImpls = impls{
	dotF32Go, dotBF16Go, dotF16Go,
	axpyF32Go, axpyBF16Go, axpyF16Go,
	scaleF32Go,
	bf16ToF32Go, f16ToF32Go, f32ToBF16Go, f32ToF16Go,
}

// use is the implementation in use.
var use = goImpls

func init() { SetAssembly(true) }

// SetAssembly selects the assembly routines (on, where the CPU has AVX2,
// FMA and F16C) or the Go ones (off), for this package and for the CPU
// kernels that ask Assembly, and returns whether the assembly was in use.
// It exists so that tests and benchmarks can compare the two; it must not
// be called while kernels run.
func SetAssembly(on bool) (was bool) {
	was = Assembly()
	if on && asmImpls != nil {
		use = *asmImpls
	} else {
		use = goImpls
	}
	assembly = on && asmImpls != nil
	return was
}

var assembly bool

// Assembly reports whether the assembly routines are in use: the CPU has
// AVX2, FMA and F16C, enabled by the operating system, and SetAssembly has
// not turned them off.
func Assembly() bool { return assembly }

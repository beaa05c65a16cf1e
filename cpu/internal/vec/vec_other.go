//go:build !amd64

package vec

// hasAssembly is false: there is no assembly for this architecture, and
// every routine runs its Go version.
const hasAssembly = false

// hasAVX512 is false: there are no AVX-512 routines either.
const hasAVX512 = false

func dotF32(a, b []float32) float32 { return dotF32Go(a, b) }

func dotBF16(w []uint16, x []float32) float32 { return dotBF16Go(w, x) }

func dotF16(w []uint16, x []float32) float32 { return dotF16Go(w, x) }

func dotBF16Packed(w []uint16, xp []float32) float32 { return dotBF16PackedGo(w, xp) }

func axpyF32(y []float32, alpha float32, x []float32) { axpyF32Go(y, alpha, x) }

func axpyBF16(y []float32, alpha float32, w []uint16) { axpyBF16Go(y, alpha, w) }

func axpyF16(y []float32, alpha float32, w []uint16) { axpyF16Go(y, alpha, w) }

func scaleF32(y []float32, alpha float32) { scaleF32Go(y, alpha) }

func bf16ToF32(dst []float32, src []uint16) { bf16ToF32Go(dst, src) }

func f16ToF32(dst []float32, src []uint16) { f16ToF32Go(dst, src) }

func f32ToBF16(dst []uint16, src []float32) { f32ToBF16Go(dst, src) }

func f32ToF16(dst []uint16, src []float32) { f32ToF16Go(dst, src) }

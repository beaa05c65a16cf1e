package vec

// The implementations in use: the Go versions, replaced at start-up by the
// assembly where the CPU supports it (see vec_amd64.go).
var (
	dotF32    = dotF32Go
	axpyF32   = axpyF32Go
	scaleF32  = scaleF32Go
	bf16ToF32 = bf16ToF32Go
	f16ToF32  = f16ToF32Go
	f32ToBF16 = f32ToBF16Go
	f32ToF16  = f32ToF16Go
)

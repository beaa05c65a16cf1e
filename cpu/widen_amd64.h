// Widening loads of eight elements at mem into a register of float32s, for
// the AVX2 kernels of each float dtype (included by the matmul and
// attention assembly).
#define WIDEN_F32(mem, reg) VMOVUPS mem, reg
#define WIDEN_BF16(mem, reg) VPMOVZXWD mem, reg; VPSLLD $16, reg, reg
#define WIDEN_F16(mem, reg) VCVTPH2PS mem, reg

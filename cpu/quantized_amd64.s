#include "textflag.h"
#include "reduce_amd64.h"

// The quantized matmul's micro-kernels (quantized.go), for 4- and 8-bit
// codes, with one row of x (x1) or four (x4):
//
// func qdotQ<B>x<R><DT>(w []uint32, x []float32, ldx, groups, steps int,
// scales, biases []<elem>, xsums, out []float32)
//
// For one row of packed weights (groups groups of codes), its scales and
// biases (of dtype DT, widened as they are read) and R rows of x packed by
// packQX (ldx floats apart), out[i] = Σ_g scales[g]·Σ q·x_i +
// biases[g]·Σ x_i over each group's codes. A group is steps steps. xsums
// holds, for each group, R vectors of 8 floats (one a row of x): the
// group's Σ x_i in lane 0, zeros in the others, so that one multiply-add
// puts the bias term into lane 0 of the row's total. The codes are zero-extended
// from bytes to 32-bit lanes and converted to float32 in registers: for 8
// bits a byte is a code; for 4 bits the low nibble (mask 0x0f) is an even
// code and the high nibble masked in place (0xf0) sixteen times an odd
// one, which packQX's order of x (evens, then odds divided by 16) matches.
// Each group's products accumulate in their own registers, are added, and
// join the row's total (Y8..Y11) times the group's scale; the totals'
// lanes are added at the end.
//
// Register use: R11 the codes, DI the x of the step, R8 and R10 one and
// three x rows in bytes, CX the groups left, DX the steps left, R9 steps,
// SI the scales, R12 the biases, R13 the x sums, AX out; Y14 and Y15 the
// nibble masks.

// Broadcasts of a scale or bias at mem, of each dtype, into Y (X is its
// low half).
#define BCAST_F32(mem, Y, X) VBROADCASTSS mem, Y
#define BCAST_BF16(mem, Y, X) VPBROADCASTW mem, Y; VPSLLD $16, Y, Y
#define BCAST_F16(mem, Y, X) VPBROADCASTW mem, X; VCVTPH2PS X, Y

// MASKS sets Y14 to 0x0f and Y15 to 0xf0 in every lane.
#define MASKS \
	MOVL         $0x0f, BX \
	VMOVD        BX, X14 \
	VPBROADCASTD X14, Y14 \
	MOVL         $0xf0, BX \
	VMOVD        BX, X15 \
	VPBROADCASTD X15, Y15

// CODES_Q4 widens the 16 4-bit codes of the 8 bytes at off(R11): the even
// codes into lo, sixteen times the odd ones into hi.
#define CODES_Q4(off, lo, hi) \
	VPMOVZXBD off(R11), hi \
	VPAND     Y14, hi, lo \
	VPAND     Y15, hi, hi \
	VCVTDQ2PS lo, lo \
	VCVTDQ2PS hi, hi

// CODES_Q8 widens the 16 8-bit codes of the 16 bytes at off(R11) (off8 is
// off+8): the first 8 into lo, the next 8 into hi.
#define CODES_Q8(off, off8, lo, hi) \
	VPMOVZXBD off(R11), lo \
	VPMOVZXBD off8(R11), hi \
	VCVTDQ2PS lo, lo \
	VCVTDQ2PS hi, hi

#define ARGS \
	MOVQ w_base+0(FP), R11 \
	MOVQ x_base+24(FP), DI \
	MOVQ ldx+48(FP), R8 \
	SHLQ $2, R8 \
	LEAQ (R8)(R8*2), R10 \
	MOVQ groups+56(FP), CX \
	MOVQ steps+64(FP), R9 \
	MOVQ scales_base+72(FP), SI \
	MOVQ biases_base+96(FP), R12 \
	MOVQ xsums_base+120(FP), R13 \
	MOVQ out_base+144(FP), AX \
	MASKS

// X1_BODY is the one-row kernel: a step is 32 codes (CODES32 widens them
// into Y4..Y7, each multiplied into its own accumulator Y0..Y3), wbytes
// bytes of codes.
#define X1_BODY(CODES32, wbytes, BCAST, size) \
	ARGS \
	VXORPS Y8, Y8, Y8 \
	TESTQ  CX, CX \
	JZ     done \
group: \
	VXORPS Y0, Y0, Y0 \
	VXORPS Y1, Y1, Y1 \
	VXORPS Y2, Y2, Y2 \
	VXORPS Y3, Y3, Y3 \
	MOVQ   R9, DX \
step: \
	CODES32 \
	VFMADD231PS (DI), Y4, Y0 \
	VFMADD231PS 32(DI), Y5, Y1 \
	VFMADD231PS 64(DI), Y6, Y2 \
	VFMADD231PS 96(DI), Y7, Y3 \
	ADDQ   $wbytes, R11 \
	ADDQ   $128, DI \
	DECQ   DX \
	JNZ    step \
	VADDPS Y1, Y0, Y0 \
	VADDPS Y3, Y2, Y2 \
	VADDPS Y2, Y0, Y0 \
	BCAST((SI), Y12, X12) \
	VFMADD231PS  Y12, Y0, Y8 \
	BCAST((R12), Y13, X13) \
	VFMADD231PS  (R13), Y13, Y8 \
	ADDQ   $size, SI \
	ADDQ   $size, R12 \
	ADDQ   $32, R13 \
	DECQ   CX \
	JNZ    group \
done: \
	REDUCE8(Y8, X8, 0(AX)) \
	VZEROUPPER

// X4_BODY is the four-row kernel: a step is 16 codes (CODES16 widens them
// into Y12, Y13), wbytes bytes, multiplied into x row i's accumulators
// Y(2i), Y(2i+1).
#define X4_BODY(CODES16, wbytes, BCAST, size) \
	ARGS \
	VXORPS Y8, Y8, Y8 \
	VXORPS Y9, Y9, Y9 \
	VXORPS Y10, Y10, Y10 \
	VXORPS Y11, Y11, Y11 \
	TESTQ  CX, CX \
	JZ     done \
group: \
	VXORPS Y0, Y0, Y0 \
	VXORPS Y1, Y1, Y1 \
	VXORPS Y2, Y2, Y2 \
	VXORPS Y3, Y3, Y3 \
	VXORPS Y4, Y4, Y4 \
	VXORPS Y5, Y5, Y5 \
	VXORPS Y6, Y6, Y6 \
	VXORPS Y7, Y7, Y7 \
	MOVQ   R9, DX \
step: \
	CODES16 \
	VFMADD231PS (DI), Y12, Y0 \
	VFMADD231PS 32(DI), Y13, Y1 \
	VFMADD231PS (DI)(R8*1), Y12, Y2 \
	VFMADD231PS 32(DI)(R8*1), Y13, Y3 \
	VFMADD231PS (DI)(R8*2), Y12, Y4 \
	VFMADD231PS 32(DI)(R8*2), Y13, Y5 \
	VFMADD231PS (DI)(R10*1), Y12, Y6 \
	VFMADD231PS 32(DI)(R10*1), Y13, Y7 \
	ADDQ   $wbytes, R11 \
	ADDQ   $64, DI \
	DECQ   DX \
	JNZ    step \
	VADDPS Y1, Y0, Y0 \
	VADDPS Y3, Y2, Y2 \
	VADDPS Y5, Y4, Y4 \
	VADDPS Y7, Y6, Y6 \
	BCAST((SI), Y12, X12) \
	VFMADD231PS  Y12, Y0, Y8 \
	VFMADD231PS  Y12, Y2, Y9 \
	VFMADD231PS  Y12, Y4, Y10 \
	VFMADD231PS  Y12, Y6, Y11 \
	BCAST((R12), Y13, X13) \
	VFMADD231PS  (R13), Y13, Y8 \
	VFMADD231PS  32(R13), Y13, Y9 \
	VFMADD231PS  64(R13), Y13, Y10 \
	VFMADD231PS  96(R13), Y13, Y11 \
	ADDQ   $size, SI \
	ADDQ   $size, R12 \
	ADDQ   $128, R13 \
	DECQ   CX \
	JNZ    group \
done: \
	REDUCE8(Y8, X8, 0(AX)) \
	REDUCE8(Y9, X9, 4(AX)) \
	REDUCE8(Y10, X10, 8(AX)) \
	REDUCE8(Y11, X11, 12(AX)) \
	VZEROUPPER

#define Q4_32 CODES_Q4(0, Y4, Y5); CODES_Q4(8, Y6, Y7)
#define Q8_32 CODES_Q8(0, 8, Y4, Y5); CODES_Q8(16, 24, Y6, Y7)
#define Q4_16 CODES_Q4(0, Y12, Y13)
#define Q8_16 CODES_Q8(0, 8, Y12, Y13)

// func qdotQ4x1F32(w []uint32, x []float32, ldx, groups, steps int, scales, biases []float32, xsums, out []float32)
TEXT ·qdotQ4x1F32(SB), NOSPLIT, $0-168
	X1_BODY(Q4_32, 16, BCAST_F32, 4)
	RET

// func qdotQ4x1BF16(w []uint32, x []float32, ldx, groups, steps int, scales, biases []uint16, xsums, out []float32)
TEXT ·qdotQ4x1BF16(SB), NOSPLIT, $0-168
	X1_BODY(Q4_32, 16, BCAST_BF16, 2)
	RET

// func qdotQ4x1F16(w []uint32, x []float32, ldx, groups, steps int, scales, biases []uint16, xsums, out []float32)
TEXT ·qdotQ4x1F16(SB), NOSPLIT, $0-168
	X1_BODY(Q4_32, 16, BCAST_F16, 2)
	RET

// func qdotQ8x1F32(w []uint32, x []float32, ldx, groups, steps int, scales, biases []float32, xsums, out []float32)
TEXT ·qdotQ8x1F32(SB), NOSPLIT, $0-168
	X1_BODY(Q8_32, 32, BCAST_F32, 4)
	RET

// func qdotQ8x1BF16(w []uint32, x []float32, ldx, groups, steps int, scales, biases []uint16, xsums, out []float32)
TEXT ·qdotQ8x1BF16(SB), NOSPLIT, $0-168
	X1_BODY(Q8_32, 32, BCAST_BF16, 2)
	RET

// func qdotQ8x1F16(w []uint32, x []float32, ldx, groups, steps int, scales, biases []uint16, xsums, out []float32)
TEXT ·qdotQ8x1F16(SB), NOSPLIT, $0-168
	X1_BODY(Q8_32, 32, BCAST_F16, 2)
	RET

// func qdotQ4x4F32(w []uint32, x []float32, ldx, groups, steps int, scales, biases []float32, xsums, out []float32)
TEXT ·qdotQ4x4F32(SB), NOSPLIT, $0-168
	X4_BODY(Q4_16, 8, BCAST_F32, 4)
	RET

// func qdotQ4x4BF16(w []uint32, x []float32, ldx, groups, steps int, scales, biases []uint16, xsums, out []float32)
TEXT ·qdotQ4x4BF16(SB), NOSPLIT, $0-168
	X4_BODY(Q4_16, 8, BCAST_BF16, 2)
	RET

// func qdotQ4x4F16(w []uint32, x []float32, ldx, groups, steps int, scales, biases []uint16, xsums, out []float32)
TEXT ·qdotQ4x4F16(SB), NOSPLIT, $0-168
	X4_BODY(Q4_16, 8, BCAST_F16, 2)
	RET

// func qdotQ8x4F32(w []uint32, x []float32, ldx, groups, steps int, scales, biases []float32, xsums, out []float32)
TEXT ·qdotQ8x4F32(SB), NOSPLIT, $0-168
	X4_BODY(Q8_16, 16, BCAST_F32, 4)
	RET

// func qdotQ8x4BF16(w []uint32, x []float32, ldx, groups, steps int, scales, biases []uint16, xsums, out []float32)
TEXT ·qdotQ8x4BF16(SB), NOSPLIT, $0-168
	X4_BODY(Q8_16, 16, BCAST_BF16, 2)
	RET

// func qdotQ8x4F16(w []uint32, x []float32, ldx, groups, steps int, scales, biases []uint16, xsums, out []float32)
TEXT ·qdotQ8x4F16(SB), NOSPLIT, $0-168
	X4_BODY(Q8_16, 16, BCAST_F16, 2)
	RET

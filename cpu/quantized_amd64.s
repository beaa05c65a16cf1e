#include "textflag.h"
#include "reduce_amd64.h"
#include "widen_amd64.h"

// The quantized matmul's micro-kernels (quantized.go), for 4- and 8-bit
// codes, with one row of x (x1) or four (x4), and scales and biases of
// each float dtype:
//
// func qdotQ<B>x<R><DT>(w []uint32, x []int16, ldx, groups, steps int,
// scales, biases []<elem>, xsums, xscales, out []float32, n int)
//
// For each of n rows of packed weights r (groups groups of codes a row,
// the rows one after another), their scales and biases (groups a row,
// widened as they are read) and R rows of x in 16-bit fixed point
// (packed by packQX, ldx elements apart), out[r·R + i] = Σ_g scales[g]·
// xscales_i[g]·Σ q·x_i + biases[g]·Σ x_i over each group's codes of row r. A group
// is steps steps of 32 codes. The codes are zero-extended from bytes to
// 16-bit lanes (for 4 bits, the low nibbles, even codes, masked, and the
// high nibbles, odd codes, shifted down) and multiplied with x by
// VPMADDWD, which adds pairs of products into 32-bit lanes: each group's
// sum is exact in integers.
//
// x1 finishes 8 groups at a time (qdotGroups): their integer sums are
// kept in Y0..Y7, added across lanes into one vector of 8 sums
// (VPHADDD twice, then the two 128-bit halves), converted to float32,
// multiplied by the 8 groups' x scales and multiply-added with their 8
// scales into Y8; the biases are multiply-added with the 8 x sums into
// Y9 (xscales and xsums: a float a group, padded with zeros to a
// multiple of 8). A last block of fewer than 8 groups takes its scales
// and biases from a zeroed copy on the stack, so nothing past the row's
// is read.
//
// x4 finishes each group alone: the sum is converted to float32, times
// the x row's scale for the group (xscales: for each group one float a
// row of x) and the group's scale, and joins the row's total (Y8..Y11).
// xsums holds, for each group, R vectors of 8 floats (one a row of x):
// the group's Σ x_i in lane 0, zeros in the others, so that one
// multiply-add puts the bias term into lane 0 of the total. The totals'
// lanes are added at the end.
//
// Register use: R11 the codes, DI the x of the step, R8 and R10 one and
// three x rows in bytes (x4; temporaries in x1), CX the groups left, DX
// the steps left, R9 steps, SI the scales, R12 the biases, R13 the x
// sums, BX the x scales, AX out; Y14 the nibble mask, Y15 a product.
// The codes, scales and biases run on from one weight row to the next;
// x, its sums and scales start again at each row (ROW), and n+192(FP)
// counts the rows left.

// Broadcasts of a scale or bias at mem, of each dtype, into Y (X is its
// low half).
#define BCAST_F32(mem, Y, X) VBROADCASTSS mem, Y
#define BCAST_BF16(mem, Y, X) VPBROADCASTW mem, Y; VPSLLD $16, Y, Y
#define BCAST_F16(mem, Y, X) VPBROADCASTW mem, X; VCVTPH2PS X, Y

#define ARGS \
	MOVL         $0x000f000f, BX \
	VMOVD        BX, X14 \
	VPBROADCASTD X14, Y14 \
	MOVQ w_base+0(FP), R11 \
	MOVQ ldx+48(FP), R8 \
	SHLQ $1, R8 \
	LEAQ (R8)(R8*2), R10 \
	MOVQ steps+64(FP), R9 \
	MOVQ scales_base+72(FP), SI \
	MOVQ biases_base+96(FP), R12 \
	MOVQ out_base+168(FP), AX

// ROW starts a weight row: x, its sums and scales from their start, all
// the groups left.
#define ROW \
	MOVQ groups+56(FP), CX \
	MOVQ x_base+24(FP), DI \
	MOVQ xsums_base+120(FP), R13 \
	MOVQ xscales_base+144(FP), BX

// CODES_Q4 widens the 32 4-bit codes of the 16 bytes at (R11) to 16-bit
// lanes: the even codes into lo, the odd ones into hi.
#define CODES_Q4(lo, hi) \
	VPMOVZXBW (R11), hi \
	VPAND     Y14, hi, lo \
	VPSRLW    $4, hi, hi

// CODES_Q8 widens the 32 8-bit codes of the 32 bytes at (R11) to 16-bit
// lanes: the first 16 into lo, the next 16 into hi.
#define CODES_Q8(lo, hi) \
	VPMOVZXBW (R11), lo \
	VPMOVZXBW 16(R11), hi

// DOT_ROW adds the products of codes lo and hi with the 32 x of a row at
// mem (lo's 16, then hi's) to the row's sums a0, a1.
#define DOT_ROW(lo, hi, mem0, mem1, a0, a1) \
	VPMADDWD mem0, lo, Y15 \
	VPADDD   Y15, a0, a0 \
	VPMADDWD mem1, hi, Y15 \
	VPADDD   Y15, a1, a1

// X1_GROUP adds the products of group j of a block of 8 with x to acc
// (zeroed at the block's start), unless fewer than j+1 groups are left
// (CX), when it goes on to the block's end; loop is its step label.
#define X1_GROUP(CODES, wbytes, j, acc, loop) \
	CMPQ CX, $j \
	JLE  reduce \
	MOVQ R9, DX \
loop: \
	CODES(Y12, Y13) \
	VPMADDWD (DI), Y12, Y15 \
	VPMADDWD 32(DI), Y13, Y11 \
	VPADDD   Y15, Y11, Y11 \
	VPADDD   Y11, acc, acc \
	ADDQ     $wbytes, R11 \
	ADDQ     $64, DI \
	DECQ     DX \
	JNZ      loop

// X1_BODY is the one-row kernel; a step's codes are wbytes bytes, a scale
// or bias size bytes, widened by WIDEN, copied to the stack by LD and ST.
#define X1_BODY(CODES, wbytes, WIDEN, size, LD, ST) \
	ARGS \
row: \
	ROW \
	VXORPS Y8, Y8, Y8 \
	VXORPS Y9, Y9, Y9 \
block: \
	VPXOR  Y0, Y0, Y0 \
	VPXOR  Y1, Y1, Y1 \
	VPXOR  Y2, Y2, Y2 \
	VPXOR  Y3, Y3, Y3 \
	VPXOR  Y4, Y4, Y4 \
	VPXOR  Y5, Y5, Y5 \
	VPXOR  Y6, Y6, Y6 \
	VPXOR  Y7, Y7, Y7 \
	X1_GROUP(CODES, wbytes, 0, Y0, step0) \
	X1_GROUP(CODES, wbytes, 1, Y1, step1) \
	X1_GROUP(CODES, wbytes, 2, Y2, step2) \
	X1_GROUP(CODES, wbytes, 3, Y3, step3) \
	X1_GROUP(CODES, wbytes, 4, Y4, step4) \
	X1_GROUP(CODES, wbytes, 5, Y5, step5) \
	X1_GROUP(CODES, wbytes, 6, Y6, step6) \
	X1_GROUP(CODES, wbytes, 7, Y7, step7) \
reduce: \
	VPHADDD    Y1, Y0, Y0 \
	VPHADDD    Y3, Y2, Y2 \
	VPHADDD    Y5, Y4, Y4 \
	VPHADDD    Y7, Y6, Y6 \
	VPHADDD    Y2, Y0, Y0 \
	VPHADDD    Y6, Y4, Y4 \
	VPERM2I128 $0x20, Y4, Y0, Y1 \
	VPERM2I128 $0x31, Y4, Y0, Y2 \
	VPADDD     Y2, Y1, Y0 \
	VCVTDQ2PS  Y0, Y0 \
	VMULPS     (BX), Y0, Y0 \
	CMPQ       CX, $8 \
	JGE        full \
	VPXOR      Y1, Y1, Y1 \
	VMOVDQU    Y1, 0(SP) \
	VMOVDQU    Y1, 32(SP) \
	XORQ       R8, R8 \
tail: \
	LD         (SI)(R8*size), R10 \
	ST         R10, 0(SP)(R8*size) \
	LD         (R12)(R8*size), R10 \
	ST         R10, 32(SP)(R8*size) \
	INCQ       R8 \
	CMPQ       R8, CX \
	JLT        tail \
	WIDEN(0(SP), Y1) \
	WIDEN(32(SP), Y2) \
	LEAQ       (SI)(CX*size), SI \
	LEAQ       (R12)(CX*size), R12 \
	JMP        sum \
full: \
	WIDEN((SI), Y1) \
	WIDEN((R12), Y2) \
	ADDQ   $(8*size), SI \
	ADDQ   $(8*size), R12 \
sum: \
	VFMADD231PS Y1, Y0, Y8 \
	VFMADD231PS (R13), Y2, Y9 \
	ADDQ   $32, R13 \
	ADDQ   $32, BX \
	SUBQ   $8, CX \
	JG     block \
	VADDPS Y9, Y8, Y8 \
	REDUCE8(Y8, X8, 0(AX)) \
	ADDQ   $4, AX \
	DECQ   n+192(FP) \
	JNZ    row \
	VZEROUPPER

// X4_END_ROW converts row i's sums a0 (+ a1) to float32 times its x scale
// at xs(BX).
#define X4_END_ROW(a0, a1, xs) \
	VPADDD       a1, a0, a0 \
	VCVTDQ2PS    a0, a0 \
	VBROADCASTSS xs(BX), Y13 \
	VMULPS       Y13, a0, a0

// X4_BODY is the four-row kernel (x row i's sums in Y(2i), Y(2i+1)); a
// step's codes are wbytes bytes.
#define X4_BODY(CODES, wbytes, BCAST, size) \
	ARGS \
row: \
	ROW \
	VXORPS Y8, Y8, Y8 \
	VXORPS Y9, Y9, Y9 \
	VXORPS Y10, Y10, Y10 \
	VXORPS Y11, Y11, Y11 \
group: \
	VPXOR  Y0, Y0, Y0 \
	VPXOR  Y1, Y1, Y1 \
	VPXOR  Y2, Y2, Y2 \
	VPXOR  Y3, Y3, Y3 \
	VPXOR  Y4, Y4, Y4 \
	VPXOR  Y5, Y5, Y5 \
	VPXOR  Y6, Y6, Y6 \
	VPXOR  Y7, Y7, Y7 \
	MOVQ   R9, DX \
step: \
	CODES(Y12, Y13) \
	DOT_ROW(Y12, Y13, (DI), 32(DI), Y0, Y1) \
	DOT_ROW(Y12, Y13, (DI)(R8*1), 32(DI)(R8*1), Y2, Y3) \
	DOT_ROW(Y12, Y13, (DI)(R8*2), 32(DI)(R8*2), Y4, Y5) \
	DOT_ROW(Y12, Y13, (DI)(R10*1), 32(DI)(R10*1), Y6, Y7) \
	ADDQ   $wbytes, R11 \
	ADDQ   $64, DI \
	DECQ   DX \
	JNZ    step \
	X4_END_ROW(Y0, Y1, 0) \
	X4_END_ROW(Y2, Y3, 4) \
	X4_END_ROW(Y4, Y5, 8) \
	X4_END_ROW(Y6, Y7, 12) \
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
	ADDQ   $16, BX \
	DECQ   CX \
	JNZ    group \
	REDUCE8(Y8, X8, 0(AX)) \
	REDUCE8(Y9, X9, 4(AX)) \
	REDUCE8(Y10, X10, 8(AX)) \
	REDUCE8(Y11, X11, 12(AX)) \
	ADDQ   $16, AX \
	DECQ   n+192(FP) \
	JNZ    row \
	VZEROUPPER

// func qdotQ4x1F32(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)
TEXT ·qdotQ4x1F32(SB), NOSPLIT, $64-200
	X1_BODY(CODES_Q4, 16, WIDEN_F32, 4, MOVL, MOVL)
	RET

// func qdotQ4x1BF16(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ4x1BF16(SB), NOSPLIT, $64-200
	X1_BODY(CODES_Q4, 16, WIDEN_BF16, 2, MOVWLZX, MOVW)
	RET

// func qdotQ4x1F16(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ4x1F16(SB), NOSPLIT, $64-200
	X1_BODY(CODES_Q4, 16, WIDEN_F16, 2, MOVWLZX, MOVW)
	RET

// func qdotQ8x1F32(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)
TEXT ·qdotQ8x1F32(SB), NOSPLIT, $64-200
	X1_BODY(CODES_Q8, 32, WIDEN_F32, 4, MOVL, MOVL)
	RET

// func qdotQ8x1BF16(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ8x1BF16(SB), NOSPLIT, $64-200
	X1_BODY(CODES_Q8, 32, WIDEN_BF16, 2, MOVWLZX, MOVW)
	RET

// func qdotQ8x1F16(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ8x1F16(SB), NOSPLIT, $64-200
	X1_BODY(CODES_Q8, 32, WIDEN_F16, 2, MOVWLZX, MOVW)
	RET

// func qdotQ4x4F32(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)
TEXT ·qdotQ4x4F32(SB), NOSPLIT, $0-200
	X4_BODY(CODES_Q4, 16, BCAST_F32, 4)
	RET

// func qdotQ4x4BF16(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ4x4BF16(SB), NOSPLIT, $0-200
	X4_BODY(CODES_Q4, 16, BCAST_BF16, 2)
	RET

// func qdotQ4x4F16(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ4x4F16(SB), NOSPLIT, $0-200
	X4_BODY(CODES_Q4, 16, BCAST_F16, 2)
	RET

// func qdotQ8x4F32(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)
TEXT ·qdotQ8x4F32(SB), NOSPLIT, $0-200
	X4_BODY(CODES_Q8, 32, BCAST_F32, 4)
	RET

// func qdotQ8x4BF16(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ8x4BF16(SB), NOSPLIT, $0-200
	X4_BODY(CODES_Q8, 32, BCAST_BF16, 2)
	RET

// func qdotQ8x4F16(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ8x4F16(SB), NOSPLIT, $0-200
	X4_BODY(CODES_Q8, 32, BCAST_F16, 2)
	RET

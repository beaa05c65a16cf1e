#include "textflag.h"

// func microKernel6x16(a, b, c []float32, k, ldc int, accumulate bool)
//
// The 6×16 tile is held in Y0..Y11 (row i in Y(2i), Y(2i+1)). Each k step
// loads 16 floats of the B panel (Y12, Y13) and broadcasts the 6 floats of
// the A panel in turn (Y14, Y15), for 12 fused multiply-adds. The tile
// then replaces c, or is added to it.
TEXT ·microKernel6x16(SB), NOSPLIT, $0-89
	MOVQ a_base+0(FP), SI
	MOVQ b_base+24(FP), DI
	MOVQ c_base+48(FP), DX
	MOVQ k+72(FP), CX
	MOVQ ldc+80(FP), R8
	SHLQ $2, R8

	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	TESTQ  CX, CX
	JZ     store

loop:
	VMOVUPS      (DI), Y12
	VMOVUPS      32(DI), Y13
	VBROADCASTSS (SI), Y14
	VFMADD231PS  Y12, Y14, Y0
	VFMADD231PS  Y13, Y14, Y1
	VBROADCASTSS 4(SI), Y15
	VFMADD231PS  Y12, Y15, Y2
	VFMADD231PS  Y13, Y15, Y3
	VBROADCASTSS 8(SI), Y14
	VFMADD231PS  Y12, Y14, Y4
	VFMADD231PS  Y13, Y14, Y5
	VBROADCASTSS 12(SI), Y15
	VFMADD231PS  Y12, Y15, Y6
	VFMADD231PS  Y13, Y15, Y7
	VBROADCASTSS 16(SI), Y14
	VFMADD231PS  Y12, Y14, Y8
	VFMADD231PS  Y13, Y14, Y9
	VBROADCASTSS 20(SI), Y15
	VFMADD231PS  Y12, Y15, Y10
	VFMADD231PS  Y13, Y15, Y11
	ADDQ         $24, SI
	ADDQ         $64, DI
	DECQ         CX
	JNZ          loop

store:
	MOVBLZX accumulate+88(FP), AX
	TESTL   AX, AX
	JZ      overwrite

	// c += tile, row by row.
	VADDPS  (DX), Y0, Y0
	VADDPS  32(DX), Y1, Y1
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Y2, Y2
	VADDPS  32(DX), Y3, Y3
	VMOVUPS Y2, (DX)
	VMOVUPS Y3, 32(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Y4, Y4
	VADDPS  32(DX), Y5, Y5
	VMOVUPS Y4, (DX)
	VMOVUPS Y5, 32(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Y6, Y6
	VADDPS  32(DX), Y7, Y7
	VMOVUPS Y6, (DX)
	VMOVUPS Y7, 32(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Y8, Y8
	VADDPS  32(DX), Y9, Y9
	VMOVUPS Y8, (DX)
	VMOVUPS Y9, 32(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Y10, Y10
	VADDPS  32(DX), Y11, Y11
	VMOVUPS Y10, (DX)
	VMOVUPS Y11, 32(DX)
	VZEROUPPER
	RET

overwrite:
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	ADDQ    R8, DX
	VMOVUPS Y2, (DX)
	VMOVUPS Y3, 32(DX)
	ADDQ    R8, DX
	VMOVUPS Y4, (DX)
	VMOVUPS Y5, 32(DX)
	ADDQ    R8, DX
	VMOVUPS Y6, (DX)
	VMOVUPS Y7, 32(DX)
	ADDQ    R8, DX
	VMOVUPS Y8, (DX)
	VMOVUPS Y9, 32(DX)
	ADDQ    R8, DX
	VMOVUPS Y10, (DX)
	VMOVUPS Y11, 32(DX)
	VZEROUPPER
	RET

// The small-M micro-kernels: func dotTile4x3<DT>(w []<elem>, ldw int,
// x []float32, ldx int, k int, tile *[12]float32).
//
// Dot products of 4 weight rows (w, ldw elements apart) with 3 rows of x
// (ldx floats apart) over k elements, a multiple of 8: the product of row
// r and row i accumulates in Y(3r+i), lane j taking the elements p ≡ j
// (mod 8) in order. Each step of 8 loads the 8 columns of the 3 x rows
// (Y12-Y14) and then, for each weight row in turn, loads and widens its 8
// weights (Y15) and multiplies them into the row's 3 accumulators. The
// lanes are then added as lanes j+4, j+2, j+1 and the sum for (r, i) is
// stored at tile[3r+i].
//
// Register use: SI the weights, DX and BX one and three weight rows in
// bytes, DI the x rows, R8 one x row in bytes, CX the steps left, AX the
// tile.

// Widening loads of eight weights at mem into a register of float32s.
#define WIDEN_F32(mem, reg) \
	VMOVUPS mem, reg

#define WIDEN_BF16(mem, reg) \
	VPMOVZXWD mem, reg \
	VPSLLD    $16, reg, reg

#define WIDEN_F16(mem, reg) \
	VCVTPH2PS mem, reg

// TILE_ROW multiplies weight row mem (widened by WIDEN) into accumulators
// a0..a2.
#define TILE_ROW(WIDEN, mem, a0, a1, a2) \
	WIDEN(mem, Y15) \
	VFMADD231PS Y15, Y12, a0 \
	VFMADD231PS Y15, Y13, a1 \
	VFMADD231PS Y15, Y14, a2

// REDUCE8 adds the 8 lanes of Y (X is its low half) as lanes j+4, j+2,
// j+1 and stores the sum at dst.
#define REDUCE8(Y, X, dst) \
	VEXTRACTF128 $1, Y, X15 \
	VADDPS       X15, X, X \
	VMOVHLPS     X, X, X15 \
	VADDPS       X15, X, X \
	VMOVSHDUP    X, X15 \
	VADDSS       X15, X, X \
	VMOVSS       X, dst

// DOT_TILE is the body of the micro-kernels, given the arguments in SI
// (w), DX (ldw), DI (x), R8 (ldx), CX (k) and AX (tile): the weights are
// `size` bytes per element, widened by WIDEN.
#define DOT_TILE(WIDEN, size) \
	IMULQ  $size, DX \
	LEAQ   (DX)(DX*2), BX \
	SHLQ   $2, R8 \
	SHRQ   $3, CX \
	VXORPS Y0, Y0, Y0 \
	VXORPS Y1, Y1, Y1 \
	VXORPS Y2, Y2, Y2 \
	VXORPS Y3, Y3, Y3 \
	VXORPS Y4, Y4, Y4 \
	VXORPS Y5, Y5, Y5 \
	VXORPS Y6, Y6, Y6 \
	VXORPS Y7, Y7, Y7 \
	VXORPS Y8, Y8, Y8 \
	VXORPS Y9, Y9, Y9 \
	VXORPS Y10, Y10, Y10 \
	VXORPS Y11, Y11, Y11 \
	TESTQ  CX, CX \
	JZ     reduce \
loop: \
	VMOVUPS (DI), Y12 \
	VMOVUPS (DI)(R8*1), Y13 \
	VMOVUPS (DI)(R8*2), Y14 \
	TILE_ROW(WIDEN, (SI), Y0, Y1, Y2) \
	TILE_ROW(WIDEN, (SI)(DX*1), Y3, Y4, Y5) \
	TILE_ROW(WIDEN, (SI)(DX*2), Y6, Y7, Y8) \
	TILE_ROW(WIDEN, (SI)(BX*1), Y9, Y10, Y11) \
	ADDQ    $(8*size), SI \
	ADDQ    $32, DI \
	DECQ    CX \
	JNZ     loop \
reduce: \
	REDUCE8(Y0, X0, 0(AX)) \
	REDUCE8(Y1, X1, 4(AX)) \
	REDUCE8(Y2, X2, 8(AX)) \
	REDUCE8(Y3, X3, 12(AX)) \
	REDUCE8(Y4, X4, 16(AX)) \
	REDUCE8(Y5, X5, 20(AX)) \
	REDUCE8(Y6, X6, 24(AX)) \
	REDUCE8(Y7, X7, 28(AX)) \
	REDUCE8(Y8, X8, 32(AX)) \
	REDUCE8(Y9, X9, 36(AX)) \
	REDUCE8(Y10, X10, 40(AX)) \
	REDUCE8(Y11, X11, 44(AX)) \
	VZEROUPPER

// func dotTile4x3F32(w []float32, ldw int, x []float32, ldx int, k int, tile *[12]float32)
TEXT ·dotTile4x3F32(SB), NOSPLIT, $0-80
	MOVQ w_base+0(FP), SI
	MOVQ ldw+24(FP), DX
	MOVQ x_base+32(FP), DI
	MOVQ ldx+56(FP), R8
	MOVQ k+64(FP), CX
	MOVQ tile+72(FP), AX
	DOT_TILE(WIDEN_F32, 4)
	RET

// func dotTile4x3BF16(w []uint16, ldw int, x []float32, ldx int, k int, tile *[12]float32)
TEXT ·dotTile4x3BF16(SB), NOSPLIT, $0-80
	MOVQ w_base+0(FP), SI
	MOVQ ldw+24(FP), DX
	MOVQ x_base+32(FP), DI
	MOVQ ldx+56(FP), R8
	MOVQ k+64(FP), CX
	MOVQ tile+72(FP), AX
	DOT_TILE(WIDEN_BF16, 2)
	RET

// func dotTile4x3F16(w []uint16, ldw int, x []float32, ldx int, k int, tile *[12]float32)
TEXT ·dotTile4x3F16(SB), NOSPLIT, $0-80
	MOVQ w_base+0(FP), SI
	MOVQ ldw+24(FP), DX
	MOVQ x_base+32(FP), DI
	MOVQ ldx+56(FP), R8
	MOVQ k+64(FP), CX
	MOVQ tile+72(FP), AX
	DOT_TILE(WIDEN_F16, 2)
	RET

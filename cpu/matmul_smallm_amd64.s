#include "textflag.h"
#include "widen_amd64.h"
#include "reduce_amd64.h"

// The small-M micro-kernels (matmul_smallm.go), one per weight dtype for
// each layout of the weights.
//
// func dotTiles<DT>(w []<elem>, ldw int, x []float32, ldx int, k int,
// blocks int, out []float32, ldo, pf int), weights stored [N, K]:
//
// The dot products over k elements (a multiple of 8) of 4 weight rows (w,
// ldw elements apart) with 3·blocks rows of x (ldx floats apart), taken 3
// rows at a time: the product of weight row r and x row 3b+i is stored at
// out[(3b+i)·ldo + r]. For each block of 3 x rows the 12 dot products
// accumulate in Y0-Y11 (row r with x row i in Y(3r+i)), lane j taking the
// elements p ≡ j (mod 8) in order. Each step of 8 loads the 8 columns of
// the 3 x rows (Y12-Y14) and then, for each weight row in turn, loads and
// widens its 8 weights (Y15) and multiplies them into the row's 3
// accumulators. The lanes are then added as lanes j+4, j+2, j+1.
//
// The weights of the first block's pass come from memory, those of the
// other blocks' from the cache. The hardware prefetchers follow four
// short interleaved streams poorly, and would leave the memory idle during
// the later passes: so each step also prefetches the 4 rows that follow
// the tile in w (the next tile, when ldw = k), pf bytes further each step,
// pf chosen so that the steps of all the blocks cover them evenly.
//
// Register use: R11 the weights, SI the weights of the step, DX and BX one
// and three weight rows in bytes, DI the x rows of the step, R13 those of
// the block, R8 one x row in bytes, R9 the blocks left, CX the steps left
// (then one output row in bytes), AX the outputs of the block, R10 the
// next address to prefetch, R12 pf.

// Loads of the arguments that the macros' bodies run short of registers
// for. They are defined before any function, for go vet checks the frame
// offsets of the lines inside a function against its own arguments.
#define LOAD_K MOVQ k+64(FP), CX
#define LOAD_LDO MOVQ ldo+104(FP), CX
#define LOAD_PF MOVQ pf+112(FP), R12
#define LOAD_ACC MOVBLZX acc+112(FP), CX

// TILE_ROW multiplies weight row mem (widened by WIDEN) into accumulators
// a0..a2.
#define TILE_ROW(WIDEN, mem, a0, a1, a2) \
	WIDEN(mem, Y15) \
	VFMADD231PS Y15, Y12, a0 \
	VFMADD231PS Y15, Y13, a1 \
	VFMADD231PS Y15, Y14, a2

// DOT_TILES is the body of the micro-kernels, given the arguments in R11
// (w), DX (ldw), DI (x), R8 (ldx), R9 (blocks) and AX (out); it loads k,
// ldo and pf itself (LOAD_K, LOAD_LDO, LOAD_PF: registers run short). The
// weights are `size` bytes per element, widened by WIDEN.
#define DOT_TILES(WIDEN, size) \
	IMULQ   $size, DX \
	LEAQ    (DX)(DX*2), BX \
	SHLQ    $2, R8 \
	LEAQ    (R11)(DX*4), R10 \
	LOAD_PF \
	TESTQ   R9, R9 \
	JZ      end \
block: \
	VXORPS  Y0, Y0, Y0 \
	VXORPS  Y1, Y1, Y1 \
	VXORPS  Y2, Y2, Y2 \
	VXORPS  Y3, Y3, Y3 \
	VXORPS  Y4, Y4, Y4 \
	VXORPS  Y5, Y5, Y5 \
	VXORPS  Y6, Y6, Y6 \
	VXORPS  Y7, Y7, Y7 \
	VXORPS  Y8, Y8, Y8 \
	VXORPS  Y9, Y9, Y9 \
	VXORPS  Y10, Y10, Y10 \
	VXORPS  Y11, Y11, Y11 \
	MOVQ    R11, SI \
	MOVQ    DI, R13 \
	LOAD_K \
	SHRQ    $3, CX \
	TESTQ   CX, CX \
	JZ      reduce \
step: \
	PREFETCHT0 (R10) \
	ADDQ    R12, R10 \
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
	JNZ     step \
reduce: \
	LOAD_LDO \
	SHLQ    $2, CX \
	REDUCE8(Y0, X0, 0(AX)) \
	REDUCE8(Y1, X1, 0(AX)(CX*1)) \
	REDUCE8(Y2, X2, 0(AX)(CX*2)) \
	REDUCE8(Y3, X3, 4(AX)) \
	REDUCE8(Y4, X4, 4(AX)(CX*1)) \
	REDUCE8(Y5, X5, 4(AX)(CX*2)) \
	REDUCE8(Y6, X6, 8(AX)) \
	REDUCE8(Y7, X7, 8(AX)(CX*1)) \
	REDUCE8(Y8, X8, 8(AX)(CX*2)) \
	REDUCE8(Y9, X9, 12(AX)) \
	REDUCE8(Y10, X10, 12(AX)(CX*1)) \
	REDUCE8(Y11, X11, 12(AX)(CX*2)) \
	LEAQ    (R13)(R8*2), DI \
	ADDQ    R8, DI \
	LEAQ    (AX)(CX*2), AX \
	ADDQ    CX, AX \
	DECQ    R9 \
	JNZ     block \
end: \
	VZEROUPPER

// func dotTilesF32(w []float32, ldw int, x []float32, ldx int, k int, blocks int, out []float32, ldo, pf int)
TEXT ·dotTilesF32(SB), NOSPLIT, $0-120
	MOVQ w_base+0(FP), R11
	MOVQ ldw+24(FP), DX
	MOVQ x_base+32(FP), DI
	MOVQ ldx+56(FP), R8
	MOVQ blocks+72(FP), R9
	MOVQ out_base+80(FP), AX
	DOT_TILES(WIDEN_F32, 4)
	RET

// func dotTilesBF16(w []uint16, ldw int, x []float32, ldx int, k int, blocks int, out []float32, ldo, pf int)
TEXT ·dotTilesBF16(SB), NOSPLIT, $0-120
	MOVQ w_base+0(FP), R11
	MOVQ ldw+24(FP), DX
	MOVQ x_base+32(FP), DI
	MOVQ ldx+56(FP), R8
	MOVQ blocks+72(FP), R9
	MOVQ out_base+80(FP), AX
	DOT_TILES(WIDEN_BF16, 2)
	RET

// func dotTilesF16(w []uint16, ldw int, x []float32, ldx int, k int, blocks int, out []float32, ldo, pf int)
TEXT ·dotTilesF16(SB), NOSPLIT, $0-120
	MOVQ w_base+0(FP), R11
	MOVQ ldw+24(FP), DX
	MOVQ x_base+32(FP), DI
	MOVQ ldx+56(FP), R8
	MOVQ blocks+72(FP), R9
	MOVQ out_base+80(FP), AX
	DOT_TILES(WIDEN_F16, 2)
	RET

// func axpyTiles<DT>(w []<elem>, ldw int, x []float32, ldx int, k int,
// blocks int, out []float32, ldo int, acc bool), weights stored [K, N]:
//
// The products over k elements of 4·blocks rows of x (ldx floats apart)
// with 24 columns of the weights (rows of the weights ldw elements apart),
// taken 4 x rows at a time: the product of x row 4b+i with column c is
// added (acc) to out[(4b+i)·ldo + c], or stored there. For each block of 4
// x rows the 4×24 sums accumulate in Y0-Y11 (x row i, columns 8v..8v+7 in
// Y(3i+v)), each over k in order. Each step loads and widens the 24
// weights of row p (Y12-Y14), then, for each x row in turn, broadcasts its
// element p (Y15) and multiplies it into the row's 3 accumulators.
//
// Register use: R11 the weights, SI the weight row of the step, DX one
// weight row in bytes, DI the x elements of the step, R13 the x rows of the
// block, R8 and R12 one and three x rows in bytes, R10 the blocks left, CX
// the steps left, AX the outputs of the block, BX and R9 one and three
// output rows in bytes.

// AXPY_ROW multiplies x element mem into accumulators a0..a2.
#define AXPY_ROW(mem, a0, a1, a2) \
	VBROADCASTSS mem, Y15 \
	VFMADD231PS  Y12, Y15, a0 \
	VFMADD231PS  Y13, Y15, a1 \
	VFMADD231PS  Y14, Y15, a2

// AXPY_TILES is the body of the micro-kernels, given the arguments in R11
// (w), DX (ldw), DI (x), R8 (ldx), R10 (blocks), AX (out) and BX (ldo); it
// loads k and acc itself (LOAD_K, LOAD_ACC: registers run short). The
// weights are `size` bytes per element, widened by WIDEN.
#define AXPY_TILES(WIDEN, size) \
	IMULQ   $size, DX \
	SHLQ    $2, R8 \
	LEAQ    (R8)(R8*2), R12 \
	SHLQ    $2, BX \
	LEAQ    (BX)(BX*2), R9 \
	TESTQ   R10, R10 \
	JZ      end \
block: \
	LOAD_ACC \
	TESTQ   CX, CX \
	JZ      zero \
	VMOVUPS (AX), Y0 \
	VMOVUPS 32(AX), Y1 \
	VMOVUPS 64(AX), Y2 \
	VMOVUPS (AX)(BX*1), Y3 \
	VMOVUPS 32(AX)(BX*1), Y4 \
	VMOVUPS 64(AX)(BX*1), Y5 \
	VMOVUPS (AX)(BX*2), Y6 \
	VMOVUPS 32(AX)(BX*2), Y7 \
	VMOVUPS 64(AX)(BX*2), Y8 \
	VMOVUPS (AX)(R9*1), Y9 \
	VMOVUPS 32(AX)(R9*1), Y10 \
	VMOVUPS 64(AX)(R9*1), Y11 \
	JMP     steps \
zero: \
	VXORPS  Y0, Y0, Y0 \
	VXORPS  Y1, Y1, Y1 \
	VXORPS  Y2, Y2, Y2 \
	VXORPS  Y3, Y3, Y3 \
	VXORPS  Y4, Y4, Y4 \
	VXORPS  Y5, Y5, Y5 \
	VXORPS  Y6, Y6, Y6 \
	VXORPS  Y7, Y7, Y7 \
	VXORPS  Y8, Y8, Y8 \
	VXORPS  Y9, Y9, Y9 \
	VXORPS  Y10, Y10, Y10 \
	VXORPS  Y11, Y11, Y11 \
steps: \
	MOVQ    R11, SI \
	MOVQ    DI, R13 \
	LOAD_K \
	TESTQ   CX, CX \
	JZ      store \
step: \
	WIDEN((SI), Y12) \
	WIDEN(8*size(SI), Y13) \
	WIDEN(16*size(SI), Y14) \
	AXPY_ROW((DI), Y0, Y1, Y2) \
	AXPY_ROW((DI)(R8*1), Y3, Y4, Y5) \
	AXPY_ROW((DI)(R8*2), Y6, Y7, Y8) \
	AXPY_ROW((DI)(R12*1), Y9, Y10, Y11) \
	ADDQ    DX, SI \
	ADDQ    $4, DI \
	DECQ    CX \
	JNZ     step \
store: \
	VMOVUPS Y0, (AX) \
	VMOVUPS Y1, 32(AX) \
	VMOVUPS Y2, 64(AX) \
	VMOVUPS Y3, (AX)(BX*1) \
	VMOVUPS Y4, 32(AX)(BX*1) \
	VMOVUPS Y5, 64(AX)(BX*1) \
	VMOVUPS Y6, (AX)(BX*2) \
	VMOVUPS Y7, 32(AX)(BX*2) \
	VMOVUPS Y8, 64(AX)(BX*2) \
	VMOVUPS Y9, (AX)(R9*1) \
	VMOVUPS Y10, 32(AX)(R9*1) \
	VMOVUPS Y11, 64(AX)(R9*1) \
	LEAQ    (R13)(R8*4), DI \
	LEAQ    (AX)(BX*4), AX \
	DECQ    R10 \
	JNZ     block \
end: \
	VZEROUPPER

// func axpyTilesF32(w []float32, ldw int, x []float32, ldx int, k int, blocks int, out []float32, ldo int, acc bool)
TEXT ·axpyTilesF32(SB), NOSPLIT, $0-113
	MOVQ w_base+0(FP), R11
	MOVQ ldw+24(FP), DX
	MOVQ x_base+32(FP), DI
	MOVQ ldx+56(FP), R8
	MOVQ blocks+72(FP), R10
	MOVQ out_base+80(FP), AX
	MOVQ ldo+104(FP), BX
	AXPY_TILES(WIDEN_F32, 4)
	RET

// func axpyTilesBF16(w []uint16, ldw int, x []float32, ldx int, k int, blocks int, out []float32, ldo int, acc bool)
TEXT ·axpyTilesBF16(SB), NOSPLIT, $0-113
	MOVQ w_base+0(FP), R11
	MOVQ ldw+24(FP), DX
	MOVQ x_base+32(FP), DI
	MOVQ ldx+56(FP), R8
	MOVQ blocks+72(FP), R10
	MOVQ out_base+80(FP), AX
	MOVQ ldo+104(FP), BX
	AXPY_TILES(WIDEN_BF16, 2)
	RET

// func axpyTilesF16(w []uint16, ldw int, x []float32, ldx int, k int, blocks int, out []float32, ldo int, acc bool)
TEXT ·axpyTilesF16(SB), NOSPLIT, $0-113
	MOVQ w_base+0(FP), R11
	MOVQ ldw+24(FP), DX
	MOVQ x_base+32(FP), DI
	MOVQ ldx+56(FP), R8
	MOVQ blocks+72(FP), R10
	MOVQ out_base+80(FP), AX
	MOVQ ldo+104(FP), BX
	AXPY_TILES(WIDEN_F16, 2)
	RET

#include "textflag.h"
#include "reduce_amd64.h"
#include "widen_amd64.h"

// The quantized matmul's micro-kernels (quantized.go), for 4- and 8-bit
// codes, with one row of x (x1) or four (x4), and scales and biases of
// each float dtype:
//
// func qdotQ<B>x<R><DT><ISA>(w []uint32, x []int16, ldx, groups, steps int,
// scales, biases []<elem>, xsums, xscales, out []float32, n int)
//
// for the instruction sets ISA: AVX2; AVX512 (AVX512F, AVX512BW and
// AVX512_VNNI: steps of 64 codes, VPDPWSSD); AVX512B (4 bits, one row of
// x, groups of 64 alone: x split into bytes, steps of 128 codes,
// VPDPBUSD; see X1_GROUP2_AVX512B). What follows describes the AVX2
// kernels; the AVX-512 ones differ where their macros say.
//
// For each of n rows of packed weights r (groups groups of codes a row,
// the rows one after another), their scales and biases (groups a row,
// widened as they are read) and R rows of x in 16-bit fixed point
// (packed by packQX, ldx elements apart), out[r·R + i] = Σ_g scales[g]·
// xscales_i[g]·Σ q·x_i + biases[g]·Σ x_i over each group's codes of row
// r. A group is steps steps of 32 codes. The codes are zero-extended from
// bytes to 16-bit lanes (for 4 bits, the low nibbles, even codes, masked, and the
// high nibbles, odd codes, shifted down) and multiplied with x by
// VPMADDWD, which adds pairs of products into 32-bit lanes: each group's
// sum is exact in integers.
//
// The kernels keep the integer sums of several groups apart (x1: 8
// groups, in Y0..Y7; x4: 2 groups of each of the 4 rows) and finish them
// together (LANE_SUMS): the 8 registers' lanes are added into one vector
// of 8 sums (VPHADDD twice, then the two 128-bit halves), converted to
// float32, multiplied by the matching 8 x scales and multiply-added with
// the groups' scales into Y8; the biases are multiply-added with the 8 x
// sums into Y9 (xscales and xsums: a float for each group and row, in
// that order, padded with zeros to whole blocks; qxLen, qxAt). A last
// block with fewer groups takes its scales and biases from a zeroed copy
// on the stack, so nothing past the row's is read. Finishing each group
// alone chained two multiply-adds a group on one accumulator, which set
// the speed of the one-row kernel.
//
// Register use: R11 the codes, DI the x of the step, R8 and R10 one and
// three x rows in bytes (x4; temporaries in x1), CX the groups left, DX
// the steps left, R9 steps, SI the scales, R12 the biases, R13 the x
// sums, BX the x scales, AX out; Y14 the nibble mask, Y15 and Y11
// products.
// The codes, scales and biases run on from one weight row to the next;
// x, its sums and scales start again at each row (ROW), and n+192(FP)
// counts the rows left.
//
// Each step prefetches the codes PFD bytes ahead (into the next rows:
// the rows of a call are contiguous). Without it, a GEMV whose weights
// stream from memory ran its arithmetic and its cache misses one after
// the other: on the development machine one core took the 4-bit codes
// at 4–6 GB/s against 16 GB/s from the cache and 6–8 GB/s for a plain
// read, and at 9–10 GB/s with the prefetch (docs/QUANT.md).
#define PFD 2048

#define ARGS \
	MOVL $0x000f000f, BX \
	VMOVD BX, X14 \
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

// The AVX-512 kernels (VNNI) take 64 codes a step, two runs of 32, in
// 512-bit registers, and VPDPWSSD multiplies and adds the pairs into the
// sums in one instruction. NIBBLES sets up the constants of an
// instruction set's kernels (the nibble mask in Y14 or Z14); SUMS leaves
// in Y0 the 8 groups' sums of Y0..Y7 (Z0..Z7) as float32 times their x
// scales: LANE_SUMS for AVX2, TREE_QUARTERS for AVX-512.
#define NIBBLES_AVX2 VPBROADCASTD X14, Y14
#define NIBBLES_AVX512 VPBROADCASTD X14, Z14
#define SUMS_AVX2 LANE_SUMS
#define SUMS_AVX512 \
	PAIR_HALVES(Z0, Z1) \
	PAIR_HALVES(Z2, Z3) \
	PAIR_HALVES(Z4, Z5) \
	PAIR_HALVES(Z6, Z7) \
	TREE_QUARTERS \
	SCALE_SUMS

// PAIR_HALVES leaves in za the sums of za's and zb's 16 lanes folded to
// 8 each: za's in its quarters 0–1, zb's in 2–3 (TREE_QUARTERS' layout).
#define PAIR_HALVES(za, zb) \
	VSHUFI64X2 $0x44, zb, za, Z11 \
	VSHUFI64X2 $0xee, zb, za, Z13 \
	VPADDD     Z13, Z11, za

// ZCODES_Q4 widens the 64 4-bit codes of the 32 bytes at (R11), two runs
// of 32, to 16-bit lanes in the order packQX lays out x: a, the first
// run's even codes then its odd ones; b, the second run's. The bytes
// widen to [first run, second run]; masked and shifted, each holds
// [first, second] of one parity, and VSHUFI64X2 takes the matching halves
// of the two.
#define ZCODES_Q4(a, b) \
	VPMOVZXBW  (R11), a \
	VPSRLW     $4, a, Z13 \
	VPANDD     Z14, a, a \
	VSHUFI64X2 $0xee, Z13, a, b \
	VSHUFI64X2 $0x44, Z13, a, a

// ZCODES_Q8 widens the 64 8-bit codes of the 64 bytes at (R11) to 16-bit
// lanes: the first 32 into a, the next 32 into b.
#define ZCODES_Q8(a, b) \
	VPMOVZXBW (R11), a \
	VPMOVZXBW 32(R11), b

// DOT_ROW adds the products of codes lo and hi with the 32 x of a row at
// mem0 (lo's 16) and mem1 (hi's 16) to the row's sums acc.
#define DOT_ROW(lo, hi, mem0, mem1, acc) \
	VPMADDWD mem0, lo, Y15 \
	VPMADDWD mem1, hi, Y11 \
	VPADDD   Y15, Y11, Y11 \
	VPADDD   Y11, acc, acc

// LANE_SUMS adds the lanes of each of Y0..Y7 (8 integer sums) into one
// vector of 8 float32s, Y0 = (ΣY0, ΣY1, …, ΣY7), times the 8 x scales at
// (BX) (SCALE_SUMS): VPHADDD twice gives each 128-bit half's partial sums
// in order, and the halves are then added.
#define LANE_SUMS \
	VPHADDD    Y1, Y0, Y0 \
	VPHADDD    Y3, Y2, Y2 \
	VPHADDD    Y5, Y4, Y4 \
	VPHADDD    Y7, Y6, Y6 \
	VPHADDD    Y2, Y0, Y0 \
	VPHADDD    Y6, Y4, Y4 \
	VPERM2I128 $0x20, Y4, Y0, Y1 \
	VPERM2I128 $0x31, Y4, Y0, Y2 \
	VPADDD     Y2, Y1, Y0 \
	SCALE_SUMS

// SCALE_SUMS converts the 8 integer sums of Y0 to float32 and multiplies
// them by the 8 x scales at (BX).
#define SCALE_SUMS \
	VCVTDQ2PS Y0, Y0 \
	VMULPS    (BX), Y0, Y0

// GROUP_HEAD starts a group's steps: to the block's reduce unless more
// than j groups are left (CX), then the step loop (DX steps), each step
// prefetching the codes PFD bytes ahead and widening its codes into a, b.
// GROUP_TAIL ends a step: the codes and x move on by wbytes and xbytes.
#define GROUP_HEAD(CODES, j, loop, a, b) \
	CMPQ CX, $j \
	JLE  reduce \
	MOVQ R9, DX \
loop: \
	PREFETCHT0 PFD(R11) \
	CODES(a, b)
#define GROUP_TAIL(wbytes, xbytes, loop) \
	ADDQ $wbytes, R11 \
	ADDQ xbytes, DI \
	DECQ DX \
	JNZ  loop

// X1_GROUP_AVX2 adds the products of group j of a block of 8 with x to
// acc (zeroed at the block's start; zacc is its 512-bit register, unused
// here), unless fewer than j+1 groups are left (CX), when it goes on to
// the block's end; loop is its step label.
#define X1_GROUP_AVX2(CODES, wbytes, j, acc, zacc, loop) \
	GROUP_HEAD(CODES, j, loop, Y12, Y13) \
	DOT_ROW(Y12, Y13, (DI), 32(DI), acc) \
	GROUP_TAIL(wbytes, $64, loop)

// X1_GROUP_AVX512 is X1_GROUP_AVX2 with AVX-512 steps of 64 codes into
// acc, the 512-bit register of yacc.
#define X1_GROUP_AVX512(CODES, wbytes, j, yacc, acc, loop) \
	GROUP_HEAD(CODES, j, loop, Z12, Z11) \
	VPDPWSSD   (DI), Z12, acc \
	VPDPWSSD   64(DI), Z11, acc \
	GROUP_TAIL(wbytes, $128, loop)

// X1_GROUP2_AVX2 and X1_GROUP2_AVX512 take the groups ja and jb = ja+1
// of a block into the sums ya and yb (za, zb: their 512-bit registers).
#define X1_GROUP2_AVX2(CODES, wbytes, ja, jb, ya, za, yb, zb, la, lb) \
	X1_GROUP_AVX2(CODES, wbytes, ja, ya, za, la) \
	X1_GROUP_AVX2(CODES, wbytes, jb, yb, zb, lb)
#define X1_GROUP2_AVX512(CODES, wbytes, ja, jb, ya, za, yb, zb, la, lb) \
	X1_GROUP_AVX512(CODES, wbytes, ja, ya, za, la) \
	X1_GROUP_AVX512(CODES, wbytes, jb, yb, zb, lb)

// The 4-bit one-row kernel with AVX-512 in bytes (AVX512B), for groups of
// 64 and K a multiple of 128: x is split into bytes, x = 256·xh + xl
// with xh signed and xl unsigned, laid out by splitQX per run of 128
// codes as xh of the even codes, xh of the odd ones, xl of the even, xl
// of the odd (64 bytes each). A step takes 128 codes, the 64 bytes at
// (R11): masked and shifted they are the even and the odd codes as
// bytes, and VPDPBUSD adds four byte products into each 32-bit lane:
// codes (unsigned) times xh (signed) into the pair's high sums za, xl
// (unsigned) times codes (signed, all below 16) into its low sums zb.
// Each 32-bit lane holds the products of 8 codes of one group: the
// lower 256 bits of za and zb group ja, the upper ones group jb.
#define X1_GROUP2_AVX512B(CODES, wbytes, ja, jb, ya, za, yb, zb, la, lb) \
	CMPQ       CX, $ja \
	JLE        reduce \
	PREFETCHT0 PFD(R11) \
	VMOVDQU64  (R11), Z12 \
	VPSRLW     $4, Z12, Z13 \
	VPANDD     Z14, Z12, Z12 \
	VPANDD     Z14, Z13, Z13 \
	VPDPBUSD   (DI), Z12, za \
	VPDPBUSD   64(DI), Z13, za \
	VMOVDQU64  128(DI), Z15 \
	VMOVDQU64  192(DI), Z11 \
	VPDPBUSD   Z12, Z15, zb \
	VPDPBUSD   Z13, Z11, zb \
	ADDQ       $64, R11 \
	ADDQ       $256, DI

// NIBBLES_AVX512B: the byte mask 0x0f in Z14.
#define NIBBLES_AVX512B \
	MOVL         $0x0f0f0f0f, BX \
	VMOVD        BX, X14 \
	VPBROADCASTD X14, Z14

// SUMS_AVX512B forms each pair's sums, 256·high + low (exact): Z0 holds
// groups 0 and 1 (8 lanes each), Z2 groups 2 and 3, Z4 and Z6 the rest,
// which TREE_QUARTERS sums.
#define SUMS_AVX512B \
	VPSLLD $8, Z0, Z0 \
	VPADDD Z1, Z0, Z0 \
	VPSLLD $8, Z2, Z2 \
	VPADDD Z3, Z2, Z2 \
	VPSLLD $8, Z4, Z4 \
	VPADDD Z5, Z4, Z4 \
	VPSLLD $8, Z6, Z6 \
	VPADDD Z7, Z6, Z6 \
	TREE_QUARTERS \
	SCALE_SUMS

// TREE_QUARTERS adds the lanes of 8 groups' integer sums held two groups a
// register, each in two 128-bit quarters: groups 0 and 1 in Z0 (quarters
// 0–1 and 2–3), 2 and 3 in Z2, 4 and 5 in Z4, 6 and 7 in Z6. It leaves Y0
// = (Σ group 0, …, Σ group 7). The quarters of Z0 and Z2 are paired and
// added (VSHUFI64X2), leaving one quarter a group, groups 0–3 in Z1 and
// 4–7 in Z5; within each quarter the two registers' lanes are interleaved
// and added twice, which leaves quarter k with group k's sum in its lane
// 0 and group k+4's in lane 2; VPERMD gathers the 8 in order. Z11 and Z13
// are temporaries.
#define TREE_QUARTERS \
	VSHUFI64X2  $0x88, Z2, Z0, Z1 \
	VSHUFI64X2  $0xdd, Z2, Z0, Z3 \
	VPADDD      Z3, Z1, Z1 \
	VSHUFI64X2  $0x88, Z6, Z4, Z5 \
	VSHUFI64X2  $0xdd, Z6, Z4, Z7 \
	VPADDD      Z7, Z5, Z5 \
	VPUNPCKLQDQ Z5, Z1, Z0 \
	VPUNPCKHQDQ Z5, Z1, Z2 \
	VPADDD      Z2, Z0, Z0 \
	VPSHUFD     $0xb1, Z0, Z2 \
	VPADDD      Z2, Z0, Z0 \
	VMOVDQU32   qdotSumsOrder<>(SB), Z13 \
	VPERMD      Z0, Z13, Z0

// qdotSumsOrder is where TREE_QUARTERS' VPERMD takes groups 0–7 from.
DATA qdotSumsOrder<>+0(SB)/4, $0
DATA qdotSumsOrder<>+4(SB)/4, $4
DATA qdotSumsOrder<>+8(SB)/4, $8
DATA qdotSumsOrder<>+12(SB)/4, $12
DATA qdotSumsOrder<>+16(SB)/4, $2
DATA qdotSumsOrder<>+20(SB)/4, $6
DATA qdotSumsOrder<>+24(SB)/4, $10
DATA qdotSumsOrder<>+28(SB)/4, $14
DATA qdotSumsOrder<>+32(SB)/8, $0
DATA qdotSumsOrder<>+40(SB)/8, $0
DATA qdotSumsOrder<>+48(SB)/8, $0
DATA qdotSumsOrder<>+56(SB)/8, $0
GLOBL qdotSumsOrder<>(SB), RODATA|NOPTR, $64

// X1_BODY is the one-row kernel for an instruction set (AVX2, AVX512 or
// AVX512B: GROUP2, NIBBLES and SUMS of it); a step's codes are wbytes
// bytes, a scale or bias size bytes, widened by WIDEN, copied to the
// stack by LD and ST.
#define X1_BODY(GROUP2, NIBBLES, SUMS, CODES, wbytes, WIDEN, size, LD, ST) \
	ARGS \
	NIBBLES \
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
	GROUP2(CODES, wbytes, 0, 1, Y0, Z0, Y1, Z1, step0, step1) \
	GROUP2(CODES, wbytes, 2, 3, Y2, Z2, Y3, Z3, step2, step3) \
	GROUP2(CODES, wbytes, 4, 5, Y4, Z4, Y5, Z5, step4, step5) \
	GROUP2(CODES, wbytes, 6, 7, Y6, Z6, Y7, Z7, step6, step7) \
reduce: \
	SUMS \
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

// BCAST2 broadcasts the pair of scales or biases at mem, of each dtype,
// to the 8 lanes of Y as s0, s1, s0, s1, … (X is its low half).
#define BCAST2_F32(mem, Y, X) VBROADCASTSD mem, Y
#define BCAST2_BF16(mem, Y, X) VPBROADCASTD mem, X; VPMOVZXWD X, Y; VPSLLD $16, Y, Y
#define BCAST2_F16(mem, Y, X) VPBROADCASTD mem, X; VCVTPH2PS X, Y

// X4_GROUP_AVX2 adds the products of group j of a pair with the four rows
// of x to a0..a3 (zeroed at the pair's start; z0..z3 are their 512-bit
// registers, unused here), unless fewer than j+1 groups are left (CX),
// when it goes on to the pair's end; loop is its step label.
#define X4_GROUP_AVX2(CODES, wbytes, j, a0, a1, a2, a3, z0, z1, z2, z3, loop) \
	GROUP_HEAD(CODES, j, loop, Y12, Y13) \
	DOT_ROW(Y12, Y13, (DI), 32(DI), a0) \
	DOT_ROW(Y12, Y13, (DI)(R8*1), 32(DI)(R8*1), a1) \
	DOT_ROW(Y12, Y13, (DI)(R8*2), 32(DI)(R8*2), a2) \
	DOT_ROW(Y12, Y13, (DI)(R10*1), 32(DI)(R10*1), a3) \
	GROUP_TAIL(wbytes, $64, loop)

// X4_GROUP_AVX512 is X4_GROUP_AVX2 with AVX-512 steps of 64 codes into
// z0..z3, the 512-bit registers of y0..y3.
#define X4_GROUP_AVX512(CODES, wbytes, j, y0, y1, y2, y3, z0, z1, z2, z3, loop) \
	GROUP_HEAD(CODES, j, loop, Z12, Z11) \
	VPDPWSSD   (DI), Z12, z0 \
	VPDPWSSD   64(DI), Z11, z0 \
	VPDPWSSD   (DI)(R8*1), Z12, z1 \
	VPDPWSSD   64(DI)(R8*1), Z11, z1 \
	VPDPWSSD   (DI)(R8*2), Z12, z2 \
	VPDPWSSD   64(DI)(R8*2), Z11, z2 \
	VPDPWSSD   (DI)(R10*1), Z12, z3 \
	VPDPWSSD   64(DI)(R10*1), Z11, z3 \
	GROUP_TAIL(wbytes, $128, loop)

// X4_BODY is the four-row kernel for an instruction set (GROUP, NIBBLES
// and SUMS of it, as X1_BODY's); a step's codes are wbytes bytes, a
// scale or bias size bytes, a pair of them broadcast by BCAST2, copied
// to the stack by LD and ST. It finishes the groups two at a time: row
// i's sums of the pair's groups in Y(2i) and Y(2i+1), which the lane
// sums put in that order, matching the pair's x scales and x sums (qxAt)
// and the pair of scales and biases broadcast; the totals' two lanes of
// each row are added at the end.
#define X4_BODY(GROUP, NIBBLES, SUMS, CODES, wbytes, BCAST2, size, LD, ST) \
	ARGS \
	NIBBLES \
row: \
	ROW \
	VXORPS Y8, Y8, Y8 \
	VXORPS Y9, Y9, Y9 \
pair: \
	VPXOR  Y0, Y0, Y0 \
	VPXOR  Y1, Y1, Y1 \
	VPXOR  Y2, Y2, Y2 \
	VPXOR  Y3, Y3, Y3 \
	VPXOR  Y4, Y4, Y4 \
	VPXOR  Y5, Y5, Y5 \
	VPXOR  Y6, Y6, Y6 \
	VPXOR  Y7, Y7, Y7 \
	GROUP(CODES, wbytes, 0, Y0, Y2, Y4, Y6, Z0, Z2, Z4, Z6, step0) \
	GROUP(CODES, wbytes, 1, Y1, Y3, Y5, Y7, Z1, Z3, Z5, Z7, step1) \
reduce: \
	SUMS \
	CMPQ       CX, $2 \
	JGE        full \
	MOVQ       $0, 0(SP) \
	MOVQ       $0, 8(SP) \
	LD         (SI), DX \
	ST         DX, 0(SP) \
	LD         (R12), DX \
	ST         DX, 8(SP) \
	BCAST2(0(SP), Y1, X1) \
	BCAST2(8(SP), Y2, X2) \
	ADDQ       $size, SI \
	ADDQ       $size, R12 \
	JMP        sum \
full: \
	BCAST2((SI), Y1, X1) \
	BCAST2((R12), Y2, X2) \
	ADDQ       $(2*size), SI \
	ADDQ       $(2*size), R12 \
sum: \
	VFMADD231PS Y1, Y0, Y8 \
	VFMADD231PS (R13), Y2, Y9 \
	ADDQ   $32, R13 \
	ADDQ   $32, BX \
	SUBQ   $2, CX \
	JG     pair \
	VADDPS       Y9, Y8, Y8 \
	VHADDPS      Y8, Y8, Y8 \
	VEXTRACTF128 $1, Y8, X10 \
	VUNPCKLPD    X10, X8, X8 \
	VMOVUPS      X8, (AX) \
	ADDQ   $16, AX \
	DECQ   n+192(FP) \
	JNZ    row \
	VZEROUPPER

// func qdotQ4x1F32AVX2(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)
TEXT ·qdotQ4x1F32AVX2(SB), NOSPLIT, $64-200
	X1_BODY(X1_GROUP2_AVX2, NIBBLES_AVX2, SUMS_AVX2, CODES_Q4, 16, WIDEN_F32, 4, MOVL, MOVL)
	RET

// func qdotQ4x1BF16AVX2(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ4x1BF16AVX2(SB), NOSPLIT, $64-200
	X1_BODY(X1_GROUP2_AVX2, NIBBLES_AVX2, SUMS_AVX2, CODES_Q4, 16, WIDEN_BF16, 2, MOVWLZX, MOVW)
	RET

// func qdotQ4x1F16AVX2(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ4x1F16AVX2(SB), NOSPLIT, $64-200
	X1_BODY(X1_GROUP2_AVX2, NIBBLES_AVX2, SUMS_AVX2, CODES_Q4, 16, WIDEN_F16, 2, MOVWLZX, MOVW)
	RET

// func qdotQ8x1F32AVX2(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)
TEXT ·qdotQ8x1F32AVX2(SB), NOSPLIT, $64-200
	X1_BODY(X1_GROUP2_AVX2, NIBBLES_AVX2, SUMS_AVX2, CODES_Q8, 32, WIDEN_F32, 4, MOVL, MOVL)
	RET

// func qdotQ8x1BF16AVX2(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ8x1BF16AVX2(SB), NOSPLIT, $64-200
	X1_BODY(X1_GROUP2_AVX2, NIBBLES_AVX2, SUMS_AVX2, CODES_Q8, 32, WIDEN_BF16, 2, MOVWLZX, MOVW)
	RET

// func qdotQ8x1F16AVX2(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ8x1F16AVX2(SB), NOSPLIT, $64-200
	X1_BODY(X1_GROUP2_AVX2, NIBBLES_AVX2, SUMS_AVX2, CODES_Q8, 32, WIDEN_F16, 2, MOVWLZX, MOVW)
	RET

// func qdotQ4x4F32AVX2(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)
TEXT ·qdotQ4x4F32AVX2(SB), NOSPLIT, $16-200
	X4_BODY(X4_GROUP_AVX2, NIBBLES_AVX2, SUMS_AVX2, CODES_Q4, 16, BCAST2_F32, 4, MOVL, MOVL)
	RET

// func qdotQ4x4BF16AVX2(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ4x4BF16AVX2(SB), NOSPLIT, $16-200
	X4_BODY(X4_GROUP_AVX2, NIBBLES_AVX2, SUMS_AVX2, CODES_Q4, 16, BCAST2_BF16, 2, MOVWLZX, MOVW)
	RET

// func qdotQ4x4F16AVX2(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ4x4F16AVX2(SB), NOSPLIT, $16-200
	X4_BODY(X4_GROUP_AVX2, NIBBLES_AVX2, SUMS_AVX2, CODES_Q4, 16, BCAST2_F16, 2, MOVWLZX, MOVW)
	RET

// func qdotQ8x4F32AVX2(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)
TEXT ·qdotQ8x4F32AVX2(SB), NOSPLIT, $16-200
	X4_BODY(X4_GROUP_AVX2, NIBBLES_AVX2, SUMS_AVX2, CODES_Q8, 32, BCAST2_F32, 4, MOVL, MOVL)
	RET

// func qdotQ8x4BF16AVX2(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ8x4BF16AVX2(SB), NOSPLIT, $16-200
	X4_BODY(X4_GROUP_AVX2, NIBBLES_AVX2, SUMS_AVX2, CODES_Q8, 32, BCAST2_BF16, 2, MOVWLZX, MOVW)
	RET

// func qdotQ8x4F16AVX2(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ8x4F16AVX2(SB), NOSPLIT, $16-200
	X4_BODY(X4_GROUP_AVX2, NIBBLES_AVX2, SUMS_AVX2, CODES_Q8, 32, BCAST2_F16, 2, MOVWLZX, MOVW)
	RET

// func qdotQ4x1F32AVX512(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)
TEXT ·qdotQ4x1F32AVX512(SB), NOSPLIT, $64-200
	X1_BODY(X1_GROUP2_AVX512, NIBBLES_AVX512, SUMS_AVX512, ZCODES_Q4, 32, WIDEN_F32, 4, MOVL, MOVL)
	RET

// func qdotQ4x1BF16AVX512(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ4x1BF16AVX512(SB), NOSPLIT, $64-200
	X1_BODY(X1_GROUP2_AVX512, NIBBLES_AVX512, SUMS_AVX512, ZCODES_Q4, 32, WIDEN_BF16, 2, MOVWLZX, MOVW)
	RET

// func qdotQ4x1F16AVX512(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ4x1F16AVX512(SB), NOSPLIT, $64-200
	X1_BODY(X1_GROUP2_AVX512, NIBBLES_AVX512, SUMS_AVX512, ZCODES_Q4, 32, WIDEN_F16, 2, MOVWLZX, MOVW)
	RET

// func qdotQ8x1F32AVX512(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)
TEXT ·qdotQ8x1F32AVX512(SB), NOSPLIT, $64-200
	X1_BODY(X1_GROUP2_AVX512, NIBBLES_AVX512, SUMS_AVX512, ZCODES_Q8, 64, WIDEN_F32, 4, MOVL, MOVL)
	RET

// func qdotQ8x1BF16AVX512(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ8x1BF16AVX512(SB), NOSPLIT, $64-200
	X1_BODY(X1_GROUP2_AVX512, NIBBLES_AVX512, SUMS_AVX512, ZCODES_Q8, 64, WIDEN_BF16, 2, MOVWLZX, MOVW)
	RET

// func qdotQ8x1F16AVX512(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ8x1F16AVX512(SB), NOSPLIT, $64-200
	X1_BODY(X1_GROUP2_AVX512, NIBBLES_AVX512, SUMS_AVX512, ZCODES_Q8, 64, WIDEN_F16, 2, MOVWLZX, MOVW)
	RET

// func qdotQ4x4F32AVX512(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)
TEXT ·qdotQ4x4F32AVX512(SB), NOSPLIT, $16-200
	X4_BODY(X4_GROUP_AVX512, NIBBLES_AVX512, SUMS_AVX512, ZCODES_Q4, 32, BCAST2_F32, 4, MOVL, MOVL)
	RET

// func qdotQ4x4BF16AVX512(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ4x4BF16AVX512(SB), NOSPLIT, $16-200
	X4_BODY(X4_GROUP_AVX512, NIBBLES_AVX512, SUMS_AVX512, ZCODES_Q4, 32, BCAST2_BF16, 2, MOVWLZX, MOVW)
	RET

// func qdotQ4x4F16AVX512(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ4x4F16AVX512(SB), NOSPLIT, $16-200
	X4_BODY(X4_GROUP_AVX512, NIBBLES_AVX512, SUMS_AVX512, ZCODES_Q4, 32, BCAST2_F16, 2, MOVWLZX, MOVW)
	RET

// func qdotQ8x4F32AVX512(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)
TEXT ·qdotQ8x4F32AVX512(SB), NOSPLIT, $16-200
	X4_BODY(X4_GROUP_AVX512, NIBBLES_AVX512, SUMS_AVX512, ZCODES_Q8, 64, BCAST2_F32, 4, MOVL, MOVL)
	RET

// func qdotQ8x4BF16AVX512(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ8x4BF16AVX512(SB), NOSPLIT, $16-200
	X4_BODY(X4_GROUP_AVX512, NIBBLES_AVX512, SUMS_AVX512, ZCODES_Q8, 64, BCAST2_BF16, 2, MOVWLZX, MOVW)
	RET

// func qdotQ8x4F16AVX512(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ8x4F16AVX512(SB), NOSPLIT, $16-200
	X4_BODY(X4_GROUP_AVX512, NIBBLES_AVX512, SUMS_AVX512, ZCODES_Q8, 64, BCAST2_F16, 2, MOVWLZX, MOVW)
	RET

// func qdotQ4x1F32AVX512B(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)
TEXT ·qdotQ4x1F32AVX512B(SB), NOSPLIT, $64-200
	X1_BODY(X1_GROUP2_AVX512B, NIBBLES_AVX512B, SUMS_AVX512B, CODES_NONE, 64, WIDEN_F32, 4, MOVL, MOVL)
	RET

// func qdotQ4x1BF16AVX512B(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ4x1BF16AVX512B(SB), NOSPLIT, $64-200
	X1_BODY(X1_GROUP2_AVX512B, NIBBLES_AVX512B, SUMS_AVX512B, CODES_NONE, 64, WIDEN_BF16, 2, MOVWLZX, MOVW)
	RET

// func qdotQ4x1F16AVX512B(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
TEXT ·qdotQ4x1F16AVX512B(SB), NOSPLIT, $64-200
	X1_BODY(X1_GROUP2_AVX512B, NIBBLES_AVX512B, SUMS_AVX512B, CODES_NONE, 64, WIDEN_F16, 2, MOVWLZX, MOVW)
	RET

// func packQXGroupAVX2(dst []int16, x []float32, bits int) float32
//
// packQXGroup with AVX2: for the group x (a positive multiple of 32
// elements), sx = max|x|/32767 (max|x| by the bits without the sign,
// VPMAXUD), returned; then each element rounded to v/sx by the same
// float32 operations as packQXGroupGo (VDIVPS is IEEE division, as DIVSS;
// the addition and subtraction of 1.5·2^23 round to the nearest integer,
// ties to even), truncated to int32 (exact; NaN and out-of-range give
// 0x80000000, as Go's conversion does on amd64), saturated to int16
// (VPACKSSDW) and raised to at least −32767 (VPMAXSW): min(32767,
// max(−32767, ·)) of the same integer. For 4 bits each run of 32 goes out
// as its 16 even elements, then its 16 odd ones: VSHUFPS picks them
// within 128-bit lanes and VPERMQ puts the lanes' halves in order.
// sx = 0 stores zeros. Registers: DI dst, SI x, CX len(x), DX bits, AX
// element; Y15 |·| mask then sx, Y14 1.5·2^23, Y13 −32767 in 16-bit lanes.
#define PACKQX_ROUND(Y) \
	VDIVPS Y15, Y, Y; \
	VADDPS Y14, Y, Y; \
	VSUBPS Y14, Y, Y

// PACKQX_LOAD loads x[AX:AX+32] into Y0–Y3, divided by the scale and
// rounded to integers (as floats).
#define PACKQX_LOAD \
	VMOVUPS (SI)(AX*4), Y0; \
	VMOVUPS 32(SI)(AX*4), Y1; \
	VMOVUPS 64(SI)(AX*4), Y2; \
	VMOVUPS 96(SI)(AX*4), Y3; \
	PACKQX_ROUND(Y0); \
	PACKQX_ROUND(Y1); \
	PACKQX_ROUND(Y2); \
	PACKQX_ROUND(Y3)

// PACKQX_STORE puts the int16 lanes of Y8 and Y9 in order, clamps them to
// −32767 and stores them at dst[AX:AX+32].
#define PACKQX_STORE \
	VPERMQ $0xd8, Y8, Y8; \
	VPERMQ $0xd8, Y9, Y9; \
	VPMAXSW Y13, Y8, Y8; \
	VPMAXSW Y13, Y9, Y9; \
	VMOVDQU Y8, (DI)(AX*2); \
	VMOVDQU Y9, 32(DI)(AX*2)

TEXT ·packQXGroupAVX2(SB), NOSPLIT, $0-60
	MOVQ dst_base+0(FP), DI
	MOVQ x_base+24(FP), SI
	MOVQ x_len+32(FP), CX
	MOVQ bits+48(FP), DX
	MOVQ $0x7fffffff, AX
	MOVQ AX, X15
	VPBROADCASTD X15, Y15
	VPXOR Y0, Y0, Y0
	XORQ AX, AX
pqmax:
	VPAND (SI)(AX*4), Y15, Y1
	VPMAXUD Y1, Y0, Y0
	ADDQ $8, AX
	CMPQ AX, CX
	JB   pqmax
	VEXTRACTI128 $1, Y0, X1
	VPMAXUD X1, X0, X0
	VPSHUFD $0x4e, X0, X1
	VPMAXUD X1, X0, X0
	VPSHUFD $0xb1, X0, X1
	VPMAXUD X1, X0, X0
	MOVQ $0x46fffe00, AX // 32767
	MOVQ AX, X1
	VDIVSS X1, X0, X0
	VMOVSS X0, ret+56(FP)
	VXORPS X1, X1, X1
	VUCOMISS X1, X0
	JP   pqscaled // NaN: rounded as Go rounds it
	JNE  pqscaled
	VPXOR Y0, Y0, Y0
	XORQ AX, AX
pqzero:
	VMOVDQU Y0, (DI)(AX*2)
	ADDQ $16, AX
	CMPQ AX, CX
	JB   pqzero
	VZEROUPPER
	RET
pqscaled:
	VBROADCASTSS X0, Y15
	MOVQ $0x4b400000, AX // 1.5·2^23
	MOVQ AX, X14
	VBROADCASTSS X14, Y14
	MOVQ $0x80018001, AX // −32767, −32767
	MOVQ AX, X13
	VPBROADCASTD X13, Y13
	XORQ AX, AX
	CMPQ DX, $8
	JEQ  pq8
pq4:
	PACKQX_LOAD
	VSHUFPS $0x88, Y1, Y0, Y4 // 0 2 8 10 | 4 6 12 14
	VSHUFPS $0xdd, Y1, Y0, Y5 // 1 3 9 11 | 5 7 13 15
	VSHUFPS $0x88, Y3, Y2, Y6
	VSHUFPS $0xdd, Y3, Y2, Y7
	VPERMQ $0xd8, Y4, Y4 // 0 2 4 6 8 10 12 14
	VPERMQ $0xd8, Y5, Y5
	VPERMQ $0xd8, Y6, Y6
	VPERMQ $0xd8, Y7, Y7
	VCVTTPS2DQ Y4, Y4
	VCVTTPS2DQ Y5, Y5
	VCVTTPS2DQ Y6, Y6
	VCVTTPS2DQ Y7, Y7
	VPACKSSDW Y6, Y4, Y8 // 0..6 16..22 | 8..14 24..30
	VPACKSSDW Y7, Y5, Y9
	PACKQX_STORE
	ADDQ $32, AX
	CMPQ AX, CX
	JB   pq4
	VZEROUPPER
	RET
pq8:
	PACKQX_LOAD
	VCVTTPS2DQ Y0, Y0
	VCVTTPS2DQ Y1, Y1
	VCVTTPS2DQ Y2, Y2
	VCVTTPS2DQ Y3, Y3
	VPACKSSDW Y1, Y0, Y8 // 0..3 8..11 | 4..7 12..15
	VPACKSSDW Y3, Y2, Y9
	PACKQX_STORE
	ADDQ $32, AX
	CMPQ AX, CX
	JB   pq8
	VZEROUPPER
	RET

// func splitQXAVX512(x []int16)
//
// Each run of 128 elements is 4 runs of 32 (packQX's: 16 even elements,
// then 16 odd ones), a 512-bit register each: VPMOVWB keeps each element's
// lower byte (xl) and, after VPSRAW by 8, its upper one (xh), 32 bytes a
// run of 32 (its 16 even elements' bytes, then its odd ones'), whose two
// 16-byte halves go to the even and the odd part of xh or xl. The whole
// run is loaded before any of it is written.
TEXT ·splitQXAVX512(SB), NOSPLIT, $0-24
	MOVQ x_base+0(FP), DI
	MOVQ x_len+8(FP), CX
	LEAQ (DI)(CX*2), CX
	CMPQ DI, CX
	JAE  sqdone
sqrun:
	VMOVDQU64 (DI), Z0
	VMOVDQU64 64(DI), Z1
	VMOVDQU64 128(DI), Z2
	VMOVDQU64 192(DI), Z3
	VPSRAW    $8, Z0, Z4
	VPSRAW    $8, Z1, Z5
	VPSRAW    $8, Z2, Z6
	VPSRAW    $8, Z3, Z7
	VPMOVWB   Z0, Y0
	VPMOVWB   Z1, Y1
	VPMOVWB   Z2, Y2
	VPMOVWB   Z3, Y3
	VPMOVWB   Z4, Y4
	VPMOVWB   Z5, Y5
	VPMOVWB   Z6, Y6
	VPMOVWB   Z7, Y7
	VMOVDQU      X4, (DI)
	VEXTRACTI128 $1, Y4, 64(DI)
	VMOVDQU      X5, 16(DI)
	VEXTRACTI128 $1, Y5, 80(DI)
	VMOVDQU      X6, 32(DI)
	VEXTRACTI128 $1, Y6, 96(DI)
	VMOVDQU      X7, 48(DI)
	VEXTRACTI128 $1, Y7, 112(DI)
	VMOVDQU      X0, 128(DI)
	VEXTRACTI128 $1, Y0, 192(DI)
	VMOVDQU      X1, 144(DI)
	VEXTRACTI128 $1, Y1, 208(DI)
	VMOVDQU      X2, 160(DI)
	VEXTRACTI128 $1, Y2, 224(DI)
	VMOVDQU      X3, 176(DI)
	VEXTRACTI128 $1, Y3, 240(DI)
	ADDQ $256, DI
	CMPQ DI, CX
	JB   sqrun
sqdone:
	VZEROUPPER
	RET

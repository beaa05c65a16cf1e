#include "textflag.h"
#include "widen_amd64.h"

// Kernels of paged attention (see attention_amd64.go). The block kernels
// (attnScoresF32, attnValuesF32) take float32 rows stride elements apart,
// of len(q) (or len(o)) elements, a positive multiple of 8. The token
// kernels' bodies are macros, defined here above every TEXT: go vet reads
// the lines after a TEXT as that function's, and cannot check argument
// offsets inside a macro, so TestAttentionTokenKernels checks them.

#define ZERO8 \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	VXORPS Y4, Y4, Y4; \
	VXORPS Y5, Y5, Y5; \
	VXORPS Y6, Y6, Y6; \
	VXORPS Y7, Y7, Y7

// The per-token kernels of the decode path (attendToken): n keys of one
// cache block, key j's row for KV head h at k + j·kstride + h·hs elements,
// and the len(q)/hs query rows of one token, row r with KV head r/group.
// hs is a positive multiple of 16. Query rows go two at a time (the last
// one alone when group is odd), so each widened K or V chunk serves both.
// One body per kernel, expanded for each cache dtype: LOAD is one of the
// WIDEN macros of widen_amd64.h, ES is the element size and LOGES its log2.

// func attnTokenDots*(s []float32, bs int, q []float32, k []T, kstride, n, hs, group, ahead int)
//
// s[r·bs + j] = q row r · (key j, KV head r/group), for j < n, key by key in
// memory order. Unless ahead is 0, each key also prefetches into L2 the K
// row of the same key in the next block, ahead elements on (the values
// kernel does the same for V): blocks lie anywhere in the cache, the
// hardware prefetchers start over at each one, and a core streams the
// blocks at most as fast as it keeps the next one's lines in flight.
// Prefetching into L1 instead was slower, and so was prefetching this
// block's V rows into L1 here, as an earlier form did: one core streamed
// randomly placed blocks at 12 GB/s with it and 15 without. Registers: DI s column j, BX bs
// in bytes, R8 key j, R9 kstride in bytes, DX hs, R12 group, R13 end of q;
// per key R11 q row, R14 s row, R10 K head, SI rows left in the group, CX
// second q row, AX element. Each pair of rows keeps two accumulators per
// row (Y0, Y1 and Y2, Y3) over chunks of 16 elements (PAIR and SINGLE of
// AVX2) or 32 (of AVX512, whose 512-bit accumulators they then add into
// Y0 and Y2); one tree of horizontal adds finishes both sums.
#define DOTS_PAIR_AVX2(LOAD, ES) \
	LOAD((R10)(AX*ES), Y4); \
	LOAD((8*ES)(R10)(AX*ES), Y5); \
	VFMADD231PS (R11)(AX*4), Y4, Y0; \
	VFMADD231PS 32(R11)(AX*4), Y5, Y1; \
	VFMADD231PS (CX)(AX*4), Y4, Y2; \
	VFMADD231PS 32(CX)(AX*4), Y5, Y3; \
	ADDQ $16, AX; \
	CMPQ AX, DX; \
	JB   dpair; \
	VADDPS Y1, Y0, Y0; \
	VADDPS Y3, Y2, Y2
#define DOTS_SINGLE_AVX2(LOAD, ES) \
	LOAD((R10)(AX*ES), Y4); \
	LOAD((8*ES)(R10)(AX*ES), Y5); \
	VFMADD231PS (R11)(AX*4), Y4, Y0; \
	VFMADD231PS 32(R11)(AX*4), Y5, Y1; \
	ADDQ $16, AX; \
	CMPQ AX, DX; \
	JB   dsingle; \
	VADDPS Y1, Y0, Y0
#define DOTS_PAIR_AVX512(LOAD, ES) \
	LOAD((R10)(AX*ES), Z4); \
	LOAD((16*ES)(R10)(AX*ES), Z5); \
	VFMADD231PS (R11)(AX*4), Z4, Z0; \
	VFMADD231PS 64(R11)(AX*4), Z5, Z1; \
	VFMADD231PS (CX)(AX*4), Z4, Z2; \
	VFMADD231PS 64(CX)(AX*4), Z5, Z3; \
	ADDQ $32, AX; \
	CMPQ AX, DX; \
	JB   dpair; \
	VADDPS Z1, Z0, Z0; \
	VADDPS Z3, Z2, Z2; \
	VEXTRACTF64X4 $1, Z0, Y1; \
	VADDPS Y1, Y0, Y0; \
	VEXTRACTF64X4 $1, Z2, Y3; \
	VADDPS Y3, Y2, Y2
#define DOTS_SINGLE_AVX512(LOAD, ES) \
	LOAD((R10)(AX*ES), Z4); \
	LOAD((16*ES)(R10)(AX*ES), Z5); \
	VFMADD231PS (R11)(AX*4), Z4, Z0; \
	VFMADD231PS 64(R11)(AX*4), Z5, Z1; \
	ADDQ $32, AX; \
	CMPQ AX, DX; \
	JB   dsingle; \
	VADDPS Z1, Z0, Z0; \
	VEXTRACTF64X4 $1, Z0, Y1; \
	VADDPS Y1, Y0, Y0
#define TOKENDOTS(LOAD, ES, LOGES, PAIR, SINGLE) \
	MOVQ s_base+0(FP), DI; \
	MOVQ bs+24(FP), BX; \
	SHLQ $2, BX; \
	MOVQ q_base+32(FP), R13; \
	MOVQ q_len+40(FP), AX; \
	LEAQ (R13)(AX*4), R13; \
	MOVQ k_base+56(FP), R8; \
	MOVQ kstride+80(FP), R9; \
	SHLQ $LOGES, R9; \
	MOVQ hs+96(FP), DX; \
	MOVQ group+104(FP), R12; \
dkey: \
	MOVQ ahead+112(FP), AX; \
	TESTQ AX, AX; \
	JZ   dnoahead; \
	SHLQ $LOGES, AX; \
	ADDQ R8, AX; \
	LEAQ (AX)(R9*1), CX; \
dahead: \
	PREFETCHT1 (AX); \
	ADDQ $64, AX; \
	CMPQ AX, CX; \
	JB   dahead; \
dnoahead: \
	MOVQ q_base+32(FP), R11; \
	MOVQ DI, R14; \
	MOVQ R8, R10; \
dhead: \
	MOVQ R12, SI; \
dpairs: \
	CMPQ SI, $2; \
	JB   dsingles; \
	LEAQ (R11)(DX*4), CX; \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	XORQ AX, AX; \
dpair: \
	PAIR(LOAD, ES); \
	VHADDPS Y2, Y0, Y0; \
	VEXTRACTF128 $1, Y0, X1; \
	VADDPS X1, X0, X0; \
	VHADDPS X0, X0, X0; \
	VMOVSS X0, (R14); \
	VMOVSHDUP X0, X1; \
	VMOVSS X1, (R14)(BX*1); \
	LEAQ (R11)(DX*8), R11; \
	LEAQ (R14)(BX*2), R14; \
	SUBQ $2, SI; \
	JMP  dpairs; \
dsingles: \
	TESTQ SI, SI; \
	JZ    dnexthead; \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	XORQ AX, AX; \
dsingle: \
	SINGLE(LOAD, ES); \
	VEXTRACTF128 $1, Y0, X1; \
	VADDPS X1, X0, X0; \
	VHADDPS X0, X0, X0; \
	VHADDPS X0, X0, X0; \
	VMOVSS X0, (R14); \
	LEAQ (R11)(DX*4), R11; \
	ADDQ BX, R14; \
dnexthead: \
	LEAQ (R10)(DX*ES), R10; \
	CMPQ R11, R13; \
	JB   dhead; \
	ADDQ $4, DI; \
	ADDQ R9, R8; \
	DECQ n+88(FP); \
	JNZ  dkey; \
	VZEROUPPER; \
	RET

// AXPYKEYS2_R adds, for every key, the key's weights of rows r and r+1
// (R14 and R13 at byte DI, broadcast into pa and pb) times its chunk of
// R registers of W elements at SI (widened into c0..) to the
// accumulators a0.. (row r) and b0.. (row r+1); AXPYKEYS1_R does row r
// alone. The accumulators stay in registers across the keys, so each
// output element sums its keys in order, whatever the registers' width.
// PF prefetches the chunk's lines of the same key in the next block
// (PFV1 for a chunk in one cache line, PFV2 for one in two, PFV4 in
// four).
#define PFV1 PREFETCHT1 (SI)(R15*1)
#define PFV2 PFV1; PREFETCHT1 64(SI)(R15*1)
#define PFV4 PFV2; PREFETCHT1 128(SI)(R15*1); PREFETCHT1 192(SI)(R15*1)

#define AXPYKEYS2_4(LOAD, ES, W, PF, lbl, a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, pa, pb) \
	XORQ DI, DI; \
lbl: \
	LOAD((SI), c0); \
	LOAD((W*ES)(SI), c1); \
	LOAD((2*W*ES)(SI), c2); \
	LOAD((3*W*ES)(SI), c3); \
	VBROADCASTSS (R14)(DI*1), pa; \
	VBROADCASTSS (R13)(DI*1), pb; \
	VFMADD231PS c0, pa, a0; \
	VFMADD231PS c1, pa, a1; \
	VFMADD231PS c2, pa, a2; \
	VFMADD231PS c3, pa, a3; \
	VFMADD231PS c0, pb, b0; \
	VFMADD231PS c1, pb, b1; \
	VFMADD231PS c2, pb, b2; \
	VFMADD231PS c3, pb, b3; \
	PF; \
	ADDQ R9, SI; \
	ADDQ $4, DI; \
	CMPQ DI, R8; \
	JB   lbl

#define AXPYKEYS2_2(LOAD, ES, W, PF, lbl, a0, a1, b0, b1, c0, c1, pa, pb) \
	XORQ DI, DI; \
lbl: \
	LOAD((SI), c0); \
	LOAD((W*ES)(SI), c1); \
	VBROADCASTSS (R14)(DI*1), pa; \
	VBROADCASTSS (R13)(DI*1), pb; \
	VFMADD231PS c0, pa, a0; \
	VFMADD231PS c1, pa, a1; \
	VFMADD231PS c0, pb, b0; \
	VFMADD231PS c1, pb, b1; \
	PF; \
	ADDQ R9, SI; \
	ADDQ $4, DI; \
	CMPQ DI, R8; \
	JB   lbl

#define AXPYKEYS1_4(LOAD, ES, W, PF, lbl, a0, a1, a2, a3, c0, c1, c2, c3, pa) \
	XORQ DI, DI; \
lbl: \
	LOAD((SI), c0); \
	LOAD((W*ES)(SI), c1); \
	LOAD((2*W*ES)(SI), c2); \
	LOAD((3*W*ES)(SI), c3); \
	VBROADCASTSS (R14)(DI*1), pa; \
	VFMADD231PS c0, pa, a0; \
	VFMADD231PS c1, pa, a1; \
	VFMADD231PS c2, pa, a2; \
	VFMADD231PS c3, pa, a3; \
	PF; \
	ADDQ R9, SI; \
	ADDQ $4, DI; \
	CMPQ DI, R8; \
	JB   lbl

#define AXPYKEYS1_2(LOAD, ES, W, PF, lbl, a0, a1, c0, c1, pa) \
	XORQ DI, DI; \
lbl: \
	LOAD((SI), c0); \
	LOAD((W*ES)(SI), c1); \
	VBROADCASTSS (R14)(DI*1), pa; \
	VFMADD231PS c0, pa, a0; \
	VFMADD231PS c1, pa, a1; \
	PF; \
	ADDQ R9, SI; \
	ADDQ $4, DI; \
	CMPQ DI, R8; \
	JB   lbl

// OUT2LOAD and OUT4LOAD load 2 and 4 registers of B bytes of output
// elements from row (a pointer register) at element AX; the STORE macros
// write them back.
#define OUT2LOAD(row, B, a, b) VMOVUPS (row)(AX*4), a; VMOVUPS B(row)(AX*4), b
#define OUT4LOAD(row, B, a, b, c, d) OUT2LOAD(row, B, a, b); VMOVUPS (2*B)(row)(AX*4), c; VMOVUPS (3*B)(row)(AX*4), d
#define OUT2STORE(row, B, a, b) VMOVUPS a, (row)(AX*4); VMOVUPS b, B(row)(AX*4)
#define OUT4STORE(row, B, a, b, c, d) OUT2STORE(row, B, a, b); VMOVUPS c, (2*B)(row)(AX*4); VMOVUPS d, (3*B)(row)(AX*4)

// A chunk of a pair of output rows (CHUNK2) or of one row (CHUNK1), big
// (4 registers a row) or small (2), of each instruction set: load the
// outputs at element AX, add every key's weighted V chunk at SI, store.
#define CHUNK2_BIG_AVX2(LOAD, ES, PF, lbl) \
	OUT4LOAD(R11, 32, Y0, Y1, Y2, Y3); OUT4LOAD(CX, 32, Y4, Y5, Y6, Y7); \
	AXPYKEYS2_4(LOAD, ES, 8, PF, lbl, Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y12, Y13); \
	OUT4STORE(R11, 32, Y0, Y1, Y2, Y3); OUT4STORE(CX, 32, Y4, Y5, Y6, Y7)
#define CHUNK2_SMALL_AVX2(LOAD, ES, PF, lbl) \
	OUT2LOAD(R11, 32, Y0, Y1); OUT2LOAD(CX, 32, Y4, Y5); \
	AXPYKEYS2_2(LOAD, ES, 8, PF, lbl, Y0, Y1, Y4, Y5, Y8, Y9, Y12, Y13); \
	OUT2STORE(R11, 32, Y0, Y1); OUT2STORE(CX, 32, Y4, Y5)
#define CHUNK1_BIG_AVX2(LOAD, ES, PF, lbl) \
	OUT4LOAD(R11, 32, Y0, Y1, Y2, Y3); \
	AXPYKEYS1_4(LOAD, ES, 8, PF, lbl, Y0, Y1, Y2, Y3, Y8, Y9, Y10, Y11, Y12); \
	OUT4STORE(R11, 32, Y0, Y1, Y2, Y3)
#define CHUNK1_SMALL_AVX2(LOAD, ES, PF, lbl) \
	OUT2LOAD(R11, 32, Y0, Y1); \
	AXPYKEYS1_2(LOAD, ES, 8, PF, lbl, Y0, Y1, Y8, Y9, Y12); \
	OUT2STORE(R11, 32, Y0, Y1)
#define CHUNK2_BIG_AVX512(LOAD, ES, PF, lbl) \
	OUT4LOAD(R11, 64, Z0, Z1, Z2, Z3); OUT4LOAD(CX, 64, Z4, Z5, Z6, Z7); \
	AXPYKEYS2_4(LOAD, ES, 16, PF, lbl, Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13); \
	OUT4STORE(R11, 64, Z0, Z1, Z2, Z3); OUT4STORE(CX, 64, Z4, Z5, Z6, Z7)
#define CHUNK2_SMALL_AVX512(LOAD, ES, PF, lbl) \
	OUT2LOAD(R11, 64, Z0, Z1); OUT2LOAD(CX, 64, Z4, Z5); \
	AXPYKEYS2_2(LOAD, ES, 16, PF, lbl, Z0, Z1, Z4, Z5, Z8, Z9, Z12, Z13); \
	OUT2STORE(R11, 64, Z0, Z1); OUT2STORE(CX, 64, Z4, Z5)
#define CHUNK1_BIG_AVX512(LOAD, ES, PF, lbl) \
	OUT4LOAD(R11, 64, Z0, Z1, Z2, Z3); \
	AXPYKEYS1_4(LOAD, ES, 16, PF, lbl, Z0, Z1, Z2, Z3, Z8, Z9, Z10, Z11, Z12); \
	OUT4STORE(R11, 64, Z0, Z1, Z2, Z3)
#define CHUNK1_SMALL_AVX512(LOAD, ES, PF, lbl) \
	OUT2LOAD(R11, 64, Z0, Z1); \
	AXPYKEYS1_2(LOAD, ES, 16, PF, lbl, Z0, Z1, Z8, Z9, Z12); \
	OUT2STORE(R11, 64, Z0, Z1)

// func attnTokenAxpys*(o, p []float32, bs int, v []T, vstride, n, hs, group, ahead int)
//
// o row r += Σ_j p[r·bs + j] · (key j, KV head r/group), for j < n. Each
// output chunk (BIG elements, then a last SMALL: 32 and 16 with AVX2, 64
// and 32 with AVX-512, CHUNK* of each) of a row, or of a pair of
// rows, is held in registers while the keys' V chunks stream past, and the
// same chunks ahead elements on (the next block's V rows) are prefetched
// into L2, spread over the pass as the scores kernel spreads the next
// block's K rows over its own (the scores kernel used to prefetch both,
// leaving this pass with no loads in flight but its own; moved here, one
// core streamed randomly placed blocks about 4 % faster). With ahead 0 (no next
// block) it prefetches lines the pass is reading, a no-op. Registers: R11 o
// row, CX second o row, R14 p row, R13 second p row, BX bs in bytes, R10 V
// head (key 0), R9 vstride in bytes, R8 n in bytes, DX hs, R12 rows left in
// the group, AX element, SI V chunk of key j, DI key j in bytes, R15 ahead
// in bytes.
#define TOKENAXPYS(LOAD, ES, LOGES, BIG, SMALL, PFBIG, PFSMALL, CHUNK2_BIG, CHUNK2_SMALL, CHUNK1_BIG, CHUNK1_SMALL) \
	MOVQ o_base+0(FP), R11; \
	MOVQ p_base+24(FP), R14; \
	MOVQ bs+48(FP), BX; \
	SHLQ $2, BX; \
	MOVQ v_base+56(FP), R10; \
	MOVQ vstride+80(FP), R9; \
	SHLQ $LOGES, R9; \
	MOVQ n+88(FP), R8; \
	SHLQ $2, R8; \
	MOVQ hs+96(FP), DX; \
	MOVQ ahead+112(FP), R15; \
	SHLQ $LOGES, R15; \
ahead: \
	MOVQ group+104(FP), R12; \
apairs: \
	CMPQ R12, $2; \
	JB   asingle; \
	LEAQ (R11)(DX*4), CX; \
	LEAQ (R14)(BX*1), R13; \
	XORQ AX, AX; \
apairbig: \
	LEAQ BIG(AX), SI; \
	CMPQ SI, DX; \
	JA   apairsmall; \
	LEAQ (R10)(AX*ES), SI; \
	CHUNK2_BIG(LOAD, ES, PFBIG, apairbigkey); \
	ADDQ $BIG, AX; \
	JMP  apairbig; \
apairsmall: \
	CMPQ AX, DX; \
	JAE  apairdone; \
	LEAQ (R10)(AX*ES), SI; \
	CHUNK2_SMALL(LOAD, ES, PFSMALL, apairsmallkey); \
	ADDQ $SMALL, AX; \
	JMP  apairsmall; \
apairdone: \
	LEAQ (R11)(DX*8), R11; \
	LEAQ (R14)(BX*2), R14; \
	SUBQ $2, R12; \
	JMP  apairs; \
asingle: \
	TESTQ R12, R12; \
	JZ    anexthead; \
	XORQ AX, AX; \
asinglebig: \
	LEAQ BIG(AX), SI; \
	CMPQ SI, DX; \
	JA   asinglesmall; \
	LEAQ (R10)(AX*ES), SI; \
	CHUNK1_BIG(LOAD, ES, PFBIG, asinglebigkey); \
	ADDQ $BIG, AX; \
	JMP  asinglebig; \
asinglesmall: \
	CMPQ AX, DX; \
	JAE  asingledone; \
	LEAQ (R10)(AX*ES), SI; \
	CHUNK1_SMALL(LOAD, ES, PFSMALL, asinglesmallkey); \
	ADDQ $SMALL, AX; \
	JMP  asinglesmall; \
asingledone: \
	LEAQ (R11)(DX*4), R11; \
	ADDQ BX, R14; \
anexthead: \
	LEAQ (R10)(DX*ES), R10; \
	MOVQ o_base+0(FP), SI; \
	MOVQ o_len+8(FP), DI; \
	LEAQ (SI)(DI*4), SI; \
	CMPQ R11, SI; \
	JB   ahead; \
	VZEROUPPER; \
	RET

// func attnScoresF32(s, q, k []float32, stride int)
//
// s[j] = q · row j, for j < len(s).
//
// Eight rows at a time: Y0..Y7 accumulate rows 0..7 over 8-element chunks
// (one q chunk in Y8 serves all eight), then a tree of horizontal adds
// leaves the eight sums in one register. Rows 0..7 are addressed from R8
// (row 0) and R10 (row 3) with the stride in R9 and 3·stride in R12. The
// remaining rows go one at a time, with four accumulators over 32-element
// chunks and one over 8-element chunks.
TEXT ·attnScoresF32(SB), NOSPLIT, $0-80
	MOVQ s_base+0(FP), DI
	MOVQ s_len+8(FP), CX
	MOVQ q_base+24(FP), R13
	MOVQ q_len+32(FP), DX
	MOVQ k_base+48(FP), R11
	MOVQ stride+72(FP), R9
	SHLQ $2, R9
	LEAQ (R9)(R9*2), R12
	MOVQ DX, BX
	ANDQ $-32, BX

rows8:
	CMPQ CX, $8
	JB   rows1
	ZERO8
	MOVQ R13, SI
	MOVQ R11, R8
	LEAQ (R11)(R12*1), R10
	MOVQ DX, AX

chunk8:
	VMOVUPS     (SI), Y8
	VFMADD231PS (R8), Y8, Y0
	VFMADD231PS (R8)(R9*1), Y8, Y1
	VFMADD231PS (R8)(R9*2), Y8, Y2
	VFMADD231PS (R10), Y8, Y3
	VFMADD231PS (R8)(R9*4), Y8, Y4
	VFMADD231PS (R10)(R9*2), Y8, Y5
	VFMADD231PS (R10)(R12*1), Y8, Y6
	VFMADD231PS (R10)(R9*4), Y8, Y7
	ADDQ        $32, SI
	ADDQ        $32, R8
	ADDQ        $32, R10
	SUBQ        $8, AX
	JNZ         chunk8

	// Row j's sum is the sum of Yj's lanes.
	VHADDPS    Y1, Y0, Y0
	VHADDPS    Y3, Y2, Y2
	VHADDPS    Y5, Y4, Y4
	VHADDPS    Y7, Y6, Y6
	VHADDPS    Y2, Y0, Y0
	VHADDPS    Y6, Y4, Y4
	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x31, Y4, Y0, Y9
	VADDPS     Y9, Y8, Y8
	VMOVUPS    Y8, (DI)
	ADDQ       $32, DI
	LEAQ       (R11)(R9*8), R11
	SUBQ       $8, CX
	JMP        rows8

rows1:
	TESTQ  CX, CX
	JZ     done
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ   AX, AX

by32:
	CMPQ        AX, BX
	JAE         by8
	VMOVUPS     (R11)(AX*4), Y4
	VMOVUPS     32(R11)(AX*4), Y5
	VMOVUPS     64(R11)(AX*4), Y6
	VMOVUPS     96(R11)(AX*4), Y7
	VFMADD231PS (R13)(AX*4), Y4, Y0
	VFMADD231PS 32(R13)(AX*4), Y5, Y1
	VFMADD231PS 64(R13)(AX*4), Y6, Y2
	VFMADD231PS 96(R13)(AX*4), Y7, Y3
	ADDQ        $32, AX
	JMP         by32

by8:
	CMPQ        AX, DX
	JAE         sum1
	VMOVUPS     (R11)(AX*4), Y4
	VFMADD231PS (R13)(AX*4), Y4, Y0
	ADDQ        $8, AX
	JMP         by8

sum1:
	VADDPS       Y1, Y0, Y0
	VADDPS       Y3, Y2, Y2
	VADDPS       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	VMOVSS       X0, (DI)
	ADDQ         $4, DI
	ADDQ         R9, R11
	DECQ         CX
	JMP          rows1

done:
	VZEROUPPER
	RET

// func attnValuesF32(o, p, v []float32, stride int)
//
// o += Σ_j p[j]·row j, for j < len(p).
//
// The output is held in registers 64 elements at a time (Y0..Y7, eight
// independent chains of fused multiply-adds) while every row's chunk is
// multiplied by its broadcast weight (Y8) and added, then 8 at a time; R10
// walks the rows of the chunk. Each element sums its rows in order.
TEXT ·attnValuesF32(SB), NOSPLIT, $0-80
	MOVQ o_base+0(FP), DI
	MOVQ o_len+8(FP), DX
	MOVQ p_base+24(FP), SI
	MOVQ p_len+32(FP), CX
	MOVQ v_base+48(FP), R8
	MOVQ stride+72(FP), R9
	SHLQ $2, R9
	MOVQ DX, BX
	ANDQ $-64, BX
	XORQ AX, AX

vby64:
	CMPQ    AX, BX
	JAE     vby8
	VMOVUPS (DI)(AX*4), Y0
	VMOVUPS 32(DI)(AX*4), Y1
	VMOVUPS 64(DI)(AX*4), Y2
	VMOVUPS 96(DI)(AX*4), Y3
	VMOVUPS 128(DI)(AX*4), Y4
	VMOVUPS 160(DI)(AX*4), Y5
	VMOVUPS 192(DI)(AX*4), Y6
	VMOVUPS 224(DI)(AX*4), Y7
	LEAQ    (R8)(AX*4), R10
	XORQ    R11, R11

vrows64:
	CMPQ         R11, CX
	JAE          vstore64
	VBROADCASTSS (SI)(R11*4), Y8
	VFMADD231PS  (R10), Y8, Y0
	VFMADD231PS  32(R10), Y8, Y1
	VFMADD231PS  64(R10), Y8, Y2
	VFMADD231PS  96(R10), Y8, Y3
	VFMADD231PS  128(R10), Y8, Y4
	VFMADD231PS  160(R10), Y8, Y5
	VFMADD231PS  192(R10), Y8, Y6
	VFMADD231PS  224(R10), Y8, Y7
	ADDQ         R9, R10
	INCQ         R11
	JMP          vrows64

vstore64:
	VMOVUPS Y0, (DI)(AX*4)
	VMOVUPS Y1, 32(DI)(AX*4)
	VMOVUPS Y2, 64(DI)(AX*4)
	VMOVUPS Y3, 96(DI)(AX*4)
	VMOVUPS Y4, 128(DI)(AX*4)
	VMOVUPS Y5, 160(DI)(AX*4)
	VMOVUPS Y6, 192(DI)(AX*4)
	VMOVUPS Y7, 224(DI)(AX*4)
	ADDQ    $64, AX
	JMP     vby64

vby8:
	CMPQ    AX, DX
	JAE     vdone
	VMOVUPS (DI)(AX*4), Y0
	LEAQ    (R8)(AX*4), R10
	XORQ    R11, R11

vrows8:
	CMPQ         R11, CX
	JAE          vstore8
	VBROADCASTSS (SI)(R11*4), Y8
	VFMADD231PS  (R10), Y8, Y0
	ADDQ         R9, R10
	INCQ         R11
	JMP          vrows8

vstore8:
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ    $8, AX
	JMP     vby8

vdone:
	VZEROUPPER
	RET

// func attnExp2Sum(s []float32, m float32) float32
//
// s[i] = 2^(s[i]−m) for every i, len(s) a multiple of 8, and the sum of the
// results (lane sums, then the lanes in a fixed tree). As attnExp2: x = s−m
// is rounded to n + f with |f| ≤ 1/2 (VROUNDPS, to nearest even), 2^f is
// the Taylor series of e^(f·ln2) to degree 7 (Horner, fused), 2^n is built
// in the exponent bits, and results below 2^−126 are 0; NaN stays NaN.
TEXT ·attnExp2Sum(SB), NOSPLIT, $0-36
	MOVQ         s_base+0(FP), DI
	MOVQ         s_len+8(FP), CX
	VBROADCASTSS m+24(FP), Y15
	VXORPS       Y6, Y6, Y6
	SHRQ         $3, CX
	JZ           expSum

expLoop:
	VMOVUPS     (DI), Y0
	VSUBPS      Y15, Y0, Y0
	VCMPPS      $5, ·attnExpLo(SB), Y0, Y5 // x ≥ −126 or NaN
	VROUNDPS    $0, Y0, Y1
	VSUBPS      Y1, Y0, Y0
	VMOVUPS     ·attnExpC7(SB), Y2
	VFMADD213PS ·attnExpC6(SB), Y0, Y2
	VFMADD213PS ·attnExpC5(SB), Y0, Y2
	VFMADD213PS ·attnExpC4(SB), Y0, Y2
	VFMADD213PS ·attnExpC3(SB), Y0, Y2
	VFMADD213PS ·attnExpC2(SB), Y0, Y2
	VFMADD213PS ·attnExpC1(SB), Y0, Y2
	VFMADD213PS ·attnExpOne(SB), Y0, Y2
	VCVTPS2DQ   Y1, Y1
	VPADDD      ·attnExp127(SB), Y1, Y1
	VPSLLD      $23, Y1, Y1
	VMULPS      Y1, Y2, Y2
	VANDPS      Y5, Y2, Y2
	VMOVUPS     Y2, (DI)
	VADDPS      Y2, Y6, Y6
	ADDQ        $32, DI
	DECQ        CX
	JNZ         expLoop

expSum:
	VEXTRACTF128 $1, Y6, X1
	VADDPS       X1, X6, X6
	VHADDPS      X6, X6, X6
	VHADDPS      X6, X6, X6
	VMOVSS       X6, ret+32(FP)
	VZEROUPPER
	RET

// attnExpLo is -126.0 in every lane.
DATA ·attnExpLo+0(SB)/4, $0xc2fc0000
DATA ·attnExpLo+4(SB)/4, $0xc2fc0000
DATA ·attnExpLo+8(SB)/4, $0xc2fc0000
DATA ·attnExpLo+12(SB)/4, $0xc2fc0000
DATA ·attnExpLo+16(SB)/4, $0xc2fc0000
DATA ·attnExpLo+20(SB)/4, $0xc2fc0000
DATA ·attnExpLo+24(SB)/4, $0xc2fc0000
DATA ·attnExpLo+28(SB)/4, $0xc2fc0000
GLOBL ·attnExpLo(SB), RODATA|NOPTR, $32

// attnExpC7 is 1.5252733804059838e-05 in every lane.
DATA ·attnExpC7+0(SB)/4, $0x377fe5fe
DATA ·attnExpC7+4(SB)/4, $0x377fe5fe
DATA ·attnExpC7+8(SB)/4, $0x377fe5fe
DATA ·attnExpC7+12(SB)/4, $0x377fe5fe
DATA ·attnExpC7+16(SB)/4, $0x377fe5fe
DATA ·attnExpC7+20(SB)/4, $0x377fe5fe
DATA ·attnExpC7+24(SB)/4, $0x377fe5fe
DATA ·attnExpC7+28(SB)/4, $0x377fe5fe
GLOBL ·attnExpC7(SB), RODATA|NOPTR, $32

// attnExpC6 is 0.00015403530393381606 in every lane.
DATA ·attnExpC6+0(SB)/4, $0x39218489
DATA ·attnExpC6+4(SB)/4, $0x39218489
DATA ·attnExpC6+8(SB)/4, $0x39218489
DATA ·attnExpC6+12(SB)/4, $0x39218489
DATA ·attnExpC6+16(SB)/4, $0x39218489
DATA ·attnExpC6+20(SB)/4, $0x39218489
DATA ·attnExpC6+24(SB)/4, $0x39218489
DATA ·attnExpC6+28(SB)/4, $0x39218489
GLOBL ·attnExpC6(SB), RODATA|NOPTR, $32

// attnExpC5 is 0.0013333558146428441 in every lane.
DATA ·attnExpC5+0(SB)/4, $0x3aaec3ff
DATA ·attnExpC5+4(SB)/4, $0x3aaec3ff
DATA ·attnExpC5+8(SB)/4, $0x3aaec3ff
DATA ·attnExpC5+12(SB)/4, $0x3aaec3ff
DATA ·attnExpC5+16(SB)/4, $0x3aaec3ff
DATA ·attnExpC5+20(SB)/4, $0x3aaec3ff
DATA ·attnExpC5+24(SB)/4, $0x3aaec3ff
DATA ·attnExpC5+28(SB)/4, $0x3aaec3ff
GLOBL ·attnExpC5(SB), RODATA|NOPTR, $32

// attnExpC4 is 0.009618129107628477 in every lane.
DATA ·attnExpC4+0(SB)/4, $0x3c1d955b
DATA ·attnExpC4+4(SB)/4, $0x3c1d955b
DATA ·attnExpC4+8(SB)/4, $0x3c1d955b
DATA ·attnExpC4+12(SB)/4, $0x3c1d955b
DATA ·attnExpC4+16(SB)/4, $0x3c1d955b
DATA ·attnExpC4+20(SB)/4, $0x3c1d955b
DATA ·attnExpC4+24(SB)/4, $0x3c1d955b
DATA ·attnExpC4+28(SB)/4, $0x3c1d955b
GLOBL ·attnExpC4(SB), RODATA|NOPTR, $32

// attnExpC3 is 0.055504108664821576 in every lane.
DATA ·attnExpC3+0(SB)/4, $0x3d635847
DATA ·attnExpC3+4(SB)/4, $0x3d635847
DATA ·attnExpC3+8(SB)/4, $0x3d635847
DATA ·attnExpC3+12(SB)/4, $0x3d635847
DATA ·attnExpC3+16(SB)/4, $0x3d635847
DATA ·attnExpC3+20(SB)/4, $0x3d635847
DATA ·attnExpC3+24(SB)/4, $0x3d635847
DATA ·attnExpC3+28(SB)/4, $0x3d635847
GLOBL ·attnExpC3(SB), RODATA|NOPTR, $32

// attnExpC2 is 0.2402265069591007 in every lane.
DATA ·attnExpC2+0(SB)/4, $0x3e75fdf0
DATA ·attnExpC2+4(SB)/4, $0x3e75fdf0
DATA ·attnExpC2+8(SB)/4, $0x3e75fdf0
DATA ·attnExpC2+12(SB)/4, $0x3e75fdf0
DATA ·attnExpC2+16(SB)/4, $0x3e75fdf0
DATA ·attnExpC2+20(SB)/4, $0x3e75fdf0
DATA ·attnExpC2+24(SB)/4, $0x3e75fdf0
DATA ·attnExpC2+28(SB)/4, $0x3e75fdf0
GLOBL ·attnExpC2(SB), RODATA|NOPTR, $32

// attnExpC1 is 0.6931471805599453 in every lane.
DATA ·attnExpC1+0(SB)/4, $0x3f317218
DATA ·attnExpC1+4(SB)/4, $0x3f317218
DATA ·attnExpC1+8(SB)/4, $0x3f317218
DATA ·attnExpC1+12(SB)/4, $0x3f317218
DATA ·attnExpC1+16(SB)/4, $0x3f317218
DATA ·attnExpC1+20(SB)/4, $0x3f317218
DATA ·attnExpC1+24(SB)/4, $0x3f317218
DATA ·attnExpC1+28(SB)/4, $0x3f317218
GLOBL ·attnExpC1(SB), RODATA|NOPTR, $32

// attnExpOne is 1.0 in every lane.
DATA ·attnExpOne+0(SB)/4, $0x3f800000
DATA ·attnExpOne+4(SB)/4, $0x3f800000
DATA ·attnExpOne+8(SB)/4, $0x3f800000
DATA ·attnExpOne+12(SB)/4, $0x3f800000
DATA ·attnExpOne+16(SB)/4, $0x3f800000
DATA ·attnExpOne+20(SB)/4, $0x3f800000
DATA ·attnExpOne+24(SB)/4, $0x3f800000
DATA ·attnExpOne+28(SB)/4, $0x3f800000
GLOBL ·attnExpOne(SB), RODATA|NOPTR, $32

DATA ·attnExp127+0(SB)/4, $127
DATA ·attnExp127+4(SB)/4, $127
DATA ·attnExp127+8(SB)/4, $127
DATA ·attnExp127+12(SB)/4, $127
DATA ·attnExp127+16(SB)/4, $127
DATA ·attnExp127+20(SB)/4, $127
DATA ·attnExp127+24(SB)/4, $127
DATA ·attnExp127+28(SB)/4, $127
GLOBL ·attnExp127(SB), RODATA|NOPTR, $32

// The token kernels, one per cache dtype (bodies at the top of the file).

// func attnTokenDotsF32(s []float32, bs int, q, k []float32, kstride, n, hs, group, ahead int)
TEXT ·attnTokenDotsF32(SB), NOSPLIT, $0-120
	TOKENDOTS(WIDEN_F32, 4, 2, DOTS_PAIR_AVX2, DOTS_SINGLE_AVX2)

// func attnTokenDotsF16(s []float32, bs int, q []float32, k []uint16, kstride, n, hs, group, ahead int)
TEXT ·attnTokenDotsF16(SB), NOSPLIT, $0-120
	TOKENDOTS(WIDEN_F16, 2, 1, DOTS_PAIR_AVX2, DOTS_SINGLE_AVX2)

// func attnTokenDotsBF16(s []float32, bs int, q []float32, k []uint16, kstride, n, hs, group, ahead int)
TEXT ·attnTokenDotsBF16(SB), NOSPLIT, $0-120
	TOKENDOTS(WIDEN_BF16, 2, 1, DOTS_PAIR_AVX2, DOTS_SINGLE_AVX2)

// func attnTokenDotsF32AVX512(s []float32, bs int, q, k []float32, kstride, n, hs, group, ahead int)
TEXT ·attnTokenDotsF32AVX512(SB), NOSPLIT, $0-120
	TOKENDOTS(WIDEN_F32, 4, 2, DOTS_PAIR_AVX512, DOTS_SINGLE_AVX512)

// func attnTokenDotsF16AVX512(s []float32, bs int, q []float32, k []uint16, kstride, n, hs, group, ahead int)
TEXT ·attnTokenDotsF16AVX512(SB), NOSPLIT, $0-120
	TOKENDOTS(WIDEN_F16, 2, 1, DOTS_PAIR_AVX512, DOTS_SINGLE_AVX512)

// func attnTokenDotsBF16AVX512(s []float32, bs int, q []float32, k []uint16, kstride, n, hs, group, ahead int)
TEXT ·attnTokenDotsBF16AVX512(SB), NOSPLIT, $0-120
	TOKENDOTS(WIDEN_BF16, 2, 1, DOTS_PAIR_AVX512, DOTS_SINGLE_AVX512)

// func attnTokenAxpysF32(o, p []float32, bs int, v []float32, vstride, n, hs, group, ahead int)
TEXT ·attnTokenAxpysF32(SB), NOSPLIT, $0-120
	TOKENAXPYS(WIDEN_F32, 4, 2, 32, 16, PFV2, PFV1, CHUNK2_BIG_AVX2, CHUNK2_SMALL_AVX2, CHUNK1_BIG_AVX2, CHUNK1_SMALL_AVX2)

// func attnTokenAxpysF16(o, p []float32, bs int, v []uint16, vstride, n, hs, group, ahead int)
TEXT ·attnTokenAxpysF16(SB), NOSPLIT, $0-120
	TOKENAXPYS(WIDEN_F16, 2, 1, 32, 16, PFV1, PFV1, CHUNK2_BIG_AVX2, CHUNK2_SMALL_AVX2, CHUNK1_BIG_AVX2, CHUNK1_SMALL_AVX2)

// func attnTokenAxpysBF16(o, p []float32, bs int, v []uint16, vstride, n, hs, group, ahead int)
TEXT ·attnTokenAxpysBF16(SB), NOSPLIT, $0-120
	TOKENAXPYS(WIDEN_BF16, 2, 1, 32, 16, PFV1, PFV1, CHUNK2_BIG_AVX2, CHUNK2_SMALL_AVX2, CHUNK1_BIG_AVX2, CHUNK1_SMALL_AVX2)

// func attnTokenAxpysF32AVX512(o, p []float32, bs int, v []float32, vstride, n, hs, group, ahead int)
TEXT ·attnTokenAxpysF32AVX512(SB), NOSPLIT, $0-120
	TOKENAXPYS(WIDEN_F32, 4, 2, 64, 32, PFV4, PFV2, CHUNK2_BIG_AVX512, CHUNK2_SMALL_AVX512, CHUNK1_BIG_AVX512, CHUNK1_SMALL_AVX512)

// func attnTokenAxpysF16AVX512(o, p []float32, bs int, v []uint16, vstride, n, hs, group, ahead int)
TEXT ·attnTokenAxpysF16AVX512(SB), NOSPLIT, $0-120
	TOKENAXPYS(WIDEN_F16, 2, 1, 64, 32, PFV2, PFV1, CHUNK2_BIG_AVX512, CHUNK2_SMALL_AVX512, CHUNK1_BIG_AVX512, CHUNK1_SMALL_AVX512)

// func attnTokenAxpysBF16AVX512(o, p []float32, bs int, v []uint16, vstride, n, hs, group, ahead int)
TEXT ·attnTokenAxpysBF16AVX512(SB), NOSPLIT, $0-120
	TOKENAXPYS(WIDEN_BF16, 2, 1, 64, 32, PFV2, PFV1, CHUNK2_BIG_AVX512, CHUNK2_SMALL_AVX512, CHUNK1_BIG_AVX512, CHUNK1_SMALL_AVX512)

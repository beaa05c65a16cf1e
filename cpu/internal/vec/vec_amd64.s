#include "textflag.h"

// Dot products keep the 32 partial sums of dotLanes in Y0..Y3 (elements
// 0-7, 8-15, 16-23, 24-31 of each step of 32) and then reduce them in the
// order of reduceLanes: (Y0+Y1)+(Y2+Y3), then lanes j+4, j+2, j+1.
#define DOT_REDUCE \
	VADDPS       Y1, Y0, Y0 \
	VADDPS       Y3, Y2, Y2 \
	VADDPS       Y2, Y0, Y0 \
	VEXTRACTF128 $1, Y0, X1 \
	VADDPS       X1, X0, X0 \
	VMOVHLPS     X0, X0, X1 \
	VADDPS       X1, X0, X0 \
	VMOVSHDUP    X0, X1 \
	VADDSS       X1, X0, X0 \
	VZEROUPPER

// Widening loads of eight 16-bit values at off(SI) into a register of
// float32s.
#define LOAD_BF16(off, reg) \
	VPMOVZXWD off(SI), reg \
	VPSLLD    $16, reg, reg

#define LOAD_F16(off, reg) \
	VCVTPH2PS off(SI), reg

// DOT_WIDEN is the body of a dot product of a 16-bit row (SI) with a
// float32 row (DI), widening with LOAD.
#define DOT_WIDEN(LOAD) \
	VXORPS Y0, Y0, Y0 \
	VXORPS Y1, Y1, Y1 \
	VXORPS Y2, Y2, Y2 \
	VXORPS Y3, Y3, Y3 \
loop32: \
	CMPQ        CX, $32 \
	JL          loop8 \
	LOAD(0, Y4) \
	LOAD(16, Y5) \
	LOAD(32, Y6) \
	LOAD(48, Y7) \
	VFMADD231PS (DI), Y4, Y0 \
	VFMADD231PS 32(DI), Y5, Y1 \
	VFMADD231PS 64(DI), Y6, Y2 \
	VFMADD231PS 96(DI), Y7, Y3 \
	ADDQ        $64, SI \
	ADDQ        $128, DI \
	SUBQ        $32, CX \
	JMP         loop32 \
loop8: \
	CMPQ        CX, $8 \
	JL          done \
	LOAD(0, Y4) \
	VFMADD231PS (DI), Y4, Y0 \
	ADDQ        $16, SI \
	ADDQ        $32, DI \
	SUBQ        $8, CX \
	JMP         loop8 \
done: \
	DOT_REDUCE

// AXPY is the body of y += alpha·x for y (DI) of float32s and x (SI) of
// elements `size` bytes wide, loaded as float32s by LOAD.
#define LOAD_F32(off, reg) \
	VMOVUPS off(SI), reg

#define AXPY(LOAD, size) \
loop32: \
	CMPQ        CX, $32 \
	JL          loop8 \
	LOAD(0, Y4) \
	LOAD(8*size, Y5) \
	LOAD(16*size, Y6) \
	LOAD(24*size, Y7) \
	VMOVUPS     (DI), Y0 \
	VMOVUPS     32(DI), Y1 \
	VMOVUPS     64(DI), Y2 \
	VMOVUPS     96(DI), Y3 \
	VFMADD231PS Y4, Y15, Y0 \
	VFMADD231PS Y5, Y15, Y1 \
	VFMADD231PS Y6, Y15, Y2 \
	VFMADD231PS Y7, Y15, Y3 \
	VMOVUPS     Y0, (DI) \
	VMOVUPS     Y1, 32(DI) \
	VMOVUPS     Y2, 64(DI) \
	VMOVUPS     Y3, 96(DI) \
	ADDQ        $32*size, SI \
	ADDQ        $128, DI \
	SUBQ        $32, CX \
	JMP         loop32 \
loop8: \
	CMPQ        CX, $8 \
	JL          done \
	LOAD(0, Y4) \
	VMOVUPS     (DI), Y0 \
	VFMADD231PS Y4, Y15, Y0 \
	VMOVUPS     Y0, (DI) \
	ADDQ        $8*size, SI \
	ADDQ        $32, DI \
	SUBQ        $8, CX \
	JMP         loop8 \
done: \
	VZEROUPPER

// BROADCAST_D fills reg (a Y register; xreg is its low half) with the
// 32-bit constant c.
#define BROADCAST_D(c, xreg, reg) \
	MOVL         c, AX \
	VMOVD        AX, xreg \
	VPBROADCASTD xreg, reg


// The bodies of the routines of vec_amd64.go. Each handles the first
// len&^7 elements (the Go wrapper truncates the slices); lengths are those
// of the first slice. Register use: SI and DI walk the slices, CX counts the
// elements left.

// func dotF32Body(a, b []float32) float32
TEXT ·dotF32Body(SB), NOSPLIT, $0-52
	MOVQ   a_base+0(FP), SI
	MOVQ   a_len+8(FP), CX
	MOVQ   b_base+24(FP), DI
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

dot32:
	CMPQ        CX, $32
	JL          dot8
	VMOVUPS     (SI), Y4
	VMOVUPS     32(SI), Y5
	VMOVUPS     64(SI), Y6
	VMOVUPS     96(SI), Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ        $128, SI
	ADDQ        $128, DI
	SUBQ        $32, CX
	JMP         dot32

dot8:
	CMPQ        CX, $8
	JL          reduce
	VMOVUPS     (SI), Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ        $32, SI
	ADDQ        $32, DI
	SUBQ        $8, CX
	JMP         dot8

reduce:
	DOT_REDUCE
	VMOVSS X0, ret+48(FP)
	RET

// func dotBF16Body(w []uint16, x []float32) float32
TEXT ·dotBF16Body(SB), NOSPLIT, $0-52
	MOVQ w_base+0(FP), SI
	MOVQ w_len+8(FP), CX
	MOVQ x_base+24(FP), DI
	DOT_WIDEN(LOAD_BF16)
	VMOVSS X0, ret+48(FP)
	RET

// func dotF16Body(w []uint16, x []float32) float32
TEXT ·dotF16Body(SB), NOSPLIT, $0-52
	MOVQ w_base+0(FP), SI
	MOVQ w_len+8(FP), CX
	MOVQ x_base+24(FP), DI
	DOT_WIDEN(LOAD_F16)
	VMOVSS X0, ret+48(FP)
	RET

// func axpyF32Body(y []float32, alpha float32, x []float32)
TEXT ·axpyF32Body(SB), NOSPLIT, $0-56
	MOVQ         y_base+0(FP), DI
	MOVQ         y_len+8(FP), CX
	VBROADCASTSS alpha+24(FP), Y15
	MOVQ         x_base+32(FP), SI
	AXPY(LOAD_F32, 4)
	RET

// func axpyBF16Body(y []float32, alpha float32, w []uint16)
TEXT ·axpyBF16Body(SB), NOSPLIT, $0-56
	MOVQ         y_base+0(FP), DI
	MOVQ         y_len+8(FP), CX
	VBROADCASTSS alpha+24(FP), Y15
	MOVQ         w_base+32(FP), SI
	AXPY(LOAD_BF16, 2)
	RET

// func axpyF16Body(y []float32, alpha float32, w []uint16)
TEXT ·axpyF16Body(SB), NOSPLIT, $0-56
	MOVQ         y_base+0(FP), DI
	MOVQ         y_len+8(FP), CX
	VBROADCASTSS alpha+24(FP), Y15
	MOVQ         w_base+32(FP), SI
	AXPY(LOAD_F16, 2)
	RET

// func scaleF32Body(y []float32, alpha float32)
TEXT ·scaleF32Body(SB), NOSPLIT, $0-28
	MOVQ         y_base+0(FP), DI
	MOVQ         y_len+8(FP), CX
	VBROADCASTSS alpha+24(FP), Y15

scale8:
	CMPQ    CX, $8
	JL      scaled
	VMULPS  (DI), Y15, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	SUBQ    $8, CX
	JMP     scale8

scaled:
	VZEROUPPER
	RET

// func bf16ToF32Body(dst []float32, src []uint16)
TEXT ·bf16ToF32Body(SB), NOSPLIT, $0-48
	MOVQ dst_base+0(FP), DI
	MOVQ src_base+24(FP), SI
	MOVQ src_len+32(FP), CX

bf16wide:
	CMPQ    CX, $8
	JL      bf16wided
	LOAD_BF16(0, Y0)
	VMOVUPS Y0, (DI)
	ADDQ    $16, SI
	ADDQ    $32, DI
	SUBQ    $8, CX
	JMP     bf16wide

bf16wided:
	VZEROUPPER
	RET

// func f16ToF32Body(dst []float32, src []uint16)
//
// VCVTPH2PS quiets signalling NaNs (it sets bit 22 of the result);
// graph.F16ToF32 keeps the half's quiet bit (bit 9) as it is. So on NaN
// lanes ((bits & 0x7fff) > 0x7c00) bit 22 is flipped back where the half's
// bit 9 is clear.
TEXT ·f16ToF32Body(SB), NOSPLIT, $0-48
	MOVQ dst_base+0(FP), DI
	MOVQ src_base+24(FP), SI
	MOVQ src_len+32(FP), CX
	BROADCAST_D($0x7fff, X10, Y10)
	BROADCAST_D($0x7c00, X11, Y11)
	BROADCAST_D($0x0200, X12, Y12)

f16wide:
	CMPQ      CX, $8
	JL        f16wided
	VCVTPH2PS (SI), Y0
	VPMOVZXWD (SI), Y1
	VPAND     Y10, Y1, Y2
	VPCMPGTD  Y11, Y2, Y2
	VPANDN    Y12, Y1, Y3
	VPSLLD    $13, Y3, Y3
	VPAND     Y2, Y3, Y3
	VPXOR     Y3, Y0, Y0
	VMOVUPS   Y0, (DI)
	ADDQ      $16, SI
	ADDQ      $32, DI
	SUBQ      $8, CX
	JMP       f16wide

f16wided:
	VZEROUPPER
	RET

// func f32ToBF16Body(dst []uint16, src []float32)
//
// Rounds to nearest even by adding 0x7fff plus the lowest kept bit and
// truncating; NaN (|bits| > 0x7f800000) instead keeps its top bits with the
// quiet bit set, as graph.F32ToBF16 does.
TEXT ·f32ToBF16Body(SB), NOSPLIT, $0-48
	MOVQ dst_base+0(FP), DI
	MOVQ src_base+24(FP), SI
	MOVQ src_len+32(FP), CX
	BROADCAST_D($1, X10, Y10)
	BROADCAST_D($0x7fff, X11, Y11)
	BROADCAST_D($0x7fffffff, X12, Y12)
	BROADCAST_D($0x7f800000, X13, Y13)
	BROADCAST_D($0x00400000, X14, Y14)

bf16narrow:
	CMPQ         CX, $8
	JL           bf16narrowed
	VMOVDQU      (SI), Y0
	VPSRLD       $16, Y0, Y1
	VPAND        Y10, Y1, Y1
	VPADDD       Y11, Y1, Y1
	VPADDD       Y0, Y1, Y1
	VPAND        Y12, Y0, Y2
	VPCMPGTD     Y13, Y2, Y2
	VPOR         Y14, Y0, Y3
	VPBLENDVB    Y2, Y3, Y1, Y1
	VPSRLD       $16, Y1, Y1
	VEXTRACTI128 $1, Y1, X3
	VPACKUSDW    X3, X1, X1
	VMOVDQU      X1, (DI)
	ADDQ         $32, SI
	ADDQ         $16, DI
	SUBQ         $8, CX
	JMP          bf16narrow

bf16narrowed:
	VZEROUPPER
	RET

// func f32ToF16Body(dst []uint16, src []float32)
TEXT ·f32ToF16Body(SB), NOSPLIT, $0-48
	MOVQ dst_base+0(FP), DI
	MOVQ src_base+24(FP), SI
	MOVQ src_len+32(FP), CX

f16narrow:
	CMPQ      CX, $8
	JL        f16narrowed
	VMOVUPS   (SI), Y0
	VCVTPS2PH $0, Y0, X1
	VMOVDQU   X1, (DI)
	ADDQ      $32, SI
	ADDQ      $16, DI
	SUBQ      $8, CX
	JMP       f16narrow

f16narrowed:
	VZEROUPPER
	RET

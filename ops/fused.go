package ops

import (
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// AddRMSNorm returns sum = x + residual (rounded to the dtype) and normed =
// RMSNorm(sum, weight, eps), in one dispatch: the residual add of a
// transformer sub-block fused into the next block's norm. x and residual
// have one float dtype and shape [..., D]; weight is [D]. The results are
// those of Add followed by RMSNorm.
func AddRMSNorm(x, residual, weight *graph.Array, eps float32) (sum, normed *graph.Array) {
	outs := apply(graph.Caller(0), primitives.AddRMSNorm{Eps: eps}, x, residual, weight)
	if len(outs) == 1 {
		return outs[0], outs[0]
	}
	return outs[0], outs[1]
}

// SiLUMul returns SiLU(gate)·up for a [..., 2N] whose last axis holds the
// gate half and then the up half (the output of one matmul by the
// concatenated gate and up weights of a SwiGLU MLP): [..., N], in one
// dispatch. See primitives.SiLUMul for how its rounding differs from SiLU
// followed by Mul in float16 and bfloat16.
func SiLUMul(a *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.SiLUMul{}, a)
}

// GatedLinear returns SiLU(x·gate)·(x·up) for x [..., K] and gateUp [2N,
// K], the gate weights (rows 0..N-1) stacked on the up weights (as linear
// layers store them, [out, in]): [..., N]. It is MatMulTransposed(x,
// gateUp, false, true) followed by SiLUMul, with the same results, in one
// dispatch where the device has a gated kernel for the rows of x (see
// primitives.MatMulSiLUMul).
func GatedLinear(x, gateUp *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.MatMulSiLUMul{}, x, gateUp)
}

// AddRMSNormLinear returns sum = x + delta and AddRMSNorm's normalisation
// of it multiplied by the weights of a linear layer, w [N, K] stored as
// linear layers store them ([out, in]): out = RMSNorm(sum, normWeight,
// eps)·wᵀ, [..., N]. The results are AddRMSNorm followed by
// MatMulTransposed(normed, w, false, true), bit for bit, in one dispatch
// where x is one row (see primitives.AddRMSNormLinear): a transformer
// layer's residual add and norm fused into the projection after them.
func AddRMSNormLinear(x, delta, normWeight, w *graph.Array, eps float32) (sum, out *graph.Array) {
	return addRMSNormLinear(graph.Caller(0), primitives.AddRMSNormLinear{Eps: eps}, x, delta, normWeight, w)
}

// AddRMSNormGatedLinear is AddRMSNormLinear with GatedLinear as the layer:
// out = GatedLinear(RMSNorm(x + delta, normWeight, eps), gateUp), with
// AddRMSNorm followed by GatedLinear's results bit for bit.
func AddRMSNormGatedLinear(x, delta, normWeight, gateUp *graph.Array, eps float32) (sum, out *graph.Array) {
	return addRMSNormLinear(graph.Caller(0), primitives.AddRMSNormLinear{Eps: eps, Gated: true}, x, delta, normWeight, gateUp)
}

func addRMSNormLinear(pc uintptr, p primitives.AddRMSNormLinear, x, delta, normWeight, w *graph.Array) (sum, out *graph.Array) {
	outs := apply(pc, p, x, delta, normWeight, w)
	if len(outs) == 1 {
		return outs[0], outs[0]
	}
	return outs[0], outs[1]
}

// QuantizedGatedLinear is GatedLinear with quantized weights: x [..., K]
// by the stacked gate and up weights in MLX's affine format (w uint32 [2N,
// K·bits/32], the gate rows then the up rows, scales and biases [2N,
// K/groupSize] of x's dtype; see QuantizedMatMul) gives SiLU(x·gate)·(x·up),
// [..., N]. It is QuantizedMatMul followed by SiLUMul, with the same
// results on the CPU, in one dispatch where the device has the gated
// kernel for the rows of x (see primitives.QuantizedMatMulSiLUMul).
func QuantizedGatedLinear(x, w, scales, biases *graph.Array, groupSize, bits int) *graph.Array {
	return apply1(graph.Caller(0), primitives.QuantizedMatMulSiLUMul{Bits: bits, GroupSize: groupSize}, x, w, scales, biases)
}

// QKNorm describes the query and key heads of QKNormRoPEKVWrite: the
// number of query heads, the RMSNorm weights of each query and each key
// head ([head_size]) and their eps, and the RoPE base.
type QKNorm struct {
	Heads        int
	QNorm, KNorm *graph.Array
	Eps, Theta   float32
}

// QKNormRoPEKVWrite takes the output of one matmul by the concatenated Q, K
// and V weights, qkv [T, (heads + 2·kv_heads)·head_size], and in one
// dispatch RMS-normalises each query and key head, rotates them by RoPE at
// positions (int32 [T]), and writes the keys and the values into the paged
// caches at slotMapping, as KVWrite does (the caches are donated, and the
// same slot rules and errors apply). It returns the queries [T, heads,
// head_size] and the updated caches. See primitives.QKNormRoPEKVWrite for
// how its rounding differs from RMSNorm, RoPE and KVWrite in float16 and
// bfloat16.
func QKNormRoPEKVWrite(qkv *graph.Array, n QKNorm, positions, kCache, vCache, slotMapping *graph.Array) (q, newK, newV *graph.Array) {
	pc := graph.Caller(0)
	prim := primitives.QKNormRoPEKVWrite{Heads: n.Heads, Eps: n.Eps, Theta: n.Theta}
	inputs := []*graph.Array{qkv, n.QNorm, n.KNorm, positions, kCache, vCache, slotMapping}
	if f := checkSlotsBeforeDonation(pc, prim, inputs, kCache, slotMapping); f != nil {
		return f, f, f
	}
	outs := apply(pc, prim, inputs...)
	if len(outs) == 1 {
		return outs[0], outs[0], outs[0]
	}
	return outs[0], outs[1], outs[2]
}

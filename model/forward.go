package model

import (
	"math"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

// Forward builds the graph of one step: tokens are the step's new tokens of
// every sequence, laid out as st says. It returns the logits of each
// sequence's last token, [len(st.Seqs), vocab] in the model's dtype.
func (m *Model) Forward(tokens []int32, st *Step, cache *KVCache) *graph.Array {
	return m.ForwardIDs(graph.FromInt32s(tokens), st, cache)
}

// ForwardIDs is Forward with the step's token ids an array (int32 [T]),
// such as the tokens a previous step drew on the device, not yet read back.
//
// Every layer writes the step's K and V into the cache in place
// (ops.QKNormRoPEKVWrite consumes the cache arrays by donation, as
// ops.KVWrite does) and attends over the paged cache; the layer's new cache
// arrays replace the old ones in cache. If building or evaluating the step
// fails, the cache's arrays are spent: start a new cache.
//
// Each sub-block's output is added to the residual stream x by the next
// norm, which the projection after it takes in the same op
// (ops.AddRMSNormLinear and ops.AddRMSNormGatedLinear; the last layer's by
// the final norm, ops.AddRMSNorm): Q, K and V are one matmul whose heads
// ops.QKNormRoPEKVWrite normalises, rotates and writes to the cache, and
// the MLP's gate and up projections and their activation are one gated
// linear layer. At one token a step (a decode step of one sequence) a
// layer is six dispatches (seven when attention splits the KV): the norms
// run inside the projections' kernels, but for the first layer's input
// norm, which has no residual add. With more tokens a layer is eight
// where the device has a gated kernel for the step's tokens (the CPU: up
// to primitives.MatMulSmallM), one more otherwise. Quantized weights
// (Weights.Quant) go through ops.AddRMSNorm and ops.QuantizedMatMul (the
// gated MLP through ops.QuantizedGatedLinear), and a quantized embedding
// dequantises only the gathered rows.
func (m *Model) ForwardIDs(ids *graph.Array, st *Step, cache *KVCache) *graph.Array {
	return m.forward(ids, st, m.newStepInputs(st), cache)
}

// stepInputs are the constants of a step's metadata that its graph reads.
type stepInputs struct {
	positions, slots, tables, seqLens, cuSeqlensQ *graph.Array
	lastTokens                                    *graph.Array // nil when every sequence has one token
}

func (m *Model) newStepInputs(st *Step) *stepInputs {
	in := &stepInputs{
		positions:  graph.FromInt32s(st.Positions),
		slots:      graph.FromInt32s(st.SlotMapping),
		tables:     graph.FromInt32s(st.BlockTables, len(st.Seqs), st.MaxBlocks),
		seqLens:    graph.FromInt32s(st.SeqLens),
		cuSeqlensQ: graph.FromInt32s(st.CuSeqlensQ),
	}
	if st.Tokens() != len(st.Seqs) {
		in.lastTokens = graph.FromInt32s(st.LastTokens)
	}
	return in
}

// list is the constants in the order appendStepArgs binds them.
func (in *stepInputs) list() []*graph.Array {
	l := []*graph.Array{in.positions, in.slots, in.tables, in.seqLens, in.cuSeqlensQ}
	if in.lastTokens != nil {
		l = append(l, in.lastTokens)
	}
	return l
}

// appendStepArgs appends st's metadata as a compiled step binds it to the
// constants of newStepInputs(st), in list's order.
func appendStepArgs(args []runtime.Input, st *Step) []runtime.Input {
	args = append(args, runtime.Int32s(st.Positions), runtime.Int32s(st.SlotMapping), runtime.Int32s(st.BlockTables), runtime.Int32s(st.SeqLens), runtime.Int32s(st.CuSeqlensQ))
	if st.Tokens() != len(st.Seqs) {
		args = append(args, runtime.Int32s(st.LastTokens))
	}
	return args
}

// forward is ForwardIDs with the step's metadata constants given.
func (m *Model) forward(ids *graph.Array, st *Step, in *stepInputs, cache *KVCache) *graph.Array {
	c := m.Config
	T, S := st.Tokens(), len(st.Seqs)
	d := c.HeadDim
	positions, slots := in.positions, in.slots
	meta := ops.AttentionMeta{BlockTables: in.tables, SeqLens: in.seqLens, CuSeqlensQ: in.cuSeqlensQ, MaxSeqLen: st.MaxSeqLen}
	opts := ops.AttentionOptions{Scale: float32(1 / math.Sqrt(float64(d)))}
	quant := m.Weights.Quant
	linear := func(x, w *graph.Array) *graph.Array {
		if q, ok := quant[w]; ok {
			return ops.QuantizedMatMul(x, w, q.Scales, q.Biases, q.GroupSize, q.Bits)
		}
		return ops.MatMulTransposed(x, w, false, true)
	}
	gatedLinear := func(x, w *graph.Array) *graph.Array {
		if q, ok := quant[w]; ok {
			return ops.QuantizedGatedLinear(x, w, q.Scales, q.Biases, q.GroupSize, q.Bits)
		}
		return ops.GatedLinear(x, w)
	}
	// normLinear adds delta to the residual stream x and returns the new
	// stream and the layer w (gated or not) of its norm by normW: in one
	// op where w is a float matrix (ops.AddRMSNormLinear).
	normLinear := func(x, delta, normW, w *graph.Array, gated bool) (*graph.Array, *graph.Array) {
		if _, ok := quant[w]; !ok {
			if gated {
				return ops.AddRMSNormGatedLinear(x, delta, normW, w, c.RMSNormEps)
			}
			return ops.AddRMSNormLinear(x, delta, normW, w, c.RMSNormEps)
		}
		x, h := ops.AddRMSNorm(x, delta, normW, c.RMSNormEps)
		if gated {
			return x, gatedLinear(h, w)
		}
		return x, linear(h, w)
	}

	x := ops.GatherRows(m.Weights.Embed, ids) // [T, hidden], the residual stream
	if q, ok := quant[m.Weights.Embed]; ok {  // only the step's rows are dequantised
		x = ops.Dequantize(x, ops.GatherRows(q.Scales, ids), ops.GatherRows(q.Biases, ids), q.GroupSize, q.Bits)
	}
	var delta *graph.Array // the last sub-block's output, not yet added to x
	for i := range m.Weights.Layers {
		l := &m.Weights.Layers[i]
		var qkv *graph.Array
		if delta == nil {
			qkv = linear(ops.RMSNorm(x, l.InputNorm, c.RMSNormEps), l.QKV)
		} else {
			x, qkv = normLinear(x, delta, l.InputNorm, l.QKV, false)
		}
		if l.QKVBias != nil {
			qkv = ops.Add(qkv, l.QKVBias)
		}
		var q, kc, vc *graph.Array
		if c.Family == Qwen3 {
			qk := ops.QKNorm{Heads: c.NumHeads, QNorm: l.QNorm, KNorm: l.KNorm, Eps: c.RMSNormEps, Theta: c.RopeTheta}
			q, kc, vc = ops.QKNormRoPEKVWrite(qkv, qk, positions, cache.K[i], cache.V[i], slots)
		} else {
			hq, hkv := c.NumHeads*d, c.NumKVHeads*d
			part := func(from, to, heads int) *graph.Array {
				return ops.Reshape(ops.Slice(qkv, []int{0, from}, []int{T, to}), T, heads, d)
			}
			q = m.rope(part(0, hq, c.NumHeads), in)
			kc, vc = ops.KVWrite(cache.K[i], cache.V[i], m.rope(part(hq, hq+hkv, c.NumKVHeads), in), part(hq+hkv, hq+2*hkv, c.NumKVHeads), slots)
		}
		cache.SetLayer(i, kc, vc)
		att := ops.PagedAttention(q, kc, vc, meta, opts) // [T, heads, d]
		o := linear(ops.Reshape(att, T, c.NumHeads*d), l.O)
		if l.OBias != nil {
			o = ops.Add(o, l.OBias)
		}
		var gated *graph.Array
		x, gated = normLinear(x, o, l.PostAttnNorm, l.GateUp, true)
		delta = linear(gated, l.Down)
	}
	_, h := ops.AddRMSNorm(x, delta, m.Weights.Norm, c.RMSNormEps)
	if S != T { // only each sequence's last token needs logits
		h = ops.GatherRows(h, in.lastTokens)
	}
	return linear(h, m.Weights.LMHead)
}

// rope rotates x [T, heads, head_dim] by its tokens' positions, with the
// config's frequency scaling if it has one.
func (m *Model) rope(x *graph.Array, in *stepInputs) *graph.Array {
	c := m.Config
	return ops.RoPEScaled(x, in.positions, c.RopeTheta, c.RopeScaling.rope())
}

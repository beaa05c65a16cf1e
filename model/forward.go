package model

import (
	"math"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/ops"
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
// (ops.KVWrite consumes the cache arrays by donation) and attends over the
// paged cache; the layer's new cache arrays replace the old ones in cache.
// If building or evaluating the step fails, the cache's arrays are spent:
// start a new cache.
func (m *Model) ForwardIDs(ids *graph.Array, st *Step, cache *KVCache) *graph.Array {
	c := m.Config
	T, S := st.Tokens(), len(st.Seqs)
	d := c.HeadDim
	positions := graph.FromInt32s(st.Positions)
	slots := graph.FromInt32s(st.SlotMapping)
	meta := ops.AttentionMeta{
		BlockTables: graph.FromInt32s(st.BlockTables, S, st.MaxBlocks),
		SeqLens:     graph.FromInt32s(st.SeqLens),
		CuSeqlensQ:  graph.FromInt32s(st.CuSeqlensQ),
		MaxSeqLen:   st.MaxSeqLen,
	}
	opts := ops.AttentionOptions{Scale: float32(1 / math.Sqrt(float64(d)))}
	linear := func(x, w *graph.Array) *graph.Array { return ops.MatMulTransposed(x, w, false, true) }

	x := ops.GatherRows(m.Weights.Embed, ids) // [T, hidden]
	for i := range m.Weights.Layers {
		l := &m.Weights.Layers[i]
		h := ops.RMSNorm(x, l.InputNorm, c.RMSNormEps)
		q := ops.RMSNorm(ops.Reshape(linear(h, l.Q), T, c.NumHeads, d), l.QNorm, c.RMSNormEps)
		k := ops.RMSNorm(ops.Reshape(linear(h, l.K), T, c.NumKVHeads, d), l.KNorm, c.RMSNormEps)
		v := ops.Reshape(linear(h, l.V), T, c.NumKVHeads, d)
		q = ops.RoPE(q, positions, c.RopeTheta)
		k = ops.RoPE(k, positions, c.RopeTheta)
		kc, vc := ops.KVWrite(cache.K[i], cache.V[i], k, v, slots)
		cache.SetLayer(i, kc, vc)
		att := ops.PagedAttention(q, kc, vc, meta, opts) // [T, heads, d]
		x = ops.Add(x, linear(ops.Reshape(att, T, c.NumHeads*d), l.O))
		h = ops.RMSNorm(x, l.PostAttnNorm, c.RMSNormEps)
		x = ops.Add(x, linear(ops.Mul(ops.SiLU(linear(h, l.Gate)), linear(h, l.Up)), l.Down))
	}
	if S != T { // only each sequence's last token needs logits
		x = ops.GatherRows(x, graph.FromInt32s(st.LastTokens))
	}
	return linear(ops.RMSNorm(x, m.Weights.Norm, c.RMSNormEps), m.Weights.LMHead)
}

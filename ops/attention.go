package ops

import (
	"sync/atomic"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// SplitMode chooses between single-pass and split-KV paged attention.
type SplitMode = primitives.SplitMode

// The split modes. SplitAuto, the zero value, splits as the device's gate
// says (primitives.UseSplitKV).
const (
	SplitAuto   = primitives.SplitAuto
	SplitNever  = primitives.SplitNever
	SplitAlways = primitives.SplitAlways
)

// AttentionMeta describes the sequences of a paged attention batch.
//
// BlockTables is int32 [num_seqs, max_blocks]: the cache blocks of each
// sequence in order, right-padded. SeqLens is int32 [num_seqs]: each
// sequence's context length including this step's tokens. CuSeqlensQ is
// int32 [num_seqs+1]: prefix sums of the query tokens per sequence.
// MaxSeqLen bounds every seq_len.
type AttentionMeta struct {
	BlockTables, SeqLens, CuSeqlensQ *graph.Array
	MaxSeqLen                        int
}

// AttentionOptions are the variants of paged attention.
//
// Scale multiplies q·k (0 means 1/√head_size). Softcap, if > 0, maps a
// score s to tanh(s/Softcap)·Softcap. SlidingWindow, if > 0, hides keys
// more than SlidingWindow−1 positions behind the query. Sinks, if not nil,
// is float32 [heads]: one logit per query head that joins the softmax
// denominator only. Split forces or forbids the split-KV path.
type AttentionOptions struct {
	Scale, Softcap float32
	SlidingWindow  int
	Sinks          *graph.Array
	Split          SplitMode
}

// KVWrite writes this step's keys and values k, v [T, kv_heads, head_size]
// into the caches [num_blocks, block_size, kv_heads, head_size] at
// slotMapping (int32 or int64 [T]) and returns the updated caches.
// kCache and vCache are donated: they are consumed and may not be used
// again, and the update is in place unless something else still holds
// their buffers (then the runtime copies them first, as for ScatterRows).
// A negative slot skips its token; a slot past the cache or used twice is
// an error (at build time when slotMapping is a constant).
func KVWrite(kCache, vCache, k, v, slotMapping *graph.Array) (newK, newV *graph.Array) {
	pc := graph.Caller(0)
	prim := primitives.KVWrite{}
	inputs := []*graph.Array{kCache, vCache, k, v, slotMapping}
	if f := checkSlotsBeforeDonation(pc, prim, inputs, kCache, slotMapping); f != nil {
		return f, f
	}
	outs := apply(pc, prim, inputs...)
	return outs[0], outs[1]
}

// checkSlotsBeforeDonation returns a failed array when prim, a KV write
// into kCache with slotMapping, has an unusable input or a constant slot
// mapping that primitives.CheckSlots refuses; nil otherwise. It runs before
// the node is built, which would consume the caches, so that a bad slot
// leaves them usable.
func checkSlotsBeforeDonation(pc uintptr, prim primitives.Primitive, inputs []*graph.Array, kCache, slotMapping *graph.Array) *graph.Array {
	if err := inputErr(pc, prim.Name(), inputs...); err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	in := make([]graph.Spec, len(inputs))
	for i, a := range inputs {
		in[i] = a.Spec()
	}
	if _, err := prim.Outputs(in); err != nil || slotMapping.HostBytes() == nil {
		return nil // apply reports a bad spec; the kernel checks computed slots
	}
	numSlots := kCache.Shape()[0] * kCache.Shape()[1]
	err := lastSlots.check(constCheck{slotMapping, nil, nil, numSlots, 0, 0, 0},
		func() error { return primitives.CheckSlots(hostIndices(slotMapping), numSlots) })
	if err != nil {
		return fail(pc, prim.Name(), "%v", err)
	}
	return nil
}

// PagedAttention attends queries q [Tq, heads, head_size] to the keys and
// values of their sequences in the paged caches kCache and vCache
// [num_blocks, block_size, kv_heads, head_size] and returns [Tq, heads,
// head_size] in q's dtype (float32, float16 or bfloat16, the caches' dtype).
// Query head h reads KV head h / (heads / kv_heads).
//
// Query token q_pos of a sequence's q_len tokens sees the keys before its
// causal frontier eff_ctx = seq_len − q_len + q_pos + 1 (and within the
// sliding window); a row that sees no key is zero. Metadata that are
// constants are checked here; the kernels check them always.
func PagedAttention(q, kCache, vCache *graph.Array, meta AttentionMeta, opts AttentionOptions) *graph.Array {
	pc := graph.Caller(0)
	prim := primitives.PagedAttention{
		Scale:         opts.Scale,
		Softcap:       opts.Softcap,
		SlidingWindow: opts.SlidingWindow,
		MaxSeqLen:     meta.MaxSeqLen,
		Split:         opts.Split,
	}
	inputs := []*graph.Array{q, kCache, vCache, meta.BlockTables, meta.SeqLens, meta.CuSeqlensQ}
	if opts.Sinks != nil {
		prim.Sinks = true
		inputs = append(inputs, opts.Sinks)
	}
	out := apply1(pc, prim, inputs...)
	if out.Err() != nil {
		return out
	}
	key := constCheck{meta.BlockTables, meta.SeqLens, meta.CuSeqlensQ, q.Shape()[0], kCache.Shape()[0], kCache.Shape()[1], meta.MaxSeqLen}
	if err := lastMeta.check(key, func() error { return checkConstMeta(q, kCache, meta) }); err != nil {
		return fail(pc, prim.Name(), "%v", err)
	}
	return out
}

// constCheck identifies one check of constant metadata: the arrays (which
// never change once built) and the sizes they were checked against.
type constCheck struct {
	a, b, c    *graph.Array
	x, y, z, w int
}

// checkMemo remembers the last check that passed. A decode step passes the
// same slot mapping and metadata to every layer's KVWrite and
// PagedAttention: decoding and scanning them again in each of 28 layers
// was host time on every step, for an answer already known.
type checkMemo struct{ last atomic.Pointer[constCheck] }

var lastSlots, lastMeta checkMemo

// check runs fn unless key is the last check that passed.
func (m *checkMemo) check(key constCheck, fn func() error) error {
	if p := m.last.Load(); p != nil && *p == key {
		return nil
	}
	if err := fn(); err != nil {
		return err
	}
	m.last.Store(&key)
	return nil
}

// checkConstMeta checks the metadata that are constants, each as far as
// the constants allow.
func checkConstMeta(q, kCache *graph.Array, meta AttentionMeta) error {
	numBlocks, bs := kCache.Shape()[0], kCache.Shape()[1]
	maxBlocks := meta.BlockTables.Shape()[1]
	if meta.CuSeqlensQ.HostBytes() != nil {
		cu, err := meta.CuSeqlensQ.Int32s()
		if err != nil {
			return err
		}
		if err := primitives.CheckCuSeqlensQ(cu, q.Shape()[0]); err != nil {
			return err
		}
	}
	if meta.SeqLens.HostBytes() == nil {
		return nil
	}
	seqLens, err := meta.SeqLens.Int32s()
	if err != nil {
		return err
	}
	if err := primitives.CheckSeqLens(seqLens, meta.MaxSeqLen, maxBlocks, bs); err != nil {
		return err
	}
	if meta.BlockTables.HostBytes() == nil {
		return nil
	}
	tables, err := meta.BlockTables.Int32s()
	if err != nil {
		return err
	}
	return primitives.CheckBlockTables(tables, maxBlocks, seqLens, bs, numBlocks)
}

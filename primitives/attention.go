package primitives

import (
	"fmt"
	"math"
	"slices"

	"github.com/loomrt/loom/graph"
)

// Paged attention and the KV write that fills its cache.
//
// The K and V caches share one layout, [num_blocks, block_size, kv_heads,
// head_size]: one token's head vector is contiguous. A slot is a token's row
// in the cache viewed as [num_blocks·block_size, kv_heads, head_size]; the
// token at position pos of a sequence whose block table is B lives in slot
// B[pos/block_size]·block_size + pos%block_size.
//
// Query token t of sequence s, at position q_pos inside its segment of q_len
// tokens, attends to the keys [max(0, eff_ctx − window), eff_ctx) of its
// sequence, with eff_ctx = seq_len − q_len + q_pos + 1 (the causal frontier;
// seq_len includes this step's tokens). A row with no key is zero.

// AttentionDTypes are the dtypes of queries and caches that paged attention
// and the KV write support.
var AttentionDTypes = []graph.DType{graph.Float32, graph.Float16, graph.BFloat16}

// AttentionHeadSizes are the head sizes paged attention supports; GPU
// kernels are specialised on them.
var AttentionHeadSizes = []int{64, 80, 96, 128, 256}

// AttentionBlockSizes are the cache block sizes paged attention supports.
var AttentionBlockSizes = []int{8, 16, 32}

// AttentionPartitionSize is the number of keys per partition of split-KV
// attention where a device's Caps.Partitions says none. It is a multiple
// of every supported block size.
const AttentionPartitionSize = 512

// AttentionPartitioning is a device's cut of a row's keys into the
// partitions of split-KV attention: partitions of Keys keys (0:
// AttentionPartitionSize), and where MaxPartitions > 0 and that would make
// more of them, partitions of the least multiple of Keys that makes at
// most MaxPartitions (AttentionPartitionKeys). A row's partitions depend
// on its own keys alone, never on the batch, so its result does not
// either. Small partitions fill a GPU at batch 1; the bound keeps the
// scratch, which holds MaxPartitions partials a row, and the merge of a
// long row small.
type AttentionPartitioning struct {
	Keys          int
	MaxPartitions int
}

// keys is the partitions' least size.
func (pt AttentionPartitioning) keys() int {
	if pt.Keys <= 0 {
		return AttentionPartitionSize
	}
	return pt.Keys
}

// AttentionPartitionKeys is the number of keys per partition of a row
// whose keys end before key hi, with partitions of at least size keys and
// at most parts of them (the params' PartitionSize and NumPartitions): size
// times ⌈hi / (size·parts)⌉. Partition i holds keys [i·n, (i+1)·n). Where
// parts partitions of size keys hold the longest row (no bound), it is
// size for every row. The kernels compute the same.
func AttentionPartitionKeys(size, parts, hi int) int {
	return size * max(1, Groups(hi, size*max(parts, 1)))
}

// KVWriteParams are the params of the KV write kernels.
type KVWriteParams struct {
	NumTokens int32
	KVHeads   int32
	HeadSize  int32
	NumSlots  int32 // num_blocks · block_size
}

// KVWrite writes this step's K and V rows, [T, kv_heads, head_size], into
// the K and V caches at slot_mapping [T] (int32 or int64), in place. Inputs:
// k_cache, v_cache, k, v, slot_mapping. Outputs 0 and 1 are the updated
// caches and live in the donated buffers of inputs 0 and 1. A negative slot
// skips its token (padding). A slot at or past num_blocks·block_size, or a
// slot used twice, is an error and nothing is written.
type KVWrite struct{}

func (KVWrite) Name() string { return "kv_write" }

// NumOutputs is 2: the updated K and V caches.
func (KVWrite) NumOutputs() int { return 2 }

// Aliases makes the updated caches the donated input caches.
func (KVWrite) Aliases() []graph.Alias {
	return []graph.Alias{{Output: 0, Input: 0, Donate: true}, {Output: 1, Input: 1, Donate: true}}
}

func (KVWrite) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 5 {
		return nil, fmt.Errorf("needs 5 inputs (k_cache, v_cache, k, v, slot_mapping), got %d", len(in))
	}
	kc, vc, k, v, slots := in[0], in[1], in[2], in[3], in[4]
	if err := checkCaches(kc, vc); err != nil {
		return nil, err
	}
	if len(k.Shape) != 3 {
		return nil, fmt.Errorf("k must be [tokens, kv_heads, head_size], got %s", k)
	}
	if k.DType != kc.DType || k.Shape[1] != kc.Shape[2] || k.Shape[2] != kc.Shape[3] {
		return nil, fmt.Errorf("k %s does not match the cache %s: want %s[tokens, %d, %d]", k, kc, kc.DType, kc.Shape[2], kc.Shape[3])
	}
	if v.DType != k.DType || !slices.Equal(v.Shape, k.Shape) {
		return nil, fmt.Errorf("v %s differs from k %s", v, k)
	}
	if err := checkSlotMapping(slots, k.Shape[0]); err != nil {
		return nil, err
	}
	if err := fitsInt32("k's elements", k.Size()); err != nil {
		return nil, err
	}
	return []graph.Spec{kc, vc}, nil
}

// KVWriteKernel is the kernel name of the KV write for caches of dtype dt and
// slots of dtype slotDT.
func KVWriteKernel(dt, slotDT graph.DType) string {
	return KernelName("kv_write", dt, slotDT)
}

func (KVWrite) Lower(l *Lowering) error {
	kc, k := l.Inputs[0], l.Inputs[2]
	p := &KVWriteParams{
		NumTokens: int32(k.Shape[0]),
		KVHeads:   int32(k.Shape[1]),
		HeadSize:  int32(k.Shape[2]),
		NumSlots:  int32(kc.Shape[0] * kc.Shape[1]),
	}
	l.Dispatch(KVWriteKernel(kc.DType, l.Inputs[4].DType), Dim3{k.Shape[0], 1, 1}, // one group per token
		Dim3{min(k.Shape[1]*k.Shape[2], ElementwiseThreads), 1, 1}, p, Out(0), Out(1), In(2), In(3), In(4))
	return nil
}

// checkSlotMapping checks the spec of a slot mapping for tokens tokens.
func checkSlotMapping(slots graph.Spec, tokens int) error {
	if slots.DType != graph.Int32 && slots.DType != graph.Int64 {
		return fmt.Errorf("slot_mapping must be int32 or int64, got %s", slots.DType)
	}
	if len(slots.Shape) != 1 || slots.Shape[0] != tokens {
		return fmt.Errorf("slot_mapping %s must be [%d], one slot per token", slots, tokens)
	}
	return nil
}

// CheckSlots checks a slot mapping against a cache of numSlots slots: every
// slot is negative (skipped) or below numSlots, and no slot is used twice.
func CheckSlots[S int32 | int64](slots []S, numSlots int) error {
	seen := make(map[S]int, len(slots))
	for i, s := range slots {
		if s < 0 {
			continue
		}
		if int64(s) >= int64(numSlots) {
			return fmt.Errorf("slot_mapping[%d] = %d out of range: the cache has %d slots", i, s, numSlots)
		}
		if j, dup := seen[s]; dup {
			return fmt.Errorf("slot_mapping[%d] = %d is also slot_mapping[%d]: a slot may be written once", i, s, j)
		}
		seen[s] = i
	}
	return nil
}

// SplitMode chooses between single-pass and split-KV paged attention.
type SplitMode uint8

const (
	// SplitAuto splits as the device's gate says (Caps.SplitKV, see
	// UseSplitKV): when the single pass would leave it under-occupied, or
	// whenever there are partitions, on a device measured to gain always.
	SplitAuto SplitMode = iota
	// SplitNever always computes each row in a single pass over its keys.
	SplitNever
	// SplitAlways always partitions the keys and merges the partials.
	SplitAlways
)

func (m SplitMode) String() string {
	switch m {
	case SplitAuto:
		return "auto"
	case SplitNever:
		return "never"
	case SplitAlways:
		return "always"
	}
	return fmt.Sprintf("SplitMode(%d)", uint8(m))
}

// PagedAttentionParams are the params of the paged attention kernels (the
// single pass and the split kernel share them).
//
// Scores are kept in log2 units — the kernels multiply q·k by Scale and by
// log2(e) so that every exponential is an exp2 — and so are the partition
// maxima written to max_logits. With Softcap > 0 the score is
// tanh(Scale·q·k / Softcap)·Softcap before that conversion. SlidingWindow 0
// means no window.
type PagedAttentionParams struct {
	NumSeqs         int32
	NumTokens       int32 // query tokens, Tq
	NumHeads        int32
	NumKVHeads      int32
	HeadSize        int32
	BlockSize       int32
	NumBlocks       int32
	MaxBlocksPerSeq int32
	MaxSeqLen       int32
	NumPartitions   int32 // partitions per row in the split scratch; 0 on the single pass
	PartitionSize   int32 // the least keys per partition (AttentionPartitionKeys)
	SlidingWindow   int32
	Scale           float32
	Softcap         float32
}

// PagedAttention is attention of queries q [Tq, H, head_size] over a paged
// KV cache. Inputs: q, k_cache, v_cache, block_tables int32 [num_seqs,
// max_blocks], seq_lens int32 [num_seqs], cu_seqlens_q int32 [num_seqs+1],
// and, when Sinks is set, sinks float32 [H]. The output has q's dtype and
// shape. Query head h reads KV head h / (H / kv_heads).
//
// A sink is one logit per query head that joins the softmax denominator
// only. Scale 0 means 1/√head_size. MaxSeqLen bounds every seq_len and sizes
// the split-KV scratch.
type PagedAttention struct {
	Scale         float32
	Softcap       float32
	SlidingWindow int
	MaxSeqLen     int
	Sinks         bool
	Split         SplitMode
}

func (PagedAttention) Name() string { return "paged_attention" }

func (p PagedAttention) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	names := "q, k_cache, v_cache, block_tables, seq_lens, cu_seqlens_q"
	want := 6
	if p.Sinks {
		names, want = names+", sinks", 7
	}
	if len(in) != want {
		return nil, fmt.Errorf("needs %d inputs (%s), got %d", want, names, len(in))
	}
	q, kc, vc, tables, seqLens, cu := in[0], in[1], in[2], in[3], in[4], in[5]
	if len(q.Shape) != 3 {
		return nil, fmt.Errorf("q must be [tokens, heads, head_size], got %s", q)
	}
	if err := checkCaches(kc, vc); err != nil {
		return nil, err
	}
	heads, hs := q.Shape[1], q.Shape[2]
	bs, kvh := kc.Shape[1], kc.Shape[2]
	switch {
	case q.DType != kc.DType:
		return nil, fmt.Errorf("q is %s but the caches are %s", q.DType, kc.DType)
	case hs != kc.Shape[3]:
		return nil, fmt.Errorf("q's head size %d differs from the caches' %d", hs, kc.Shape[3])
	case !slices.Contains(AttentionHeadSizes, hs):
		return nil, fmt.Errorf("unsupported head size %d (supported: %v)", hs, AttentionHeadSizes)
	case !slices.Contains(AttentionBlockSizes, bs):
		return nil, fmt.Errorf("unsupported block size %d (supported: %v)", bs, AttentionBlockSizes)
	case kvh == 0 || heads%kvh != 0:
		return nil, fmt.Errorf("%d query heads are not a multiple of %d kv heads", heads, kvh)
	}
	if tables.DType != graph.Int32 || len(tables.Shape) != 2 {
		return nil, fmt.Errorf("block_tables must be int32 [num_seqs, max_blocks], got %s", tables)
	}
	seqs := tables.Shape[0]
	if seqLens.DType != graph.Int32 || len(seqLens.Shape) != 1 || seqLens.Shape[0] != seqs {
		return nil, fmt.Errorf("seq_lens must be int32 [%d] (one per block table row), got %s", seqs, seqLens)
	}
	if cu.DType != graph.Int32 || len(cu.Shape) != 1 || cu.Shape[0] != seqs+1 {
		return nil, fmt.Errorf("cu_seqlens_q must be int32 [%d] (num_seqs+1), got %s", seqs+1, cu)
	}
	if p.Sinks {
		if s := in[6]; s.DType != graph.Float32 || len(s.Shape) != 1 || s.Shape[0] != heads {
			return nil, fmt.Errorf("sinks must be float32 [%d] (one per query head), got %s", heads, s)
		}
	}
	switch {
	case math.IsNaN(float64(p.Scale)) || math.IsInf(float64(p.Scale), 0):
		return nil, fmt.Errorf("scale %v is not finite", p.Scale)
	case !(p.Softcap >= 0) || math.IsInf(float64(p.Softcap), 0):
		return nil, fmt.Errorf("softcap %v must be finite and ≥ 0 (0: none)", p.Softcap)
	case p.SlidingWindow < 0:
		return nil, fmt.Errorf("sliding window %d is negative (0: none)", p.SlidingWindow)
	case p.MaxSeqLen < 0:
		return nil, fmt.Errorf("max_seq_len %d is negative", p.MaxSeqLen)
	case p.Split > SplitAlways:
		return nil, fmt.Errorf("unknown split mode %v", p.Split)
	}
	for _, c := range []struct {
		what string
		n    int
	}{{"q's elements", q.Size()}, {"block_tables' elements", tables.Size()}, {"max_seq_len", p.MaxSeqLen}, {"the sliding window", p.SlidingWindow}} {
		if err := fitsInt32(c.what, c.n); err != nil {
			return nil, err
		}
	}
	return []graph.Spec{q}, nil
}

// PagedAttentionKernel is the single-pass kernel's name; with sinks it folds
// them into each row's softmax.
func PagedAttentionKernel(dt graph.DType, headSize, blockSize int, sinks bool) string {
	return fmt.Sprintf("paged_attention_%s_hs%d_bs%d%s", dt.Short(), headSize, blockSize, sinksSuffix(sinks))
}

// PagedAttentionSplitKernel is the split path's kernel: a threadgroup
// attends each row to the keys of one partition and writes its partial
// results to the scratch; the last of a row's partitions to finish (an
// atomic count per query token and KV head, in the zeroed counters, which
// that threadgroup resets) merges the row's partials in partition order
// into out, folding the sinks.
func PagedAttentionSplitKernel(dt graph.DType, headSize, blockSize int, sinks bool) string {
	return fmt.Sprintf("paged_attention_split_%s_hs%d_bs%d%s", dt.Short(), headSize, blockSize, sinksSuffix(sinks))
}

func sinksSuffix(sinks bool) string {
	if sinks {
		return "_sinks"
	}
	return ""
}

// UseSplitKV reports whether paged attention takes the split-KV path for
// numTokens query tokens, kvHeads KV heads and partitions partitions per
// row, on a device with the given caps: always or never when forced, and
// with SplitAuto by the device's measured gate (Caps.SplitKV). Tests key
// path-dependent expectations on this function.
func UseSplitKV(mode SplitMode, caps Caps, numTokens, kvHeads, partitions int) bool {
	switch mode {
	case SplitNever:
		return false
	case SplitAlways:
		return true
	}
	if partitions < 2 {
		return false
	}
	g := caps.SplitKV
	if g.GroupsPerCore == 0 {
		return true
	}
	groups := numTokens
	if g.PerHead {
		groups *= kvHeads
	}
	return groups < g.GroupsPerCore*max(caps.Cores, 1)
}

// AttentionWarps is the number of SIMD groups in a GPU attention
// threadgroup (one per KV head, query token and, on the split path,
// partition). They take the chunks of the threadgroup's keys in turn (8
// keys on CUDA, 32 in MSL), each for every query head of the KV head's
// group, so that every K and V row is read once for all of them; then
// their softmax states merge in SIMD-group order. The split is the same whatever the grid, so a row's
// result does not depend on the batch it is in. Eight groups (256 threads)
// keep enough loads in flight in the small grids of a decode step and stay
// within the 256 threads a CUDA kernel of up to 255 registers a thread
// launches with.
const AttentionWarps = 8

// attentionGroup is the threadgroup of the GPU attention kernels:
// caps.AttentionWarps SIMD groups, or AttentionWarps.
func attentionGroup(caps Caps) Dim3 {
	w := AttentionWarps
	if caps.AttentionWarps > 0 {
		w = caps.AttentionWarps
	}
	return Dim3{max(caps.SIMDWidth, 1) * w, 1, 1}
}

// attentionGridZ is the split path's threadgroups per query token and KV
// head (rows of them): one a partition, or with caps.AttentionGridBlocks
// as many as make at most that many threadgroups in all (a wave of them
// that leaves no partial wave behind), at least one.
func attentionGridZ(caps Caps, rows, parts int) int {
	if caps.AttentionGridBlocks <= 0 || rows <= 0 {
		return parts
	}
	return min(parts, max(1, caps.AttentionGridBlocks/rows))
}

// AttentionPartitions is the number of partitions of split-KV attention on
// a device partitioning keys as pt: the longest context a row can have,
// max_seq_len bounded by what a block table row holds, in partitions of
// pt's least size, at most pt.MaxPartitions (where set), and at least one.
func AttentionPartitions(pt AttentionPartitioning, maxSeqLen, maxBlocks, blockSize int) int {
	n := max(1, Groups(min(maxSeqLen, maxBlocks*blockSize), pt.keys()))
	if pt.MaxPartitions > 0 {
		n = min(n, pt.MaxPartitions)
	}
	return n
}

func (p PagedAttention) Lower(l *Lowering) error {
	q, kc, tables := l.Inputs[0], l.Inputs[1], l.Inputs[3]
	dt, tq, heads, hs := q.DType, q.Shape[0], q.Shape[1], q.Shape[2]
	bs, kvh := kc.Shape[1], kc.Shape[2]
	scale := p.Scale
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(hs)))
	}
	params := &PagedAttentionParams{
		NumSeqs:         int32(tables.Shape[0]),
		NumTokens:       int32(tq),
		NumHeads:        int32(heads),
		NumKVHeads:      int32(kvh),
		HeadSize:        int32(hs),
		BlockSize:       int32(bs),
		NumBlocks:       int32(kc.Shape[0]),
		MaxBlocksPerSeq: int32(tables.Shape[1]),
		MaxSeqLen:       int32(p.MaxSeqLen),
		PartitionSize:   int32(l.Caps.Partitions.keys()),
		SlidingWindow:   int32(p.SlidingWindow),
		Scale:           scale,
		Softcap:         p.Softcap,
	}
	// The inputs in the kernels' order: q, the caches, the block tables,
	// seq_lens, cu_seqlens_q.
	meta := []Ref{In(0), In(1), In(2), In(3), In(4), In(5)}
	// The sinks, if any, come after the kernels' other inputs.
	var sinks []Ref
	if p.Sinks {
		sinks = []Ref{In(6)}
	}
	parts := AttentionPartitions(l.Caps.Partitions, p.MaxSeqLen, tables.Shape[1], bs)
	if !UseSplitKV(p.Split, l.Caps, tq, kvh, parts) {
		l.Count("paged_attention.single", 1)
		l.Dispatch(PagedAttentionKernel(dt, hs, bs, p.Sinks), Dim3{kvh, tq, 1}, attentionGroup(l.Caps), params,
			slices.Concat(meta, sinks, []Ref{Out(0)})...)
		return nil
	}
	rows := int64(tq) * int64(heads) * int64(parts)
	if err := fitsInt32("the split-KV partial outputs' elements", int(rows)*hs); err != nil {
		return err
	}
	l.Count("paged_attention.split", 1)
	split := *params
	split.NumPartitions = int32(parts)
	maxLogits := l.NewScratch(rows * 4)
	expSums := l.NewScratch(rows * 4)
	tmpOut := l.NewScratch(rows * int64(hs) * int64(dt.Size()))
	counters := l.NewZeroedScratch(int64(tq) * int64(kvh) * 4)
	l.Dispatch(PagedAttentionSplitKernel(dt, hs, bs, p.Sinks), Dim3{kvh, tq, attentionGridZ(l.Caps, tq*kvh, parts)}, attentionGroup(l.Caps), &split,
		slices.Concat(meta, sinks, []Ref{maxLogits, expSums, tmpOut, counters, Out(0)})...)
	return nil
}

// CheckCuSeqlensQ checks the query offsets of paged attention: they start
// at 0, never decrease, and end at the number of query tokens.
func CheckCuSeqlensQ(cu []int32, numTokens int) error {
	if len(cu) == 0 {
		return fmt.Errorf("cu_seqlens_q is empty; it needs num_seqs+1 entries")
	}
	if cu[0] != 0 {
		return fmt.Errorf("cu_seqlens_q[0] = %d, want 0", cu[0])
	}
	for i := 1; i < len(cu); i++ {
		if cu[i] < cu[i-1] {
			return fmt.Errorf("cu_seqlens_q[%d] = %d is less than cu_seqlens_q[%d] = %d (sequence %d): offsets must not decrease", i, cu[i], i-1, cu[i-1], i-1)
		}
	}
	if last := len(cu) - 1; int(cu[last]) != numTokens {
		return fmt.Errorf("cu_seqlens_q[%d] = %d, want the number of query tokens, %d", last, cu[last], numTokens)
	}
	return nil
}

// CheckSeqLens checks the context lengths of paged attention: none is
// negative, above maxSeqLen, or longer than a block table row of maxBlocks
// blocks of blockSize tokens holds.
func CheckSeqLens(seqLens []int32, maxSeqLen, maxBlocks, blockSize int) error {
	for s, n := range seqLens {
		switch {
		case n < 0:
			return fmt.Errorf("seq_lens[%d] = %d is negative", s, n)
		case int(n) > maxSeqLen:
			return fmt.Errorf("seq_lens[%d] = %d exceeds max_seq_len %d", s, n, maxSeqLen)
		case int(n) > maxBlocks*blockSize:
			return fmt.Errorf("seq_lens[%d] = %d needs %d blocks but block_tables holds %d per sequence", s, n, Groups(int(n), blockSize), maxBlocks)
		}
	}
	return nil
}

// CheckBlockTables checks the block table entries that sequences use (the
// first ⌈seq_len/blockSize⌉ of each row of maxBlocks) against a cache of
// numBlocks blocks. seqLens must have passed CheckSeqLens.
func CheckBlockTables(tables []int32, maxBlocks int, seqLens []int32, blockSize, numBlocks int) error {
	for s, n := range seqLens {
		row := tables[s*maxBlocks : (s+1)*maxBlocks]
		for b := range Groups(int(n), blockSize) {
			if e := row[b]; e < 0 || int(e) >= numBlocks {
				return fmt.Errorf("block_tables[%d,%d] = %d out of range [0,%d) (sequence %d, seq_len %d)", s, b, e, numBlocks, s, n)
			}
		}
	}
	return nil
}

// checkCaches checks a K and a V cache: rank 4, a supported dtype, the same
// dtype and shape.
func checkCaches(kc, vc graph.Spec) error {
	if len(kc.Shape) != 4 {
		return fmt.Errorf("k_cache must be [num_blocks, block_size, kv_heads, head_size], got %s", kc)
	}
	if !slices.Contains(AttentionDTypes, kc.DType) {
		return fmt.Errorf("unsupported cache dtype %s (supported: %v)", kc.DType, AttentionDTypes)
	}
	if vc.DType != kc.DType || !slices.Equal(vc.Shape, kc.Shape) {
		return fmt.Errorf("v_cache %s differs from k_cache %s", vc, kc)
	}
	return fitsInt32("k_cache's elements", kc.Size())
}

// fitsInt32 checks that n, a count or value the attention kernels hold in
// signed 32-bit integers, fits.
func fitsInt32(what string, n int) error {
	if n > math.MaxInt32 {
		return fmt.Errorf("unsupported size: %s = %d, more than 2^31-1", what, n)
	}
	return nil
}

func init() {
	for _, dt := range AttentionDTypes {
		for _, slot := range []graph.DType{graph.Int32, graph.Int64} {
			register(KernelSpec{Name: KVWriteKernel(dt, slot), Args: []ArgSpec{RW("k_cache"), RW("v_cache"), R("key"), R("value"), R("slot_mapping")}, Params: (*KVWriteParams)(nil)})
		}
		meta := []ArgSpec{R("q"), R("k_cache"), R("v_cache"), R("block_tables"), R("seq_lens"), R("cu_seqlens_q")}
		split := []ArgSpec{W("max_logits"), W("exp_sums"), W("tmp_out"), RW("counters"), W("out")}
		for _, hs := range AttentionHeadSizes {
			for _, bs := range AttentionBlockSizes {
				register(
					KernelSpec{Name: PagedAttentionKernel(dt, hs, bs, false), Args: concat(meta, W("out")), Params: (*PagedAttentionParams)(nil)},
					KernelSpec{Name: PagedAttentionKernel(dt, hs, bs, true), Args: concat(meta, R("sinks"), W("out")), Params: (*PagedAttentionParams)(nil)},
					KernelSpec{Name: PagedAttentionSplitKernel(dt, hs, bs, false), Args: concat(meta, split...), Params: (*PagedAttentionParams)(nil)},
					KernelSpec{Name: PagedAttentionSplitKernel(dt, hs, bs, true), Args: concat(concat(meta, R("sinks")), split...), Params: (*PagedAttentionParams)(nil)},
				)
			}
		}
	}
}

func concat(a []ArgSpec, b ...ArgSpec) []ArgSpec { return append(slices.Clip(a), b...) }

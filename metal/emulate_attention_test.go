//go:build linux && amd64

package metal_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
)

// attentionCase is a paged-attention problem: per sequence, its context
// length and its query tokens this step.
type attentionCase struct {
	heads, kvHeads, hs, bs int
	seqLens, qLens         []int
	opts                   ops.AttentionOptions
	sinks                  bool
}

// build makes the graph: caches filled through KVWrite at a random
// permutation of the blocks, then attention over them.
func (c attentionCase) build(dt graph.DType) *graph.Array {
	r := loomtest.Rand(uint64(c.hs*1000 + c.bs))
	maxBlocks := 0
	for _, n := range c.seqLens {
		maxBlocks = max(maxBlocks, primitives.Groups(n, c.bs))
	}
	numBlocks := maxBlocks*len(c.seqLens) + 3
	perm := r.Perm(numBlocks)
	tables := make([]int32, len(c.seqLens)*maxBlocks)
	for i := range tables {
		tables[i] = int32(perm[i])
	}
	var slots []int32
	tokens, maxLen := 0, 0
	cu := []int32{0}
	for s, n := range c.seqLens {
		for pos := range n {
			slots = append(slots, tables[s*maxBlocks+pos/c.bs]*int32(c.bs)+int32(pos%c.bs))
		}
		tokens += n
		maxLen = max(maxLen, n)
		cu = append(cu, cu[s]+int32(c.qLens[s]))
	}
	slots = append(slots, -1) // padding: skipped
	row := c.kvHeads * c.hs
	kc := graph.Full(dt, 0, numBlocks, c.bs, c.kvHeads, c.hs)
	vc := graph.Full(dt, 0, numBlocks, c.bs, c.kvHeads, c.hs)
	k := graph.FromFloat32sAs(dt, loomtest.Float32s(r, (tokens+1)*row, -1, 1), tokens+1, c.kvHeads, c.hs)
	v := graph.FromFloat32sAs(dt, loomtest.Float32s(r, (tokens+1)*row, -1, 1), tokens+1, c.kvHeads, c.hs)
	// The slots go through an Add so that KVWrite cannot check them at build
	// time and the kernel's own handling is exercised.
	slotArr := ops.Add(graph.FromInt32s(slots, len(slots)), graph.Full(graph.Int32, 0, len(slots)))
	kc, vc = ops.KVWrite(kc, vc, k, v, slotArr)
	lens := make([]int32, len(c.seqLens))
	for i, n := range c.seqLens {
		lens[i] = int32(n)
	}
	tq := int(cu[len(cu)-1])
	q := graph.FromFloat32sAs(dt, loomtest.Float32s(r, tq*c.heads*c.hs, -1, 1), tq, c.heads, c.hs)
	meta := ops.AttentionMeta{
		BlockTables: graph.FromInt32s(tables, len(c.seqLens), maxBlocks),
		SeqLens:     graph.FromInt32s(lens, len(lens)),
		CuSeqlensQ:  graph.FromInt32s(cu, len(cu)),
		MaxSeqLen:   maxLen,
	}
	opts := c.opts
	if c.sinks {
		opts.Sinks = graph.FromFloat32s(loomtest.Float32s(r, c.heads, -1, 2), c.heads)
	}
	return ops.PagedAttention(q, kc, vc, meta, opts)
}

// TestEmulatedAttention checks the KV write, the single pass and the split
// path (the partitions merged by the last of each row's threadgroups)
// against the CPU, with GQA, awkward head sizes, varlen queries, sliding
// windows, softcap and sinks.
func TestEmulatedAttention(t *testing.T) {
	var names []string
	for _, n := range kernelsWithPrefix("paged_attention_", "kv_write_", "add_i32") {
		if !strings.Contains(n, "_hs128") && !strings.Contains(n, "_hs256") { // not used here: quicker to build
			names = append(names, n)
		}
	}
	emu, ref := emuRuntimes(t, names...)
	cases := []attentionCase{
		{heads: 4, kvHeads: 2, hs: 64, bs: 16, seqLens: []int{40, 700}, qLens: []int{1, 1}},
		{heads: 4, kvHeads: 2, hs: 80, bs: 8, seqLens: []int{530, 9}, qLens: []int{3, 9}},
		{heads: 2, kvHeads: 1, hs: 64, bs: 32, seqLens: []int{1100}, qLens: []int{2}, opts: ops.AttentionOptions{SlidingWindow: 600}},
		{heads: 4, kvHeads: 4, hs: 96, bs: 16, seqLens: []int{600, 70}, qLens: []int{1, 2}, opts: ops.AttentionOptions{Softcap: 5, Scale: 0.2}, sinks: true},
		{heads: 2, kvHeads: 1, hs: 64, bs: 8, seqLens: []int{3}, qLens: []int{5}}, // two rows see no key
	}
	tolerances := map[graph.DType][2]float64{graph.Float32: {1e-3, 1e-3}, graph.Float16: {1.5e-2, 2e-2}, graph.BFloat16: {3e-2, 2e-2}}
	for i, c := range cases {
		for _, dt := range primitives.AttentionDTypes {
			for _, split := range []primitives.SplitMode{primitives.SplitNever, primitives.SplitAlways} {
				c.opts.Split = split
				what := fmt.Sprintf("case %d %s split %v", i, dt, split)
				tl := tolerances[dt]
				sameOnBoth(t, emu, ref, what, func() *graph.Array { return c.build(dt) }, tl[0], tl[1])
				path := "paged_attention.single"
				if split == primitives.SplitAlways {
					path = "paged_attention.split"
				}
				if emu.LastStats().Counters[path] != 1 {
					t.Fatalf("%s: the %s path was not taken: %v", what, path, emu.LastStats().Counters)
				}
			}
		}
	}
}

// TestEmulatedAttentionWideRows checks the row layouts the main test does
// not build (for speed): float16 rows of 128 (16 lanes a row, the decode
// shape of the suite) and float32 rows of 256 (two 16-byte loads a lane).
func TestEmulatedAttentionWideRows(t *testing.T) {
	names := kernelsWithPrefix("paged_attention_f16_hs128_bs16", "paged_attention_split_f16_hs128_bs16",
		"paged_attention_f32_hs256_bs16", "paged_attention_split_f32_hs256_bs16", "kv_write_", "add_i32")
	emu, ref := emuRuntimes(t, names...)
	for _, c := range []struct {
		dt     graph.DType
		hs     int
		tl     [2]float64
		heads  int
		lens   []int
		window int
	}{
		{graph.Float16, 128, [2]float64{1.5e-2, 2e-2}, 4, []int{530, 37}, 0},
		{graph.Float32, 256, [2]float64{1e-3, 1e-3}, 2, []int{45, 600}, 100},
	} {
		for _, split := range []primitives.SplitMode{primitives.SplitNever, primitives.SplitAlways} {
			ac := attentionCase{heads: c.heads, kvHeads: 2, hs: c.hs, bs: 16, seqLens: c.lens, qLens: []int{1, 2},
				opts: ops.AttentionOptions{Split: split, SlidingWindow: c.window}}
			what := fmt.Sprintf("%s hs %d split %v", c.dt, c.hs, split)
			sameOnBoth(t, emu, ref, what, func() *graph.Array { return ac.build(c.dt) }, c.tl[0], c.tl[1])
		}
	}
}

// TestEmulatedAttentionBadMetadata checks that a block-table entry outside
// the cache, a sequence longer than its table row, a KV slot past the cache
// and a KV slot written twice are reported by the kernels, not used.
func TestEmulatedAttentionBadMetadata(t *testing.T) {
	emu, _ := emuRuntimes(t, kernelsWithPrefix("paged_attention_f32_hs64_bs8", "paged_attention_split_f32_hs64_bs8", "kv_write_f32", "add_i32")...)
	kc := graph.Full(graph.Float32, 0, 4, 8, 1, 64)
	vc := graph.Full(graph.Float32, 0, 4, 8, 1, 64)
	k := graph.Full(graph.Float32, 1, 2, 1, 64)
	slots := ops.Add(graph.FromInt32s([]int32{3, 40}, 2), graph.Full(graph.Int32, 0, 2))
	nk, nv := ops.KVWrite(kc, vc, k, k, slots)
	if err := emu.Eval(nk, nv); err == nil || !strings.Contains(err.Error(), "slot_mapping entry 1 is 40") {
		t.Fatalf("slot 40 of 32: got %v, want an error naming slot_mapping entry 1", err)
	}
	// Tokens 0 and 2 both hold slot 3: neither writes it, the later one
	// reports it in the CPU device's words.
	dup := ops.Add(graph.FromInt32s([]int32{3, 5, 3}, 3), graph.Full(graph.Int32, 0, 3))
	nk, nv = ops.KVWrite(graph.Full(graph.Float32, 0, 4, 8, 1, 64), graph.Full(graph.Float32, 0, 4, 8, 1, 64),
		graph.Full(graph.Float32, 1, 3, 1, 64), graph.Full(graph.Float32, 1, 3, 1, 64), dup)
	if err := emu.Eval(nk, nv); err == nil || !strings.Contains(err.Error(), "slot_mapping[2] = 3 is also slot_mapping[0]: a slot may be written once") {
		t.Fatalf("slot 3 twice: got %v, want an error naming slot_mapping entries 2 and 0", err)
	}
	q := graph.Full(graph.Float32, 1, 1, 2, 64)
	kc2 := graph.Full(graph.Float32, 0, 4, 8, 1, 64)
	vc2 := graph.Full(graph.Float32, 0, 4, 8, 1, 64)
	tables := ops.Add(graph.FromInt32s([]int32{0, 9, 1}, 1, 3), graph.Full(graph.Int32, 0, 1, 3))
	out := ops.PagedAttention(q, kc2, vc2, ops.AttentionMeta{
		BlockTables: tables, SeqLens: graph.FromInt32s([]int32{20}, 1), CuSeqlensQ: graph.FromInt32s([]int32{0, 1}, 2), MaxSeqLen: 20,
	}, ops.AttentionOptions{Split: primitives.SplitNever})
	if err := emu.Eval(out); err == nil || !strings.Contains(err.Error(), "block_tables entry 1 is 9") {
		t.Fatalf("block 9 of 4: got %v, want an error naming block_tables entry 1", err)
	}
	// A sequence longer than its block-table row (3 blocks of 8 keys), on
	// both paths.
	for _, split := range []primitives.SplitMode{primitives.SplitNever, primitives.SplitAlways} {
		lens := ops.Add(graph.FromInt32s([]int32{30}, 1), graph.Full(graph.Int32, 0, 1))
		out = ops.PagedAttention(q, kc2, vc2, ops.AttentionMeta{
			BlockTables: graph.FromInt32s([]int32{0, 2, 1}, 1, 3), SeqLens: lens, CuSeqlensQ: graph.FromInt32s([]int32{0, 1}, 2), MaxSeqLen: 30,
		}, ops.AttentionOptions{Split: split})
		if err := emu.Eval(out); err == nil || !strings.Contains(err.Error(), "seq_lens entry 0 is 30") {
			t.Fatalf("split %v, seq_len 30 with 24 keys in its table row: got %v, want an error naming seq_lens entry 0", split, err)
		}
	}
}

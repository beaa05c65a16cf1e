package model

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/runtime"
)

func newTestRuntime(t testing.TB) *runtime.Runtime {
	t.Helper()
	rt, err := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func newTestCache(t *testing.T, blocks, bs int) *KVCache {
	t.Helper()
	c, err := NewKVCache(newTestRuntime(t), CacheConfig{NumBlocks: blocks, BlockSize: bs, Layers: 2, KVHeads: 1, HeadDim: 2, DType: graph.Float32}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestKVCacheArrays(t *testing.T) {
	cfg := CacheConfig{NumBlocks: 3, BlockSize: 4, Layers: 2, KVHeads: 2, HeadDim: 8, DType: graph.BFloat16}
	c, err := NewKVCache(newTestRuntime(t), cfg, func(layer int, b []byte) {
		for i := range b {
			b[i] = byte(layer + 1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Bytes() != 2*2*3*4*2*8*2 {
		t.Fatalf("Bytes() = %d", cfg.Bytes())
	}
	for l := range 2 {
		for _, a := range []*graph.Array{c.K[l], c.V[l]} {
			if !slices.Equal(a.Shape(), []int{3, 4, 2, 8}) || a.DType() != graph.BFloat16 || !a.Evaluated() {
				t.Fatalf("layer %d array %v: want evaluated bfloat16[3 4 2 8]", l, a)
			}
			b, err := a.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if b[0] != byte(l+1) || b[len(b)-1] != byte(l+1) {
				t.Fatalf("layer %d: fill not applied", l)
			}
		}
	}
	if _, err := NewKVCache(newTestRuntime(t), CacheConfig{NumBlocks: 0, BlockSize: 4, Layers: 1, KVHeads: 1, HeadDim: 2, DType: graph.Float32}, nil); err == nil || !strings.Contains(err.Error(), "blocks = 0") {
		t.Fatalf("zero blocks: error %v", err)
	}
}

func TestKVCacheSlotMapping(t *testing.T) {
	c := newTestCache(t, 10, 4)
	// Sequence 1 takes blocks 0–4 so that sequence 2 gets blocks 5 and 6.
	mustAdd(t, c, 1, 2)
	if _, err := c.Schedule([]int{1}, []int{20}); err != nil {
		t.Fatal(err)
	}
	st, err := c.Schedule([]int{2}, []int{8})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.BlockTable(2); !slices.Equal(got, []int32{5, 6}) {
		t.Fatalf("block table %v, want [5 6]", got)
	}
	// The reference example: block size 4, blocks [5, 6], position 7 → slot 27.
	if st.SlotMapping[7] != 27 || st.Positions[7] != 7 {
		t.Fatalf("position %d slot %d, want 7 and 27 (slots %v)", st.Positions[7], st.SlotMapping[7], st.SlotMapping)
	}
	// A decode step of both: sequence 2 at position 8 takes block 7,
	// sequence 1 at position 20 takes block 8.
	st, err = c.Schedule([]int{2, 1}, []int{1, 1})
	if err != nil {
		t.Fatal(err)
	}
	want := &Step{Seqs: []int{2, 1}, Positions: []int32{8, 20}, SlotMapping: []int32{7 * 4, 8 * 4}, MaxBlocks: 6,
		BlockTables: []int32{5, 6, 7, 0, 0, 0, 0, 1, 2, 3, 4, 8}, SeqLens: []int32{9, 21}, CuSeqlensQ: []int32{0, 1, 2},
		MaxSeqLen: 21, LastTokens: []int32{0, 1}}
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("step %+v\nwant %+v", st, want)
	}
	// A prefill of 3 tokens beside a decode: cu_seqlens and last tokens.
	mustAdd(t, c, 3)
	if st, err = c.Schedule([]int{1, 3}, []int{1, 3}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.CuSeqlensQ, []int32{0, 1, 4}) || !slices.Equal(st.LastTokens, []int32{0, 3}) || !slices.Equal(st.Positions, []int32{21, 0, 1, 2}) {
		t.Fatalf("mixed step %+v", st)
	}
}

func TestKVCacheOutOfBlocks(t *testing.T) {
	c := newTestCache(t, 4, 4)
	mustAdd(t, c, 1, 2)
	if _, err := c.Schedule([]int{1}, []int{9}); err != nil { // 3 blocks
		t.Fatal(err)
	}
	before := c.BlockTable(1)
	_, err := c.Schedule([]int{1, 2}, []int{4, 1}) // needs 2, 1 free
	if err == nil || !strings.Contains(err.Error(), "out of blocks: the step needs 2 more, 1 of 4 are free") {
		t.Fatalf("error %v, want out of blocks", err)
	}
	if c.Len(1) != 9 || c.Len(2) != 0 || c.FreeBlocks() != 1 || !slices.Equal(c.BlockTable(1), before) {
		t.Fatalf("a failed step changed the cache: lengths %d %d, free %d", c.Len(1), c.Len(2), c.FreeBlocks())
	}
	if err := c.Free(1); err != nil {
		t.Fatal(err)
	}
	if c.FreeBlocks() != 4 || c.UsedBlocks() != 0 {
		t.Fatalf("after Free: %d free, %d used", c.FreeBlocks(), c.UsedBlocks())
	}
	if _, err := c.Schedule([]int{2}, []int{17}); err == nil || !strings.Contains(err.Error(), "more than the whole cache") {
		t.Fatalf("oversized sequence: error %v", err)
	}
}

func TestKVCacheErrors(t *testing.T) {
	c := newTestCache(t, 4, 4)
	mustAdd(t, c, 1)
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"add twice", c.Add(1), "sequence 1 already exists"},
		{"free unknown", c.Free(9), "no sequence 9"},
		{"unknown", schedErr(c, []int{9}, []int{1}), "no sequence 9"},
		{"twice", schedErr(c, []int{1, 1}, []int{1, 1}), "appears twice"},
		{"zero tokens", schedErr(c, []int{1}, []int{0}), "0 new tokens"},
		{"lengths", schedErr(c, []int{1}, []int{1, 2}), "1 sequences but 2 token counts"},
		{"empty", schedErr(c, nil, nil), "empty step"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, tc.err, tc.want)
		}
	}
}

func schedErr(c *KVCache, seqs, n []int) error {
	_, err := c.Schedule(seqs, n)
	return err
}

// TestKVCacheRandomWorkload adds, grows and frees sequences at random and
// checks the accounting after every step: no block is held twice or lost,
// each sequence holds exactly the blocks its length needs, and every slot
// of a step is the one its position maps to.
func TestKVCacheRandomWorkload(t *testing.T) {
	const blocks, bs = 40, 4
	c := newTestCache(t, blocks, bs)
	r := loomtest.Rand(11)
	next := 0
	for step := range 3000 {
		live := c.Sequences()
		switch {
		case len(live) < 6 && r.IntN(3) == 0:
			mustAdd(t, c, next)
			next++
			continue
		case len(live) > 0 && r.IntN(10) == 0:
			if err := c.Free(live[r.IntN(len(live))]); err != nil {
				t.Fatal(err)
			}
			continue
		case len(live) == 0:
			continue
		}
		r.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
		live = live[:1+r.IntN(len(live))]
		n := make([]int, len(live))
		for i := range n {
			n[i] = 1 + r.IntN(3)*r.IntN(4)
		}
		st, err := c.Schedule(live, n)
		if err != nil {
			if !strings.Contains(err.Error(), "out of blocks") {
				t.Fatalf("step %d: %v", step, err)
			}
			if err := c.Free(live[0]); err != nil { // the caller's policy: finish one
				t.Fatal(err)
			}
			continue
		}
		owner := map[int32]int{}
		for _, id := range c.Sequences() {
			bt := c.BlockTable(id)
			if len(bt) != (c.Len(id)+bs-1)/bs {
				t.Fatalf("step %d: sequence %d of %d tokens holds %d blocks", step, id, c.Len(id), len(bt))
			}
			for _, b := range bt {
				if prev, dup := owner[b]; dup || b < 0 || b >= blocks {
					t.Fatalf("step %d: block %d held by %d and %d", step, b, prev, id)
				}
				owner[b] = id
			}
		}
		if c.UsedBlocks()+c.FreeBlocks() != blocks {
			t.Fatalf("step %d: %d used + %d free != %d", step, c.UsedBlocks(), c.FreeBlocks(), blocks)
		}
		for i, id := range st.Seqs {
			bt := c.BlockTable(id)
			for tok := st.CuSeqlensQ[i]; tok < st.CuSeqlensQ[i+1]; tok++ {
				pos := st.Positions[tok]
				if want := bt[pos/bs]*bs + pos%bs; st.SlotMapping[tok] != want {
					t.Fatalf("step %d: sequence %d position %d slot %d, want %d", step, id, pos, st.SlotMapping[tok], want)
				}
			}
			if st.SeqLens[i] != int32(c.Len(id)) || st.Positions[st.LastTokens[i]] != st.SeqLens[i]-1 {
				t.Fatalf("step %d: sequence %d seq_len %d, length %d", step, id, st.SeqLens[i], c.Len(id))
			}
		}
	}
	for _, id := range c.Sequences() {
		if err := c.Free(id); err != nil {
			t.Fatal(err)
		}
	}
	if c.FreeBlocks() != blocks {
		t.Fatalf("%d of %d blocks free at the end", c.FreeBlocks(), blocks)
	}
}

func mustAdd(t *testing.T, c *KVCache, ids ...int) {
	t.Helper()
	for _, id := range ids {
		if err := c.Add(id); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEngineCacheConfig: a block size paged attention does not support, or
// a non-positive one, is rejected when the engine is made, naming the block
// size, before any step runs.
func TestEngineCacheConfig(t *testing.T) {
	m := &Model{rt: newTestRuntime(t), Config: Config{NumLayers: 1, NumKVHeads: 1, HeadDim: 2}, DType: graph.Float32}
	for _, c := range []struct {
		blocks, bs int
		want       string
	}{
		{4, 0, "block size 0 is not supported (supported: [8 16 32])"},
		{4, 5, "block size 5 is not supported (supported: [8 16 32])"},
		{4, 64, "block size 64 is not supported (supported: [8 16 32])"},
		{-3, -1, "block size -1 is not supported (supported: [8 16 32])"},
		{0, 16, "blocks = 0 must be positive"},
	} {
		if _, err := NewEngine(m, c.blocks, c.bs); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewEngine(%d blocks of %d): error %v, want %q", c.blocks, c.bs, err, c.want)
		}
	}
	if _, err := NewKVCache(newTestRuntime(t), CacheConfig{NumBlocks: -3, BlockSize: -1, Layers: 1, KVHeads: 1, HeadDim: 2, DType: graph.Float32}, nil); err == nil || !strings.Contains(err.Error(), "block size = -1") {
		t.Errorf("NewKVCache with block size -1: error %v, want it to name the block size", err)
	}
}

func TestKVCacheTruncate(t *testing.T) {
	c := newTestCache(t, 6, 4)
	if err := c.Add(1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Schedule([]int{1}, []int{9}); err != nil { // 3 blocks
		t.Fatal(err)
	}
	blocks := c.BlockTable(1)
	if err := c.Truncate(1, 5); err != nil { // 2 blocks
		t.Fatal(err)
	}
	if c.Len(1) != 5 || !slices.Equal(c.BlockTable(1), blocks[:2]) || c.FreeBlocks() != 4 {
		t.Fatalf("after Truncate(1, 5): length %d, blocks %v (of %v), %d free", c.Len(1), c.BlockTable(1), blocks, c.FreeBlocks())
	}
	// The next token takes position 5 in the block kept.
	st, err := c.Schedule([]int{1}, []int{1})
	if err != nil {
		t.Fatal(err)
	}
	if want := blocks[1]*4 + 1; st.SlotMapping[0] != want || st.Positions[0] != 5 {
		t.Fatalf("slot %d position %d after the truncation, want slot %d position 5", st.SlotMapping[0], st.Positions[0], want)
	}
	for _, c2 := range []struct {
		id, n int
		want  string
	}{{2, 0, "no sequence 2"}, {1, 7, "holds 6 tokens, cannot keep 7"}, {1, -1, "cannot keep -1"}} {
		if err := c.Truncate(c2.id, c2.n); err == nil || !strings.Contains(err.Error(), c2.want) {
			t.Errorf("Truncate(%d, %d): error %v, want %q", c2.id, c2.n, err, c2.want)
		}
	}
}

package model

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestBlockHashChain(t *testing.T) {
	a, b := []int32{1, 2, 3, 4}, []int32{1, 2, 3, 5}
	root := BlockHash(0, a)
	if BlockHash(0, a) != root {
		t.Fatal("the same parent and tokens hash differently")
	}
	if BlockHash(0, b) == root {
		t.Error("different tokens hash the same")
	}
	if BlockHash(root, a) == root || BlockHash(BlockHash(0, b), a) == BlockHash(root, a) {
		t.Error("the same tokens after different parents hash the same")
	}
	// Cached blocks follow the chain: a block equal to a registered one but
	// after another first block is not reused.
	c := newTestCache(t, 8, 2)
	run(t, c, 1, []int32{7, 8, 9, 10, 11})
	if got, _ := c.AddPrompt(2, []int32{6, 8, 9, 10, 11}); got != 0 {
		t.Errorf("a prompt differing in its first block reused %d tokens, want 0", got)
	}
	if got, _ := c.AddPrompt(3, []int32{7, 8, 9, 10, 11}); got != 4 {
		t.Errorf("the same prompt reused %d tokens, want 4", got)
	}
}

// run starts sequence id with prompt, schedules it whole and frees it.
func run(t *testing.T, c *KVCache, id int, prompt []int32) {
	t.Helper()
	if _, err := c.AddPrompt(id, prompt); err != nil {
		t.Fatal(err)
	}
	if n := len(prompt) - c.Len(id); n > 0 {
		if _, err := c.Schedule([]int{id}, []int{n}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Free(id); err != nil {
		t.Fatal(err)
	}
}

// checkBlocks checks the block accounting: every block is free, cached
// unreferenced, or held, and each held block's count is the number of
// sequences holding it.
func checkBlocks(t *testing.T, c *KVCache) {
	t.Helper()
	held := map[int32]int32{}
	for _, s := range c.seqs {
		for _, b := range s.blocks {
			held[b]++
		}
	}
	if c.FreeBlocks()+c.CachedBlocks()+len(held) != c.cfg.NumBlocks || c.UsedBlocks() != len(held) {
		t.Fatalf("%d free + %d cached + %d held (%d used) ≠ %d blocks", c.FreeBlocks(), c.CachedBlocks(), len(held), c.UsedBlocks(), c.cfg.NumBlocks)
	}
	for b := range int32(c.cfg.NumBlocks) {
		if c.ref[b] != held[b] {
			t.Fatalf("block %d: reference count %d, held by %d sequences", b, c.ref[b], held[b])
		}
	}
}

func TestPrefixCacheSharing(t *testing.T) {
	c := newTestCache(t, 8, 4)
	p := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if got, err := c.AddPrompt(1, p); err != nil || got != 0 {
		t.Fatalf("first AddPrompt: %d cached, %v", got, err)
	}
	if _, err := c.Schedule([]int{1}, []int{10}); err != nil {
		t.Fatal(err)
	}
	first := c.BlockTable(1)
	// Two decode tokens fill block 2; they are not prompt tokens, so it is
	// not registered.
	if _, err := c.Schedule([]int{1}, []int{2}); err != nil {
		t.Fatal(err)
	}
	longer := append(slices.Clone(p), 11, 12, 13)
	for _, tc := range []struct {
		id     int
		prompt []int32
		want   int
	}{
		{2, p, 8},          // blocks 0 and 1; block 2 is partial in the prompt
		{3, p[:9], 8},      // the last prompt token is in block 2
		{4, p[:8], 4},      // the last prompt token is never cached
		{5, longer, 8},     // block 2 was filled by decode tokens, never shared
		{6, []int32{1}, 0}, // shorter than a block
	} {
		got, err := c.AddPrompt(tc.id, tc.prompt)
		if err != nil || got != tc.want || c.Len(tc.id) != got {
			t.Fatalf("AddPrompt(%d, %d tokens): %d cached (length %d), %v; want %d", tc.id, len(tc.prompt), got, c.Len(tc.id), err, tc.want)
		}
		if !slices.Equal(c.BlockTable(tc.id), first[:got/4]) {
			t.Fatalf("sequence %d: blocks %v, want %v", tc.id, c.BlockTable(tc.id), first[:got/4])
		}
	}
	checkBlocks(t, c)
	if c.ref[first[0]] != 5 || c.ref[first[1]] != 4 || c.ref[first[2]] != 1 {
		t.Fatalf("reference counts %d %d %d, want 5 4 1", c.ref[first[0]], c.ref[first[1]], c.ref[first[2]])
	}
	// A sharing sequence's first new token goes into a block of its own.
	st, err := c.Schedule([]int{2}, []int{2})
	if err != nil {
		t.Fatal(err)
	}
	if b := c.BlockTable(2)[2]; slices.Contains(first, b) || st.SlotMapping[0] != b*4 || st.Positions[0] != 8 {
		t.Fatalf("sequence 2's tokens 8, 9: block %d (shared %v), slot %d position %d", b, first, st.SlotMapping[0], st.Positions[0])
	}
	// Keeping part of a shared block would write into it.
	if err := c.Truncate(4, 3); err == nil || !strings.Contains(err.Error(), "unsupported") {
		t.Errorf("Truncate into a shared block: %v, want unsupported", err)
	}
	for _, id := range []int{1, 2, 3, 4, 5, 6} {
		if err := c.Free(id); err != nil {
			t.Fatal(err)
		}
		checkBlocks(t, c)
	}
	if c.CachedBlocks() != 2 || c.FreeBlocks() != 6 || c.UsedBlocks() != 0 {
		t.Fatalf("idle: %d cached, %d free, %d used; want 2, 6, 0", c.CachedBlocks(), c.FreeBlocks(), c.UsedBlocks())
	}
}

func TestPrefixCacheLRU(t *testing.T) {
	c := newTestCache(t, 4, 2)
	a, b, d := []int32{1, 1, 1}, []int32{2, 2, 2}, []int32{3, 3, 3}
	run(t, c, 1, a)
	run(t, c, 2, b)
	run(t, c, 3, d)
	// Reusing a's block makes it the most recently released.
	if got, _ := c.AddPrompt(4, a); got != 2 {
		t.Fatalf("a reused %d tokens, want 2", got)
	}
	if err := c.Free(4); err != nil {
		t.Fatal(err)
	}
	if c.FreeBlocks() != 1 || c.CachedBlocks() != 3 {
		t.Fatalf("%d free, %d cached; want 1, 3", c.FreeBlocks(), c.CachedBlocks())
	}
	// Three blocks: the free one, then b's and d's (released before a's).
	if _, err := c.AddPrompt(5, []int32{4, 4, 4, 4, 4}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Schedule([]int{5}, []int{5}); err != nil {
		t.Fatal(err)
	}
	checkBlocks(t, c)
	for i, tc := range []struct {
		prompt []int32
		want   int
	}{{a, 2}, {b, 0}, {d, 0}} {
		got, _ := c.AddPrompt(10+i, tc.prompt)
		if got != tc.want {
			t.Errorf("prompt %v after the eviction: %d tokens reused, want %d", tc.prompt, got, tc.want)
		}
	}
	// Out of blocks counts the cached ones as available, and no more.
	if _, err := c.Schedule([]int{10}, []int{3}); err == nil || !strings.Contains(err.Error(), "out of blocks") {
		t.Errorf("scheduling past the cache: %v, want out of blocks", err)
	}
}

// TestPrefixCacheRandom runs random prompts sharing prefixes through
// random steps and frees, checking the accounting after each change, and
// that each reused block holds the tokens of the prompt that reuses it.
func TestPrefixCacheRandom(t *testing.T) {
	const bs = 3
	c := newTestCache(t, 24, bs)
	rng := rand.New(rand.NewPCG(5, 6))
	base := make([]int32, 40)
	for i := range base {
		base[i] = rng.Int32N(4)
	}
	// tokenAt[b][i] is the token whose K/V block b's slot i holds.
	tokenAt := map[int32][]int32{}
	type live struct {
		id     int
		prompt []int32
		fed    int
	}
	var seqs []*live
	reused := 0
	for id := range 400 {
		if len(seqs) > 0 && (rng.IntN(3) == 0 || len(seqs) > 5) {
			k := rng.IntN(len(seqs))
			if err := c.Free(seqs[k].id); err != nil {
				t.Fatal(err)
			}
			seqs = slices.Delete(seqs, k, k+1)
			checkBlocks(t, c)
			continue
		}
		// A prefix of base, then a few random tokens.
		p := slices.Clone(base[:rng.IntN(20)])
		for range 1 + rng.IntN(6) {
			p = append(p, rng.Int32N(4))
		}
		cached, err := c.AddPrompt(id, p)
		if err != nil {
			t.Fatal(err)
		}
		for i, b := range c.BlockTable(id) {
			if got := tokenAt[b]; !slices.Equal(got, p[i*bs:(i+1)*bs]) {
				t.Fatalf("sequence %d reuses block %d holding %v for tokens %v", id, b, got, p[i*bs:(i+1)*bs])
			}
		}
		reused += cached
		s := &live{id, p, cached}
		seqs = append(seqs, s)
		for s.fed < len(p) {
			n := min(1+rng.IntN(4), len(p)-s.fed)
			st, err := c.Schedule([]int{id}, []int{n})
			if err != nil {
				if !strings.Contains(err.Error(), "out of blocks") {
					t.Fatal(err)
				}
				break
			}
			for i, slot := range st.SlotMapping {
				b := slot / bs
				if slot%bs == 0 {
					tokenAt[b] = nil
				}
				tokenAt[b] = append(tokenAt[b], p[s.fed+i])
			}
			s.fed += n
		}
		checkBlocks(t, c)
	}
	for _, s := range seqs {
		if err := c.Free(s.id); err != nil {
			t.Fatal(err)
		}
	}
	checkBlocks(t, c)
	if c.UsedBlocks() != 0 || c.FreeBlocks()+c.CachedBlocks() != 24 || c.CachedBlocks() == 0 || reused == 0 {
		t.Fatalf("idle: %d used, %d free, %d cached; %d tokens reused", c.UsedBlocks(), c.FreeBlocks(), c.CachedBlocks(), reused)
	}
}

package model

import (
	"container/list"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/runtime"
)

// CacheConfig sizes a paged KV cache.
type CacheConfig struct {
	NumBlocks int // physical blocks shared by all sequences
	BlockSize int // tokens per block
	Layers    int
	KVHeads   int
	HeadDim   int
	DType     graph.DType // the model's activation dtype
}

// Bytes is the memory the K and V arrays of all layers take.
func (c CacheConfig) Bytes() int64 {
	return 2 * int64(c.Layers) * int64(c.NumBlocks) * int64(c.BlockSize) * int64(c.KVHeads) * int64(c.HeadDim) * int64(c.DType.Size())
}

// KVCache is a paged KV cache: per layer, K and V arrays of shape
// [num_blocks, block_size, kv_heads, head_dim] (token-major, "NHD"), and the
// bookkeeping that maps each sequence's token positions to slots of them.
//
// Blocks come from one pool. A sequence holds the blocks its tokens need,
// in order (its block table); a token at position pos lives in slot
// table[pos/bs]·bs + pos%bs. Finishing a sequence returns its blocks.
// Running out of blocks is an error that leaves the cache unchanged; the
// caller decides whom to finish (this manager never preempts a sequence).
//
// Prefix caching: a sequence started with AddPrompt registers each full
// block of its prompt under a content hash (BlockHash of the parent block's
// hash and the block's tokens) when a step schedules it. A later AddPrompt
// whose prompt starts with registered blocks takes them instead of
// computing them again. Blocks are reference-counted and shared read-only:
// only full blocks are shared, so a sequence's next token always goes into
// a block of its own. A registered block that no sequence holds stays
// cached, and is evicted (least recently released first) only when the
// pool of free blocks is empty. Generated tokens are not registered.
//
// The K and V arrays are replaced every step: ops.KVWrite consumes them by
// donation and returns the arrays that the step's attention reads, which
// SetLayer stores for the next step.
type KVCache struct {
	cfg  CacheConfig
	K, V []*graph.Array
	free []int32 // free blocks, used as a stack
	seqs map[int]*sequence

	ref    []int32          // per block: the sequences holding it
	meta   []*blockMeta     // per block: its registration, or nil
	hashes map[uint64]int32 // registered blocks by hash
	lru    *list.List       // registered blocks no sequence holds, least recently released first

	// The sequences of the step being scheduled, in batch order, and its
	// number: a sequence stamped with it is in the step already.
	batch []*sequence
	steps uint64
}

// blockMeta is a registered block's content, checked on lookup so that a
// hash collision is a miss, never a wrong block.
type blockMeta struct {
	hash, parent uint64
	tokens       []int32
	elem         *list.Element // in lru while no sequence holds the block
}

type sequence struct {
	blocks []int32
	length int     // tokens whose K/V are (or are being) written
	prompt []int32 // the known tokens whose full blocks are registered as scheduled
	chain  int     // leading blocks whose hash is known (registered here or reused)
	hash   uint64  // the hash of block chain−1 (0 before the first)
	step   uint64  // the latest step scheduled with it (KVCache.steps)
}

// BlockHash is the prefix-cache hash of a full block of tokens whose
// preceding block has hash parent (0 for the first block): the same tokens
// after a different prefix hash differently.
func BlockHash(parent uint64, tokens []int32) uint64 {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], parent)
	h.Write(b[:])
	for _, t := range tokens {
		binary.LittleEndian.PutUint32(b[:4], uint32(t))
		h.Write(b[:4])
	}
	return h.Sum64()
}

// NewKVCache allocates the cache's arrays on rt. fill, if not nil, sets the
// host bytes of each layer's K and V array before upload (benchmarks fill
// them with random values); otherwise they are zero.
func NewKVCache(rt *runtime.Runtime, cfg CacheConfig, fill func(layer int, b []byte)) (*KVCache, error) {
	for _, f := range []struct {
		name string
		v    int
	}{{"block size", cfg.BlockSize}, {"blocks", cfg.NumBlocks}, {"layers", cfg.Layers}, {"KV heads", cfg.KVHeads}, {"head dim", cfg.HeadDim}} {
		if f.v <= 0 {
			return nil, fmt.Errorf("kv cache: %s = %d must be positive", f.name, f.v)
		}
	}
	if cfg.NumBlocks > 1<<30 || int64(cfg.NumBlocks)*int64(cfg.BlockSize) > 1<<31-1 {
		return nil, fmt.Errorf("kv cache: %d blocks of %d tokens exceed the int32 slot range", cfg.NumBlocks, cfg.BlockSize)
	}
	if !cfg.DType.IsFloat() {
		return nil, fmt.Errorf("kv cache: dtype %s is not a float dtype", cfg.DType)
	}
	c := &KVCache{cfg: cfg, K: make([]*graph.Array, cfg.Layers), V: make([]*graph.Array, cfg.Layers), seqs: map[int]*sequence{},
		ref: make([]int32, cfg.NumBlocks), meta: make([]*blockMeta, cfg.NumBlocks), hashes: map[uint64]int32{}, lru: list.New()}
	shape := []int{cfg.NumBlocks, cfg.BlockSize, cfg.KVHeads, cfg.HeadDim}
	nbytes := graph.Spec{DType: cfg.DType, Shape: shape}.Bytes()
	for l := range cfg.Layers {
		for _, dst := range []*[]*graph.Array{&c.K, &c.V} {
			b := make([]byte, nbytes)
			if fill != nil {
				fill(l, b)
			}
			a := graph.FromBytes(cfg.DType, b, shape...)
			// Upload one array at a time, so the host copy is garbage before
			// the next is made.
			if err := rt.Eval(a); err != nil {
				return nil, fmt.Errorf("kv cache: %w", err)
			}
			(*dst)[l] = a
		}
	}
	c.free = make([]int32, cfg.NumBlocks)
	for i := range c.free {
		c.free[i] = int32(cfg.NumBlocks - 1 - i) // block 0 is handed out first
	}
	return c, nil
}

// Config is the cache's configuration.
func (c *KVCache) Config() CacheConfig { return c.cfg }

// SetLayer stores the arrays that replace layer l's K and V after a step.
func (c *KVCache) SetLayer(l int, k, v *graph.Array) { c.K[l], c.V[l] = k, v }

// Add starts an empty sequence.
func (c *KVCache) Add(id int) error {
	if _, ok := c.seqs[id]; ok {
		return fmt.Errorf("kv cache: sequence %d already exists", id)
	}
	c.seqs[id] = &sequence{}
	return nil
}

// AddPrompt starts a sequence whose first tokens will be prompt, and takes
// the registered blocks its prompt starts with. It returns how many tokens
// they hold (a multiple of the block size): the sequence starts at that
// length, and the caller feeds the prompt from there. The last prompt
// token is never taken from the cache, so the step that feeds it has its
// logits.
func (c *KVCache) AddPrompt(id int, prompt []int32) (cached int, err error) {
	if err := c.Add(id); err != nil {
		return 0, err
	}
	s := c.seqs[id]
	s.prompt = slices.Clone(prompt)
	bs := c.cfg.BlockSize
	for b := 0; (b+1)*bs < len(prompt); b++ {
		toks := prompt[b*bs : (b+1)*bs]
		h := BlockHash(s.hash, toks)
		blk, ok := c.hashes[h]
		if !ok || c.meta[blk].parent != s.hash || !slices.Equal(c.meta[blk].tokens, toks) {
			break
		}
		if m := c.meta[blk]; m.elem != nil {
			c.lru.Remove(m.elem)
			m.elem = nil
		}
		c.ref[blk]++
		s.blocks = append(s.blocks, blk)
		s.chain, s.hash, s.length = b+1, h, (b+1)*bs
	}
	return s.length, nil
}

// release drops one reference to block b: a block no sequence holds goes
// to the LRU list if it is registered, else to the free pool.
func (c *KVCache) release(b int32) {
	if c.ref[b]--; c.ref[b] > 0 {
		return
	}
	if m := c.meta[b]; m != nil {
		m.elem = c.lru.PushBack(b)
		return
	}
	c.free = append(c.free, b)
}

// unregister forgets block b's registration (b is in no LRU list).
func (c *KVCache) unregister(b int32) {
	if m := c.meta[b]; m != nil {
		delete(c.hashes, m.hash)
		c.meta[b] = nil
	}
}

// take hands out a block: a free one, else the least recently released
// registered one, which is forgotten.
func (c *KVCache) take() int32 {
	if n := len(c.free); n > 0 {
		b := c.free[n-1]
		c.free = c.free[:n-1]
		c.ref[b] = 1
		return b
	}
	b := c.lru.Remove(c.lru.Front()).(int32)
	c.meta[b].elem = nil
	c.unregister(b)
	c.ref[b] = 1
	return b
}

// ClearPrefixCache forgets every registered block, so that none is reused:
// after a step failed, what it was to write into them is unknown. Blocks
// no sequence holds go back to the free pool.
func (c *KVCache) ClearPrefixCache() {
	for c.lru.Len() > 0 {
		b := c.lru.Remove(c.lru.Front()).(int32)
		c.meta[b] = nil
		c.free = append(c.free, b)
	}
	for _, b := range c.hashes {
		c.meta[b] = nil
	}
	clear(c.hashes)
	for _, s := range c.seqs {
		s.prompt, s.chain = nil, 0
	}
}

// Free finishes a sequence and releases its blocks.
func (c *KVCache) Free(id int) error {
	s, ok := c.seqs[id]
	if !ok {
		return fmt.Errorf("kv cache: no sequence %d", id)
	}
	for i := len(s.blocks) - 1; i >= 0; i-- {
		c.release(s.blocks[i])
	}
	delete(c.seqs, id)
	return nil
}

// Truncate keeps the first n tokens of sequence id and releases the blocks
// past them. What later steps write to the freed slots is ordered after
// the writes already made there by the runtime. Keeping part of a block
// that other sequences share is unsupported (the next token would be
// written into it); part of a registered block of its own is forgotten.
func (c *KVCache) Truncate(id, n int) error {
	s, ok := c.seqs[id]
	if !ok {
		return fmt.Errorf("kv cache: no sequence %d", id)
	}
	if n < 0 || n > s.length {
		return fmt.Errorf("kv cache: sequence %d holds %d tokens, cannot keep %d", id, s.length, n)
	}
	bs := c.cfg.BlockSize
	keep := (n + bs - 1) / bs
	if n%bs != 0 {
		if b := s.blocks[keep-1]; c.ref[b] > 1 {
			return fmt.Errorf("kv cache: sequence %d: keeping %d tokens, part of block %d that %d sequences share, is unsupported", id, n, b, c.ref[b])
		}
	}
	for i := len(s.blocks) - 1; i >= keep; i-- {
		c.release(s.blocks[i])
	}
	if n%bs != 0 {
		c.unregister(s.blocks[keep-1])
	}
	s.blocks, s.length = s.blocks[:keep], n
	s.chain = min(s.chain, n/bs)
	s.prompt = s.prompt[:min(len(s.prompt), n)]
	if s.chain > 0 {
		s.hash = c.blockHashAt(s, s.chain-1)
	} else {
		s.hash = 0
	}
	return nil
}

// blockHashAt recomputes the hash of sequence s's block b from its prompt.
func (c *KVCache) blockHashAt(s *sequence, b int) uint64 {
	bs, h := c.cfg.BlockSize, uint64(0)
	for i := 0; i <= b; i++ {
		h = BlockHash(h, s.prompt[i*bs:(i+1)*bs])
	}
	return h
}

// Len is the number of tokens of sequence id in the cache.
func (c *KVCache) Len(id int) int {
	if s, ok := c.seqs[id]; ok {
		return s.length
	}
	return 0
}

// Sequences lists the live sequences, sorted.
func (c *KVCache) Sequences() []int { return slices.Sorted(maps.Keys(c.seqs)) }

// FreeBlocks is the number of blocks in the free pool.
func (c *KVCache) FreeBlocks() int { return len(c.free) }

// CachedBlocks is the number of registered blocks that no sequence holds:
// kept for reuse, and handed out when the free pool is empty.
func (c *KVCache) CachedBlocks() int { return c.lru.Len() }

// UsedBlocks is the number of blocks held by sequences (a shared block
// counts once).
func (c *KVCache) UsedBlocks() int { return c.cfg.NumBlocks - len(c.free) - c.lru.Len() }

// BlockTable returns a copy of sequence id's blocks.
func (c *KVCache) BlockTable(id int) []int32 {
	if s, ok := c.seqs[id]; ok {
		return slices.Clone(s.blocks)
	}
	return nil
}

// Step is the metadata of one step's tokens: sequence i contributes tokens
// CuSeqlensQ[i] to CuSeqlensQ[i+1] (positions SeqLens[i]−q_len … SeqLens[i]−1).
type Step struct {
	Seqs        []int   // sequence ids, in batch order
	Positions   []int32 // [T] token positions
	SlotMapping []int32 // [T] cache slot of each token
	BlockTables []int32 // [len(Seqs), MaxBlocks], right-padded with block 0
	MaxBlocks   int
	SeqLens     []int32 // [len(Seqs)] context length including this step
	CuSeqlensQ  []int32 // [len(Seqs)+1] prefix sums of tokens per sequence
	MaxSeqLen   int     // the longest SeqLens entry
	LastTokens  []int32 // [len(Seqs)] index of each sequence's last token
}

// stepMemory is a step and the allocation its int32 slices share, which a
// later step may take over once nothing reads the first.
type stepMemory struct {
	st   Step
	meta []int32
}

// Tokens is the number of tokens in the step.
func (s *Step) Tokens() int { return len(s.Positions) }

// Schedule appends newTokens[i] tokens to sequence seqs[i], taking blocks
// from the pool as needed, and returns the step's metadata. If the pool
// has too few blocks the cache is left unchanged and the error says how
// many were needed.
func (c *KVCache) Schedule(seqs []int, newTokens []int) (*Step, error) {
	return c.schedule(nil, seqs, newTokens, 0, 0)
}

// schedule is Schedule, and with padBlocks > 0 Pad(st, padBlocks) without
// a second allocation of the tables. With into, the step is made in that
// memory (a step's that nothing reads any more) where it fits. With
// positions > 0, a sequence that would hold more tokens than that is an
// error (the model's max_position_embeddings), checked with the rest so
// that a decode step looks each sequence up once.
func (c *KVCache) schedule(into *stepMemory, seqs []int, newTokens []int, padBlocks, positions int) (*Step, error) {
	if len(seqs) != len(newTokens) {
		return nil, fmt.Errorf("kv cache: %d sequences but %d token counts", len(seqs), len(newTokens))
	}
	if len(seqs) == 0 {
		return nil, fmt.Errorf("kv cache: empty step")
	}
	bs := c.cfg.BlockSize
	need, width := 0, 0
	c.steps++
	c.batch = c.batch[:0]
	for i, id := range seqs {
		s, ok := c.seqs[id]
		switch {
		case !ok:
			return nil, fmt.Errorf("kv cache: no sequence %d", id)
		case s.step == c.steps:
			return nil, fmt.Errorf("kv cache: sequence %d appears twice in one step", id)
		case newTokens[i] <= 0:
			return nil, fmt.Errorf("kv cache: sequence %d: %d new tokens, want at least 1", id, newTokens[i])
		case positions > 0 && s.length+newTokens[i] > positions:
			return nil, fmt.Errorf("kv cache: sequence %d would reach %d tokens, beyond max_position_embeddings %d", id, s.length+newTokens[i], positions)
		case s.length+newTokens[i] > bs*c.cfg.NumBlocks:
			return nil, fmt.Errorf("kv cache: sequence %d would hold %d tokens, more than the whole cache (%d)", id, s.length+newTokens[i], bs*c.cfg.NumBlocks)
		}
		s.step = c.steps
		c.batch = append(c.batch, s)
		blocks := (s.length + newTokens[i] + bs - 1) / bs
		need += blocks - len(s.blocks)
		width = max(width, blocks, len(s.blocks))
	}
	if padBlocks > 0 {
		width = c.padWidth(width, padBlocks)
	}
	if need > len(c.free)+c.lru.Len() {
		return nil, fmt.Errorf("kv cache: out of blocks: the step needs %d more, %d of %d are free and %d cached", need, len(c.free), c.cfg.NumBlocks, c.lru.Len())
	}
	// One allocation for the per-token and per-sequence metadata and the
	// tables: a decode loop schedules every step.
	T, S := 0, len(seqs)
	for _, n := range newTokens {
		T += n
	}
	n := 2*T + 3*S + 1 + S*width
	if into == nil {
		into = new(stepMemory)
	}
	if cap(into.meta) >= n {
		into.meta = into.meta[:n]
		clear(into.meta)
	} else {
		into.meta = make([]int32, n)
	}
	st, meta := &into.st, into.meta
	*st = Step{Seqs: append(st.Seqs[:0], seqs...), Positions: meta[:0:T], SlotMapping: meta[T : T : 2*T],
		SeqLens: meta[2*T : 2*T : 2*T+S], LastTokens: meta[2*T+S : 2*T+S : 2*T+2*S], CuSeqlensQ: meta[2*T+2*S : 2*T+2*S+1],
		BlockTables: meta[2*T+3*S+1:], MaxBlocks: width}
	for i, s := range c.batch {
		for total := s.length + newTokens[i]; len(s.blocks)*bs < total; {
			s.blocks = append(s.blocks, c.take())
		}
		for pos := s.length; pos < s.length+newTokens[i]; pos++ {
			st.Positions = append(st.Positions, int32(pos))
			st.SlotMapping = append(st.SlotMapping, s.blocks[pos/bs]*int32(bs)+int32(pos%bs))
		}
		s.length += newTokens[i]
		c.register(s)
		st.SeqLens = append(st.SeqLens, int32(s.length))
		st.CuSeqlensQ = append(st.CuSeqlensQ, int32(len(st.Positions)))
		st.LastTokens = append(st.LastTokens, int32(len(st.Positions)-1))
		st.MaxSeqLen = max(st.MaxSeqLen, s.length)
		copy(st.BlockTables[i*width:], s.blocks)
	}
	if padBlocks > 0 {
		st.MaxSeqLen = width * bs
	}
	return st, nil
}

// register registers the full prompt blocks of s that this step fills,
// in order. A block whose content is already registered (another sequence
// computed the same prefix at the same time) stays s's own, and the chain
// goes on with the registered hash.
func (c *KVCache) register(s *sequence) {
	bs := c.cfg.BlockSize
	for ; (s.chain+1)*bs <= min(s.length, len(s.prompt)); s.chain++ {
		toks := s.prompt[s.chain*bs : (s.chain+1)*bs]
		h := BlockHash(s.hash, toks)
		if _, ok := c.hashes[h]; !ok {
			b := s.blocks[s.chain]
			c.hashes[h] = b
			c.meta[b] = &blockMeta{hash: h, parent: s.hash, tokens: slices.Clone(toks)}
		}
		s.hash = h
	}
}

// Pad widens st's block tables to a multiple of blocks columns (right-padded
// with block 0, as Schedule pads shorter sequences) and sets MaxSeqLen to
// their capacity in tokens, which still bounds every sequence. A decode loop
// then builds the same graph structure for blocks·BlockSize tokens at a
// time instead of a new one every step (MaxSeqLen is a parameter of the
// attention primitive, the tables' width a shape), so the step replays.
// The kernels read no key past a sequence's length, so the padding changes
// no result.
func (c *KVCache) Pad(st *Step, blocks int) error {
	if blocks <= 0 {
		return fmt.Errorf("kv cache: pad to a multiple of %d blocks: want at least 1", blocks)
	}
	w := c.padWidth(st.MaxBlocks, blocks)
	if w != st.MaxBlocks {
		tables := make([]int32, len(st.Seqs)*w)
		for i := range st.Seqs {
			copy(tables[i*w:], st.BlockTables[i*st.MaxBlocks:(i+1)*st.MaxBlocks])
		}
		st.BlockTables, st.MaxBlocks = tables, w
	}
	st.MaxSeqLen = w * c.cfg.BlockSize
	return nil
}

// padWidth is the tables' width Pad makes of width: a multiple of blocks,
// but no wider than the cache's blocks (or width).
func (c *KVCache) padWidth(width, blocks int) int {
	return min((width+blocks-1)/blocks*blocks, max(c.cfg.NumBlocks, width))
}

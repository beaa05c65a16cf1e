package model

import (
	"fmt"
	"unsafe"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/runtime"
)

// Pad widens st's block tables to a multiple of blocks columns (right-padded
// with block 0, as Schedule pads shorter sequences) and sets MaxSeqLen to
// their capacity in tokens, which still bounds every sequence. A decode loop
// then builds the same graph structure for blocks·BlockSize tokens at a
// time instead of a new one every step (MaxSeqLen is a parameter of the
// attention primitive, the tables' width a shape), so the runtime's plan
// cache replays the step. The kernels read no key past a sequence's length,
// so the padding changes no result.
func (c *KVCache) Pad(st *Step, blocks int) error {
	if blocks <= 0 {
		return fmt.Errorf("kv cache: pad to a multiple of %d blocks: want at least 1", blocks)
	}
	w := (st.MaxBlocks + blocks - 1) / blocks * blocks
	w = min(w, max(c.cfg.NumBlocks, st.MaxBlocks))
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

// CompiledDecode is a decode step compiled once per structure (batch size
// and padded block-table width, see Pad) with runtime.Compiled: the first
// step of a structure builds the graph with Forward, later ones bind the
// step's token ids and metadata and replay without building it. The
// cache's K and V arrays are updated in place in the arrays that hold them.
type CompiledDecode struct {
	m      *Model
	cache  *KVCache
	step   *runtime.Compiled
	bucket int
}

// decodeKey identifies a decode step's structure: with padded tables,
// MaxSeqLen follows from the width.
type decodeKey struct{ seqs, maxBlocks int }

// CompileDecode returns a compiled decode step over cache whose block
// tables are padded to multiples of bucket blocks.
func (m *Model) CompileDecode(cache *KVCache, bucket int) (*CompiledDecode, error) {
	if bucket <= 0 {
		return nil, fmt.Errorf("compile decode: bucket %d: want at least 1 block", bucket)
	}
	return &CompiledDecode{m: m, cache: cache, step: m.rt.Compile(), bucket: bucket}, nil
}

// Step appends tokens[i] to sequence seqs[i], one token each, and returns
// the logits [len(seqs), vocab] of the step without waiting for them. Bad
// arguments leave the cache unchanged, as Engine.Step's do.
func (d *CompiledDecode) Step(seqs []int, tokens []int32) (*graph.Array, *runtime.Pending, error) {
	c := d.m.Config
	if len(seqs) != len(tokens) {
		return nil, nil, fmt.Errorf("decode step: %d sequences but %d tokens", len(seqs), len(tokens))
	}
	counts := make([]int, len(seqs))
	for i, id := range tokens {
		if id < 0 || int(id) >= c.VocabSize {
			return nil, nil, fmt.Errorf("decode step: token of sequence %d is %d, outside the vocabulary [0, %d)", seqs[i], id, c.VocabSize)
		}
		if n := d.cache.Len(seqs[i]) + 1; n > c.MaxPositionEmbeddings {
			return nil, nil, fmt.Errorf("decode step: sequence %d would reach %d tokens, beyond max_position_embeddings %d", seqs[i], n, c.MaxPositionEmbeddings)
		}
		counts[i] = 1
	}
	st, err := d.cache.Schedule(seqs, counts)
	if err != nil {
		return nil, nil, err
	}
	if err := d.cache.Pad(st, d.bucket); err != nil {
		return nil, nil, err
	}
	// The constants Forward creates, in its order.
	inputs := [][]byte{int32Bytes(tokens), int32Bytes(st.Positions), int32Bytes(st.SlotMapping),
		int32Bytes(st.BlockTables), int32Bytes(st.SeqLens), int32Bytes(st.CuSeqlensQ)}
	outs, p, err := d.step.Call(decodeKey{len(seqs), st.MaxBlocks}, func() []*graph.Array {
		return []*graph.Array{d.m.Forward(tokens, st, d.cache)}
	}, nil, inputs...)
	if err != nil {
		return nil, nil, fmt.Errorf("decode step: %w", err)
	}
	return outs[0], p, nil
}

// int32Bytes is v's bytes as graph.FromInt32s lays them out (little-endian,
// the byte order of every platform Loom builds for), without a copy.
func int32Bytes(v []int32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
}

package model

import "fmt"

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

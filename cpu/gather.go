package cpu

import (
	"fmt"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// rowGrain is the number of bytes per parallel chunk of row copies.
const rowGrain = 1 << 16

// gatherKernel copies table rows by their bytes, so it serves every dtype.
func gatherKernel(dt, idx graph.DType) Kernel {
	return func(c *Call) error {
		p := c.Params.(*primitives.RowsParams)
		table, ix, out := c.Args[0].Bytes, c.Args[1].Bytes, c.Args[2].Bytes
		n, rb := int(p.Rows), int(p.RowElems)*dt.Size()
		if err := checkRowIndices(idx, ix, n, int(p.TableRows), false); err != nil {
			return err
		}
		c.Parallel(n, max(1, rowGrain/max(rb, 1)), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				r := int(loadInt(idx, ix, i))
				copy(out[i*rb:(i+1)*rb], table[r*rb:(r+1)*rb])
			}
		})
		return nil
	}
}

// checkRowIndices returns an error naming the first of the n indices in ix
// that is not a row of a table of the given number of rows. With skip,
// negative indices are allowed: they mean no row.
func checkRowIndices(dt graph.DType, ix []byte, n, rows int, skip bool) error {
	for i := range n {
		if v := loadInt(dt, ix, i); v >= int64(rows) || v < 0 && !skip {
			return fmt.Errorf("indices[%d] = %d is out of range [0, %d)", i, v, rows)
		}
	}
	return nil
}

func init() {
	for _, dt := range graph.DTypes {
		for _, idx := range primitives.IndexDTypes {
			mustRegister(primitives.RowsKernel("gather_rows", dt, idx), gatherKernel(dt, idx))
		}
	}
}

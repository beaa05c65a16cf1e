package cpu

import (
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// scatterKernel writes rows into dst by their bytes, so it serves every
// dtype. It checks every index before writing anything. The workers split
// the bytes of a row, not the rows, and each goes through the rows in order:
// when indices repeat, the last row wins whatever the schedule.
func scatterKernel(dt, idx graph.DType) Kernel {
	return func(c *Call) error {
		p := c.Params.(*primitives.RowsParams)
		dst, ix, rows := c.Args[0].Bytes, c.Args[1].Bytes, c.Args[2].Bytes
		n, rb := int(p.Rows), int(p.RowElems)*dt.Size()
		if err := checkRowIndices(idx, ix, n, int(p.TableRows), true); err != nil {
			return err
		}
		c.Parallel(rb, max(64, rowGrain/max(n, 1)), func(lo, hi int) {
			for i := range n {
				if r := int(loadInt(idx, ix, i)); r >= 0 {
					copy(dst[r*rb+lo:r*rb+hi], rows[i*rb+lo:i*rb+hi])
				}
			}
		})
		return nil
	}
}

func init() {
	for _, dt := range graph.DTypes {
		for _, idx := range primitives.IndexDTypes {
			mustRegister(primitives.RowsKernel("scatter_rows", dt, idx), scatterKernel(dt, idx))
		}
	}
}

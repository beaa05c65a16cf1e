package cpu

import (
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// stridedCopyKernel moves elements by their bits, so one implementation per
// element size serves every dtype.
func stridedCopyKernel(dt graph.DType) Kernel {
	switch dt.Size() {
	case 1:
		return stridedCopy[uint8]
	case 2:
		return stridedCopy[uint16]
	case 4:
		return stridedCopy[uint32]
	}
	return stridedCopy[uint64]
}

// stridedCopy copies the index space of a primitives.StridedCopyParams row by
// row of its innermost axis.
func stridedCopy[T any](c *Call) error {
	p := c.Params.(*primitives.StridedCopyParams)
	src, dst := view[T](c.Args[0].Bytes), view[T](c.Args[1].Bytes)
	rank := int(p.Rank)
	row := int(p.Shape[rank-1])
	ss, ds := int(p.Src[rank-1]), int(p.Dst[rank-1])
	rows := int(p.N) / row
	c.Parallel(rows, max(1, elemGrain/row), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			si, di := int(p.SrcBase), int(p.DstBase)
			q := r
			for d := rank - 2; d >= 0; d-- {
				n := int(p.Shape[d])
				si += q % n * int(p.Src[d])
				di += q % n * int(p.Dst[d])
				q /= n
			}
			if ss == 1 && ds == 1 {
				copy(dst[di:di+row], src[si:si+row])
				continue
			}
			for k := range row {
				dst[di+k*ds] = src[si+k*ss]
			}
		}
	})
	return nil
}

func init() {
	for _, dt := range graph.DTypes {
		mustRegister(primitives.StridedCopyKernel(dt), stridedCopyKernel(dt))
	}
}

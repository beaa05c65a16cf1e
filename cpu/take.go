package cpu

import (
	"fmt"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// takeAlongAxisKernel picks elements by their bytes, so it serves every
// dtype. It checks every index before writing anything.
func takeAlongAxisKernel(dt, idx graph.DType) Kernel {
	return func(c *Call) error {
		p := c.Params.(*primitives.TakeParams)
		a, ix, out := c.Args[0].Bytes, c.Args[1].Bytes, c.Args[2].Bytes
		n, m, inner := int(p.N), int(p.M), int(p.Inner)
		total := int(p.Outer) * m * inner
		for e := range total {
			if v := loadInt(idx, ix, e); v < -int64(n) || v >= int64(n) {
				return fmt.Errorf("indices[%d] = %d is out of range [-%d, %d)", e, v, n, n)
			}
		}
		es := dt.Size()
		c.Parallel(total, elemGrain, func(lo, hi int) {
			for e := lo; e < hi; e++ {
				k := int(loadInt(idx, ix, e))
				if k < 0 {
					k += n
				}
				o, i := e/(m*inner), e%inner
				from := (o*n+k)*inner + i
				copy(out[e*es:(e+1)*es], a[from*es:(from+1)*es])
			}
		})
		return nil
	}
}

// scatterAddKernel adds rows into dst in index order. It checks every index
// before writing anything. The workers split the elements of a row, each
// going through the rows in order, so repeated indices sum in one order
// whatever the schedule; floats add in float32 and round to the dtype at
// every step, as the GPU kernels do.
func scatterAddKernel(dt, idx graph.DType) Kernel {
	return func(c *Call) error {
		p := c.Params.(*primitives.RowsParams)
		dst, ix, rows := c.Args[0].Bytes, c.Args[1].Bytes, c.Args[2].Bytes
		n, e := int(p.Rows), int(p.RowElems)
		if err := checkRowIndices(idx, ix, n, int(p.TableRows), true); err != nil {
			return err
		}
		c.Parallel(e, max(64, elemGrain/max(n, 1)), func(lo, hi int) {
			tmp := getFloats(3 * chunk)
			defer putFloats(tmp)
			for i := range n {
				r := int(loadInt(idx, ix, i))
				if r < 0 {
					continue
				}
				if !dt.IsFloat() {
					for k := lo; k < hi; k++ {
						storeInt(dt, dst, r*e+k, loadInt(dt, dst, r*e+k)+loadInt(dt, rows, i*e+k))
					}
					continue
				}
				for k0 := lo; k0 < hi; k0 += chunk {
					m := min(chunk, hi-k0)
					x := f32In(dt, dst, r*e+k0, 1, m, (*tmp)[:chunk])
					y := f32In(dt, rows, i*e+k0, 1, m, (*tmp)[chunk:2*chunk])
					z := f32Out(dt, dst, r*e+k0, 1, m, (*tmp)[2*chunk:])
					binaryF32(primitives.Add, z, x, y)
					f32Store(dt, dst, r*e+k0, 1, z)
				}
			}
		})
		return nil
	}
}

func init() {
	for _, idx := range primitives.IndexDTypes {
		for _, dt := range graph.DTypes {
			mustRegister(primitives.RowsKernel("take_along_axis", dt, idx), takeAlongAxisKernel(dt, idx))
		}
		for _, dt := range primitives.BinaryDTypes {
			mustRegister(primitives.RowsKernel("scatter_add_rows", dt, idx), scatterAddKernel(dt, idx))
		}
	}
}

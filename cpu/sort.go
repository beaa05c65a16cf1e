package cpu

import (
	"cmp"
	"slices"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// cumsumKernel sums each line along the axis of an input viewed as [outer,
// n, inner] in order: floats in float64, rounded once per element;
// integers wrapping around.
func cumsumKernel(dt graph.DType) Kernel {
	return func(c *Call) error {
		p := c.Params.(*primitives.AxisParams)
		outer, n, inner := int(p.Outer), int(p.N), int(p.Inner)
		a, out := c.Args[0].Bytes, c.Args[1].Bytes
		c.Parallel(outer*inner, max(1, elemGrain/max(n, 1)), func(lo, hi int) {
			tmp := getFloats(chunk)
			defer putFloats(tmp)
			for j := lo; j < hi; j++ {
				first := j/inner*n*inner + j%inner
				if !dt.IsFloat() {
					var sum int64
					for k := range n {
						sum += loadInt(dt, a, first+k*inner)
						storeInt(dt, out, first+k*inner, sum)
					}
					continue
				}
				sum := 0.0
				for k0 := 0; k0 < n; k0 += chunk {
					for k, v := range f32In(dt, a, first+k0*inner, inner, min(chunk, n-k0), *tmp) {
						sum += float64(v)
						storeF32(dt, out, first+(k0+k)*inner, float32(sum))
					}
				}
			}
		})
		return nil
	}
}

// sortKernel sorts each line along the axis stably with NaN as the largest
// value, writing the values by their bits and their int32 indices.
func sortKernel(dt graph.DType) Kernel {
	return func(c *Call) error {
		p := c.Params.(*primitives.SortParams)
		outer, n, inner := int(p.Outer), int(p.N), int(p.Inner)
		a, values, indices := c.Args[0].Bytes, c.Args[1].Bytes, c.I32(2)
		es := dt.Size()
		c.Parallel(outer*inner, max(1, elemGrain/max(n, 1)), func(lo, hi int) {
			order := make([]int32, n)
			floats := make([]float32, n)
			ints := make([]int64, n)
			for j := lo; j < hi; j++ {
				first := j/inner*n*inner + j%inner
				for k := range order {
					order[k] = int32(k)
				}
				if dt.IsFloat() {
					for k0 := 0; k0 < n; k0 += chunk {
						copy(floats[k0:], f32In(dt, a, first+k0*inner, inner, min(chunk, n-k0), floats[k0:]))
					}
					sortOrder(order, floats, p.Descending == 1)
				} else {
					for k := range ints {
						ints[k] = loadInt(dt, a, first+k*inner)
					}
					sortOrder(order, ints, p.Descending == 1)
				}
				for r, k := range order {
					at, from := first+r*inner, first+int(k)*inner
					copy(values[at*es:(at+1)*es], a[from*es:(from+1)*es])
					indices[at] = k
				}
			}
		})
		return nil
	}
}

// sortOrder sorts the indices order of v stably: ascending or descending,
// NaN the largest value.
func sortOrder[T float32 | int64](order []int32, v []T, descending bool) {
	slices.SortStableFunc(order, func(i, j int32) int {
		a, b := v[i], v[j]
		an, bn := a != a, b != b
		var c int
		switch {
		case an || bn:
			c = cmp.Compare(b2u(an), b2u(bn))
		default:
			c = cmp.Compare(a, b)
		}
		if descending {
			return -c
		}
		return c
	})
}

func init() {
	for _, dt := range primitives.BinaryDTypes {
		mustRegister(primitives.CumsumKernel(dt), cumsumKernel(dt))
		mustRegister(primitives.SortKernel(dt), sortKernel(dt))
	}
}

package cpu

import (
	"math"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// reduceKernel reduces an input viewed as [outer, n, inner] to [outer,
// inner]. Every output element is reduced by one piece of work in the order
// k = 0, 1, …, n−1; float sums accumulate in float64.
func reduceKernel(op primitives.ReduceOp, dt graph.DType) Kernel {
	return func(c *Call) error {
		p := c.Params.(*primitives.AxisParams)
		outer, n, inner := int(p.Outer), int(p.N), int(p.Inner)
		a, out := c.Args[0].Bytes, c.Args[1].Bytes
		switch {
		case !dt.IsFloat():
			grain := max(1, elemGrain/max(n, 1))
			c.Parallel(outer*inner, grain, func(lo, hi int) {
				for j := lo; j < hi; j++ {
					reduceInt(op, dt, a, out, j, (j/inner*n)*inner+j%inner, n, inner)
				}
			})
		case inner == 1:
			grain := max(1, elemGrain/max(n, 1))
			c.Parallel(outer, grain, func(lo, hi int) {
				tmp := getFloats(chunk)
				defer putFloats(tmp)
				for o := lo; o < hi; o++ {
					reduceRow(op, dt, a, out, o, n, *tmp)
				}
			})
		default:
			// Reduce chunk neighbouring columns together, reading rows of
			// them contiguously.
			blocks := (inner + chunk - 1) / chunk
			grain := max(1, elemGrain/max(n*chunk, 1))
			c.Parallel(outer*blocks, grain, func(lo, hi int) {
				tmp := getFloats(chunk)
				defer putFloats(tmp)
				for j := lo; j < hi; j++ {
					o, i := j/blocks, j%blocks*chunk
					reduceColumns(op, dt, a, out, o, i, min(chunk, inner-i), n, inner, *tmp)
				}
			})
		}
		return nil
	}
}

// reduceRow reduces row o of n contiguous float elements into out[o],
// using tmp (chunk float32s) for conversions.
func reduceRow(op primitives.ReduceOp, dt graph.DType, a, out []byte, o, n int, tmp []float32) {
	var sum float64
	var best float32
	arg := -1
	for k0 := 0; k0 < n; k0 += chunk {
		x := f32In(dt, a, o*n+k0, 1, min(chunk, n-k0), tmp)
		switch op {
		case primitives.Sum, primitives.Mean:
			for _, v := range x {
				sum += float64(v)
			}
		default:
			for k, v := range x {
				if arg < 0 || greater(v, best) {
					best, arg = v, k0+k
				}
			}
		}
	}
	switch op {
	case primitives.Sum:
		storeF32(dt, out, o, float32(sum))
	case primitives.Mean:
		storeF32(dt, out, o, float32(sum/float64(n)))
	case primitives.Max:
		storeF32(dt, out, o, best)
	default:
		view[int32](out)[o] = int32(arg)
	}
}

// reduceColumns reduces columns [i, i+m) of block o of a float array viewed
// as [outer, n, inner].
func reduceColumns(op primitives.ReduceOp, dt graph.DType, a, out []byte, o, i, m, n, inner int, tmp []float32) {
	var sum [chunk]float64
	var best [chunk]float32
	var arg [chunk]int32
	for k := range n {
		x := f32In(dt, a, (o*n+k)*inner+i, 1, m, tmp)
		switch op {
		case primitives.Sum, primitives.Mean:
			for l, v := range x {
				sum[l] += float64(v)
			}
		default:
			for l, v := range x {
				if k == 0 || greater(v, best[l]) {
					best[l], arg[l] = v, int32(k)
				}
			}
		}
	}
	at := o*inner + i
	for l := range m {
		switch op {
		case primitives.Sum:
			storeF32(dt, out, at+l, float32(sum[l]))
		case primitives.Mean:
			storeF32(dt, out, at+l, float32(sum[l]/float64(n)))
		case primitives.Max:
			storeF32(dt, out, at+l, best[l])
		default:
			view[int32](out)[at+l] = arg[l]
		}
	}
}

// greater reports whether v replaces best as the maximum: it is larger, or
// it is the first NaN (NaN counts as larger than any number).
func greater(v, best float32) bool { return v > best || v != v && best == best }

// storeF32 stores v as element i of float dtype dt.
func storeF32(dt graph.DType, b []byte, i int, v float32) {
	switch dt {
	case graph.Float32:
		view[float32](b)[i] = v
	case graph.Float16:
		view[uint16](b)[i] = graph.F32ToF16(v)
	default:
		view[uint16](b)[i] = graph.F32ToBF16(v)
	}
}

// reduceInt reduces the n integer elements at first, first+inner, … into
// out[j]. Sums wrap around like integer addition.
func reduceInt(op primitives.ReduceOp, dt graph.DType, a, out []byte, j, first, n, inner int) {
	var sum int64
	best, arg := int64(math.MinInt64), -1
	for k := range n {
		v := loadInt(dt, a, first+k*inner)
		sum += v
		if arg < 0 || v > best {
			best, arg = v, k
		}
	}
	switch op {
	case primitives.Sum:
		storeInt(dt, out, j, sum)
	case primitives.Max:
		storeInt(dt, out, j, best)
	default:
		view[int32](out)[j] = int32(arg)
	}
}

func init() {
	for _, op := range primitives.ReduceOps {
		for _, dt := range op.DTypes() {
			mustRegister(primitives.ReduceKernel(op, dt), reduceKernel(op, dt))
		}
	}
}

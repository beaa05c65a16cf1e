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
	sum, prod := 0.0, 1.0
	var best float32
	arg := -1
	for k0 := 0; k0 < n; k0 += chunk {
		x := f32In(dt, a, o*n+k0, 1, min(chunk, n-k0), tmp)
		switch op {
		case primitives.Sum, primitives.Mean:
			for _, v := range x {
				sum += float64(v)
			}
		case primitives.Prod:
			for _, v := range x {
				prod *= float64(v)
			}
		default:
			for k, v := range x {
				if arg < 0 || better(op, v, best) {
					best, arg = v, k0+k
				}
			}
		}
	}
	storeReduced(op, dt, out, o, sum, prod, best, arg, n)
}

// reduceColumns reduces columns [i, i+m) of block o of a float array viewed
// as [outer, n, inner].
func reduceColumns(op primitives.ReduceOp, dt graph.DType, a, out []byte, o, i, m, n, inner int, tmp []float32) {
	var sum, prod [chunk]float64
	var best [chunk]float32
	var arg [chunk]int
	for l := range prod {
		prod[l] = 1
	}
	for k := range n {
		x := f32In(dt, a, (o*n+k)*inner+i, 1, m, tmp)
		switch op {
		case primitives.Sum, primitives.Mean:
			for l, v := range x {
				sum[l] += float64(v)
			}
		case primitives.Prod:
			for l, v := range x {
				prod[l] *= float64(v)
			}
		default:
			for l, v := range x {
				if k == 0 || better(op, v, best[l]) {
					best[l], arg[l] = v, k
				}
			}
		}
	}
	at := o*inner + i
	for l := range m {
		storeReduced(op, dt, out, at+l, sum[l], prod[l], best[l], arg[l], n)
	}
}

// storeReduced stores the result of op as element j of out: from the sum,
// the product or the best element and its index along the axis of n.
func storeReduced(op primitives.ReduceOp, dt graph.DType, out []byte, j int, sum, prod float64, best float32, arg, n int) {
	switch op {
	case primitives.Sum:
		storeF32(dt, out, j, float32(sum))
	case primitives.Mean:
		storeF32(dt, out, j, float32(sum/float64(n)))
	case primitives.Prod:
		storeF32(dt, out, j, float32(prod))
	case primitives.Max, primitives.Min:
		storeF32(dt, out, j, best)
	default:
		view[int32](out)[j] = int32(arg)
	}
}

// better reports whether v replaces best as the result of op, a Max or Min
// (or their Arg forms).
func better(op primitives.ReduceOp, v, best float32) bool {
	if op == primitives.Min || op == primitives.Argmin {
		return less(v, best)
	}
	return greater(v, best)
}

// greater reports whether v replaces best as the maximum: it is larger, or
// it is the first NaN (NaN counts as larger than any number).
func greater(v, best float32) bool { return v > best || v != v && best == best }

// less reports whether v replaces best as the minimum: it is smaller, or it
// is the first NaN (NaN counts as smaller than any number).
func less(v, best float32) bool { return v < best || v != v && best == best }

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
// out[j]. Sums and products wrap around like integer arithmetic.
func reduceInt(op primitives.ReduceOp, dt graph.DType, a, out []byte, j, first, n, inner int) {
	sum, prod := int64(0), int64(1)
	var best int64
	arg := -1
	for k := range n {
		v := loadInt(dt, a, first+k*inner)
		sum += v
		prod *= v
		if arg < 0 || (op == primitives.Min || op == primitives.Argmin) && v < best || (op == primitives.Max || op == primitives.Argmax) && v > best {
			best, arg = v, k
		}
	}
	switch op {
	case primitives.Sum:
		storeInt(dt, out, j, sum)
	case primitives.Prod:
		storeInt(dt, out, j, prod)
	case primitives.Max, primitives.Min:
		storeInt(dt, out, j, best)
	default:
		view[int32](out)[j] = int32(arg)
	}
}

// logSumExpKernel computes max + log(Σ exp(x − max)) over the axis of an
// input viewed as [outer, n, inner], in float64: a pass for the maximum, a
// pass for the sum. An infinite or NaN maximum is the result (−Inf over an
// empty axis).
func logSumExpKernel(dt graph.DType) Kernel {
	return func(c *Call) error {
		p := c.Params.(*primitives.AxisParams)
		outer, n, inner := int(p.Outer), int(p.N), int(p.Inner)
		a, out := c.Args[0].Bytes, c.Args[1].Bytes
		c.Parallel(outer*inner, max(1, elemGrain/max(2*n, 1)), func(lo, hi int) {
			tmp := getFloats(chunk)
			defer putFloats(tmp)
			for j := lo; j < hi; j++ {
				first := j/inner*n*inner + j%inner
				m := float32(math.Inf(-1))
				for k0 := 0; k0 < n; k0 += chunk {
					for _, v := range f32In(dt, a, first+k0*inner, inner, min(chunk, n-k0), *tmp) {
						if greater(v, m) {
							m = v
						}
					}
				}
				if math.IsInf(float64(m), 0) || m != m {
					storeF32(dt, out, j, m)
					continue
				}
				s := 0.0
				for k0 := 0; k0 < n; k0 += chunk {
					for _, v := range f32In(dt, a, first+k0*inner, inner, min(chunk, n-k0), *tmp) {
						s += math.Exp(float64(v) - float64(m))
					}
				}
				storeF32(dt, out, j, float32(float64(m)+math.Log(s)))
			}
		})
		return nil
	}
}

func init() {
	for _, op := range primitives.ReduceOps {
		for _, dt := range op.DTypes() {
			k := reduceKernel(op, dt)
			if op == primitives.LogSumExp {
				k = logSumExpKernel(dt)
			}
			mustRegister(primitives.ReduceKernel(op, dt), k)
		}
	}
}

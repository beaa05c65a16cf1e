package cpu

import (
	"math"

	"github.com/loomrt/loom/cpu/internal/vec"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// Elementwise kernels compute in float32 for float dtypes (float16 and
// bfloat16 are converted on load and rounded to nearest even on store), in
// int64 for int32 and int64, and in uint64 for uint32.
//
// Float kernels work on chunks of at most chunk elements: inputs are viewed
// in place when they are contiguous float32s and converted into scratch
// buffers otherwise, so a kernel has one float32 loop per operation and no
// per-element dtype switch.

// elemGrain is the number of elements per parallel chunk of elementwise work.
const elemGrain = 1 << 14

// chunk is the most elements a float kernel converts to float32 at a time.
// The buffers come from the pool of scratch slices (getFloats): runs hands
// them to its kernels through a function value, so arrays on the stack
// would escape to the heap, once per chunk.
const chunk = 256

// f32In returns the n elements of b (float dtype dt) that start at element i
// and lie stride elements apart, as float32s: a view of b when b holds
// float32s at stride 1, else tmp[:n] filled by conversion.
func f32In(dt graph.DType, b []byte, i, stride, n int, tmp []float32) []float32 {
	if dt == graph.Float32 && stride == 1 {
		return view[float32](b)[i : i+n]
	}
	tmp = tmp[:n]
	switch {
	case stride == 1 && dt == graph.Float16:
		vec.F16ToF32(tmp, view[uint16](b)[i:i+n])
	case stride == 1:
		vec.BF16ToF32(tmp, view[uint16](b)[i:i+n])
	case dt == graph.Float32:
		src := view[float32](b)
		for k := range tmp {
			tmp[k] = src[i+k*stride]
		}
	case dt == graph.Float16:
		src := view[uint16](b)
		for k := range tmp {
			tmp[k] = graph.F16ToF32(src[i+k*stride])
		}
	default:
		src := view[uint16](b)
		for k := range tmp {
			tmp[k] = graph.BF16ToF32(src[i+k*stride])
		}
	}
	return tmp
}

// f32Out returns where to compute the n float32 results that f32Store will
// put at element i of b, stride apart: b itself when it holds float32s at
// stride 1, else tmp[:n].
func f32Out(dt graph.DType, b []byte, i, stride, n int, tmp []float32) []float32 {
	if dt == graph.Float32 && stride == 1 {
		return view[float32](b)[i : i+n]
	}
	return tmp[:n]
}

// f32Store stores v, computed in f32Out's slice, at element i of b, stride
// apart, rounding to dtype dt.
func f32Store(dt graph.DType, b []byte, i, stride int, v []float32) {
	switch {
	case dt == graph.Float32 && stride == 1: // computed in place
	case stride == 1 && dt == graph.Float16:
		vec.F32ToF16(view[uint16](b)[i:i+len(v)], v)
	case stride == 1:
		vec.F32ToBF16(view[uint16](b)[i:i+len(v)], v)
	case dt == graph.Float32:
		dst := view[float32](b)
		for k, x := range v {
			dst[i+k*stride] = x
		}
	case dt == graph.Float16:
		dst := view[uint16](b)
		for k, x := range v {
			dst[i+k*stride] = graph.F32ToF16(x)
		}
	default:
		dst := view[uint16](b)
		for k, x := range v {
			dst[i+k*stride] = graph.F32ToBF16(x)
		}
	}
}

// runs calls fn for consecutive pieces of the output of an elementwise
// dispatch, each at most chunk elements inside one innermost row: output
// elements [o, o+n), whose input k elements start at at[k] and advance by
// step[k] (1, or 0 where input k is broadcast along the row). The pieces are
// spread over the workers; fn also gets its worker's 3·chunk float32s of
// scratch. grain is the fewest elements worth a worker of their own.
func runs(c *Call, p *primitives.ElementwiseParams, grain int, fn func(o, n int, at, step [3]int, tmp []float32)) {
	rank := int(p.Rank)
	if p.Contiguous == 1 || rank == 0 {
		c.Parallel(int(p.N), grain, func(lo, hi int) {
			tmp := getFloats(3 * chunk)
			defer putFloats(tmp)
			step := [3]int{1, 1, 1}
			for o := lo; o < hi; o += chunk {
				fn(o, min(chunk, hi-o), [3]int{o, o, o}, step, *tmp)
			}
		})
		return
	}
	row := int(p.Shape[rank-1])
	var step [3]int
	for k := range step {
		step[k] = int(p.Strides[k][rank-1])
	}
	c.Parallel(int(p.N), grain, func(lo, hi int) {
		tmp := getFloats(3 * chunk)
		defer putFloats(tmp)
		for o := lo; o < hi; {
			col := o % row
			var at [3]int
			r := o / row
			for d := rank - 2; d >= 0; d-- {
				n := int(p.Shape[d])
				for k := range at {
					at[k] += (r % n) * int(p.Strides[k][d])
				}
				r /= n
			}
			for k := range at {
				at[k] += col * step[k]
			}
			n := min(chunk, hi-o, row-col)
			fn(o, n, at, step, *tmp)
			o += n
		}
	})
}

// binaryF32 computes z = x op y for an arithmetic op.
func binaryF32(op primitives.BinaryOp, z, x, y []float32) {
	x, y = x[:len(z)], y[:len(z)]
	switch op {
	case primitives.Add:
		for i := range z {
			z[i] = x[i] + y[i]
		}
	case primitives.Sub:
		for i := range z {
			z[i] = x[i] - y[i]
		}
	case primitives.Mul:
		for i := range z {
			z[i] = x[i] * y[i]
		}
	case primitives.Div:
		for i := range z {
			z[i] = x[i] / y[i]
		}
	case primitives.Maximum: // NaN wins
		for i := range z {
			a, b := x[i], y[i]
			if a != a || a > b {
				z[i] = a
			} else {
				z[i] = b
			}
		}
	case primitives.Minimum:
		for i := range z {
			a, b := x[i], y[i]
			if a != a || a < b {
				z[i] = a
			} else {
				z[i] = b
			}
		}
	case primitives.Power: // in float64, rounded once
		for i := range z {
			z[i] = float32(math.Pow(float64(x[i]), float64(y[i])))
		}
	}
}

// compareF32 sets z[i] to 1 where x[i] op y[i] holds, else 0.
func compareF32(op primitives.BinaryOp, z []uint8, x, y []float32) {
	x, y = x[:len(z)], y[:len(z)]
	for i := range z {
		var v bool
		switch op {
		case primitives.Equal:
			v = x[i] == y[i]
		case primitives.NotEqual:
			v = x[i] != y[i]
		case primitives.Less:
			v = x[i] < y[i]
		case primitives.LessEqual:
			v = x[i] <= y[i]
		case primitives.Greater:
			v = x[i] > y[i]
		default:
			v = x[i] >= y[i]
		}
		z[i] = b2u(v)
	}
}

// loadInt loads integer element i of dtype dt as int64 (uint32 zero-extends).
func loadInt(dt graph.DType, b []byte, i int) int64 {
	switch dt {
	case graph.Int32:
		return int64(view[int32](b)[i])
	case graph.Int64:
		return view[int64](b)[i]
	default:
		return int64(view[uint32](b)[i])
	}
}

// storeInt stores v as element i of dtype dt, keeping its low bits (integer
// arithmetic wraps around).
func storeInt(dt graph.DType, b []byte, i int, v int64) {
	switch dt {
	case graph.Int32:
		view[int32](b)[i] = int32(v)
	case graph.Int64:
		view[int64](b)[i] = v
	default:
		view[uint32](b)[i] = uint32(v)
	}
}

// binaryInt computes op on integers of dtype dt. Division by zero gives 0.
func binaryInt(op primitives.BinaryOp, dt graph.DType, a, b int64) int64 {
	if dt == graph.Uint32 {
		x, y := uint64(a), uint64(b)
		switch op {
		case primitives.Sub:
			return int64(uint32(x - y))
		case primitives.Div:
			if y == 0 {
				return 0
			}
			return int64(x / y)
		case primitives.Power:
			return int64(uint32(powInt(x, y)))
		}
	}
	switch op {
	case primitives.Add:
		return a + b
	case primitives.Sub:
		return a - b
	case primitives.Mul:
		return a * b
	case primitives.Div:
		if b == 0 {
			return 0
		}
		return a / b // MinInt64 / -1 wraps around to MinInt64, as in Go
	case primitives.Maximum:
		return max(a, b)
	case primitives.Minimum:
		return min(a, b)
	case primitives.Power:
		switch {
		case b >= 0:
			return int64(powInt(uint64(a), uint64(b)))
		case a == 1, a == -1 && b%2 == 0:
			return 1
		case a == -1:
			return -1
		}
		return 0
	}
	panic("not arithmetic")
}

// powInt is x^n by repeated squaring, wrapping around modulo 2^64 (the low
// bits of a wrapped product are those of the product of the operands' low
// bits, so it serves every integer width).
func powInt(x, n uint64) uint64 {
	r := uint64(1)
	for ; n > 0; n >>= 1 {
		if n&1 == 1 {
			r *= x
		}
		x *= x
	}
	return r
}

func compareInt(op primitives.BinaryOp, a, b int64) bool {
	switch op {
	case primitives.Equal:
		return a == b
	case primitives.NotEqual:
		return a != b
	case primitives.Less:
		return a < b
	case primitives.LessEqual:
		return a <= b
	case primitives.Greater:
		return a > b
	}
	return a >= b
}

// binaryKernel applies op to two broadcast inputs.
func binaryKernel(op primitives.BinaryOp, dt graph.DType) Kernel {
	return func(c *Call) error {
		p := c.Params.(*primitives.ElementwiseParams)
		a, b, out := c.Args[0].Bytes, c.Args[1].Bytes, c.Args[2].Bytes
		if dt.IsFloat() {
			runs(c, p, elemGrain, func(o, n int, at, step [3]int, tmp []float32) {
				x := f32In(dt, a, at[0], step[0], n, tmp[:chunk])
				y := f32In(dt, b, at[1], step[1], n, tmp[chunk:2*chunk])
				if op.IsComparison() {
					compareF32(op, out[o:o+n], x, y)
					return
				}
				z := f32Out(dt, out, o, 1, n, tmp[2*chunk:])
				binaryF32(op, z, x, y)
				f32Store(dt, out, o, 1, z)
			})
			return nil
		}
		runs(c, p, elemGrain, func(o, n int, at, step [3]int, _ []float32) {
			for k := range n {
				x, y := loadInt(dt, a, at[0]+k*step[0]), loadInt(dt, b, at[1]+k*step[1])
				if op.IsComparison() {
					out[o+k] = b2u(compareInt(op, x, y))
				} else {
					storeInt(dt, out, o+k, binaryInt(op, dt, x, y))
				}
			}
		})
		return nil
	}
}

func b2u(v bool) uint8 {
	if v {
		return 1
	}
	return 0
}

// whereKernel selects elements of any dtype by moving their bits.
func whereKernel(dt graph.DType) Kernel {
	switch dt.Size() {
	case 1:
		return whereSized[uint8]
	case 2:
		return whereSized[uint16]
	case 4:
		return whereSized[uint32]
	}
	return whereSized[uint64]
}

func whereSized[T any](c *Call) error {
	p := c.Params.(*primitives.ElementwiseParams)
	cond := c.U8(0)
	a, b, out := view[T](c.Args[1].Bytes), view[T](c.Args[2].Bytes), view[T](c.Args[3].Bytes)
	runs(c, p, elemGrain, func(o, n int, at, step [3]int, _ []float32) {
		for k := range n {
			if cond[at[0]+k*step[0]] != 0 {
				out[o+k] = a[at[1]+k*step[1]]
			} else {
				out[o+k] = b[at[2]+k*step[2]]
			}
		}
	})
	return nil
}

func init() {
	for _, op := range primitives.BinaryOps {
		for _, dt := range primitives.BinaryDTypes {
			mustRegister(primitives.BinaryKernel(op, dt), binaryKernel(op, dt))
		}
	}
	for _, dt := range graph.DTypes {
		mustRegister(primitives.WhereKernel(dt), whereKernel(dt))
	}
}

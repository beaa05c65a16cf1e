package cpu

import (
	"math"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// Elementwise kernels compute in float32 for float dtypes (float16 and
// bfloat16 are converted on load and rounded to nearest even on store), in
// int64 for int32 and int64, and in uint64 for uint32.

// elemGrain is the number of elements per parallel chunk of elementwise work.
const elemGrain = 1 << 14

// indexer maps a linear output index to each input's element index.
type indexer struct {
	p *primitives.ElementwiseParams
}

// at returns input k's element index for output element i.
func (x indexer) at(k int, i int) int {
	p := x.p
	if p.Contiguous == 1 {
		return i
	}
	idx := 0
	for d := int(p.Rank) - 1; d >= 0; d-- {
		n := int(p.Shape[d])
		idx += (i % n) * int(p.Strides[k][d])
		i /= n
	}
	return idx
}

// floatIO loads and stores float elements of one dtype as float32.
type floatIO struct {
	dt graph.DType
}

func (f floatIO) load(b []byte, i int) float32 {
	switch f.dt {
	case graph.Float32:
		return view[float32](b)[i]
	case graph.Float16:
		return graph.F16ToF32(view[uint16](b)[i])
	default:
		return graph.BF16ToF32(view[uint16](b)[i])
	}
}

func (f floatIO) store(b []byte, i int, v float32) {
	switch f.dt {
	case graph.Float32:
		view[float32](b)[i] = v
	case graph.Float16:
		view[uint16](b)[i] = graph.F32ToF16(v)
	default:
		view[uint16](b)[i] = graph.F32ToBF16(v)
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

func binaryFloat(op primitives.BinaryOp, a, b float32) float32 {
	switch op {
	case primitives.Add:
		return a + b
	case primitives.Sub:
		return a - b
	case primitives.Mul:
		return a * b
	case primitives.Div:
		return a / b
	case primitives.Maximum:
		if a != a || a > b {
			return a
		}
		return b
	case primitives.Minimum:
		if a != a || a < b {
			return a
		}
		return b
	}
	panic("not arithmetic")
}

func compareFloat(op primitives.BinaryOp, a, b float32) bool {
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
		if b == 0 || (a == math.MinInt64 && b == -1) {
			return 0
		}
		return a / b
	case primitives.Maximum:
		return max(a, b)
	case primitives.Minimum:
		return min(a, b)
	}
	panic("not arithmetic")
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

func binaryKernel(op primitives.BinaryOp, dt graph.DType) Kernel {
	return func(c *Call) error {
		p := c.Params.(*primitives.ElementwiseParams)
		ix := indexer{p}
		a, b, out := c.Args[0].Bytes, c.Args[1].Bytes, c.Args[2].Bytes
		if dt == graph.Float32 && p.Contiguous == 1 && !op.IsComparison() {
			fa, fb, fo := view[float32](a), view[float32](b), view[float32](out)
			c.Parallel(int(p.N), elemGrain, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					fo[i] = binaryFloat(op, fa[i], fb[i])
				}
			})
			return nil
		}
		c.Parallel(int(p.N), elemGrain, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				ia, ib := ix.at(0, i), ix.at(1, i)
				switch {
				case dt.IsFloat():
					f := floatIO{dt}
					x, y := f.load(a, ia), f.load(b, ib)
					if op.IsComparison() {
						out[i] = b2u(compareFloat(op, x, y))
					} else {
						f.store(out, i, binaryFloat(op, x, y))
					}
				default:
					x, y := loadInt(dt, a, ia), loadInt(dt, b, ib)
					if op.IsComparison() {
						out[i] = b2u(compareInt(op, x, y))
					} else {
						storeInt(dt, out, i, binaryInt(op, dt, x, y))
					}
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

func init() {
	for _, op := range primitives.BinaryOps {
		for _, dt := range primitives.BinaryDTypes {
			mustRegister(op.String()+"_"+dt.Short(), binaryKernel(op, dt))
		}
	}
}

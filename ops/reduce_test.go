package ops_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
)

var reduceFns = map[primitives.ReduceOp]func(*graph.Array, int, bool) *graph.Array{
	primitives.Sum: ops.Sum, primitives.Max: ops.Max, primitives.Mean: ops.Mean, primitives.Argmax: ops.Argmax,
}

// reduceRef reduces x of shape over axis (already non-negative) with op,
// in float64. Max and Argmax treat NaN as larger than any number; Argmax
// gives the first index of the maximum.
func reduceRef(op primitives.ReduceOp, x []float64, shape []int, axis int) []float64 {
	outer, n, inner := graph.NumElements(shape[:axis]), shape[axis], graph.NumElements(shape[axis+1:])
	out := make([]float64, outer*inner)
	for o := range outer {
		for i := range inner {
			sum, best, arg := 0.0, 0.0, -1
			for k := range n {
				v := x[(o*n+k)*inner+i]
				sum += v
				if arg < 0 || v > best || math.IsNaN(v) && !math.IsNaN(best) {
					best, arg = v, k
				}
			}
			switch op {
			case primitives.Sum:
				out[o*inner+i] = sum
			case primitives.Mean:
				out[o*inner+i] = sum / float64(n)
			case primitives.Max:
				out[o*inner+i] = best
			default:
				out[o*inner+i] = float64(arg)
			}
		}
	}
	return out
}

func reducedShape(shape []int, axis int, keep bool) []int {
	var out []int
	for i, d := range shape {
		if i != axis {
			out = append(out, d)
		} else if keep {
			out = append(out, 1)
		}
	}
	if out == nil {
		out = []int{}
	}
	return out
}

func TestReduce(t *testing.T) {
	cases := []struct {
		shape []int
		axis  int
	}{
		{[]int{7}, 0}, {[]int{1}, -1}, {[]int{3, 5}, 0}, {[]int{3, 5}, -1},
		{[]int{2, 3, 300}, 0}, {[]int{2, 3, 300}, 1}, {[]int{2, 3, 300}, 2},
		{[]int{4, 0, 3}, 1}, {[]int{4, 0, 3}, 0},
		{[]int{3, 20001}, 1}, {[]int{20001, 3}, 0}, {[]int{600, 40}, 1},
	}
	for _, op := range primitives.ReduceOps {
		for _, dt := range op.DTypes() {
			for ci, c := range cases {
				for _, keep := range []bool{false, true} {
					axis := c.axis
					if axis < 0 {
						axis += len(c.shape)
					}
					if c.shape[axis] == 0 && (op == primitives.Max || op == primitives.Argmax) {
						continue // an error: TestReduceErrors
					}
					t.Run(fmt.Sprintf("%s/%s/%v/axis%d/keep=%v", op, dt, c.shape, c.axis, keep), func(t *testing.T) {
						n := graph.NumElements(c.shape)
						var want []float64
						var build func() *graph.Array
						if dt.IsFloat() {
							f, x := randFloats(uint64(ci), dt, n, -4, 4)
							if n > 40 { // a NaN, and ties of the maximum
								f[17], x[17] = float32(math.NaN()), math.NaN()
								f[n-2], x[n-2] = 100, 100
								f[n-1], x[n-1] = 100, 100
							}
							want = reduceRef(op, x, c.shape, axis)
							build = func() *graph.Array { return reduceFns[op](floats(dt, f, c.shape...), c.axis, keep) }
						} else {
							v := intInputs(uint64(ci), dt, n)
							for i := range v {
								v[i] = binaryIntRef(primitives.Add, dt, v[i], 0) // as dt holds it
							}
							if n > 40 { // ties of the maximum
								v[n-2], v[n-1] = v[1], v[1]
							}
							want = reduceIntRef(op, dt, v, c.shape, axis)
							build = func() *graph.Array { return reduceFns[op](intConst(dt, v, c.shape...), c.axis, keep) }
						}
						outDT := dt
						if op == primitives.Argmax {
							outDT = graph.Int32
						} else if dt.IsFloat() {
							want = inDType(dt, want)
						}
						spec, got := evalFloat64s(t, build)
						checkShape(t, spec, outDT, reducedShape(c.shape, axis, keep)...)
						atol, rtol := loomtest.Tolerance(dt)
						if outDT != dt || !dt.IsFloat() {
							atol, rtol = 0, 0
						}
						loomtest.Close(t, "result", got, want, atol, rtol)
					})
				}
			}
		}
	}
}

// reduceIntRef reduces integers of dtype dt over axis with int64
// arithmetic; sums wrap to dt's width.
func reduceIntRef(op primitives.ReduceOp, dt graph.DType, x []int64, shape []int, axis int) []float64 {
	outer, n, inner := graph.NumElements(shape[:axis]), shape[axis], graph.NumElements(shape[axis+1:])
	out := make([]float64, outer*inner)
	for o := range outer {
		for i := range inner {
			var sum, best int64
			arg := -1
			for k := range n {
				v := x[(o*n+k)*inner+i]
				sum += v
				if arg < 0 || v > best {
					best, arg = v, k
				}
			}
			switch op {
			case primitives.Sum:
				out[o*inner+i] = float64(binaryIntRef(primitives.Add, dt, sum, 0))
			case primitives.Max:
				out[o*inner+i] = float64(best)
			default:
				out[o*inner+i] = float64(arg)
			}
		}
	}
	return out
}

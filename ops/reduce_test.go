package ops_test

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
)

var reduceFns = map[primitives.ReduceOp]func(*graph.Array, int, bool) *graph.Array{
	primitives.Sum: ops.Sum, primitives.Max: ops.Max, primitives.Mean: ops.Mean, primitives.Argmax: ops.Argmax,
	primitives.Min: ops.Min, primitives.Prod: ops.Prod, primitives.Argmin: ops.Argmin, primitives.LogSumExp: ops.LogSumExp,
}

// reduceRef reduces x of shape over axis (already non-negative) with op,
// in float64. Max, Min and their Arg forms let NaN win and give the first
// index of the best value.
func reduceRef(op primitives.ReduceOp, x []float64, shape []int, axis int) []float64 {
	outer, n, inner := graph.NumElements(shape[:axis]), shape[axis], graph.NumElements(shape[axis+1:])
	out := make([]float64, outer*inner)
	for o := range outer {
		for i := range inner {
			sum, prod, hi, lo, arghi, arglo := 0.0, 1.0, 0.0, 0.0, -1, -1
			for k := range n {
				v := x[(o*n+k)*inner+i]
				sum += v
				prod *= v
				if arghi < 0 || v > hi || math.IsNaN(v) && !math.IsNaN(hi) {
					hi, arghi = v, k
				}
				if arglo < 0 || v < lo || math.IsNaN(v) && !math.IsNaN(lo) {
					lo, arglo = v, k
				}
			}
			var r float64
			switch op {
			case primitives.Sum:
				r = sum
			case primitives.Mean:
				r = sum / float64(n)
			case primitives.Prod:
				r = prod
			case primitives.Max:
				r = hi
			case primitives.Min:
				r = lo
			case primitives.Argmax:
				r = float64(arghi)
			case primitives.Argmin:
				r = float64(arglo)
			default: // LogSumExp
				r = math.Inf(-1)
				if n > 0 {
					r = hi
				}
				if n > 0 && !math.IsInf(hi, 0) && !math.IsNaN(hi) {
					s := 0.0
					for k := range n {
						s += math.Exp(x[(o*n+k)*inner+i] - hi)
					}
					r = hi + math.Log(s)
				}
			}
			out[o*inner+i] = r
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
					if c.shape[axis] == 0 && (op == primitives.Max || op == primitives.Argmax || op == primitives.Min || op == primitives.Argmin) {
						continue // an error: TestReduceErrors
					}
					t.Run(fmt.Sprintf("%s/%s/%v/axis%d/keep=%v", op, dt, c.shape, c.axis, keep), func(t *testing.T) {
						n := graph.NumElements(c.shape)
						var want []float64
						var build func() *graph.Array
						if dt.IsFloat() {
							f, x := randFloats(uint64(ci), dt, n, -4, 4)
							if n > 40 { // a NaN, and ties of the maximum and the minimum
								f[17], x[17] = float32(math.NaN()), math.NaN()
								f[n-2], x[n-2] = 100, 100
								f[n-1], x[n-1] = 100, 100
								f[n-4], x[n-4] = -100, -100
								f[n-3], x[n-3] = -100, -100
							}
							want = reduceRef(op, x, c.shape, axis)
							build = func() *graph.Array { return reduceFns[op](floats(dt, f, c.shape...), c.axis, keep) }
						} else {
							v := intInputs(uint64(ci), dt, n)
							for i := range v {
								v[i] = binaryIntRef(primitives.Add, dt, v[i], 0) // as dt holds it
							}
							if n > 40 { // ties of the maximum and the minimum
								v[n-2], v[n-1] = v[1], v[1]
								v[n-4], v[n-3] = v[0], v[0]
							}
							want = reduceIntRef(op, dt, v, c.shape, axis)
							build = func() *graph.Array { return reduceFns[op](intConst(dt, v, c.shape...), c.axis, keep) }
						}
						outDT := dt
						if op == primitives.Argmax || op == primitives.Argmin {
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
// arithmetic; sums and products wrap to dt's width.
func reduceIntRef(op primitives.ReduceOp, dt graph.DType, x []int64, shape []int, axis int) []float64 {
	outer, n, inner := graph.NumElements(shape[:axis]), shape[axis], graph.NumElements(shape[axis+1:])
	out := make([]float64, outer*inner)
	for o := range outer {
		for i := range inner {
			sum, prod := int64(0), int64(1)
			var hi, lo int64
			arghi, arglo := -1, -1
			for k := range n {
				v := x[(o*n+k)*inner+i]
				sum += v
				prod *= v
				if arghi < 0 || v > hi {
					hi, arghi = v, k
				}
				if arglo < 0 || v < lo {
					lo, arglo = v, k
				}
			}
			r := map[primitives.ReduceOp]float64{
				primitives.Sum: float64(binaryIntRef(primitives.Add, dt, sum, 0)), primitives.Prod: float64(binaryIntRef(primitives.Add, dt, prod, 0)),
				primitives.Max: float64(hi), primitives.Min: float64(lo), primitives.Argmax: float64(arghi), primitives.Argmin: float64(arglo),
			}
			out[o*inner+i] = r[op]
		}
	}
	return out
}

var reduceAxesFns = map[primitives.ReduceOp]func(*graph.Array, []int, bool) *graph.Array{
	primitives.Sum: ops.SumAxes, primitives.Mean: ops.MeanAxes, primitives.Max: ops.MaxAxes,
	primitives.Min: ops.MinAxes, primitives.Prod: ops.ProdAxes, primitives.LogSumExp: ops.LogSumExpAxes,
}

// TestReduceAxes reduces over several axes (adjacent or not, negative,
// none meaning all) against reduceRef applied to the values of each output
// element in row-major order.
func TestReduceAxes(t *testing.T) {
	cases := []struct {
		shape []int
		axes  []int
	}{
		{[]int{3, 4, 5}, []int{0, 2}}, {[]int{3, 4, 5}, []int{1, 2}}, {[]int{3, 4, 5}, []int{-1, 0}},
		{[]int{3, 4, 5}, nil}, {[]int{2, 3, 4, 5}, []int{0, 2, 3}}, {[]int{2, 3, 4, 5}, []int{1}},
		{[]int{7}, nil}, {[]int{}, nil}, {[]int{1, 1, 9}, []int{0, 1}}, {[]int{2, 0, 3}, []int{0, 1}},
	}
	for op, fn := range reduceAxesFns {
		for _, dt := range []graph.DType{graph.Float32, graph.BFloat16, graph.Int32} {
			if !slices.Contains(op.DTypes(), dt) {
				continue
			}
			for ci, c := range cases {
				for _, keep := range []bool{false, true} {
					n := graph.NumElements(c.shape)
					if n == 0 && (op == primitives.Max || op == primitives.Min) {
						continue
					}
					t.Run(fmt.Sprintf("%s/%s/%v/%v/keep=%v", op, dt, c.shape, c.axes, keep), func(t *testing.T) {
						var x []float64
						var in func() *graph.Array
						if dt.IsFloat() {
							f, r := randFloats(uint64(ci), dt, n, -2, 2)
							x, in = r, func() *graph.Array { return floats(dt, f, c.shape...) }
						} else {
							v := intInputs(uint64(ci), dt, n)
							for i := range v {
								if v[i] %= 50; v[i] == 0 {
									v[i] = 3 // products of nonzero values, wrapping
								}
								x = append(x, float64(v[i]))
							}
							in = func() *graph.Array { return intConst(dt, v, c.shape...) }
						}
						groups, outShape := reduceAxesGroups(x, c.shape, c.axes, keep)
						want := make([]float64, len(groups))
						for g, vals := range groups {
							if dt.IsFloat() {
								want[g] = reduceRef(op, vals, []int{len(vals)}, 0)[0]
								continue
							}
							iv := make([]int64, len(vals))
							for i, v := range vals {
								iv[i] = int64(v)
							}
							want[g] = reduceIntRef(op, dt, iv, []int{len(iv)}, 0)[0]
						}
						if dt.IsFloat() {
							want = inDType(dt, want)
						}
						spec, got := evalFloat64s(t, func() *graph.Array { return fn(in(), c.axes, keep) })
						checkShape(t, spec, dt, outShape...)
						atol, rtol := loomtest.Tolerance(dt)
						if !dt.IsFloat() {
							atol, rtol = 0, 0
						}
						loomtest.Close(t, "result", got, want, atol, rtol)
					})
				}
			}
		}
	}
}

// reduceAxesGroups groups the values of x by output element (the reduced
// axes dropped, or kept as 1), each group in row-major order, and returns
// the groups and the output's shape.
func reduceAxesGroups(x []float64, shape, axes []int, keep bool) ([][]float64, []int) {
	reduced := make([]bool, len(shape))
	for _, a := range axes {
		reduced[(a+len(shape))%len(shape)] = true
	}
	if len(axes) == 0 {
		for i := range reduced {
			reduced[i] = true
		}
	}
	outShape, groupShape := []int{}, []int{}
	for i, d := range shape {
		switch {
		case !reduced[i]:
			outShape, groupShape = append(outShape, d), append(groupShape, d)
		case keep:
			outShape = append(outShape, 1)
		}
	}
	groups := make([][]float64, graph.NumElements(groupShape))
	for e, v := range x {
		g, rest := 0, e
		idx := make([]int, len(shape))
		for d := len(shape) - 1; d >= 0; d-- {
			idx[d], rest = rest%shape[d], rest/shape[d]
		}
		for d := range shape {
			if !reduced[d] {
				g = g*shape[d] + idx[d]
			}
		}
		groups[g] = append(groups[g], v)
	}
	return groups, outShape
}

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

// TestComposedMath checks the ops built of other primitives (Square, ReLU,
// Clip) against float64 and integer references, broadcasting the bounds.
func TestComposedMath(t *testing.T) {
	shapes := [][]int{{}, {1}, {7}, {3, 37}}
	for _, dt := range []graph.DType{graph.Float32, graph.Float16, graph.BFloat16, graph.Int32, graph.Int64, graph.Uint32} {
		for si, shape := range shapes {
			t.Run(fmt.Sprintf("%s/%v", dt, shape), func(t *testing.T) {
				n := graph.NumElements(shape)
				var x []float64
				var iv []int64
				var in func() *graph.Array
				if dt.IsFloat() {
					f, r := randFloats(uint64(si), dt, n, -5, 5)
					if n > 2 {
						f[1], r[1] = float32(math.NaN()), math.NaN()
					}
					x, in = r, func() *graph.Array { return floats(dt, f, shape...) }
				} else {
					iv = intInputs(uint64(si), dt, n)
					for _, e := range iv {
						x = append(x, float64(e))
					}
					in = func() *graph.Array { return intConst(dt, iv, shape...) }
				}
				lo, hi := -2.0, 3.0
				if dt == graph.Uint32 {
					lo = 2
				}
				sq, relu, clip := make([]float64, n), make([]float64, n), make([]float64, n)
				for i, v := range x {
					sq[i] = v * v
					relu[i], clip[i] = math.Max(v, 0), math.Min(math.Max(v, lo), hi)
					if math.IsNaN(v) {
						relu[i], clip[i] = v, v
					}
				}
				atol, rtol := loomtest.Tolerance(dt)
				if !dt.IsFloat() {
					atol, rtol = 0, 0
					for i, v := range iv {
						sq[i] = float64(binaryIntRef(primitives.Mul, dt, v, v)) // wraps around
					}
				} else {
					sq = inDType(dt, sq)
				}
				spec, got := evalFloat64s(t, func() *graph.Array { return ops.Square(in()) })
				checkShape(t, spec, dt, shape...)
				loomtest.Close(t, "square", got, sq, atol, rtol)
				_, got = evalFloat64s(t, func() *graph.Array { return ops.ReLU(in()) })
				loomtest.Close(t, "relu", got, relu, 0, 0)
				spec, got = evalFloat64s(t, func() *graph.Array {
					return ops.Clip(in(), graph.Scalar(dt, lo), graph.Full(dt, hi, 1))
				})
				clipShape, _ := primitives.BroadcastShapes(shape, []int{1})
				checkShape(t, spec, dt, clipShape...)
				loomtest.Close(t, "clip", got, clip, 0, 0)
				for i, v := range x {
					clip[i] = math.Min(v, hi)
					if math.IsNaN(v) {
						clip[i] = v
					}
				}
				_, got = evalFloat64s(t, func() *graph.Array { return ops.Clip(in(), nil, graph.Scalar(dt, hi)) })
				loomtest.Close(t, "clip without lo", got, clip, 0, 0)
			})
		}
	}
}

func TestLogical(t *testing.T) {
	cases := []struct{ a, b []int }{{[]int{}, []int{}}, {[]int{7}, []int{7}}, {[]int{3, 1}, []int{5}}, {[]int{0, 2}, []int{2}}}
	for ci, c := range cases {
		t.Run(fmt.Sprintf("%v+%v", c.a, c.b), func(t *testing.T) {
			r := loomtest.Rand(uint64(ci))
			rnd := func(n int) []bool {
				v := make([]bool, n)
				for i := range v {
					v[i] = r.IntN(2) == 1
				}
				return v
			}
			a, b := rnd(graph.NumElements(c.a)), rnd(graph.NumElements(c.b))
			out, _ := primitives.BroadcastShapes(c.a, c.b)
			and, or := make([]float64, graph.NumElements(out)), make([]float64, graph.NumElements(out))
			for i := range and {
				x, y := a[broadcastIndex(i, out, c.a)], b[broadcastIndex(i, out, c.b)]
				and[i], or[i] = b01(x && y), b01(x || y)
			}
			not := make([]float64, len(a))
			for i, x := range a {
				not[i] = b01(!x)
			}
			ca := func() *graph.Array { return graph.FromBytes(graph.Bool, boolBytes(a), c.a...) }
			cb := func() *graph.Array { return graph.FromBytes(graph.Bool, boolBytes(b), c.b...) }
			spec, got := evalFloat64s(t, func() *graph.Array { return ops.LogicalAnd(ca(), cb()) })
			checkShape(t, spec, graph.Bool, out...)
			loomtest.Close(t, "and", got, and, 0, 0)
			_, got = evalFloat64s(t, func() *graph.Array { return ops.LogicalOr(ca(), cb()) })
			loomtest.Close(t, "or", got, or, 0, 0)
			spec, got = evalFloat64s(t, func() *graph.Array { return ops.LogicalNot(ca()) })
			checkShape(t, spec, graph.Bool, c.a...)
			loomtest.Close(t, "not", got, not, 0, 0)
		})
	}
}

func b01(v bool) float64 {
	if v {
		return 1
	}
	return 0
}

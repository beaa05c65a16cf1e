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

var unaryCases = []struct {
	op     primitives.UnaryOp
	fn     func(*graph.Array) *graph.Array
	ref    func(float64) float64
	lo, hi float32
}{
	{primitives.Neg, ops.Neg, func(x float64) float64 { return -x }, -10, 10},
	{primitives.Exp, ops.Exp, math.Exp, -12, 12},
	{primitives.Log, ops.Log, math.Log, 0.001, 100},
	{primitives.Sqrt, ops.Sqrt, math.Sqrt, 0, 100},
	{primitives.Rsqrt, ops.Rsqrt, func(x float64) float64 { return 1 / math.Sqrt(x) }, 0.001, 100},
	{primitives.Tanh, ops.Tanh, math.Tanh, -6, 6},
	{primitives.Sigmoid, ops.Sigmoid, func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }, -20, 20},
	{primitives.SiLU, ops.SiLU, func(x float64) float64 { return x / (1 + math.Exp(-x)) }, -20, 20},
	{primitives.GELU, ops.GELU, func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }, -6, 6},
	{primitives.Abs, ops.Abs, math.Abs, -10, 10},
	{primitives.Sin, ops.Sin, math.Sin, -10, 10},
	{primitives.Cos, ops.Cos, math.Cos, -10, 10},
	{primitives.Erf, ops.Erf, math.Erf, -4, 4},
	{primitives.Floor, ops.Floor, math.Floor, -100, 100},
}

func TestUnaryFloat(t *testing.T) {
	specials := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), -1, 1}
	shapes := [][]int{{}, {1}, {7}, {3, 37}, {2, 3, 300}, {5, 4001}}
	for _, c := range unaryCases {
		for _, dt := range floatDTypes {
			for si, shape := range shapes {
				t.Run(fmt.Sprintf("%s/%s/%v", c.op, dt, shape), func(t *testing.T) {
					n := graph.NumElements(shape)
					in := loomtest.Float32s(loomtest.Rand(uint64(si)), n, c.lo, c.hi)
					if n > len(specials) {
						copy(in, specials)
					}
					x := loomtest.Round(dt, in)
					want := make([]float64, n)
					for i, v := range x {
						want[i] = c.ref(v)
					}
					spec, got := evalFloat64s(t, func() *graph.Array { return c.fn(floats(dt, in, shape...)) })
					checkShape(t, spec, dt, shape...)
					atol, rtol := loomtest.Tolerance(dt)
					loomtest.Close(t, "result", got, inDType(dt, want), atol, rtol)
				})
			}
		}
	}
}

func TestNegAbsInteger(t *testing.T) {
	for _, dt := range []graph.DType{graph.Int32, graph.Int64, graph.Uint32} {
		t.Run(dt.String(), func(t *testing.T) {
			v := intInputs(5, dt, 301)
			neg, abs := make([]float64, len(v)), make([]float64, len(v))
			for i, x := range v {
				neg[i] = float64(binaryIntRef(primitives.Sub, dt, 0, x)) // wraps: −MinInt32 is MinInt32
				abs[i] = float64(x)
				if x < 0 {
					abs[i] = neg[i]
				}
			}
			spec, got := evalFloat64s(t, func() *graph.Array { return ops.Neg(intConst(dt, v, 7, 43)) })
			checkShape(t, spec, dt, 7, 43)
			loomtest.Close(t, "neg", got, neg, 0, 0)
			spec, got = evalFloat64s(t, func() *graph.Array { return ops.Abs(intConst(dt, v, 7, 43)) })
			checkShape(t, spec, dt, 7, 43)
			loomtest.Close(t, "abs", got, abs, 0, 0)
		})
	}
}

package customkernel_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/loomrt/loom/examples/customkernel"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
)

// shapes are x's shapes: rows of one element, odd lengths, lengths that
// are not multiples of the threadgroup (256), longer than it, and a row
// count of 1.
var shapes = [][]int{{1, 1}, {3, 7}, {2, 3, 33}, {5, 256}, {2, 257}, {1, 1000}, {4, 0}}

// inputs returns seeded random x, residual and weight for x's shape.
func inputs(r *rand.Rand, shape []int) (x, res, w []float32) {
	n, d := graph.NumElements(shape), shape[len(shape)-1]
	return loomtest.Float32s(r, n, -2, 2), loomtest.Float32s(r, n, -2, 2), loomtest.Float32s(r, d, 0.5, 1.5)
}

// reference is the op in float64: sum = x + residual, out = sum /
// sqrt(mean(sum²) + eps) · weight, row by row.
func reference(x, res, w []float32, d int, eps float32) (sum, out []float64) {
	sum, out = make([]float64, len(x)), make([]float64, len(x))
	for r := 0; d > 0 && r < len(x)/d; r++ {
		var sq float64
		for i := r * d; i < (r+1)*d; i++ {
			sum[i] = float64(x[i]) + float64(res[i])
			sq += sum[i] * sum[i]
		}
		inv := 1 / math.Sqrt(sq/float64(d)+float64(eps))
		for i := r * d; i < (r+1)*d; i++ {
			out[i] = sum[i] * inv * float64(w[i-r*d])
		}
	}
	return sum, out
}

func float64s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// TestResidualRMSNorm runs the op on every target (the CPU device, the
// checking device, the adversarial scheduler, and CUDA where this machine
// has a GPU) against the float64 reference; the CPU targets, which share
// the CPU kernel, agree bit for bit.
func TestResidualRMSNorm(t *testing.T) {
	const eps = 1e-5
	atol, rtol := loomtest.Tolerance(graph.Float32)
	for _, shape := range shapes {
		t.Run(fmt.Sprint(shape), func(t *testing.T) {
			x, res, w := inputs(loomtest.Rand(uint64(len(shape)*1000+graph.NumElements(shape))), shape)
			d := shape[len(shape)-1]
			wantSum, wantOut := reference(x, res, w, d, eps)
			var exact []float32
			for _, tg := range loomtest.Targets(t) {
				sum, out := customkernel.Apply(graph.FromFloat32s(x, shape...), graph.FromFloat32s(res, shape...), graph.FromFloat32s(w, d), eps)
				tg.Eval(t, sum, out)
				gotSum, err := sum.Float32s()
				if err != nil {
					t.Fatal(err)
				}
				gotOut, err := out.Float32s()
				if err != nil {
					t.Fatal(err)
				}
				loomtest.Close(t, tg.Name+" sum", float64s(gotSum), wantSum, atol, rtol)
				loomtest.Close(t, tg.Name+" out", float64s(gotOut), wantOut, atol, rtol)
				if tg.Exact {
					if exact == nil {
						exact = slices.Concat(gotSum, gotOut)
					} else if !slices.Equal(exact, slices.Concat(gotSum, gotOut)) {
						t.Errorf("%s: the result differs from the plain CPU device's", tg.Name)
					}
				}
			}
		})
	}
}

// TestErrors: bad arguments give an error that says what is wrong.
func TestErrors(t *testing.T) {
	f32 := func(shape ...int) *graph.Array { return graph.Full(graph.Float32, 1, shape...) }
	cases := []struct {
		x, res, w *graph.Array
		eps       float32
		want      string
	}{
		{graph.Full(graph.Float16, 1, 2, 4), graph.Full(graph.Float16, 1, 2, 4), graph.Full(graph.Float16, 1, 4), 1e-6, "dtype float16 is unsupported (float32 only)"},
		{f32(2, 4), f32(2, 5), f32(4), 1e-6, "residual float32[2 5] differs from x float32[2 4]"},
		{f32(2, 4), f32(2, 4), f32(5), 1e-6, "weight float32[5] must be [4] (x's last dimension)"},
		{f32(), f32(), f32(1), 1e-6, "x must have at least 1 dimension"},
		{f32(2, 4), f32(2, 4), f32(4), float32(math.NaN()), "eps NaN must be finite and ≥ 0"},
	}
	for _, c := range cases {
		sum, out := customkernel.Apply(c.x, c.res, c.w, c.eps)
		for _, a := range []*graph.Array{sum, out} {
			if err := a.Err(); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "residual_rms_norm") {
				t.Errorf("got %v, want an error of residual_rms_norm mentioning %q", err, c.want)
			}
		}
	}
}

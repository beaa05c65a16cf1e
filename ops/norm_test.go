package ops_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
)

func softmaxRef(x []float64, shape []int, axis int) []float64 {
	outer, n, inner := graph.NumElements(shape[:axis]), shape[axis], graph.NumElements(shape[axis+1:])
	out := make([]float64, len(x))
	for o := range outer {
		for i := range inner {
			at := func(k int) int { return (o*n+k)*inner + i }
			m := math.Inf(-1)
			for k := range n {
				if v := x[at(k)]; v > m || math.IsNaN(v) {
					m = v
				}
			}
			sum := 0.0
			for k := range n {
				sum += math.Exp(x[at(k)] - m)
			}
			for k := range n {
				out[at(k)] = math.Exp(x[at(k)]-m) / sum
			}
		}
	}
	return out
}

// softmaxTolerance is relative: softmax outputs are small numbers, which an
// absolute tolerance of the usual size would not test. atol covers the
// subnormals of float16.
func softmaxTolerance(dt graph.DType) (atol, rtol float64) {
	switch dt {
	case graph.Float16:
		return 6e-8, 1e-3
	case graph.BFloat16:
		return 1e-12, 8e-3
	}
	return 1e-12, 2e-5
}

func TestSoftmax(t *testing.T) {
	cases := []struct {
		shape []int
		axis  int
	}{
		{[]int{7}, 0}, {[]int{1}, 0}, {[]int{3, 5}, -1}, {[]int{3, 5}, 0},
		{[]int{2, 3, 300}, 0}, {[]int{2, 3, 300}, 1}, {[]int{2, 3, 300}, 2},
		{[]int{4, 3072}, -1}, {[]int{2, 20001}, 1}, {[]int{5, 0}, 1}, {[]int{0, 5}, 1},
	}
	for ci, c := range cases {
		for _, dt := range floatDTypes {
			t.Run(fmt.Sprintf("%s/%v/axis%d", dt, c.shape, c.axis), func(t *testing.T) {
				n := graph.NumElements(c.shape)
				f, x := randFloats(uint64(ci), dt, n, -8, 8)
				if n > 600 {
					// Large logits (no overflow: the max is subtracted), masked
					// entries, and a row with a NaN.
					f[1], x[1] = 1000, 1000
					f[2], x[2] = float32(math.Inf(-1)), math.Inf(-1)
					f[n-1], x[n-1] = float32(math.NaN()), math.NaN()
				}
				axis := c.axis
				if axis < 0 {
					axis += len(c.shape)
				}
				want := inDType(dt, softmaxRef(x, c.shape, axis))
				spec, got := evalFloat64s(t, func() *graph.Array { return ops.Softmax(floats(dt, f, c.shape...), c.axis) })
				checkShape(t, spec, dt, c.shape...)
				atol, rtol := softmaxTolerance(dt)
				loomtest.Close(t, "result", got, want, atol, rtol)
			})
		}
	}
}

func TestSoftmaxAllMasked(t *testing.T) {
	inf := float32(math.Inf(-1))
	_, got := evalFloat64s(t, func() *graph.Array { return ops.Softmax(graph.FromFloat32s([]float32{inf, inf, 0, inf}, 2, 2), -1) })
	if !math.IsNaN(got[0]) || !math.IsNaN(got[1]) || got[2] != 1 || got[3] != 0 {
		t.Fatalf("softmax of rows [-Inf -Inf] and [0 -Inf]: got %v, want [NaN NaN 1 0]", got)
	}
}

func rmsNormRef(x, w []float64, d int, eps float64) []float64 {
	out := make([]float64, len(x))
	for r := 0; r < len(x); r += d {
		ss := 0.0
		for _, v := range x[r : r+d] {
			ss += v * v
		}
		scale := 1 / math.Sqrt(ss/float64(d)+eps)
		for i := range d {
			out[r+i] = x[r+i] * scale * w[i]
		}
	}
	return out
}

func TestRMSNorm(t *testing.T) {
	shapes := [][]int{{1, 7}, {3, 1024}, {2, 3, 3072}, {5, 33}, {4, 1}, {300}, {0, 8}, {40, 1000}, {2, 5001}}
	for ci, shape := range shapes {
		for _, dt := range floatDTypes {
			for _, eps := range []float32{1e-6, 1e-2} {
				t.Run(fmt.Sprintf("%s/%v/eps%g", dt, shape, eps), func(t *testing.T) {
					d := shape[len(shape)-1]
					fx, x := randFloats(uint64(ci), dt, graph.NumElements(shape), -3, 3)
					fw, w := randFloats(uint64(50+ci), dt, d, 0.5, 1.5)
					if len(fx) >= 2*d && d > 1 { // a row of zeros: eps keeps it finite
						for i := d; i < 2*d; i++ {
							fx[i], x[i] = 0, 0
						}
					}
					want := inDType(dt, rmsNormRef(x, w, d, float64(eps)))
					spec, got := evalFloat64s(t, func() *graph.Array {
						return ops.RMSNorm(floats(dt, fx, shape...), floats(dt, fw, d), eps)
					})
					checkShape(t, spec, dt, shape...)
					atol, rtol := loomtest.Tolerance(dt)
					loomtest.Close(t, "result", got, want, atol, rtol)
				})
			}
		}
	}
}

func TestLayerNorm(t *testing.T) {
	shapes := [][]int{{1, 1}, {3, 7}, {2, 3, 300}, {5, 4001}, {0, 4}}
	for _, dt := range floatDTypes {
		for si, shape := range shapes {
			for _, affine := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s/%v/affine=%v", dt, shape, affine), func(t *testing.T) {
					d := shape[len(shape)-1]
					n := graph.NumElements(shape)
					fx, x := randFloats(uint64(si), dt, n, -3, 5) // a mean away from 0
					fw, w := randFloats(uint64(si)+10, dt, d, 0.5, 1.5)
					fb, b := randFloats(uint64(si)+20, dt, d, -1, 1)
					if !affine {
						for i := range w {
							w[i], b[i] = 1, 0
						}
					}
					const eps = 1e-5
					want := make([]float64, n)
					for r := 0; r < n/max(d, 1); r++ {
						row := x[r*d : (r+1)*d]
						mean, v := 0.0, 0.0
						for _, e := range row {
							mean += e
						}
						mean /= float64(d)
						for _, e := range row {
							v += (e - mean) * (e - mean)
						}
						v /= float64(d)
						for k, e := range row {
							want[r*d+k] = (e-mean)/math.Sqrt(v+eps)*w[k] + b[k]
						}
					}
					spec, got := evalFloat64s(t, func() *graph.Array {
						if !affine {
							return ops.LayerNorm(floats(dt, fx, shape...), nil, nil, eps)
						}
						return ops.LayerNorm(floats(dt, fx, shape...), floats(dt, fw, d), floats(dt, fb, d), eps)
					})
					checkShape(t, spec, dt, shape...)
					atol, rtol := loomtest.Tolerance(dt)
					loomtest.Close(t, "layer_norm", got, inDType(dt, want), atol, rtol)
				})
			}
		}
	}
}

//go:build linux && amd64

package metal_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
)

// kernelsWithPrefix lists the catalog kernels whose names start with one of
// the prefixes: the kernels of the families a test exercises.
func kernelsWithPrefix(prefixes ...string) []string {
	var out []string
	for _, s := range primitives.Catalog() {
		for _, p := range prefixes {
			if strings.HasPrefix(s.Name, p) {
				out = append(out, s.Name)
				break
			}
		}
	}
	return out
}

// tol widens the float tolerance of dt by k (kernels that accumulate in a
// different order than the CPU, or use other exp/log implementations).
func tol(dt graph.DType, k float64) (float64, float64) {
	atol, rtol := loomtest.Tolerance(dt)
	return atol * k, rtol * k
}

func TestEmulatedUnary(t *testing.T) {
	emu, ref := emuRuntimes(t, kernelsWithPrefix("neg_", "exp_", "log_", "sqrt_", "rsqrt_", "tanh_", "sigmoid_", "silu_", "gelu_", "abs_", "sin_", "cos_", "erf_", "floor_")...)
	for _, op := range primitives.UnaryOps {
		for _, dt := range op.DTypes() {
			build := func() *graph.Array {
				r := loomtest.Rand(uint64(op)*10 + uint64(dt))
				return ops.Apply(primitives.Unary{Op: op}, randomArray(r, dt, 3, 67))[0]
			}
			atol, rtol := tol(dt, 4)
			sameOnBoth(t, emu, ref, fmt.Sprintf("%s %s", op, dt), build, atol, rtol)
		}
	}
}

func TestEmulatedWhere(t *testing.T) {
	emu, ref := emuRuntimes(t, kernelsWithPrefix("where_")...)
	for _, dt := range graph.DTypes {
		build := func() *graph.Array {
			r := loomtest.Rand(uint64(dt))
			return ops.Where(randomArray(r, graph.Bool, 3, 1), randomArray(r, dt, 3, 5), randomArray(r, dt, 5))
		}
		sameOnBoth(t, emu, ref, "where "+dt.String(), build, 0, 0)
	}
}

// TestEmulatedCast converts every dtype to every other, bit for bit: NaN,
// saturation, rounding of large integers to half and bfloat.
func TestEmulatedCast(t *testing.T) {
	emu, ref := emuRuntimes(t, kernelsWithPrefix("cast_", "copy_strided_")...)
	for _, from := range graph.DTypes {
		for _, to := range graph.DTypes {
			build := func() *graph.Array {
				r := loomtest.Rand(uint64(from)*10 + uint64(to))
				a := randomArray(r, from, 97)
				if from.IsFloat() {
					// Values beyond every integer range, and infinities.
					big := loomtest.Float32s(r, 97, -1e19, 1e19)
					big[3], big[4] = float32(1e30), float32(-1e30)
					a = ops.Concatenate(0, a, graph.FromFloat32sAs(from, big, 97))
				}
				return ops.Cast(a, to)
			}
			sameOnBoth(t, emu, ref, fmt.Sprintf("cast %s to %s", from, to), build, 0, 0)
		}
	}
}

func TestEmulatedShape(t *testing.T) {
	emu, ref := emuRuntimes(t, kernelsWithPrefix("copy_strided_")...)
	for _, dt := range graph.DTypes {
		cases := map[string]func() *graph.Array{
			"transpose": func() *graph.Array {
				return ops.Transpose(randomArray(loomtest.Rand(1), dt, 3, 5, 7), 2, 0, 1)
			},
			"slice": func() *graph.Array {
				return ops.Slice(randomArray(loomtest.Rand(2), dt, 6, 9), []int{1, 2}, []int{5, 9})
			},
			"concatenate": func() *graph.Array {
				r := loomtest.Rand(3)
				return ops.Concatenate(1, randomArray(r, dt, 2, 3), randomArray(r, dt, 2, 1), randomArray(r, dt, 2, 4))
			},
			"reversed strided slice": func() *graph.Array {
				return ops.SliceStrided(randomArray(loomtest.Rand(4), dt, 5, 7, 3), []int{-1, 1, 2}, []int{math.MinInt, 7, math.MinInt}, []int{-2, 3, -1})
			},
			"broadcast_to": func() *graph.Array {
				return ops.BroadcastTo(randomArray(loomtest.Rand(5), dt, 3, 1), 2, 3, 5)
			},
			"pad": func() *graph.Array {
				return ops.Pad(randomArray(loomtest.Rand(6), dt, 2, 3), []int{1, 0}, []int{2, 3}, 1)
			},
		}
		for name, build := range cases {
			sameOnBoth(t, emu, ref, name+" "+dt.String(), build, 0, 0)
		}
	}
}

func TestEmulatedReduce(t *testing.T) {
	emu, ref := emuRuntimes(t, kernelsWithPrefix("sum_", "max_", "mean_", "argmax_", "min_", "prod_", "argmin_", "logsumexp_", "copy_strided_", "add_f", "add_bf", "mul_f", "mul_bf")...)
	fns := map[primitives.ReduceOp]func(*graph.Array, int, bool) *graph.Array{
		primitives.Sum: ops.Sum, primitives.Max: ops.Max, primitives.Mean: ops.Mean, primitives.Argmax: ops.Argmax,
		primitives.Min: ops.Min, primitives.Prod: ops.Prod, primitives.Argmin: ops.Argmin, primitives.LogSumExp: ops.LogSumExp,
	}
	for op, fn := range fns {
		for _, dt := range op.DTypes() {
			for _, axis := range []int{0, 1, 2} {
				build := func() *graph.Array {
					r := loomtest.Rand(uint64(op)*100 + uint64(dt)*10 + uint64(axis))
					// A long axis 1 (more elements than threads), short others
					// (a group per output element is slow to emulate).
					shape := []int{3, 4, 5}
					if axis == 1 {
						shape = []int{2, 300, 3}
					}
					a := randomArray(r, dt, shape...)
					if op == primitives.Prod && dt.IsFloat() {
						// Factors near 1, so that the product of 300 stays finite.
						a = ops.Add(graph.Scalar(dt, 1), ops.Mul(a, graph.Scalar(dt, 0.01)))
					}
					return fn(a, axis, false)
				}
				atol, rtol := tol(dt, 10)
				sameOnBoth(t, emu, ref, fmt.Sprintf("%s %s axis %d", op, dt, axis), build, atol, rtol)
			}
		}
	}
	// Several axes: a transpose, then one reduction.
	sameOnBoth(t, emu, ref, "logsumexp over axes 0 and 2", func() *graph.Array {
		return ops.LogSumExpAxes(randomArray(loomtest.Rand(9), graph.Float32, 3, 4, 5), []int{0, 2}, true)
	}, 1e-5, 1e-5)
	sameOnBoth(t, emu, ref, "logsumexp of -Inf and empty", func() *graph.Array {
		inf := float32(math.Inf(-1))
		a := graph.FromFloat32s([]float32{inf, inf, 1, inf}, 2, 2)
		return ops.Concatenate(0, ops.LogSumExp(a, 1, false), ops.LogSumExp(graph.FromFloat32s(nil, 2, 0), 1, false))
	}, 1e-6, 1e-6)
}

func TestEmulatedNorms(t *testing.T) {
	emu, ref := emuRuntimes(t, kernelsWithPrefix("softmax_", "rms_norm_", "rope_", "layer_norm_")...)
	for _, dt := range primitives.FloatDTypes {
		atol, rtol := tol(dt, 4)
		sameOnBoth(t, emu, ref, "softmax "+dt.String(), func() *graph.Array {
			r := loomtest.Rand(1)
			return ops.Softmax(graph.FromFloat32sAs(dt, loomtest.Float32s(r, 4*333, -5, 5), 4, 333), 1)
		}, atol, rtol)
		sameOnBoth(t, emu, ref, "softmax axis 0 "+dt.String(), func() *graph.Array {
			r := loomtest.Rand(2)
			return ops.Softmax(graph.FromFloat32sAs(dt, loomtest.Float32s(r, 7*3, -5, 5), 7, 3), 0)
		}, atol, rtol)
		sameOnBoth(t, emu, ref, "rms_norm "+dt.String(), func() *graph.Array {
			r := loomtest.Rand(3)
			x := graph.FromFloat32sAs(dt, loomtest.Float32s(r, 5*259, -2, 2), 5, 259)
			w := graph.FromFloat32sAs(dt, loomtest.Float32s(r, 259, 0.5, 1.5), 259)
			return ops.RMSNorm(x, w, 1e-6)
		}, atol, rtol)
		sameOnBoth(t, emu, ref, "layer_norm "+dt.String(), func() *graph.Array {
			r := loomtest.Rand(5)
			x := graph.FromFloat32sAs(dt, loomtest.Float32s(r, 5*259, -2, 3), 5, 259)
			w := graph.FromFloat32sAs(dt, loomtest.Float32s(r, 259, 0.5, 1.5), 259)
			b := graph.FromFloat32sAs(dt, loomtest.Float32s(r, 259, -1, 1), 259)
			return ops.LayerNorm(x, w, b, 1e-5)
		}, atol, rtol)
		sameOnBoth(t, emu, ref, "rope "+dt.String(), func() *graph.Array {
			r := loomtest.Rand(4)
			x := graph.FromFloat32sAs(dt, loomtest.Float32s(r, 3*4*64, -1, 1), 3, 4, 64)
			return ops.RoPE(x, graph.FromInt32s([]int32{0, 7, 100}, 3), 10000)
		}, atol, rtol)
		sameOnBoth(t, emu, ref, "rope scaled "+dt.String(), func() *graph.Array {
			r := loomtest.Rand(4)
			x := graph.FromFloat32sAs(dt, loomtest.Float32s(r, 3*4*64, -1, 1), 3, 4, 64)
			// Wavelengths from 6 to 10000^(62/64)·2π: all three regimes.
			s := primitives.RoPEScaling{Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 64}
			return ops.RoPEScaled(x, graph.FromInt32s([]int32{0, 7, 100}, 3), 10000, s)
		}, atol, rtol)
	}
}

func TestEmulatedRows(t *testing.T) {
	emu, ref := emuRuntimes(t, kernelsWithPrefix("gather_rows_", "scatter_rows_", "add_i")...)
	for _, dt := range graph.DTypes {
		for _, idx := range []graph.DType{graph.Int32, graph.Int64} {
			indices := func(v ...int64) *graph.Array {
				if idx == graph.Int32 {
					w := make([]int32, len(v))
					for i, x := range v {
						w[i] = int32(x)
					}
					return graph.FromInt32s(w, len(v))
				}
				return graph.FromInt64s(v, len(v))
			}
			name := fmt.Sprintf("%s by %s", dt, idx)
			sameOnBoth(t, emu, ref, "gather "+name, func() *graph.Array {
				return ops.GatherRows(randomArray(loomtest.Rand(1), dt, 7, 3, 5), indices(6, 0, 3, 3))
			}, 0, 0)
			sameOnBoth(t, emu, ref, "scatter "+name, func() *graph.Array {
				r := loomtest.Rand(2)
				return ops.ScatterRows(randomArray(r, dt, 7, 5), indices(4, -1, 0), randomArray(r, dt, 3, 5))
			}, 0, 0)
			// Computed on the device, so that only the kernel can see it.
			bad := ops.GatherRows(randomArray(loomtest.Rand(3), dt, 7, 5), ops.Add(indices(1, 4, 2), indices(0, 5, 0)))
			if err := emu.Eval(bad); err == nil || !strings.Contains(err.Error(), "indices entry 1 is 9") {
				t.Fatalf("gather %s with index 9 of 7 rows: got %v, want an error naming indices entry 1", name, err)
			}
		}
	}
}

// TestEmulatedMatMul runs both matmul kernels on awkward shapes for every
// dtype: the GEMV kernel for one row and the small-M path (up to
// primitives.MatMulSIMDGroupRows rows), the tiled kernel past it, with M,
// N and K not multiples of the tiles (K below 8 and not a multiple of 8, N
// odd), weights stored [N, K] and [K, N], a transposed, and batches.
func TestEmulatedMatMul(t *testing.T) {
	emu, ref := emuRuntimes(t, kernelsWithPrefix("matmul_")...)
	const most = primitives.MatMulSIMDGroupRows
	cases := []struct {
		a, b   []int
		ta, tb bool
	}{
		{[]int{1, 67}, []int{67, 45}, false, false},  // GEMV
		{[]int{1, 67}, []int{45, 67}, false, true},   // GEMV, weights N×K
		{[]int{1, 5}, []int{1, 5}, false, true},      // one output, K < 8
		{[]int{2, 33}, []int{9, 33}, false, true},    // small M
		{[]int{3, 70}, []int{17, 70}, false, true},   // K past two steps of 32
		{[]int{17, 8}, []int{45, 8}, false, true},    // K one block of 8
		{[]int{63, 41}, []int{13, 41}, false, true},  // a ragged last row tile
		{[]int{most, 19}, []int{7, 19}, false, true}, // the most rows of one pass
		{[]int{most + 1, 19}, []int{7, 19}, false, true},
		{[]int{3, 40}, []int{40, 11}, false, false},         // small M, weights K×N
		{[]int{2, 5, 48}, []int{2, 33, 48}, false, true},    // batched weights, small M
		{[]int{3, 21, 5}, []int{21, 6}, true, false},        // a transposed, small M
		{[]int{33, 17}, []int{17, 65}, false, false},        // tiles with ragged edges
		{[]int{130, 35}, []int{27, 35}, false, true},        // tiled, weights N×K
		{[]int{17, 70}, []int{65, 17}, true, true},          // tiled, both transposed
		{[]int{2, 3, 9, 40}, []int{3, 40, 7}, false, false}, // broadcast batch
		{[]int{4, 1, 16}, []int{4, 16, 8}, false, false},    // batched GEMV
	}
	for _, dt := range primitives.MatMulDTypes {
		for i, c := range cases {
			build := func() *graph.Array {
				r := loomtest.Rand(uint64(i))
				a := graph.FromFloat32sAs(dt, loomtest.Float32s(r, graph.NumElements(c.a), -1, 1), c.a...)
				b := graph.FromFloat32sAs(dt, loomtest.Float32s(r, graph.NumElements(c.b), -1, 1), c.b...)
				return ops.MatMulTransposed(a, b, c.ta, c.tb)
			}
			atol, rtol := tol(dt, 10)
			what := fmt.Sprintf("matmul %s %v", dt, c)
			sameOnBoth(t, emu, ref, what, build, atol, rtol)
			// The rows of one output matrix pick the kernel.
			m := c.a[len(c.a)-2]
			if c.ta {
				m = c.a[len(c.a)-1]
			} else if len(c.b) == 2 {
				m = graph.NumElements(c.a) / c.a[len(c.a)-1]
			}
			path := "matmul_tiled"
			switch {
			case m == 1:
				path = "matmul_gemv"
			case m <= most:
				path = "matmul_small_m"
			}
			if n := emu.LastStats().Counters[path]; n != 1 {
				t.Errorf("%s: took %v, want %s", what, emu.LastStats().Counters, path)
			}
		}
	}
}

// TestEmulatedMatMulEdges puts a NaN at the start of a row of x and an Inf
// at the start of a row of the weights: a kernel that reads past K in the
// row before (an edge left unguarded) multiplies the padding by them and
// spreads NaN to outputs they do not touch. K is not a multiple of 8.
func TestEmulatedMatMulEdges(t *testing.T) {
	emu, ref := emuRuntimes(t, kernelsWithPrefix("matmul_")...)
	const n, k = 9, 37
	for _, dt := range primitives.MatMulDTypes {
		for _, m := range []int{1, 5, 70} { // GEMV, small M, tiled
			for _, tb := range []bool{false, true} {
				build := func() *graph.Array {
					r := loomtest.Rand(uint64(m))
					x := loomtest.Float32s(r, m*k, -1, 1)
					w := loomtest.Float32s(r, n*k, -1, 1)
					x[(m-1)*k] = float32(math.NaN()) // row m-1 of x, k = 0
					shape := []int{n, k}
					w[4*k] = float32(math.Inf(1)) // row 4 of the weights, k = 0
					if !tb {
						w = transpose(w, n, k)
						shape = []int{k, n}
					}
					return ops.MatMulTransposed(graph.FromFloat32sAs(dt, x, m, k), graph.FromFloat32sAs(dt, w, shape...), false, tb)
				}
				atol, rtol := tol(dt, 10)
				sameOnBoth(t, emu, ref, fmt.Sprintf("matmul %s M=%d, weights transposed %v, NaN and Inf at row starts", dt, m, tb), build, atol, rtol)
			}
		}
	}
}

// transpose returns the rows×cols matrix v transposed.
func transpose(v []float32, rows, cols int) []float32 {
	out := make([]float32, len(v))
	for i := range rows {
		for j := range cols {
			out[j*rows+i] = v[i*cols+j]
		}
	}
	return out
}

// TestEmulatedMatMulBatchInvariant checks that a row of x[M, K]·Wᵀ has the
// same bits whatever the rows computed with it: M = 1 (GEMV), the small-M
// path and the tiled kernel (more than primitives.MatMulSIMDGroupRows
// rows), which sum every element the same way.
func TestEmulatedMatMulBatchInvariant(t *testing.T) {
	emu, _ := emuRuntimes(t, kernelsWithPrefix("matmul_")...)
	const n, rows = 19, 131
	type part struct{ from, m int }
	parts := []part{{0, 1}, {0, 2}, {0, 3}, {0, 8}, {0, 17}, {0, 64}, {1, 64}, {0, 65}, {0, 130}, {5, 3}, {7, 1}, {1, 130}}
	for _, dt := range primitives.MatMulDTypes {
		for _, k := range []int{64, 67} {
			r := loomtest.Rand(uint64(k))
			x := loomtest.Float32s(r, rows*k, -1, 1)
			w := graph.FromFloat32sAs(dt, loomtest.Float32s(r, n*k, -1, 1), n, k)
			outs := make([]*graph.Array, len(parts))
			for i, p := range parts {
				outs[i] = ops.MatMulTransposed(graph.FromFloat32sAs(dt, x[p.from*k:(p.from+p.m)*k], p.m, k), w, false, true)
			}
			if err := emu.Eval(outs...); err != nil {
				t.Fatal(err)
			}
			rowBits := map[int]string{} // row i of x's result, from the first product with it
			for i, p := range parts {
				b, err := outs[i].Bytes()
				if err != nil {
					t.Fatal(err)
				}
				rb := len(b) / p.m
				for j := range p.m {
					got := string(b[j*rb : (j+1)*rb])
					if prev, ok := rowBits[p.from+j]; !ok {
						rowBits[p.from+j] = got
					} else if got != prev {
						t.Fatalf("%s K=%d: row %d of x computed with rows [%d, %d) differs from the same row computed before", dt, k, p.from+j, p.from, p.from+p.m)
					}
				}
			}
		}
	}
}

func TestEmulatedAlongAxis(t *testing.T) {
	emu, ref := emuRuntimes(t, kernelsWithPrefix("cumsum_", "sort_", "take_along_axis_", "scatter_add_rows_", "copy_strided_", "add_i", "cast_i32_")...)
	for _, dt := range primitives.BinaryDTypes {
		atol, rtol := tol(dt, 4)
		sameOnBoth(t, emu, ref, "cumsum "+dt.String(), func() *graph.Array {
			return ops.Cumsum(randomArray(loomtest.Rand(1), dt, 3, 37, 2), 1)
		}, atol, rtol)
		for _, desc := range []bool{false, true} {
			sameOnBoth(t, emu, ref, fmt.Sprintf("sort %s desc=%v", dt, desc), func() *graph.Array {
				// Values with repeats (ties keep their order) and a NaN.
				a := randomArray(loomtest.Rand(2), dt, 4, 45)
				return ops.Concatenate(1, ops.Sort(a, -1, desc), ops.Cast(ops.Argsort(a, -1, desc), dt))
			}, 0, 0)
		}
		sameOnBoth(t, emu, ref, "scatter_add_rows "+dt.String(), func() *graph.Array {
			r := loomtest.Rand(3)
			return ops.ScatterAddRows(randomArray(r, dt, 5, 33), graph.FromInt64s([]int64{2, -1, 0, 2, 4, 2}), randomArray(r, dt, 6, 33))
		}, atol, rtol)
	}
	for _, dt := range graph.DTypes {
		sameOnBoth(t, emu, ref, "take_along_axis "+dt.String(), func() *graph.Array {
			idx := graph.FromInt32s([]int32{0, -1, 4, 2, -5, 3, 1, 1}, 2, 4, 1)
			return ops.TakeAlongAxis(randomArray(loomtest.Rand(4), dt, 2, 5, 1), idx, 1)
		}, 0, 0)
	}
	bad := ops.TakeAlongAxis(randomArray(loomtest.Rand(5), graph.Float32, 2, 3), ops.Add(graph.FromInt32s([]int32{0, 1, 2, 0}, 2, 2), graph.FromInt32s([]int32{0, 0, 0, 3}, 2, 2)), 1)
	if err := emu.Eval(bad); err == nil || !strings.Contains(err.Error(), "indices entry 3 is 3") {
		t.Fatalf("take_along_axis with index 3 of 3: got %v, want an error naming indices entry 3", err)
	}
}

func TestEmulatedRandom(t *testing.T) {
	emu, ref := emuRuntimes(t, kernelsWithPrefix("random_", "copy_strided_")...)
	sameOnBoth(t, emu, ref, "bits", func() *graph.Array { return ops.RandomBits(ops.RandomKey(3), 5, 67) }, 0, 0)
	sameOnBoth(t, emu, ref, "split keys", func() *graph.Array { return ops.RandomSplit(ops.RandomKey(4), 3)[2] }, 0, 0)
	for _, dt := range primitives.FloatDTypes {
		atol, rtol := tol(dt, 4)
		sameOnBoth(t, emu, ref, "uniform "+dt.String(), func() *graph.Array {
			return ops.RandomUniform(ops.RandomKey(5), -1, 2, dt, 300)
		}, atol, rtol)
		sameOnBoth(t, emu, ref, "normal "+dt.String(), func() *graph.Array {
			return ops.RandomNormal(ops.RandomKey(6), 0.5, 2, dt, 300)
		}, atol, rtol)
	}
}

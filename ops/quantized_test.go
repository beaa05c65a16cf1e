package ops_test

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/model"
	"github.com/loomrt/loom/ops"
)

// quantCase is quantized weights [n, k] of random values and their
// dequantised float64 values, the reference's weights.
func quantCase(t *testing.T, seed uint64, dt graph.DType, n, k, bits, gs int) (*model.Quantized, []float64) {
	t.Helper()
	w := loomtest.Float32s(loomtest.Rand(seed), n*k, -1, 1)
	// Uneven ranges per row, and one constant group, so that scales and
	// biases differ.
	for i := range w {
		w[i] *= float32(1 + i/k%3)
	}
	for i := range gs {
		w[i] = 0.25
	}
	q, err := model.Quantize(w, n, k, dt, bits, gs)
	if err != nil {
		t.Fatal(err)
	}
	return q, q.Dequantized()
}

func TestQuantizedMatMul(t *testing.T) {
	i := 0
	for _, bits := range []int{4, 8} {
		for _, gs := range []int{32, 64, 128} {
			// M = 1 runs the GEMV kernel: 2 groups (one short block), and
			// 19 groups (two blocks of 8 and a short one) over more rows
			// than one call of its micro-kernel takes; on 132
			// multiprocessors 8,499 outputs have the CUDA kernel's warps
			// take two each (the last warp one) and 16,901 four each (the
			// last warp one, then past N)
			for _, c := range []struct{ m, n, groups int }{{1, 5, 2}, {1, 131, 19}, {1, 8499, 2}, {1, 16901, 1}, {3, 37, 3}, {17, 37, 3}} {
				m, n, k := c.m, c.n, c.groups*gs
				dt := floatDTypes[i%3]
				i++
				t.Run(fmt.Sprintf("%s/q%d/g%d/M%d/N%d/K%d", dt, bits, gs, m, n, k), func(t *testing.T) {
					q, deq := quantCase(t, uint64(i), dt, n, k, bits, gs)
					x, xr := randFloats(uint64(100+i), dt, m*k, -1, 1)
					want, bound := refQuantMatMul(q, xr, deq, m)
					for _, r := range evalEachTarget(t, func() *graph.Array {
						w, s, b := q.Arrays()
						return ops.QuantizedMatMul(graph.FromFloat32sAs(dt, x, m, k), w, s, b, gs, bits)
					}) {
						checkShape(t, r.spec, dt, m, n)
						for e, got := range r.values {
							if d := math.Abs(got - want[e]); !(d <= bound[e]+unitRoundoff(dt)*math.Abs(want[e])) {
								t.Fatalf("%s: element [%d, %d]: got %v, want %v (bound %g)", r.target, e/n, e%n, got, want[e], bound[e])
							}
						}
					}
				})
			}
		}
	}
}

// targetResult is one target's result.
type targetResult struct {
	target string
	spec   graph.Spec
	values []float64
}

// evalEachTarget is evalOnTargets for ops whose GPU kernels compute
// otherwise than the CPU's beyond the dtype's tolerance (the quantized
// matmul's CPU kernels round x to fixed point): the CPU targets must agree
// bit for bit, and each target's result is returned to be held to the
// reference.
func evalEachTarget(t *testing.T, build func() *graph.Array) []targetResult {
	t.Helper()
	var out []targetResult
	var first []byte
	for _, tg := range loomtest.Targets(t) {
		a := build()
		tg.Eval(t, a)
		b, err := a.Bytes()
		if err != nil {
			t.Fatalf("%s: %v", tg.Name, err)
		}
		if tg.Exact {
			if first == nil {
				first = b
			} else if !bytes.Equal(b, first) {
				t.Fatalf("%s: result differs from the plain CPU's bit for bit", tg.Name)
			}
		}
		out = append(out, targetResult{tg.Name, a.Spec(), graph.DecodeFloat64s(a.DType(), b)})
	}
	return out
}

// refQuantMatMul is x [m, k] · deqᵀ in float64, with per element the
// error the kernels may make: x rounded to 16-bit fixed point per group
// (at most max|x|/65534 of the group in each element, times the codes'
// part of the weight, |w − bias|), and a float32 accumulation of
// scale·Σ q·x + bias·Σ x in any order, (k+4)·2⁻²⁴·Σ |x|·(|w − bias| + |bias|).
func refQuantMatMul(q *model.Quantized, x, deq []float64, m int) (want, bound []float64) {
	n, k, gs := q.Rows, q.K, q.GroupSize
	want, bound = make([]float64, m*n), make([]float64, m*n)
	for i := range m {
		for r := range n {
			var s, a, fixed float64
			for g := range k / gs {
				var top float64
				for e := g * gs; e < (g+1)*gs; e++ {
					top = max(top, math.Abs(x[i*k+e]))
				}
				for e := g * gs; e < (g+1)*gs; e++ {
					b := float64(q.Biases[r*k/gs+g])
					s += x[i*k+e] * deq[r*k+e]
					a += math.Abs(x[i*k+e]) * (math.Abs(deq[r*k+e]-b) + math.Abs(b))
					fixed += math.Abs(deq[r*k+e]-b) * top / 65534
				}
			}
			want[i*n+r], bound[i*n+r] = s, float64(k+4)*a/(1<<24)+fixed*1.0001
		}
	}
	return want, bound
}

// TestQuantizedMatMulBatch checks x with two leading dims.
func TestQuantizedMatMulBatch(t *testing.T) {
	const bits, gs, n, k = 4, 32, 9, 64
	dt := graph.BFloat16
	q, deq := quantCase(t, 5, dt, n, k, bits, gs)
	x, xr := randFloats(6, dt, 2*3*k, -1, 1)
	want, _ := refQuantMatMul(q, xr, deq, 6)
	for _, r := range evalEachTarget(t, func() *graph.Array {
		w, s, b := q.Arrays()
		return ops.QuantizedMatMul(graph.FromFloat32sAs(dt, x, 2, 3, k), w, s, b, gs, bits)
	}) {
		checkShape(t, r.spec, dt, 2, 3, n)
		loomtest.Close(t, r.target+" batched", r.values, want, 1e-2, 1e-2)
	}
}

func TestDequantize(t *testing.T) {
	for i, c := range []struct{ bits, gs, rows, k int }{{4, 32, 7, 96}, {8, 64, 3, 128}, {4, 128, 1, 256}, {8, 32, 5, 32}} {
		for _, dt := range floatDTypes {
			t.Run(fmt.Sprintf("%s/q%d/g%d/%dx%d", dt, c.bits, c.gs, c.rows, c.k), func(t *testing.T) {
				q, deq := quantCase(t, uint64(i), dt, c.rows, c.k, c.bits, c.gs)
				spec, got := evalFloat64s(t, func() *graph.Array {
					w, s, b := q.Arrays()
					return ops.Dequantize(w, s, b, c.gs, c.bits)
				})
				checkShape(t, spec, dt, c.rows, c.k)
				loomtest.Close(t, "dequantized", got, deq, 1e-6, unitRoundoff(dt))
			})
		}
	}
}

// TestQuantizedEmbedding gathers rows of the three arrays, then
// dequantises only those: the model's quantized embedding.
func TestQuantizedEmbedding(t *testing.T) {
	const bits, gs, v, k = 8, 32, 11, 64
	dt := graph.BFloat16
	q, deq := quantCase(t, 9, dt, v, k, bits, gs)
	ids := []int32{3, 0, 10, 3}
	spec, got := evalFloat64s(t, func() *graph.Array {
		w, s, b := q.Arrays()
		idx := graph.FromInt32s(ids)
		return ops.Dequantize(ops.GatherRows(w, idx), ops.GatherRows(s, idx), ops.GatherRows(b, idx), gs, bits)
	})
	checkShape(t, spec, dt, len(ids), k)
	var want []float64
	for _, id := range ids {
		want = append(want, deq[int(id)*k:(int(id)+1)*k]...)
	}
	loomtest.Close(t, "embedding rows", got, want, 1e-6, unitRoundoff(dt))
}

func TestQuantizedErrors(t *testing.T) {
	dt := graph.BFloat16
	q, _ := quantCase(t, 1, dt, 4, 64, 4, 32)
	w, s, b := q.Arrays()
	x := graph.FromFloat32sAs(dt, make([]float32, 2*64), 2, 64)
	f32 := func(shape ...int) *graph.Array {
		return graph.FromFloat32s(make([]float32, graph.NumElements(shape)), shape...)
	}
	bf := func(shape ...int) *graph.Array {
		return graph.FromFloat32sAs(dt, make([]float32, graph.NumElements(shape)), shape...)
	}
	for _, c := range []struct {
		name  string
		a     *graph.Array
		parts []string
	}{
		{"bits", ops.QuantizedMatMul(x, w, s, b, 32, 3), []string{"3-bit codes are unsupported"}},
		{"group", ops.QuantizedMatMul(x, w, s, b, 48, 4), []string{"group size 48 is unsupported"}},
		{"K not a group multiple", ops.QuantizedMatMul(bf(2, 24), graph.FromUint32s(make([]uint32, 12), 4, 3), bf(4, 1), bf(4, 1), 32, 4),
			[]string{"rows of 24 elements", "not a multiple of the group size 32"}},
		{"x K", ops.QuantizedMatMul(bf(2, 32), w, s, b, 32, 4), []string{"x has 32 elements a row, the weights 64"}},
		{"w dtype", ops.QuantizedMatMul(x, f32(4, 8), s, b, 32, 4), []string{"packed weights must be uint32, got float32"}},
		{"w rank", ops.QuantizedMatMul(x, graph.FromUint32s(make([]uint32, 32), 4, 1, 8), s, b, 32, 4), []string{"packed weights must be a matrix"}},
		{"scales dtype", ops.QuantizedMatMul(x, w, f32(4, 2), b, 32, 4), []string{"scales are float32, want bfloat16"}},
		{"biases shape", ops.QuantizedMatMul(x, w, s, bf(4, 3), 32, 4), []string{"biases have shape [4 3], want [4 2]"}},
		{"x dtype", ops.QuantizedMatMul(graph.FromInt32s(make([]int32, 64), 1, 64), w, s, b, 32, 4), []string{"x dtype int32 is unsupported"}},
		{"inputs", ops.QuantizedMatMul(x, w, s, nil, 32, 4), []string{"quantized_matmul"}},
		{"dequantize group", ops.Dequantize(w, s, b, 64, 4), []string{"scales have shape [4 2], want [4 1]"}},
		{"dequantize dtype", ops.Dequantize(w, graph.FromInt32s(make([]int32, 8), 4, 2), b, 32, 4), []string{"scales dtype int32 is unsupported"}},
	} {
		t.Run(c.name, func(t *testing.T) { wantErr(t, c.a, c.parts...) })
	}
}

// TestQuantizedEmpty evaluates products with no rows of x and weights with
// no rows: empty results, no dispatch.
func TestQuantizedEmpty(t *testing.T) {
	for _, tg := range loomtest.Targets(t) {
		s := graph.FromFloat32s(make([]float32, 6), 3, 2)
		none := graph.FromFloat32s(nil, 0, 2)
		outs := []*graph.Array{
			ops.QuantizedMatMul(graph.FromFloat32s(nil, 0, 64), graph.FromUint32s(make([]uint32, 24), 3, 8), s, s, 32, 4),
			ops.QuantizedMatMul(graph.FromFloat32s(make([]float32, 64), 1, 64), graph.FromUint32s(nil, 0, 8), none, none, 32, 4),
			ops.Dequantize(graph.FromUint32s(nil, 0, 8), none, none, 32, 4),
		}
		tg.Eval(t, outs...)
		for i, want := range [][]int{{0, 3}, {1, 0}, {0, 64}} {
			checkShape(t, outs[i].Spec(), graph.Float32, want...)
		}
	}
}

// TestQuantizedGatedLinear checks QuantizedGatedLinear against
// QuantizedMatMul followed by SiLUMul on each target, bit for bit (the
// gated kernel's sums are the matmul's, rounded to the dtype, through
// silu_mul's formula), and the float64 reference loosely.
func TestQuantizedGatedLinear(t *testing.T) {
	i := 0
	for _, bits := range []int{4, 8} {
		for _, gs := range []int{32, 64, 128} {
			// 8,499 outputs: two thousand blocks of 8 and a short one.
			for _, c := range []struct{ m, n, groups int }{{1, 5, 2}, {1, 131, 3}, {1, 8499, 1}, {2, 37, 3}, {5, 19, 2}} {
				m, n, k := c.m, c.n, c.groups*gs
				dt := floatDTypes[i%3]
				i++
				t.Run(fmt.Sprintf("%s/q%d/g%d/M%d/N%d/K%d", dt, bits, gs, m, n, k), func(t *testing.T) {
					q, deq := quantCase(t, uint64(i), dt, 2*n, k, bits, gs)
					x, xr := randFloats(uint64(200+i), dt, m*k, -1, 1)
					mm, _ := refQuantMatMul(q, xr, deq, m)
					for _, tg := range loomtest.Targets(t) {
						w, s, b := q.Arrays()
						xa := graph.FromFloat32sAs(dt, x, m, k)
						fused, unfused := ops.QuantizedGatedLinear(xa, w, s, b, gs, bits), ops.SiLUMul(ops.QuantizedMatMul(xa, w, s, b, gs, bits))
						tg.Eval(t, fused, unfused)
						fb, err := fused.Bytes()
						if err != nil {
							t.Fatal(err)
						}
						ub, err := unfused.Bytes()
						if err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(fb, ub) {
							t.Fatalf("%s: the gated product differs from the matmul and silu_mul bit for bit", tg.Name)
						}
						// The CPU runs the gated kernel up to MatMulSmallM rows.
						if cs := tg.RT.LastStats().Counters; strings.HasPrefix(tg.Name, "cpu") && cs["quantized_matmul_silu_mul.fused"] != 1 {
							t.Fatalf("%s: counters %v, want the fused gated kernel", tg.Name, cs)
						}
						checkShape(t, fused.Spec(), dt, m, n)
						got := graph.DecodeFloat64s(dt, fb)
						for e := range got {
							r, j := e/n, e%n
							g, u := mm[r*2*n+j], mm[r*2*n+n+j]
							want := g / (1 + math.Exp(-g)) * u
							if d := math.Abs(got[e] - want); !(d <= 0.05*math.Abs(want)+0.02) {
								t.Fatalf("%s: element [%d, %d]: got %v, want %v", tg.Name, r, j, got[e], want)
							}
						}
					}
				})
			}
		}
	}
}

//go:build linux && amd64

package metal_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
)

// TestEmulatedFused checks the fused layer kernels against the CPU's:
// add_rms_norm (sum bit for bit), silu_mul, matmul_silu_mul, the norms
// fused into the GEMVs (add_rms_norm_matmul[_silu_mul], bit for bit the
// chain's kernels), and qk_norm_rope_kv_write with
// GQA, head sizes 64 and 128, a padding slot and both slot dtypes.
func TestEmulatedFused(t *testing.T) {
	emu, ref := emuRuntimes(t, kernelsWithPrefix("add_rms_norm_", "silu_mul_", "matmul_", "qk_norm_rope_kv_write_", "add_i32")...)
	for _, dt := range primitives.FloatDTypes {
		atol, rtol := tol(dt, 4)
		sameOnBoth(t, emu, ref, "add_rms_norm sum "+dt.String(), func() *graph.Array {
			r := loomtest.Rand(1)
			sum, _ := ops.AddRMSNorm(randomArray(r, dt, 5, 259), randomArray(r, dt, 5, 259), randomArray(r, dt, 259), 1e-6)
			return sum
		}, 0, 0)
		sameOnBoth(t, emu, ref, "add_rms_norm "+dt.String(), func() *graph.Array {
			r := loomtest.Rand(2)
			x := graph.FromFloat32sAs(dt, loomtest.Float32s(r, 3*1000, -2, 2), 3, 1000)
			res := graph.FromFloat32sAs(dt, loomtest.Float32s(r, 3*1000, -2, 2), 3, 1000)
			w := graph.FromFloat32sAs(dt, loomtest.Float32s(r, 1000, 0.5, 1.5), 1000)
			_, normed := ops.AddRMSNorm(x, res, w, 1e-6)
			return normed
		}, atol, rtol)
		sameOnBoth(t, emu, ref, "silu_mul "+dt.String(), func() *graph.Array {
			return ops.SiLUMul(randomArray(loomtest.Rand(3), dt, 3, 2*67))
		}, atol, rtol)
		// The gated GEMV (up to the emulator's 4 rows) and, past them, the
		// matmul and silu_mul; K is odd, N not a multiple of the group's 8.
		for _, rows := range []int{1, 3, 4, 5} {
			sameOnBoth(t, emu, ref, fmt.Sprintf("matmul_silu_mul %s rows %d", dt, rows), func() *graph.Array {
				r := loomtest.Rand(uint64(rows))
				x := graph.FromFloat32sAs(dt, loomtest.Float32s(r, rows*131, -1, 1), rows, 131)
				w := graph.FromFloat32sAs(dt, loomtest.Float32s(r, 2*13*131, -1, 1), 2*13, 131)
				return ops.GatedLinear(x, w)
			}, atol, rtol)
			want := 0
			if rows <= 4 {
				want = 1
			}
			if emu.LastStats().Counters["matmul_silu_mul.fused"] != want {
				t.Fatalf("matmul_silu_mul %s rows %d: counters %v", dt, rows, emu.LastStats().Counters)
			}
		}
	}
	// The norm fused into the GEMV and the gated GEMV: one row in one
	// dispatch, bit for bit add_rms_norm and matmul_gemv (or
	// matmul_silu_mul) of the stored norm on the emulated device, and
	// against the CPU; two rows through those kernels.
	for _, dt := range primitives.MatMulDTypes {
		for _, gated := range []bool{false, true} {
			for _, c := range []struct{ rows, k, n int }{{1, 259, 13}, {1, 1000, 9}, {2, 259, 13}} {
				what := fmt.Sprintf("add_rms_norm_linear %s gated %v rows %d K %d", dt, gated, c.rows, c.k)
				build := func(fused bool) func() *graph.Array {
					return func() *graph.Array {
						r := loomtest.Rand(uint64(c.k + c.rows))
						floats := func(lo, hi float32, shape ...int) *graph.Array {
							return graph.FromFloat32sAs(dt, loomtest.Float32s(r, graph.NumElements(shape), lo, hi), shape...)
						}
						x, d, nw := floats(-3, 3, c.rows, c.k), floats(-3, 3, c.rows, c.k), floats(0.5, 1.5, c.k)
						w := floats(-1, 1, map[bool]int{false: 1, true: 2}[gated]*c.n, c.k)
						if !fused {
							_, h := ops.AddRMSNorm(x, d, nw, 1e-6)
							if gated {
								return ops.GatedLinear(h, w)
							}
							return ops.MatMulTransposed(h, w, false, true)
						}
						if gated {
							_, out := ops.AddRMSNormGatedLinear(x, d, nw, w, 1e-6)
							return out
						}
						_, out := ops.AddRMSNormLinear(x, d, nw, w, 1e-6)
						return out
					}
				}
				got, chain := build(true)(), build(false)()
				if err := emu.Eval(got); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if want := map[bool]int{true: 1, false: 0}[c.rows == 1]; emu.LastStats().Counters["add_rms_norm_linear.fused"] != want {
					t.Fatalf("%s: counters %v", what, emu.LastStats().Counters)
				}
				if err := emu.Eval(chain); err != nil {
					t.Fatalf("%s: the chain: %v", what, err)
				}
				gb, err1 := got.Bytes()
				cb, err2 := chain.Bytes()
				if err1 != nil || err2 != nil || string(gb) != string(cb) {
					t.Fatalf("%s: differs from the chain's bits on the emulated device (%v, %v)", what, err1, err2)
				}
				atol, rtol := tol(dt, 4)
				sameOnBoth(t, emu, ref, what, build(true), atol, rtol)
			}
		}
	}
	for _, c := range []struct {
		tokens, heads, kvh, hs int
		slotDT                 graph.DType
	}{
		{1, 2, 1, 64, graph.Int32},
		{5, 4, 2, 128, graph.Int64},
		{3, 2, 2, 64, graph.Int32},
	} {
		for _, dt := range primitives.AttentionDTypes {
			what := fmt.Sprintf("qk_norm_rope_kv_write %s T%d H%d KV%d hs%d %s", dt, c.tokens, c.heads, c.kvh, c.hs, c.slotDT)
			build := func(out int) func() *graph.Array {
				return func() *graph.Array {
					r := loomtest.Rand(uint64(c.tokens))
					width := (c.heads + 2*c.kvh) * c.hs
					qkv := graph.FromFloat32sAs(dt, loomtest.Float32s(r, c.tokens*width, -2, 2), c.tokens, width)
					norm := func() *graph.Array {
						return graph.FromFloat32sAs(dt, loomtest.Float32s(r, c.hs, 0.5, 1.5), c.hs)
					}
					cache := func() *graph.Array {
						return graph.FromFloat32sAs(dt, loomtest.Float32s(r, 4*8*c.kvh*c.hs, -1, 1), 4, 8, c.kvh, c.hs)
					}
					pos := make([]int32, c.tokens)
					slots := make([]int64, c.tokens)
					for i := range pos {
						// Metal's rope angle is a float32 product, off by
						// about pos·6e-8 rad: small positions keep the
						// comparison with the CPU's float64 angles tight.
						pos[i], slots[i] = int32(r.IntN(100)), int64(3*i+1)
					}
					slots[c.tokens-1] = -1 // padding: skipped
					var slotArr *graph.Array
					if c.slotDT == graph.Int32 {
						s := make([]int32, len(slots))
						for i, v := range slots {
							s[i] = int32(v)
						}
						slotArr = graph.FromInt32s(s)
					} else {
						slotArr = graph.FromInt64s(slots)
					}
					q, k, v := ops.QKNormRoPEKVWrite(qkv, ops.QKNorm{Heads: c.heads, QNorm: norm(), KNorm: norm(), Eps: 1e-6, Theta: 1e6},
						graph.FromInt32s(pos), cache(), cache(), slotArr)
					return []*graph.Array{q, k, v}[out]
				}
			}
			atol, rtol := tol(dt, 4)
			sameOnBoth(t, emu, ref, what+" q", build(0), atol, rtol)
			sameOnBoth(t, emu, ref, what+" k_cache", build(1), atol, rtol)
			sameOnBoth(t, emu, ref, what+" v_cache", build(2), 0, 0)
		}
	}
}

// TestEmulatedFusedBadSlots checks that the fused KV write reports a slot
// past the cache and a slot written twice as kv_write does.
func TestEmulatedFusedBadSlots(t *testing.T) {
	emu, _ := emuRuntimes(t, kernelsWithPrefix("qk_norm_rope_kv_write_f32", "add_i32")...)
	for _, c := range []struct {
		slots []int32
		want  string
	}{
		{[]int32{3, 40}, "slot_mapping entry 1 is 40"},
		{[]int32{3, 5, 3}, "slot_mapping[2] = 3 is also slot_mapping[0]: a slot may be written once"},
	} {
		n := len(c.slots)
		// Computed on the device, so that only the kernel can see them.
		slots := ops.Add(graph.FromInt32s(c.slots), graph.Full(graph.Int32, 0, n))
		norm := graph.Full(graph.Float32, 1, 64)
		q, k, v := ops.QKNormRoPEKVWrite(graph.Full(graph.Float32, 1, n, 3*64), ops.QKNorm{Heads: 1, QNorm: norm, KNorm: norm, Eps: 1e-6, Theta: 1e4},
			graph.Full(graph.Int32, 2, n), graph.Full(graph.Float32, 0, 4, 8, 1, 64), graph.Full(graph.Float32, 0, 4, 8, 1, 64), slots)
		if err := emu.Eval(q, k, v); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("slots %v: got %v, want an error containing %q", c.slots, err, c.want)
		}
	}
}

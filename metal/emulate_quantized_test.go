//go:build linux && amd64

package metal_test

import (
	"fmt"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
)

// TestEmulatedQuantized runs the quantized matmul, gated matmul and
// dequantize kernels on random codes, scales and biases against the
// CPU's (whose gated product is the matmul and silu_mul).
func TestEmulatedQuantized(t *testing.T) {
	emu, ref := emuRuntimes(t, kernelsWithPrefix("qmatmul_", "dequantize_", "silu_mul_", "copy_strided_")...)
	for _, dt := range primitives.MatMulDTypes {
		for _, c := range []struct{ bits, gs, m, n, k int }{{4, 32, 1, 13, 64}, {8, 64, 3, 9, 128}, {4, 128, 2, 5, 256}, {8, 32, 1, 7, 96}, {4, 32, 6, 11, 64}, {8, 64, 9, 3, 128}} {
			quant := func(seed uint64) (x, w, s, b *graph.Array) {
				r := loomtest.Rand(seed)
				words := make([]uint32, c.n*c.k*c.bits/32)
				for i := range words {
					words[i] = r.Uint32()
				}
				g := c.k / c.gs
				return graph.FromFloat32sAs(dt, loomtest.Float32s(r, c.m*c.k, -1, 1), c.m, c.k),
					graph.FromUint32s(words, c.n, c.k*c.bits/32),
					graph.FromFloat32sAs(dt, loomtest.Float32s(r, c.n*g, 0.001, 0.01), c.n, g),
					graph.FromFloat32sAs(dt, loomtest.Float32s(r, c.n*g, -0.1, 0.1), c.n, g)
			}
			name := fmt.Sprintf("%s q%d g%d %dx%dx%d", dt, c.bits, c.gs, c.m, c.n, c.k)
			atol, rtol := tol(dt, 10)
			// The CPU's matmul rounds x to 16-bit fixed point per group
			// (cpu/quantized.go), the MSL kernel does not: the two agree
			// within that rounding, max|x|/65534 an element (here
			// 1.5e-5) times Σ|w| ≤ K·(255·0.01 + 0.1).
			qtol := float64(c.k) * 2.65 / 65534
			sameOnBoth(t, emu, ref, "qmatmul "+name, func() *graph.Array {
				x, w, s, b := quant(uint64(c.k))
				return ops.QuantizedMatMul(x, w, s, b, c.gs, c.bits)
			}, max(atol, qtol), rtol)
			if c.n > 1 {
				sameOnBoth(t, emu, ref, "qmatmul_silu_mul "+name, func() *graph.Array {
					x, w, s, b := quant(uint64(c.k))
					h := c.n / 2 * 2 // the stacked gate and up rows
					rows := func(a *graph.Array) *graph.Array { return ops.Slice(a, []int{0, 0}, []int{h, a.Shape()[1]}) }
					return ops.QuantizedGatedLinear(x, rows(w), rows(s), rows(b), c.gs, c.bits)
				}, max(atol, qtol), rtol)
			}
			sameOnBoth(t, emu, ref, "dequantize "+name, func() *graph.Array {
				_, w, s, b := quant(uint64(c.k))
				return ops.Dequantize(w, s, b, c.gs, c.bits)
			}, atol, rtol)
		}
	}
}

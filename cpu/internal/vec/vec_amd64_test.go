package vec

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/loomrt/loom/graph"
)

// TestAssemblyAgrees compares the assembly with the Go routines on the same
// random data, at unaligned offsets. Dot products and axpys may differ
// only by the fused rounding: within twice dotBound for a dot product, and
// 2u·(|y|+|α·x|) per element for an axpy (one rounding of the product
// saved, one of the sum changed).
func TestAssemblyAgrees(t *testing.T) {
	if !hasAssembly {
		t.Skip("this CPU has no AVX2+FMA+F16C: only the Go routines run")
	}
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range sizes {
		for _, off := range []int{0, 1, 3} {
			a, x := randF32(r, n+off)[off:], randF32(r, n+off)[off:]
			ab, af := toBits(a, graph.F32ToBF16), toBits(a, graph.F32ToF16)
			for _, c := range []struct {
				name     string
				asm, gov float32
				w        []float64
			}{
				{"DotF32", dotF32AVX2(a, x), dotF32Go(a, x), f64s(a)},
				{"DotBF16", dotBF16AVX2(ab, x), dotBF16Go(ab, x), roundedTo(a, graph.F32ToBF16, graph.BF16ToF32)},
				{"DotF16", dotF16AVX2(af, x), dotF16Go(af, x), roundedTo(a, graph.F32ToF16, graph.F16ToF32)},
				{"DotBF16Packed", dotBF16PackedAVX2(ab, packed(x)), dotBF16PackedGo(ab, packed(x)), roundedTo(a, graph.F32ToBF16, graph.BF16ToF32)},
			} {
				if d := math.Abs(float64(c.asm) - float64(c.gov)); d > 2*dotBound(x, c.w) {
					t.Errorf("%s n=%d off=%d: assembly %v, Go %v: differ by %g, bound %g", c.name, n, off, c.asm, c.gov, d, 2*dotBound(x, c.w))
				}
			}
			const alpha = 0.7
			y0 := randF32(r, n)
			for _, c := range []struct {
				name     string
				asm, gov func(y []float32)
				x        []float64 // the x the routine sees
			}{
				{"AxpyF32", func(y []float32) { axpyF32AVX2(y, alpha, a) }, func(y []float32) { axpyF32Go(y, alpha, a) }, f64s(a)},
				{"AxpyBF16", func(y []float32) { axpyBF16AVX2(y, alpha, ab) }, func(y []float32) { axpyBF16Go(y, alpha, ab) }, roundedTo(a, graph.F32ToBF16, graph.BF16ToF32)},
				{"AxpyF16", func(y []float32) { axpyF16AVX2(y, alpha, af) }, func(y []float32) { axpyF16Go(y, alpha, af) }, roundedTo(a, graph.F32ToF16, graph.F16ToF32)},
			} {
				ya, yg := append([]float32(nil), y0...), append([]float32(nil), y0...)
				c.asm(ya)
				c.gov(yg)
				for i := range ya {
					bound := 2 * unitRoundoff * (math.Abs(float64(y0[i])) + math.Abs(alpha*c.x[i]))
					if d := math.Abs(float64(ya[i]) - float64(yg[i])); d > bound {
						t.Fatalf("%s n=%d off=%d element %d: assembly %v, Go %v: differ by %g, bound %g", c.name, n, off, i, ya[i], yg[i], d, bound)
					}
				}
			}
			ya, yg := append([]float32(nil), a...), append([]float32(nil), a...)
			scaleF32AVX2(ya, 1.3)
			scaleF32Go(yg, 1.3)
			for i := range ya {
				if math.Float32bits(ya[i]) != math.Float32bits(yg[i]) {
					t.Fatalf("ScaleF32 n=%d off=%d element %d: assembly %v, Go %v", n, off, i, ya[i], yg[i])
				}
			}
		}
	}
}

// exactProductInputs returns a row of values with 8 significant bits and
// one with 16, at varied magnitudes: every product is exact in float32, so
// fused and unfused multiply-adds round the same way.
func exactProductInputs(r *rand.Rand, n int) (a, x []float32) {
	a, x = make([]float32, n), make([]float32, n)
	for i := range a {
		a[i] = float32(math.Ldexp(float64(r.IntN(256)-128), r.IntN(20)-10))
		x[i] = float32(math.Ldexp(float64(r.IntN(1<<16)-1<<15), r.IntN(20)-10))
	}
	return a, x
}

// TestAssemblySameOrder checks that the assembly accumulates in the Go
// versions' order: with exact products, only the order of the additions
// can make the results differ, and they must agree bit for bit.
func TestAssemblySameOrder(t *testing.T) {
	if !hasAssembly {
		t.Skip("this CPU has no AVX2+FMA+F16C: only the Go routines run")
	}
	r := rand.New(rand.NewPCG(9, 10))
	for trial := range 20 * len(sizes) { // several draws per size: a wrong order shows only on some
		n := sizes[trial%len(sizes)]
		a, x := exactProductInputs(r, n)
		ab := toBits(a, graph.F32ToBF16) // 8 significant bits: exact in bfloat16 and float16
		af := toBits(a, graph.F32ToF16)
		for _, c := range []struct {
			name     string
			asm, gov float32
		}{
			{"DotF32", dotF32AVX2(x, a), dotF32Go(x, a)},
			{"DotBF16", dotBF16AVX2(ab, x), dotBF16Go(ab, x)},
			{"DotF16", dotF16AVX2(af, x), dotF16Go(af, x)},
			{"DotBF16Packed", dotBF16PackedAVX2(ab, packed(x)), dotBF16PackedGo(ab, packed(x))},
		} {
			if math.Float32bits(c.asm) != math.Float32bits(c.gov) {
				t.Errorf("%s n=%d: assembly %v, Go %v", c.name, n, c.asm, c.gov)
			}
		}
		ya, yg := append([]float32(nil), x...), append([]float32(nil), x...)
		axpyBF16AVX2(ya, 0.25, ab)
		axpyBF16Go(yg, 0.25, ab)
		axpyF16AVX2(ya, -2, af)
		axpyF16Go(yg, -2, af)
		axpyF32AVX2(ya, 0.5, a)
		axpyF32Go(yg, 0.5, a)
		for i := range ya {
			if math.Float32bits(ya[i]) != math.Float32bits(yg[i]) {
				t.Fatalf("axpy n=%d element %d: assembly %v, Go %v", n, i, ya[i], yg[i])
			}
		}
	}
}

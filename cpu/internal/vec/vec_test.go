package vec

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/loomrt/loom/graph"
)

// sizes are the awkward lengths every routine is tried on: empty, below,
// at and around the vector width and the 32-lane dot product step.
var sizes = []int{0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 1023, 1024, 1025}

// eachImpl runs f once with the Go routines and once with the assembly
// (skipped where the CPU has none), restoring the selection afterwards.
func eachImpl(t *testing.T, f func(t *testing.T)) {
	was := Assembly()
	defer SetAssembly(was)
	for _, asm := range []bool{false, true} {
		name := map[bool]string{false: "go", true: "asm"}[asm]
		t.Run(name, func(t *testing.T) {
			if asm && asmImpls == nil {
				t.Skip("this CPU has no AVX2+FMA+F16C: only the Go routines run")
			}
			SetAssembly(asm)
			f(t)
		})
	}
}

func randF32(r *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = 2*r.Float32() - 1
	}
	return out
}

// toBits rounds values to a 16-bit float format.
func toBits(v []float32, round func(float32) uint16) []uint16 {
	out := make([]uint16, len(v))
	for i, f := range v {
		out[i] = round(f)
	}
	return out
}

// unitRoundoff is float32's 2^-24.
const unitRoundoff = 1.0 / (1 << 24)

// dotDepth is the most roundings any product goes through in DotF32's
// order: n/32 steps in its lane, 3 more steps of 8, 5 reduction additions,
// up to 7 tail additions, the final addition and the product itself.
func dotDepth(n int) int { return n/32 + 3 + 5 + 7 + 1 + 1 }

// dotBound bounds |computed − exact| for a float32 dot product computed
// with DotF32's order: depth·u·Σ|a·b| (to first order; the 1% covers the
// rest). The assembly and the Go versions each lie within it of the exact
// sum, so within twice it of each other.
func dotBound(a []float32, b []float64) float64 {
	abs := 0.0
	for i := range a {
		abs += math.Abs(float64(a[i]) * b[i])
	}
	return 1.01 * float64(dotDepth(len(a))) * unitRoundoff * abs
}

func f64s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, f := range v {
		out[i] = float64(f)
	}
	return out
}

// TestDot checks the three dot products against a float64 reference within
// dotBound, on both implementations.
func TestDot(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		for _, n := range sizes {
			x := randF32(r, n)
			a := randF32(r, n)
			for _, c := range []struct {
				name string
				dot  func() float32
				w    []float64 // the row as the routine sees it
			}{
				{"DotF32", func() float32 { return DotF32(a, x) }, f64s(a)},
				{"DotBF16", func() float32 { return DotBF16(toBits(a, graph.F32ToBF16), x) }, roundedTo(a, graph.F32ToBF16, graph.BF16ToF32)},
				{"DotF16", func() float32 { return DotF16(toBits(a, graph.F32ToF16), x) }, roundedTo(a, graph.F32ToF16, graph.F16ToF32)},
			} {
				want := 0.0
				for i := range x {
					want += c.w[i] * float64(x[i])
				}
				got := float64(c.dot())
				if d := math.Abs(got - want); d > dotBound(x, c.w) {
					t.Errorf("%s n=%d: %v, want %v (error %g above bound %g)", c.name, n, got, want, d, dotBound(x, c.w))
				}
			}
		}
	})
}

func roundedTo(v []float32, round func(float32) uint16, widen func(uint16) float32) []float64 {
	out := make([]float64, len(v))
	for i, f := range v {
		out[i] = float64(widen(round(f)))
	}
	return out
}

// TestDotSpecial checks that Inf and NaN propagate through every lane and
// the tail.
func TestDotSpecial(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		for _, n := range []int{1, 9, 33, 100} {
			for _, at := range []int{0, n / 2, n - 1} {
				a, x := make([]float32, n), make([]float32, n)
				for i := range x {
					a[i], x[i] = 1, 0.5
				}
				a[at] = float32(math.Inf(1))
				if got := DotF32(a, x); !math.IsInf(float64(got), 1) {
					t.Errorf("n=%d, +Inf at %d: DotF32 = %v, want +Inf", n, at, got)
				}
				if got := DotBF16(toBits(a, graph.F32ToBF16), x); !math.IsInf(float64(got), 1) {
					t.Errorf("n=%d, +Inf at %d: DotBF16 = %v, want +Inf", n, at, got)
				}
				a[at] = float32(math.NaN())
				if got := DotF16(toBits(a, graph.F32ToF16), x); got == got {
					t.Errorf("n=%d, NaN at %d: DotF16 = %v, want NaN", n, at, got)
				}
			}
		}
	})
}

// TestAxpyScale checks AxpyF32/BF16/F16 with an α whose products are exact
// (so fused and unfused multiply-adds agree) and ScaleF32 exactly.
func TestAxpyScale(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, n := range sizes {
			x, y0 := randF32(r, n), randF32(r, n)
			const alpha = -0.5
			for _, c := range []struct {
				name string
				axpy func(y []float32)
				x    []float64
			}{
				{"AxpyF32", func(y []float32) { AxpyF32(y, alpha, x) }, f64s(x)},
				{"AxpyBF16", func(y []float32) { AxpyBF16(y, alpha, toBits(x, graph.F32ToBF16)) }, roundedTo(x, graph.F32ToBF16, graph.BF16ToF32)},
				{"AxpyF16", func(y []float32) { AxpyF16(y, alpha, toBits(x, graph.F32ToF16)) }, roundedTo(x, graph.F32ToF16, graph.F16ToF32)},
			} {
				y := append([]float32(nil), y0...)
				c.axpy(y)
				for i := range y {
					if want := y0[i] + float32(alpha*c.x[i]); y[i] != want {
						t.Fatalf("n=%d: %s y[%d] = %v, want %v", n, c.name, i, y[i], want)
					}
				}
			}
			y := append([]float32(nil), y0...)
			ScaleF32(y, -3)
			for i := range y {
				if want := -3 * y0[i]; y[i] != want {
					t.Fatalf("n=%d: ScaleF32 y[%d] = %v, want %v", n, i, y[i], want)
				}
			}
		}
	})
}

// TestAssemblyAgrees compares the assembly with the Go routines on the same
// random data, at unaligned offsets. Dot products and axpys may differ
// only by the fused rounding: within twice dotBound for a dot product, and
// 2u·(|y|+|α·x|) per element for an axpy (one rounding of the product
// saved, one of the sum changed).
func TestAssemblyAgrees(t *testing.T) {
	if asmImpls == nil {
		t.Skip("this CPU has no AVX2+FMA+F16C: only the Go routines run")
	}
	as := *asmImpls
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
				{"DotF32", as.dotF32(a, x), dotF32Go(a, x), f64s(a)},
				{"DotBF16", as.dotBF16(ab, x), dotBF16Go(ab, x), roundedTo(a, graph.F32ToBF16, graph.BF16ToF32)},
				{"DotF16", as.dotF16(af, x), dotF16Go(af, x), roundedTo(a, graph.F32ToF16, graph.F16ToF32)},
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
				{"AxpyF32", func(y []float32) { as.axpyF32(y, alpha, a) }, func(y []float32) { axpyF32Go(y, alpha, a) }, f64s(a)},
				{"AxpyBF16", func(y []float32) { as.axpyBF16(y, alpha, ab) }, func(y []float32) { axpyBF16Go(y, alpha, ab) }, roundedTo(a, graph.F32ToBF16, graph.BF16ToF32)},
				{"AxpyF16", func(y []float32) { as.axpyF16(y, alpha, af) }, func(y []float32) { axpyF16Go(y, alpha, af) }, roundedTo(a, graph.F32ToF16, graph.F16ToF32)},
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
			as.scaleF32(ya, 1.3)
			scaleF32Go(yg, 1.3)
			for i := range ya {
				if math.Float32bits(ya[i]) != math.Float32bits(yg[i]) {
					t.Fatalf("ScaleF32 n=%d off=%d element %d: assembly %v, Go %v", n, off, i, ya[i], yg[i])
				}
			}
		}
	}
}

// TestWidenExhaustive checks both widenings against graph's scalar
// conversions for every 16-bit pattern, NaNs and subnormals included.
func TestWidenExhaustive(t *testing.T) {
	src := make([]uint16, 1<<16)
	for i := range src {
		src[i] = uint16(i)
	}
	dst := make([]float32, len(src))
	eachImpl(t, func(t *testing.T) {
		for _, c := range []struct {
			name   string
			vec    func([]float32, []uint16)
			scalar func(uint16) float32
		}{
			{"BF16ToF32", BF16ToF32, graph.BF16ToF32},
			{"F16ToF32", F16ToF32, graph.F16ToF32},
		} {
			// Odd offsets and lengths exercise the unaligned head and the tail.
			for _, span := range [][2]int{{0, len(src)}, {3, len(src) - 5}} {
				clear(dst)
				c.vec(dst[span[0]:], src[span[0]:span[1]])
				for i := span[0]; i < span[1]; i++ {
					if got, want := math.Float32bits(dst[i]), math.Float32bits(c.scalar(src[i])); got != want {
						t.Fatalf("%s(%#04x) = %#08x, want %#08x", c.name, src[i], got, want)
					}
				}
			}
		}
	})
}

// narrowInputs returns float32 bit patterns that reach every rounding case
// of a conversion to 16 bits: every upper half (sign, exponent, top
// mantissa bits) combined with lower halves at, around and between the
// rounding points of normal and subnormal results, plus random patterns.
func narrowInputs() []float32 {
	lows := []uint32{0, 0xffff, 0x5555, 0xaaaa}
	for b := range 16 {
		lows = append(lows, 1<<b, 1<<b-1, 1<<b+1)
	}
	out := make([]float32, 0, 1<<16*len(lows)+1<<16)
	for hi := range uint32(1 << 16) {
		for _, lo := range lows {
			out = append(out, math.Float32frombits(hi<<16|lo&0xffff))
		}
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 1 << 16 {
		out = append(out, math.Float32frombits(r.Uint32()))
	}
	return out
}

// TestNarrow checks both roundings against graph's scalar conversions on
// narrowInputs, NaNs, overflow and subnormals included.
func TestNarrow(t *testing.T) {
	src := narrowInputs()
	dst := make([]uint16, len(src))
	eachImpl(t, func(t *testing.T) {
		for _, c := range []struct {
			name   string
			vec    func([]uint16, []float32)
			scalar func(float32) uint16
		}{
			{"F32ToBF16", F32ToBF16, graph.F32ToBF16},
			{"F32ToF16", F32ToF16, graph.F32ToF16},
		} {
			for _, span := range [][2]int{{0, len(src)}, {5, len(src) - 3}} {
				clear(dst)
				c.vec(dst[span[0]:], src[span[0]:span[1]])
				for i := span[0]; i < span[1]; i++ {
					if want := c.scalar(src[i]); dst[i] != want {
						t.Fatalf("%s(%#08x) = %#04x, want %#04x", c.name, math.Float32bits(src[i]), dst[i], want)
					}
				}
			}
		}
	})
}

func TestLengthMismatchPanics(t *testing.T) {
	f32, u16 := make([]float32, 3), make([]uint16, 4)
	for name, f := range map[string]func(){
		"DotF32":    func() { DotF32(f32, make([]float32, 4)) },
		"DotBF16":   func() { DotBF16(u16, f32) },
		"DotF16":    func() { DotF16(u16, f32) },
		"AxpyF32":   func() { AxpyF32(f32, 1, make([]float32, 4)) },
		"AxpyBF16":  func() { AxpyBF16(f32, 1, u16) },
		"AxpyF16":   func() { AxpyF16(f32, 1, u16) },
		"BF16ToF32": func() { BF16ToF32(f32, u16) },
		"F16ToF32":  func() { F16ToF32(f32, u16) },
		"F32ToBF16": func() { F32ToBF16(make([]uint16, 2), f32) },
		"F32ToF16":  func() { F32ToF16(make([]uint16, 2), f32) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s with mismatched lengths did not panic", name)
				}
			}()
			f()
		}()
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
	if asmImpls == nil {
		t.Skip("this CPU has no AVX2+FMA+F16C: only the Go routines run")
	}
	as := *asmImpls
	r := rand.New(rand.NewPCG(9, 10))
	for _, n := range sizes {
		a, x := exactProductInputs(r, n)
		ab := toBits(a, graph.F32ToBF16) // 8 significant bits: exact in bfloat16 and float16
		af := toBits(a, graph.F32ToF16)
		for _, c := range []struct {
			name     string
			asm, gov float32
		}{
			{"DotF32", as.dotF32(x, a), dotF32Go(x, a)},
			{"DotBF16", as.dotBF16(ab, x), dotBF16Go(ab, x)},
			{"DotF16", as.dotF16(af, x), dotF16Go(af, x)},
		} {
			if math.Float32bits(c.asm) != math.Float32bits(c.gov) {
				t.Errorf("%s n=%d: assembly %v, Go %v", c.name, n, c.asm, c.gov)
			}
		}
		ya, yg := append([]float32(nil), x...), append([]float32(nil), x...)
		as.axpyBF16(ya, 0.25, ab)
		axpyBF16Go(yg, 0.25, ab)
		as.axpyF16(ya, -2, af)
		axpyF16Go(yg, -2, af)
		as.axpyF32(ya, 0.5, a)
		axpyF32Go(yg, 0.5, a)
		for i := range ya {
			if math.Float32bits(ya[i]) != math.Float32bits(yg[i]) {
				t.Fatalf("axpy n=%d element %d: assembly %v, Go %v", n, i, ya[i], yg[i])
			}
		}
	}
}

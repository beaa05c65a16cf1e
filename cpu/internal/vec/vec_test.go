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

func randF32(r *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = 2*r.Float32() - 1
	}
	return out
}

// unitRoundoff is float32's 2^-24.
const unitRoundoff = 1.0 / (1 << 24)

// dotBound bounds the rounding error of a float32 dot product of n terms
// accumulated the way DotF32 does (n/32 steps per lane, 5 steps of
// reduction, at most 7 tail terms), with a margin: (n/8 + 16)·u·Σ|a·b|.
func dotBound(a, b []float32) float64 {
	abs := 0.0
	for i := range a {
		abs += math.Abs(float64(a[i]) * float64(b[i]))
	}
	return float64(len(a)/8+16) * unitRoundoff * abs
}

func TestDotF32(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range sizes {
		a, b := randF32(r, n), randF32(r, n)
		want := 0.0
		for i := range a {
			want += float64(a[i]) * float64(b[i])
		}
		got := float64(DotF32(a, b))
		if d := math.Abs(got - want); d > dotBound(a, b) {
			t.Errorf("n=%d: DotF32 = %v, want %v (error %g above bound %g)", n, got, want, d, dotBound(a, b))
		}
	}
}

func TestAxpyScaleF32(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range sizes {
		x, y := randF32(r, n), randF32(r, n)
		y0 := append([]float32(nil), y...)
		const alpha = 0.75 // exact products: α·x needs no rounding
		AxpyF32(y, alpha, x)
		for i := range y {
			if want := y0[i] + alpha*x[i]; y[i] != want {
				t.Fatalf("n=%d: AxpyF32 y[%d] = %v, want %v", n, i, y[i], want)
			}
		}
		copy(y, y0)
		ScaleF32(y, -3)
		for i := range y {
			if want := -3 * y0[i]; y[i] != want {
				t.Fatalf("n=%d: ScaleF32 y[%d] = %v, want %v", n, i, y[i], want)
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
	for _, c := range []struct {
		name  string
		vec   func([]float32, []uint16)
		scale func(uint16) float32
	}{
		{"BF16ToF32", BF16ToF32, graph.BF16ToF32},
		{"F16ToF32", F16ToF32, graph.F16ToF32},
	} {
		// Odd offsets and lengths exercise the unaligned head and the tail.
		for _, span := range [][2]int{{0, len(src)}, {3, len(src) - 5}} {
			clear(dst)
			c.vec(dst[span[0]:], src[span[0]:span[1]])
			for i := span[0]; i < span[1]; i++ {
				if got, want := math.Float32bits(dst[i]), math.Float32bits(c.scale(src[i])); got != want {
					t.Fatalf("%s(%#04x) = %#08x, want %#08x", c.name, src[i], got, want)
				}
			}
		}
	}
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

func TestNarrow(t *testing.T) {
	src := narrowInputs()
	dst := make([]uint16, len(src))
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
}

func TestLengthMismatchPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"DotF32":    func() { DotF32(make([]float32, 3), make([]float32, 4)) },
		"AxpyF32":   func() { AxpyF32(make([]float32, 3), 1, make([]float32, 4)) },
		"BF16ToF32": func() { BF16ToF32(make([]float32, 3), make([]uint16, 4)) },
		"F16ToF32":  func() { F16ToF32(make([]float32, 3), make([]uint16, 4)) },
		"F32ToBF16": func() { F32ToBF16(make([]uint16, 3), make([]float32, 4)) },
		"F32ToF16":  func() { F32ToF16(make([]uint16, 3), make([]float32, 4)) },
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

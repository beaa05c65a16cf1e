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

// ropeRef rotates x [T, H, D] by the half-rotation form in float64, the
// inverse frequencies scaled by scale (nil: none).
func ropeRef(x []float64, pos []int32, h, d int, theta float64, scale func(float64) float64) []float64 {
	out := make([]float64, len(x))
	half := d / 2
	for t, p := range pos {
		for hd := range h {
			row := x[(t*h+hd)*d : (t*h+hd+1)*d]
			o := out[(t*h+hd)*d : (t*h+hd+1)*d]
			for i := range half {
				f := math.Exp(-float64(2*i) / float64(d) * math.Log(theta))
				if scale != nil {
					f = scale(f)
				}
				angle := float64(p) * f
				c, s := math.Cos(angle), math.Sin(angle)
				o[i] = row[i]*c - row[i+half]*s
				o[i+half] = row[i+half]*c + row[i]*s
			}
		}
	}
	return out
}

func TestRoPE(t *testing.T) {
	cases := []struct {
		t, h, d int
		theta   float32
	}{
		{1, 1, 2, 10000}, {3, 2, 8, 10000}, {5, 4, 128, 1e6}, {2, 3, 6, 10000},
		{3, 1, 600, 10000}, // D/2 above the kernel's chunk
		{0, 4, 8, 10000}, {1, 16, 128, 1e6}, {70, 8, 64, 1e6},
	}
	for ci, c := range cases {
		for _, dt := range floatDTypes {
			t.Run(fmt.Sprintf("%s/T%d_H%d_D%d/theta%g", dt, c.t, c.h, c.d, c.theta), func(t *testing.T) {
				fx, x := randFloats(uint64(ci), dt, c.t*c.h*c.d, -2, 2)
				r := loomtest.Rand(uint64(ci))
				pos := make([]int32, c.t)
				for i := range pos {
					pos[i] = int32(r.IntN(10000))
				}
				if c.t >= 3 {
					pos[0], pos[1], pos[2] = 0, 131071, -5
				}
				want := inDType(dt, ropeRef(x, pos, c.h, c.d, float64(c.theta), nil))
				spec, got := evalFloat64s(t, func() *graph.Array {
					return ops.RoPE(floats(dt, fx, c.t, c.h, c.d), graph.FromInt32s(pos, c.t), c.theta)
				})
				checkShape(t, spec, dt, c.t, c.h, c.d)
				atol, rtol := loomtest.Tolerance(dt)
				loomtest.Close(t, "result", got, want, atol, rtol)
			})
		}
	}
}

// llama3Scale is transformers' _compute_llama3_parameters for one inverse
// frequency f, written from its source: the reference for RoPEScaled.
func llama3Scale(factor, low, high, orig float64) func(float64) float64 {
	return func(f float64) float64 {
		lowWavelen, highWavelen := orig/low, orig/high
		wavelen := 2 * math.Pi / f
		if wavelen < highWavelen {
			return f
		}
		if wavelen > lowWavelen {
			return f / factor
		}
		smooth := (orig/wavelen - low) / (high - low)
		return (1-smooth)*f/factor + smooth*f
	}
}

// TestRoPEScaled checks Llama 3.1's scaled frequencies against the float64
// reference, with head sizes and an original context that put pairs in all
// three regimes (kept, blended, divided).
func TestRoPEScaled(t *testing.T) {
	cases := []struct {
		t, h, d int
		theta   float32
		s       primitives.RoPEScaling
	}{
		{4, 2, 64, 10000, primitives.RoPEScaling{Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 64}},
		{3, 3, 128, 500000, primitives.RoPEScaling{Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}},
		{1, 1, 2, 10000, primitives.RoPEScaling{Factor: 2, LowFreqFactor: 1, HighFreqFactor: 2, OriginalMaxPositions: 4}},
	}
	for ci, c := range cases {
		for _, dt := range floatDTypes {
			t.Run(fmt.Sprintf("%s/T%d_H%d_D%d", dt, c.t, c.h, c.d), func(t *testing.T) {
				fx, x := randFloats(uint64(ci), dt, c.t*c.h*c.d, -2, 2)
				pos := make([]int32, c.t)
				r := loomtest.Rand(uint64(ci))
				for i := range pos {
					pos[i] = int32(r.IntN(20000))
				}
				s := c.s
				want := inDType(dt, ropeRef(x, pos, c.h, c.d, float64(c.theta), llama3Scale(float64(s.Factor), float64(s.LowFreqFactor), float64(s.HighFreqFactor), float64(s.OriginalMaxPositions))))
				spec, got := evalFloat64s(t, func() *graph.Array {
					return ops.RoPEScaled(floats(dt, fx, c.t, c.h, c.d), graph.FromInt32s(pos, c.t), c.theta, s)
				})
				checkShape(t, spec, dt, c.t, c.h, c.d)
				atol, rtol := loomtest.Tolerance(dt)
				loomtest.Close(t, "result", got, want, atol, rtol)
			})
		}
	}
}

package cpu

import (
	"math"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// ropeKernel rotates pairs (i, i+D/2) of every head of every token. The
// angles are computed in float64 (pos·Theta^(−2i/D) loses precision in
// float32 at long positions), once per token and shared by its heads; the
// rotation itself is float32.
func ropeKernel(dt graph.DType) Kernel {
	return func(c *Call) error {
		p := c.Params.(*primitives.RoPEParams)
		h, d := int(p.H), int(p.D)
		half := d / 2
		x, pos, out := c.Args[0].Bytes, c.I32(1), c.Args[2].Bytes
		inv := ropeInvFreqs(float64(p.Theta), d)
		if sc := p.Scaling(); sc.Factor != 0 {
			for i, f := range inv {
				inv[i] = sc.Scale(f)
			}
		}
		c.Parallel(int(p.T), max(1, elemGrain/max(h*d, 1)), func(lo, hi int) {
			cos, sin := make([]float32, half), make([]float32, half)
			tmp := getFloats(4 * chunk)
			defer putFloats(tmp)
			t1, t2, z1, z2 := (*tmp)[:chunk], (*tmp)[chunk:2*chunk], (*tmp)[2*chunk:3*chunk], (*tmp)[3*chunk:]
			for t := lo; t < hi; t++ {
				ropeCosSin(cos, sin, float64(pos[t]), inv)
				for head := range h {
					for i0 := 0; i0 < half; i0 += chunk {
						m := min(chunk, half-i0)
						a := (t*h+head)*d + i0
						b := a + half
						x1 := f32In(dt, x, a, 1, m, t1)
						x2 := f32In(dt, x, b, 1, m, t2)
						o1 := f32Out(dt, out, a, 1, m, z1)
						o2 := f32Out(dt, out, b, 1, m, z2)
						ropeRotate(o1, o2, x1, x2, cos[i0:i0+m], sin[i0:i0+m])
						f32Store(dt, out, a, 1, o1)
						f32Store(dt, out, b, 1, o2)
					}
				}
			}
		})
		return nil
	}
}

// ropeInvFreqs returns theta^(−2i/d) for i < d/2, by a running product
// restarted with one Pow every chunk entries.
func ropeInvFreqs(theta float64, d int) []float64 {
	inv := make([]float64, d/2)
	step := math.Pow(theta, -2/float64(d))
	for i := range inv {
		if i%chunk == 0 {
			inv[i] = math.Pow(theta, -2*float64(i)/float64(d))
		} else {
			inv[i] = inv[i-1] * step
		}
	}
	return inv
}

// ropeCosSin sets cos[i] and sin[i] to those of the angle pos·inv[i],
// computed in float64 and rounded to float32.
func ropeCosSin(cos, sin []float32, pos float64, inv []float64) {
	for i, f := range inv {
		sn, cs := math.Sincos(pos * f)
		cos[i], sin[i] = float32(cs), float32(sn)
	}
}

// ropeRotate rotates the pairs (x1[i], x2[i]) by the angles of cos and sin
// into (o1[i], o2[i]), in float32. The outputs may be the inputs.
func ropeRotate(o1, o2, x1, x2, cos, sin []float32) {
	for i := range o1 {
		u, v := x1[i], x2[i]
		o1[i] = u*cos[i] - v*sin[i]
		o2[i] = v*cos[i] + u*sin[i]
	}
}

func init() {
	for _, dt := range primitives.FloatDTypes {
		mustRegister(primitives.RoPEKernel(dt), ropeKernel(dt))
	}
}

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
		theta := float64(p.Theta)
		c.Parallel(int(p.T), max(1, elemGrain/max(h*d, 1)), func(lo, hi int) {
			var inv [chunk]float64
			var cos, sin [chunk]float32
			tmp := getFloats(4 * chunk)
			defer putFloats(tmp)
			t1, t2, z1, z2 := (*tmp)[:chunk], (*tmp)[chunk:2*chunk], (*tmp)[2*chunk:3*chunk], (*tmp)[3*chunk:]
			for i0 := 0; i0 < half; i0 += chunk {
				m := min(chunk, half-i0)
				// theta^(−2i/D) by a running product: one Pow per chunk.
				step := math.Pow(theta, -2/float64(d))
				inv[0] = math.Pow(theta, -2*float64(i0)/float64(d))
				for i := 1; i < m; i++ {
					inv[i] = inv[i-1] * step
				}
				for t := lo; t < hi; t++ {
					ps := float64(pos[t])
					for i := range m {
						sn, cs := math.Sincos(ps * inv[i])
						cos[i], sin[i] = float32(cs), float32(sn)
					}
					for head := range h {
						a := (t*h+head)*d + i0
						b := a + half
						x1 := f32In(dt, x, a, 1, m, t1)
						x2 := f32In(dt, x, b, 1, m, t2)
						o1 := f32Out(dt, out, a, 1, m, z1)
						o2 := f32Out(dt, out, b, 1, m, z2)
						for i := range o1 {
							u, v := x1[i], x2[i]
							o1[i] = u*cos[i] - v*sin[i]
							o2[i] = v*cos[i] + u*sin[i]
						}
						f32Store(dt, out, a, 1, o1)
						f32Store(dt, out, b, 1, o2)
					}
				}
			}
		})
		return nil
	}
}

func init() {
	for _, dt := range primitives.FloatDTypes {
		mustRegister("rope_"+dt.Short(), ropeKernel(dt))
	}
}

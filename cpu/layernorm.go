package cpu

import (
	"math"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// layerNormKernel normalises rows of D elements: a pass for the mean and
// one for the variance, in float64, then the output in float32.
func layerNormKernel(dt graph.DType) Kernel {
	return func(c *Call) error {
		p := c.Params.(*primitives.RMSNormParams)
		d := int(p.D)
		x, w, b, out := c.Args[0].Bytes, c.Args[1].Bytes, c.Args[2].Bytes, c.Args[3].Bytes
		c.Parallel(int(p.Rows), max(1, elemGrain/max(d, 1)), func(lo, hi int) {
			tmp := getFloats(4 * chunk)
			defer putFloats(tmp)
			tx, tw, tb, tz := (*tmp)[:chunk], (*tmp)[chunk:2*chunk], (*tmp)[2*chunk:3*chunk], (*tmp)[3*chunk:]
			for r := lo; r < hi; r++ {
				first := r * d
				sum := 0.0
				for k := 0; k < d; k += chunk {
					for _, v := range f32In(dt, x, first+k, 1, min(chunk, d-k), tx) {
						sum += float64(v)
					}
				}
				mean := sum / float64(d)
				ss := 0.0
				for k := 0; k < d; k += chunk {
					for _, v := range f32In(dt, x, first+k, 1, min(chunk, d-k), tx) {
						ss += (float64(v) - mean) * (float64(v) - mean)
					}
				}
				m, scale := float32(mean), float32(1/math.Sqrt(ss/float64(d)+float64(p.Eps)))
				for k := 0; k < d; k += chunk {
					n := min(chunk, d-k)
					xs, ws, bs := f32In(dt, x, first+k, 1, n, tx), f32In(dt, w, k, 1, n, tw), f32In(dt, b, k, 1, n, tb)
					z := f32Out(dt, out, first+k, 1, n, tz)
					for i := range z {
						z[i] = float32(float32((xs[i]-m)*scale)*ws[i]) + bs[i]
					}
					f32Store(dt, out, first+k, 1, z)
				}
			}
		})
		return nil
	}
}

func init() {
	for _, dt := range primitives.FloatDTypes {
		mustRegister(primitives.LayerNormKernel(dt), layerNormKernel(dt))
	}
}

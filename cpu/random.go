package cpu

import (
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// randomKernel draws element i from Philox4x32 with counter i and the key
// (primitives.RandomDist), so the result does not depend on the split of
// the work.
func randomKernel(d primitives.RandomDist, dt graph.DType) Kernel {
	return func(c *Call) error {
		p := c.Params.(*primitives.RandomParams)
		k := view[uint32](c.Args[0].Bytes)
		key := [2]uint32{k[0], k[1]}
		out := c.Args[1].Bytes
		c.Parallel(int(p.N), 1<<10, func(lo, hi int) {
			if d == primitives.RandomBits {
				bits := view[uint32](out)
				for i := lo; i < hi; i++ {
					bits[i] = primitives.Philox4x32([4]uint32{uint32(i)}, key)[0]
				}
				return
			}
			tmp := getFloats(chunk)
			defer putFloats(tmp)
			for o := lo; o < hi; o += chunk {
				z := f32Out(dt, out, o, 1, min(chunk, hi-o), *tmp)
				for j := range z {
					z[j] = primitives.RandomFloat(d, uint32(o+j), key, p.Scale, p.Shift)
				}
				f32Store(dt, out, o, 1, z)
			}
		})
		return nil
	}
}

func init() {
	for _, d := range []primitives.RandomDist{primitives.RandomBits, primitives.RandomUniform, primitives.RandomNormal} {
		for _, dt := range d.DTypes() {
			mustRegister(primitives.RandomKernel(d, dt), randomKernel(d, dt))
		}
	}
}

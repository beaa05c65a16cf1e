package cpu

import (
	"math"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// unaryF32 computes z = op(x) for a float op. The transcendental functions
// are evaluated in float64 and rounded once, so results are the float32
// nearest the exact value in all but rare ties.
func unaryF32(op primitives.UnaryOp, z, x []float32) {
	x = x[:len(z)]
	switch op {
	case primitives.Neg:
		for i := range z {
			z[i] = -x[i]
		}
	case primitives.Exp:
		for i := range z {
			z[i] = float32(math.Exp(float64(x[i])))
		}
	case primitives.Log:
		for i := range z {
			z[i] = float32(math.Log(float64(x[i])))
		}
	case primitives.Sqrt:
		for i := range z {
			z[i] = float32(math.Sqrt(float64(x[i])))
		}
	case primitives.Rsqrt:
		for i := range z {
			z[i] = float32(1 / math.Sqrt(float64(x[i])))
		}
	case primitives.Tanh:
		for i := range z {
			z[i] = float32(math.Tanh(float64(x[i])))
		}
	case primitives.Sigmoid:
		for i := range z {
			z[i] = float32(1 / (1 + math.Exp(-float64(x[i]))))
		}
	case primitives.SiLU:
		for i := range z {
			v := float64(x[i])
			z[i] = float32(v / (1 + math.Exp(-v)))
		}
	case primitives.GELU:
		for i := range z {
			v := float64(x[i])
			z[i] = float32(0.5 * v * (1 + math.Erf(v/math.Sqrt2)))
		}
	case primitives.Abs:
		for i := range z {
			z[i] = float32(math.Abs(float64(x[i])))
		}
	case primitives.Sin:
		for i := range z {
			z[i] = float32(math.Sin(float64(x[i])))
		}
	case primitives.Cos:
		for i := range z {
			z[i] = float32(math.Cos(float64(x[i])))
		}
	case primitives.Erf:
		for i := range z {
			z[i] = float32(math.Erf(float64(x[i])))
		}
	case primitives.Floor:
		for i := range z {
			z[i] = float32(math.Floor(float64(x[i])))
		}
	}
}

// unaryGrain is the elements per parallel chunk of op: the transcendental
// functions cost about 10 ns an element in float64, so a decode step's
// SiLU over 3072 elements is worth splitting, where a negation is not.
func unaryGrain(op primitives.UnaryOp) int {
	switch op {
	case primitives.Neg, primitives.Sqrt, primitives.Rsqrt, primitives.Abs, primitives.Floor:
		return elemGrain
	}
	return 1 << 10
}

// unaryKernel applies op to an input of the output's shape.
func unaryKernel(op primitives.UnaryOp, dt graph.DType) Kernel {
	return func(c *Call) error {
		p := c.Params.(*primitives.ElementwiseParams)
		a, out := c.Args[0].Bytes, c.Args[1].Bytes
		if dt.IsFloat() {
			runs(c, p, unaryGrain(op), func(o, n int, at, step [3]int, tmp []float32) {
				x := f32In(dt, a, at[0], step[0], n, tmp[:chunk])
				z := f32Out(dt, out, o, 1, n, tmp[chunk:2*chunk])
				unaryF32(op, z, x)
				f32Store(dt, out, o, 1, z)
			})
			return nil
		}
		// Integer negation and absolute value, wrapping around (uint32
		// negates modulo 2^32; loadInt zero-extends it, so its Abs is itself).
		runs(c, p, elemGrain, func(o, n int, _, _ [3]int, _ []float32) {
			for k := range n {
				v := loadInt(dt, a, o+k)
				if op == primitives.Neg || v < 0 {
					v = -v
				}
				storeInt(dt, out, o+k, v)
			}
		})
		return nil
	}
}

func init() {
	for _, op := range primitives.UnaryOps {
		for _, dt := range op.DTypes() {
			mustRegister(primitives.UnaryKernel(op, dt), unaryKernel(op, dt))
		}
	}
}

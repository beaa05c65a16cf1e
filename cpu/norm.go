package cpu

import (
	"math"

	"github.com/loomrt/loom/cpu/internal/vec"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// softmaxKernel normalises each row of an array viewed as [outer, n, inner]
// along n, in float32: the maximum, then the exponentials (kept in a row of
// scratch, so each is computed once) and their sum, then the output.
func softmaxKernel(dt graph.DType) Kernel {
	return func(c *Call) error {
		p := c.Params.(*primitives.AxisParams)
		n, inner := int(p.N), int(p.Inner)
		a, out := c.Args[0].Bytes, c.Args[1].Bytes
		c.Parallel(int(p.Outer)*inner, max(1, elemGrain/max(n, 1)), func(lo, hi int) {
			tmp := getFloats(2*chunk + n)
			defer putFloats(tmp)
			for j := lo; j < hi; j++ {
				softmaxRow(dt, a, out, j/inner*n*inner+j%inner, n, inner, *tmp)
			}
		})
		return nil
	}
}

// softmaxRow normalises the n elements at first, first+stride, …, using
// tmp (2·chunk + n float32s) for conversions and the exponentials.
func softmaxRow(dt graph.DType, a, out []byte, first, n, stride int, tmp []float32) {
	tx, tz, e := tmp[:chunk], tmp[chunk:2*chunk], tmp[2*chunk:2*chunk+n]
	m := float32(math.Inf(-1))
	for k := 0; k < n; k += chunk {
		for _, v := range f32In(dt, a, first+k*stride, stride, min(chunk, n-k), tx) {
			m = max(m, v) // a NaN makes the sum, and so the row, NaN
		}
	}
	var sum float32
	for k := 0; k < n; k += chunk {
		var part float32 // per-chunk partial sums keep the float32 rounding error small
		ek := e[k:]
		for i, v := range f32In(dt, a, first+k*stride, stride, min(chunk, n-k), tx) {
			ek[i] = exp32(v - m)
			part += ek[i]
		}
		sum += part
	}
	inv := 1 / sum
	for k := 0; k < n; k += chunk {
		at := first + k*stride
		z := f32Out(dt, out, at, stride, min(chunk, n-k), tz)
		for i, v := range e[k : k+len(z)] {
			z[i] = v * inv
		}
		f32Store(dt, out, at, stride, z)
	}
}

// exp32 is e^x rounded to float32.
func exp32(x float32) float32 { return float32(math.Exp(float64(x))) }

// rmsNormKernel normalises rows of D elements: two passes per row, the sum
// of squares and then the scaled output.
func rmsNormKernel(dt graph.DType) Kernel {
	return func(c *Call) error {
		p := c.Params.(*primitives.RMSNormParams)
		d := int(p.D)
		x, w, out := c.Args[0].Bytes, c.Args[1].Bytes, c.Args[2].Bytes
		c.Parallel(int(p.Rows), max(1, elemGrain/max(d, 1)), func(lo, hi int) {
			tmp := getFloats(3 * chunk)
			defer putFloats(tmp)
			for r := lo; r < hi; r++ {
				rmsNormRow(dt, x, w, out, r*d, d, p.Eps, *tmp)
			}
		})
		return nil
	}
}

// rmsNormRow normalises the d elements from first, using tmp (3·chunk
// float32s) for conversions.
func rmsNormRow(dt graph.DType, x, w, out []byte, first, d int, eps float32, tmp []float32) {
	tx, tw, tz := tmp[:chunk], tmp[chunk:2*chunk], tmp[2*chunk:3*chunk]
	scale := rmsScale(dt, x, first, d, eps, tx)
	for k := 0; k < d; k += chunk {
		m := min(chunk, d-k)
		xs := f32In(dt, x, first+k, 1, m, tx)
		ws := f32In(dt, w, k, 1, m, tw)
		z := f32Out(dt, out, first+k, 1, m, tz)
		for i := range z {
			z[i] = xs[i] * scale * ws[i]
		}
		f32Store(dt, out, first+k, 1, z)
	}
}

// rmsScale returns 1/sqrt(mean(x²) + eps) of the d elements from first,
// using tx (chunk float32s) for conversions. Every RMS normalisation takes
// its scale from here, so the fused kernels' scales are RMSNorm's bit for
// bit.
func rmsScale(dt graph.DType, x []byte, first, d int, eps float32, tx []float32) float32 {
	var ss float32
	for k := 0; k < d; k += chunk {
		xs := f32In(dt, x, first+k, 1, min(chunk, d-k), tx)
		ss += vec.DotF32(xs, xs)
	}
	return float32(1 / math.Sqrt(float64(ss/float32(d)+eps)))
}

func init() {
	for _, dt := range primitives.FloatDTypes {
		mustRegister(primitives.SoftmaxKernel(dt), softmaxKernel(dt))
		mustRegister(primitives.RMSNormKernel(dt), rmsNormKernel(dt))
	}
}

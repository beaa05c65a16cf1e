package cpu

import (
	"github.com/loomrt/loom/cpu/internal/vec"
	"github.com/loomrt/loom/graph"
)

// floats views a kernel argument of one of the float dtypes: float32
// elements, or 16-bit storage of float16 or bfloat16, widened to float32 on
// load and rounded to nearest even on store. The matmul and attention
// kernels take their operands through it.
type floats struct {
	dt  graph.DType
	f32 []float32
	u16 []uint16
}

func newFloats(dt graph.DType, b []byte) floats {
	if dt == graph.Float32 {
		return floats{dt: dt, f32: view[float32](b)}
	}
	return floats{dt: dt, u16: view[uint16](b)}
}

// len is the number of elements.
func (f floats) len() int { return max(len(f.f32), len(f.u16)) }

// load widens elements [off, off+len(dst)) into dst.
func (f floats) load(dst []float32, off int) {
	switch f.dt {
	case graph.Float32:
		copy(dst, f.f32[off:off+len(dst)])
	case graph.BFloat16:
		vec.BF16ToF32(dst, f.u16[off:off+len(dst)])
	default:
		vec.F16ToF32(dst, f.u16[off:off+len(dst)])
	}
}

// row returns the len(dst) elements at off as float32s: the buffer itself
// for float32 (no copy), else widened into dst.
func (f floats) row(dst []float32, off int) []float32 {
	if f.dt == graph.Float32 {
		n := len(dst)
		return f.f32[off : off+n : off+n]
	}
	f.load(dst, off)
	return dst
}

// store rounds src into elements [off, off+len(src)).
func (f floats) store(off int, src []float32) {
	switch f.dt {
	case graph.Float32:
		copy(f.f32[off:off+len(src)], src)
	case graph.BFloat16:
		vec.F32ToBF16(f.u16[off:off+len(src)], src)
	default:
		vec.F32ToF16(f.u16[off:off+len(src)], src)
	}
}

// set rounds v into element i.
func (f floats) set(i int, v float32) {
	switch f.dt {
	case graph.Float32:
		f.f32[i] = v
	case graph.BFloat16:
		f.u16[i] = graph.F32ToBF16(v)
	default:
		f.u16[i] = graph.F32ToF16(v)
	}
}

// dot returns x · the len(x) elements at off.
func (f floats) dot(x []float32, off int) float32 {
	n := len(x)
	switch f.dt {
	case graph.Float32:
		return vec.DotF32(x, f.f32[off:off+n])
	case graph.BFloat16:
		return vec.DotBF16(f.u16[off:off+n], x)
	default:
		return vec.DotF16(f.u16[off:off+n], x)
	}
}

// axpy adds alpha · the len(y) elements at off to y.
func (f floats) axpy(y []float32, alpha float32, off int) {
	n := len(y)
	switch f.dt {
	case graph.Float32:
		vec.AxpyF32(y, alpha, f.f32[off:off+n])
	case graph.BFloat16:
		vec.AxpyBF16(y, alpha, f.u16[off:off+n])
	default:
		vec.AxpyF16(y, alpha, f.u16[off:off+n])
	}
}

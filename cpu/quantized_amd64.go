package cpu

import (
	"github.com/loomrt/loom/cpu/internal/vec"
	"github.com/loomrt/loom/graph"
)

// qdotTiles returns the quantized micro-kernel: the AVX2+FMA one where
// the vec package runs its assembly, else the Go one.
func qdotTiles() qdotTile {
	if vec.Assembly() {
		return qdotTileAVX2
	}
	return qdotTileGo
}

// packQXGroup is packQXGroupGo, in assembly where the vec package runs
// its assembly: the rounding of x before each quantized GEMV is serial
// work, and in Go it took about 6 µs for 1,024 elements.
func packQXGroup(bits int, dst []int16, x []float32) float32 {
	if vec.Assembly() {
		if len(x)%32 != 0 || len(dst) < len(x) {
			panic("cpu: packQXGroup of a group outside its arguments")
		}
		return packQXGroupAVX2(dst, x, bits)
	}
	return packQXGroupGo(bits, dst, x)
}

//go:noescape
func packQXGroupAVX2(dst []int16, x []float32, bits int) float32

// The assembly micro-kernels (quantized_amd64.s), for each code width,
// number of x rows and dtype of the scales and biases. They trust their
// slices' lengths.

//go:noescape
func qdotQ4x1F32(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ4x1BF16(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ4x1F16(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ4x4F32(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ4x4BF16(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ4x4F16(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ8x1F32(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ8x1BF16(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ8x1F16(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ8x4F32(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ8x4BF16(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ8x4F16(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

// qdotTileAVX2 checks the lengths the assembly trusts, then runs it: a
// step is 32 codes.
func qdotTileAVX2(bits int, w []uint32, x []int16, ldx, rows, k, gs int, scales, biases floats, off int, xsums, xscales, out []float32, n int) {
	checkQTile(bits, w, x, ldx, rows, k, gs, scales, biases, off, xsums, xscales, out, n)
	groups, steps := k/gs, gs/32
	if scales.dt == graph.Float32 {
		s, b := scales.f32[off:], biases.f32[off:]
		switch {
		case rows == 1 && bits == 4:
			qdotQ4x1F32(w, x, ldx, groups, steps, s, b, xsums, xscales, out, n)
		case rows == 1:
			qdotQ8x1F32(w, x, ldx, groups, steps, s, b, xsums, xscales, out, n)
		case bits == 4:
			qdotQ4x4F32(w, x, ldx, groups, steps, s, b, xsums, xscales, out, n)
		default:
			qdotQ8x4F32(w, x, ldx, groups, steps, s, b, xsums, xscales, out, n)
		}
		return
	}
	s, b := scales.u16[off:], biases.u16[off:]
	bf := scales.dt == graph.BFloat16
	switch {
	case rows == 1 && bits == 4 && bf:
		qdotQ4x1BF16(w, x, ldx, groups, steps, s, b, xsums, xscales, out, n)
	case rows == 1 && bits == 4:
		qdotQ4x1F16(w, x, ldx, groups, steps, s, b, xsums, xscales, out, n)
	case rows == 1 && bf:
		qdotQ8x1BF16(w, x, ldx, groups, steps, s, b, xsums, xscales, out, n)
	case rows == 1:
		qdotQ8x1F16(w, x, ldx, groups, steps, s, b, xsums, xscales, out, n)
	case bits == 4 && bf:
		qdotQ4x4BF16(w, x, ldx, groups, steps, s, b, xsums, xscales, out, n)
	case bits == 4:
		qdotQ4x4F16(w, x, ldx, groups, steps, s, b, xsums, xscales, out, n)
	case bf:
		qdotQ8x4BF16(w, x, ldx, groups, steps, s, b, xsums, xscales, out, n)
	default:
		qdotQ8x4F16(w, x, ldx, groups, steps, s, b, xsums, xscales, out, n)
	}
}

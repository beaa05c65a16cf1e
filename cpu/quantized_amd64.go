package cpu

import (
	"github.com/loomrt/loom/cpu/internal/vec"
	"github.com/loomrt/loom/graph"
)

// qdotSelect returns the quantized micro-kernel: the AVX-512 one where the
// vec package selects it, else the AVX2+FMA one where the vec package runs
// its assembly, else the Go one.
func qdotSelect() qdotKernel {
	switch {
	case vec.AVX512():
		return qdotKernelAVX512
	case vec.Assembly():
		return qdotKernelAVX2
	}
	return qdotKernel{tile: qdotTileGo}
}

var (
	qdotKernelAVX2   = qdotKernel{tile: qdotTileAVX2}
	qdotKernelAVX512 = qdotKernel{tile: qdotTileAVX512, relayout: splitQX}
)

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

//go:noescape
func qdotQ4x1F32AVX2(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ4x1BF16AVX2(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ4x1F16AVX2(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ8x1F32AVX2(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ8x1BF16AVX2(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ8x1F16AVX2(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ4x4F32AVX2(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ4x4BF16AVX2(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ4x4F16AVX2(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ8x4F32AVX2(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ8x4BF16AVX2(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ8x4F16AVX2(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ4x1F32AVX512(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ4x1BF16AVX512(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ4x1F16AVX512(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ8x1F32AVX512(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ8x1BF16AVX512(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ8x1F16AVX512(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ4x4F32AVX512(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ4x4BF16AVX512(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ4x4F16AVX512(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ8x4F32AVX512(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ8x4BF16AVX512(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ8x4F16AVX512(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ4x1F32AVX512B(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ4x1BF16AVX512B(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

//go:noescape
func qdotQ4x1F16AVX512B(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)

// qdotF32 and qdotU16 are the assembly kernels' types, for float32 and
// 16-bit scales and biases.
type (
	qdotF32 func(w []uint32, x []int16, ldx, groups, steps int, scales, biases []float32, xsums, xscales, out []float32, n int)
	qdotU16 func(w []uint32, x []int16, ldx, groups, steps int, scales, biases []uint16, xsums, xscales, out []float32, n int)
)

// qdotSet is one instruction set's assembly micro-kernels
// (quantized_amd64.s), by dtype of the scales and biases, code width (4,
// 8) and rows of x (1, qdotXRows); a step is codes codes. They trust
// their slices' lengths.
type qdotSet struct {
	codes int
	f32   [2][2]qdotF32
	u16   [2][2][2]qdotU16 // bfloat16, float16
}

var qdotAVX2 = qdotSet{codes: 32,
	f32: [2][2]qdotF32{
		{qdotQ4x1F32AVX2, qdotQ4x4F32AVX2}, {qdotQ8x1F32AVX2, qdotQ8x4F32AVX2}},
	u16: [2][2][2]qdotU16{
		{{qdotQ4x1BF16AVX2, qdotQ4x4BF16AVX2}, {qdotQ8x1BF16AVX2, qdotQ8x4BF16AVX2}},
		{{qdotQ4x1F16AVX2, qdotQ4x4F16AVX2}, {qdotQ8x1F16AVX2, qdotQ8x4F16AVX2}}},
}

// qdotAVX512B holds the 4-bit one-row kernels in bytes alone (qdotSplit),
// whose step is a pair of groups of 64: they ignore steps.
var qdotAVX512B = qdotSet{codes: 64,
	u16: [2][2][2]qdotU16{
		{{qdotQ4x1BF16AVX512B}}, {{qdotQ4x1F16AVX512B}}},
	f32: [2][2]qdotF32{{qdotQ4x1F32AVX512B}},
}

var qdotAVX512 = qdotSet{codes: 64,
	f32: [2][2]qdotF32{
		{qdotQ4x1F32AVX512, qdotQ4x4F32AVX512}, {qdotQ8x1F32AVX512, qdotQ8x4F32AVX512}},
	u16: [2][2][2]qdotU16{
		{{qdotQ4x1BF16AVX512, qdotQ4x4BF16AVX512}, {qdotQ8x1BF16AVX512, qdotQ8x4BF16AVX512}},
		{{qdotQ4x1F16AVX512, qdotQ4x4F16AVX512}, {qdotQ8x1F16AVX512, qdotQ8x4F16AVX512}}},
}

// tile checks the lengths the assembly trusts, then runs the kernel of
// the call's dtype, width and rows (gs a multiple of s.codes).
func (s *qdotSet) tile(bits int, w []uint32, x []int16, ldx, rows, k, gs int, scales, biases floats, off int, xsums, xscales, out []float32, n int) {
	checkQTile(bits, w, x, ldx, rows, k, gs, scales, biases, off, xsums, xscales, out, n)
	groups, steps := k/gs, gs/s.codes
	b, r := bits/8, rows/qdotXRows
	switch scales.dt {
	case graph.Float32:
		s.f32[b][r](w, x, ldx, groups, steps, scales.f32[off:], biases.f32[off:], xsums, xscales, out, n)
	case graph.BFloat16:
		s.u16[0][b][r](w, x, ldx, groups, steps, scales.u16[off:], biases.u16[off:], xsums, xscales, out, n)
	default:
		s.u16[1][b][r](w, x, ldx, groups, steps, scales.u16[off:], biases.u16[off:], xsums, xscales, out, n)
	}
}

// qdotTileAVX2 runs the AVX2 kernels: a step is 32 codes.
func qdotTileAVX2(bits int, w []uint32, x []int16, ldx, rows, k, gs int, scales, biases floats, off int, xsums, xscales, out []float32, n int) {
	qdotAVX2.tile(bits, w, x, ldx, rows, k, gs, scales, biases, off, xsums, xscales, out, n)
}

// qdotSplit reports whether the AVX-512 kernels read x split into bytes
// (splitQX) for a call of bits, rows, gs and k: the 4-bit one-row kernel
// in bytes takes groups of 64 and K a multiple of 128.
func qdotSplit(bits, rows, gs, k int) bool {
	return bits == 4 && rows == 1 && gs == 64 && k%128 == 0
}

// splitQX is the AVX-512 kernels' relayout: where qdotSplit holds, it
// rewrites the row x, in packQX's layout for 4 bits, into the layout the
// kernel in bytes reads (splitQXAVX512) and reports true.
func splitQX(bits, rows, gs, k int, x []int16) bool {
	if !qdotSplit(bits, rows, gs, k) {
		return false
	}
	splitQXAVX512(x)
	return true
}

// splitQXAVX512 (quantized_amd64.s) rewrites x in place (len a multiple
// of 128), each element as 256·xh + xl, xh its upper byte (signed) and
// xl its lower one (unsigned), and each run of 128 elements as the xh of
// its 64 even elements, the xh of its odd ones, then their xl, bytes in
// element order (packQX's runs of 32 hold 16 even elements, then 16 odd
// ones). It runs before every quantized GEMV it serves, on the calling
// goroutine alone: in Go it had doubled that serial work (0.6 µs more at
// K = 1,024, 1.6 at 3,072).
//
//go:noescape
func splitQXAVX512(x []int16)

// qdotTileAVX512 runs the AVX-512 kernels, whose step is 64 codes (128 in
// bytes), for groups of a multiple of 64, and the AVX2 ones for groups of
// 32. Where qdotSplit holds, x must have been rewritten by splitQX. All sum
// each group's products exactly in integers and finish the groups with
// the same float32 operations as the AVX2 kernels, so their results are
// the same bits.
func qdotTileAVX512(bits int, w []uint32, x []int16, ldx, rows, k, gs int, scales, biases floats, off int, xsums, xscales, out []float32, n int) {
	switch {
	case qdotSplit(bits, rows, gs, k):
		qdotAVX512B.tile(bits, w, x, ldx, rows, k, gs, scales, biases, off, xsums, xscales, out, n)
	case gs%qdotAVX512.codes == 0:
		qdotAVX512.tile(bits, w, x, ldx, rows, k, gs, scales, biases, off, xsums, xscales, out, n)
	default:
		qdotAVX2.tile(bits, w, x, ldx, rows, k, gs, scales, biases, off, xsums, xscales, out, n)
	}
}

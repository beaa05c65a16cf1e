package cpu

import "github.com/loomrt/loom/cpu/internal/vec"

// qdotTiles returns the quantized micro-kernel: the AVX2+FMA one where
// the vec package runs its assembly, else the Go one.
func qdotTiles() qdotTile {
	if vec.Assembly() {
		return qdotTileAVX2
	}
	return qdotTileGo
}

// The assembly micro-kernels (quantized_amd64.s). They trust their
// slices' lengths.

//go:noescape
func qdotQ4x1(w []uint32, x []float32, ldx, groups, steps int, scales, out []float32)

//go:noescape
func qdotQ8x1(w []uint32, x []float32, ldx, groups, steps int, scales, out []float32)

//go:noescape
func qdotQ4x4(w []uint32, x []float32, ldx, groups, steps int, scales, out []float32)

//go:noescape
func qdotQ8x4(w []uint32, x []float32, ldx, groups, steps int, scales, out []float32)

// qdotTileAVX2 checks the lengths the assembly trusts, then runs it: a
// step of the one-row kernels is 32 codes, of the four-row ones 16.
func qdotTileAVX2(bits int, w []uint32, x []float32, ldx, rows, k, gs int, scales, out []float32) {
	checkQTile(bits, w, x, ldx, rows, k, gs, scales, out)
	groups := k / gs
	switch {
	case rows == 1 && bits == 4:
		qdotQ4x1(w, x, ldx, groups, gs/32, scales, out)
	case rows == 1:
		qdotQ8x1(w, x, ldx, groups, gs/32, scales, out)
	case bits == 4:
		qdotQ4x4(w, x, ldx, groups, gs/16, scales, out)
	default:
		qdotQ8x4(w, x, ldx, groups, gs/16, scales, out)
	}
}

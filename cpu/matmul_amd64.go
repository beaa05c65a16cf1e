package cpu

import (
	"github.com/loomrt/loom/cpu/internal/vec"
	"github.com/loomrt/loom/graph"
)

// gemmMicroKernel returns the AVX2+FMA micro-kernel where the vec package
// runs its assembly (the CPU has it and it has not been turned off), else
// the Go one.
func gemmMicroKernel() microKernel {
	if vec.Assembly() {
		return microKernelAVX2
	}
	return microKernelGo
}

// microKernel6x16 is the assembly micro-kernel (matmul_amd64.s). It trusts
// its slices' lengths.
//
//go:noescape
func microKernel6x16(a, b, c []float32, k, ldc int, accumulate bool)

// microKernelAVX2 checks the lengths the assembly trusts, then runs it.
func microKernelAVX2(a, b, c []float32, k, ldc int, accumulate bool) {
	if k < 0 || len(a) < gemmMR*k || len(b) < gemmNR*k || ldc < gemmNR || len(c) < (gemmMR-1)*ldc+gemmNR {
		panic("cpu: matmul micro-kernel called with short panels or tile")
	}
	microKernel6x16(a, b, c, k, ldc, accumulate)
}

// smallMTileKernel returns the AVX2+FMA small-M micro-kernel where the vec
// package runs its assembly, else the Go one.
func smallMTileKernel() smallMTile {
	if vec.Assembly() {
		return smallMTileAVX2
	}
	return smallMTileGo
}

// The assembly small-M micro-kernels (matmul_amd64.s), one per weight
// dtype: the tile's sums over the first k elements, k a multiple of 8.
// They trust their slices' lengths.

//go:noescape
func dotTile4x3F32(w []float32, ldw int, x []float32, ldx int, k int, tile *[smallNR * smallMR]float32)

//go:noescape
func dotTile4x3BF16(w []uint16, ldw int, x []float32, ldx int, k int, tile *[smallNR * smallMR]float32)

//go:noescape
func dotTile4x3F16(w []uint16, ldw int, x []float32, ldx int, k int, tile *[smallNR * smallMR]float32)

// smallMTileAVX2 checks the lengths the assembly trusts, runs it over the
// whole steps of 8 and adds the last k%8 products in Go.
func smallMTileAVX2(w matrices, wOff, ldw int, x []float32, ldx, k int, tile *[smallNR * smallMR]float32) {
	checkSmallMTile(w, wOff, ldw, x, ldx, k)
	body := k &^ 7
	switch w.dt {
	case graph.Float32:
		dotTile4x3F32(w.f32[wOff:], ldw, x, ldx, body, tile)
	case graph.BFloat16:
		dotTile4x3BF16(w.u16[wOff:], ldw, x, ldx, body, tile)
	default:
		dotTile4x3F16(w.u16[wOff:], ldw, x, ldx, body, tile)
	}
	addTileTail(w, wOff, ldw, x, ldx, k, tile)
}

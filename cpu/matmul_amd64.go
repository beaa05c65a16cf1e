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

// The assembly small-M micro-kernels (matmul_smallm_amd64.s), one per
// weight dtype: a smallMTile over k elements, a multiple of 8. They trust
// their slices' lengths.

//go:noescape
func dotTilesF32(w []float32, ldw int, x []float32, ldx int, k int, blocks int, out []float32, ldo, pf int)

//go:noescape
func dotTilesBF16(w []uint16, ldw int, x []float32, ldx int, k int, blocks int, out []float32, ldo, pf int)

//go:noescape
func dotTilesF16(w []uint16, ldw int, x []float32, ldx int, k int, blocks int, out []float32, ldo, pf int)

// smallMTileAVX2 checks the lengths the assembly trusts, runs it over the
// whole steps of 8 and adds the products of the last k%8 elements in Go.
// The assembly prefetches the smallNR rows after the tile's (a prefetch
// past the end of w is harmless: it never faults), pf bytes further at
// each of its steps, pf spreading them over all the steps.
func smallMTileAVX2(w matrices, wOff, ldw int, x []float32, ldx, k, blocks int, out []float32, ldo int) {
	checkSmallMTile(w, wOff, ldw, x, ldx, k, blocks, out, ldo)
	body := k &^ 7
	steps := max(blocks*body/8, 1)
	pf := (smallNR*ldw*w.dt.Size() + steps - 1) / steps
	switch w.dt {
	case graph.Float32:
		dotTilesF32(w.f32[wOff:], ldw, x, ldx, body, blocks, out, ldo, pf)
	case graph.BFloat16:
		dotTilesBF16(w.u16[wOff:], ldw, x, ldx, body, blocks, out, ldo, pf)
	default:
		dotTilesF16(w.u16[wOff:], ldw, x, ldx, body, blocks, out, ldo, pf)
	}
	addTileTail(w, wOff, ldw, x, ldx, k, blocks, out, ldo)
}

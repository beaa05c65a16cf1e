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

// smallMTiles returns the small-M micro-kernels for weights stored
// [N, K] and [K, N]: the AVX2+FMA ones where the vec package runs its
// assembly, else the Go ones.
func smallMTiles() (dot, axpy smallMTile) {
	if vec.Assembly() {
		return dotTileAVX2, axpyTileAVX2
	}
	return dotTileGo, axpyTileGo
}

// The assembly small-M micro-kernels (matmul_smallm_amd64.s), one per
// weight dtype for each layout: a dotTile over k elements, a multiple of
// 8, and an axpyTile. They trust their slices' lengths.

//go:noescape
func dotTilesF32(w []float32, ldw int, x []float32, ldx int, k int, blocks int, out []float32, ldo, pf int)

//go:noescape
func dotTilesBF16(w []uint16, ldw int, x []float32, ldx int, k int, blocks int, out []float32, ldo, pf int)

//go:noescape
func dotTilesF16(w []uint16, ldw int, x []float32, ldx int, k int, blocks int, out []float32, ldo, pf int)

//go:noescape
func axpyTilesF32(w []float32, ldw int, x []float32, ldx int, k int, blocks int, out []float32, ldo int, acc bool)

//go:noescape
func axpyTilesBF16(w []uint16, ldw int, x []float32, ldx int, k int, blocks int, out []float32, ldo int, acc bool)

//go:noescape
func axpyTilesF16(w []uint16, ldw int, x []float32, ldx int, k int, blocks int, out []float32, ldo int, acc bool)

// dotTileAVX2 checks the lengths the assembly trusts, runs it over the
// whole steps of 8 and adds the products of the last k%8 elements in Go.
// The assembly prefetches the dotTileRows rows after the tile's (a
// prefetch past the end of w is harmless: it never faults), pf bytes
// further at each of its steps, pf spreading them over all the steps.
func dotTileAVX2(w floats, wOff, ldw int, x []float32, ldx, k, blocks int, out []float32, ldo int) {
	checkTile(dotTileShape, w, wOff, ldw, x, ldx, k, blocks, out, ldo)
	body := k &^ 7
	steps := max(blocks*body/8, 1)
	pf := (dotTileRows*ldw*w.dt.Size() + steps - 1) / steps
	switch w.dt {
	case graph.Float32:
		dotTilesF32(w.f32[wOff:], ldw, x, ldx, body, blocks, out, ldo, pf)
	case graph.BFloat16:
		dotTilesBF16(w.u16[wOff:], ldw, x, ldx, body, blocks, out, ldo, pf)
	default:
		dotTilesF16(w.u16[wOff:], ldw, x, ldx, body, blocks, out, ldo, pf)
	}
	addDotTail(w, wOff, ldw, x, ldx, k, blocks, out, ldo)
}

// axpyTileAVX2 checks the lengths the assembly trusts, then runs it on
// each strip of axpyStripCols columns of the tile for a block of axpyKC
// elements of k, block after block, each block's sums continuing from the
// last's in out: the block's lines of weights stay in L1 while all the
// strips and blocks of x rows pass over them.
func axpyTileAVX2(w floats, wOff, ldw int, x []float32, ldx, k, blocks int, out []float32, ldo int) {
	checkTile(axpyTileShape, w, wOff, ldw, x, ldx, k, blocks, out, ldo)
	if k == 0 {
		clearTile(out, ldo, blocks*axpyXRows, axpyTileCols)
		return
	}
	for k0 := 0; k0 < k; k0 += axpyKC {
		kc, acc := min(axpyKC, k-k0), k0 > 0
		for c := 0; c < axpyTileCols; c += axpyStripCols {
			off, o := wOff+k0*ldw+c, out[c:]
			switch w.dt {
			case graph.Float32:
				axpyTilesF32(w.f32[off:], ldw, x[k0:], ldx, kc, blocks, o, ldo, acc)
			case graph.BFloat16:
				axpyTilesBF16(w.u16[off:], ldw, x[k0:], ldx, kc, blocks, o, ldo, acc)
			default:
				axpyTilesF16(w.u16[off:], ldw, x[k0:], ldx, kc, blocks, o, ldo, acc)
			}
		}
	}
}

//go:build !amd64

package cpu

// gemmMicroKernel returns the Go micro-kernel: there is no assembly for
// this architecture.
func gemmMicroKernel() microKernel { return microKernelGo }

// smallMTiles returns the Go small-M micro-kernels for weights stored
// [N, K] and [K, N].
func smallMTiles() (dot, axpy smallMTile) { return dotTileGo, axpyTileGo }

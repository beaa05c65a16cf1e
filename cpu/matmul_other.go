//go:build !amd64

package cpu

// gemmMicroKernel returns the Go micro-kernel: there is no assembly for
// this architecture.
func gemmMicroKernel() microKernel { return microKernelGo }

// smallMTileKernel returns the Go small-M micro-kernel.
func smallMTileKernel() smallMTile { return smallMTileGo }

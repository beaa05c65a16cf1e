//go:build !amd64

package cpu

// qdotSelect returns the Go quantized micro-kernel: there is no assembly
// for this architecture.
func qdotSelect() qdotKernel { return qdotKernel{tile: qdotTileGo} }

// packQXGroup is packQXGroupGo: there is no assembly for this
// architecture.
func packQXGroup(bits int, dst []int16, x []float32) float32 {
	return packQXGroupGo(bits, dst, x)
}

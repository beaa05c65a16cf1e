//go:build !amd64

package cpu

// qdotTiles returns the Go quantized micro-kernel: there is no assembly
// for this architecture.
func qdotTiles() qdotTile { return qdotTileGo }

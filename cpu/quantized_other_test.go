//go:build !amd64

package cpu

// asmKernels returns no micro-kernels: there is no assembly for this
// architecture.
func asmKernels() map[string]qdotKernel { return nil }

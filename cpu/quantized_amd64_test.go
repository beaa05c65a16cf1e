package cpu

import "github.com/loomrt/loom/cpu/internal/vec"

// asmKernels returns the assembly micro-kernels this CPU runs, by name:
// AVX2 where the vec package runs its assembly, and AVX-512 where the CPU
// has it too.
func asmKernels() map[string]qdotKernel {
	kernels := map[string]qdotKernel{}
	if vec.Assembly() {
		kernels["avx2"] = qdotKernel{tile: qdotTileAVX2}
	}
	if vec.AVX512() {
		kernels["avx512"] = qdotKernel{tile: qdotTileAVX512, split: qdotSplit}
	}
	return kernels
}

package cpu

import "github.com/loomrt/loom/cpu/internal/vec"

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

//go:build !darwin && !linux

package loomtest

import "testing"

// gpuTargets returns no GPU targets: Loom's GPU devices are Metal (macOS)
// and CUDA (Linux).
func gpuTargets(testing.TB) []Target { return nil }

// CuBLASLt returns zeros: cuBLASLt is the CUDA device's (Linux).
func CuBLASLt(Target) (rows int, products int64) { return 0, 0 }

//go:build !darwin && !linux

package loomtest

import "testing"

// gpuTargets returns no GPU targets: Loom's GPU devices are Metal (macOS)
// and CUDA (Linux).
func gpuTargets(testing.TB) []Target { return nil }

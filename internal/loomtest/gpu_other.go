//go:build !darwin

package loomtest

import "testing"

// gpuTargets returns no GPU targets off macOS: the CUDA device is exercised
// by its own tests on the GPU machine.
func gpuTargets(testing.TB) []Target { return nil }

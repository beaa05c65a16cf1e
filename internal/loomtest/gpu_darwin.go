//go:build darwin

package loomtest

import "testing"

// gpuTargets returns the Metal device when this Mac has one.
func gpuTargets(testing.TB) []Target { return nil }

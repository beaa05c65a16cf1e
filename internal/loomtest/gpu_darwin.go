//go:build darwin

package loomtest

import (
	"testing"

	"github.com/loomrt/loom/metal"
	"github.com/loomrt/loom/runtime"
)

// gpuTargets returns the Metal device when this Mac has one, so that every
// op and attention test also runs on the GPU. A Mac whose GPU Loom cannot use
// (see metal.Open) runs the CPU targets only.
func gpuTargets(t testing.TB) []Target {
	t.Helper()
	dev, err := metal.Open()
	if err != nil {
		t.Logf("no Metal target: %v", err)
		return nil
	}
	rt, err := runtime.New(dev, runtime.Options{})
	if err != nil {
		t.Fatalf("metal: %v", err)
	}
	t.Cleanup(rt.Close)
	return []Target{{Name: "metal", RT: rt}}
}

// CuBLASLt returns zeros: cuBLASLt is the CUDA device's (Linux).
func CuBLASLt(Target) (rows int, products int64) { return 0, 0 }

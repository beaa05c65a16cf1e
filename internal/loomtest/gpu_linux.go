//go:build linux

package loomtest

import (
	"sync"
	"testing"

	"github.com/loomrt/loom/cuda"
	"github.com/loomrt/loom/runtime"
)

// The CUDA device is opened once per test binary (opening compiles the
// kernels) and shared by every target built on it.
var (
	cudaOnce sync.Once
	cudaDev  *cuda.Device
	cudaErr  error
)

// CUDA returns this machine's CUDA device, or nil and the reason when it has
// none. A CUDA device that exists but fails to open fails the test.
func CUDA(t testing.TB) (*cuda.Device, error) {
	t.Helper()
	cudaOnce.Do(func() { cudaDev, cudaErr = cuda.Open() })
	if cudaErr != nil && !cuda.IsUnavailable(cudaErr) {
		t.Fatalf("opening the CUDA device: %v", cudaErr)
	}
	return cudaDev, cudaErr
}

// gpuTargets returns a runtime on the CUDA device when this machine has one,
// and none otherwise.
func gpuTargets(t testing.TB) []Target {
	t.Helper()
	dev, err := CUDA(t)
	if err != nil {
		return nil
	}
	rt, err := runtime.New(dev, runtime.Options{})
	if err != nil {
		t.Fatalf("cuda: %v", err)
	}
	t.Cleanup(rt.Close)
	return []Target{{Name: "cuda", RT: rt}}
}

// CuBLASLt returns the fewest rows of a product tg's CUDA device runs in
// cuBLASLt (0: none, or tg is not on the CUDA device) and the products
// cuBLASLt ran or was captured for so far.
func CuBLASLt(tg Target) (rows int, products int64) {
	d, ok := tg.RT.Device().(*cuda.Device)
	if !ok {
		return 0, 0
	}
	i := d.CuBLASLt()
	return i.Rows, i.Calls + i.Captures
}

//go:build darwin

package metal_test

import (
	"strings"
	"testing"

	"github.com/loomrt/loom/metal"
	"github.com/loomrt/loom/runtime"
)

// These tests need a Mac with an Apple-silicon GPU; they have not been run
// in this repository's CI, which is Linux.

func open(t *testing.T) runtime.Device {
	t.Helper()
	dev, err := metal.Open()
	if err != nil {
		t.Skipf("no usable Metal device: %v", err)
	}
	return dev
}

func TestOpenCaps(t *testing.T) {
	dev := open(t)
	c := dev.Caps()
	if c.Device != "metal" || c.SIMDWidth <= 0 || c.MaxThreadsPerGroup < 256 || c.MaxSharedBytes < 16<<10 || c.Cores <= 0 {
		t.Fatalf("implausible caps %+v", c)
	}
	again, err := metal.Open()
	if err != nil || again != dev {
		t.Fatalf("a second Open gave %v, %v; want the same device", again, err)
	}
}

func TestUnknownKernel(t *testing.T) {
	_, err := open(t).Kernel("no_such_kernel")
	if err == nil || !strings.Contains(err.Error(), "no_such_kernel") {
		t.Fatalf("got %v, want an error naming the kernel", err)
	}
}

// TestEvalChain runs a chain long enough for several command buffers, so
// that fences across command buffers and the event frontier are exercised,
// and compares with a float64 reference.
func TestEvalChain(t *testing.T) {
	rt, err := runtime.New(open(t), runtime.Options{DispatchesPerCommandBuffer: 3, DispatchesPerPass: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	evalChain(t, rt)
}

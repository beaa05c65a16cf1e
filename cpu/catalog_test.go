package cpu_test

import (
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/primitives"
)

// TestImplementsCatalog checks that the CPU device has a kernel for every
// kernel in the primitives catalog.
func TestImplementsCatalog(t *testing.T) {
	dev := cpu.New(cpu.Options{})
	for _, ks := range primitives.Catalog() {
		if _, err := dev.Kernel(ks.Name); err != nil {
			t.Errorf("catalog kernel %s: %v", ks.Name, err)
		}
	}
}

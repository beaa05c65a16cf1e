//go:build !linux

package cuda

import (
	"fmt"
	"runtime"

	"github.com/loomrt/loom/primitives"
)

// errNoDriver marks the errors that mean this machine has no usable CUDA
// device: off Linux, none is ever opened.
var errNoDriver = fmt.Errorf("the CUDA device is supported on Linux only, not %s", runtime.GOOS)

// Device is the CUDA device; off Linux it cannot be opened.
type Device struct{}

// Open returns an error off Linux.
func Open() (*Device, error) { return nil, fmt.Errorf("cuda: %w", errNoDriver) }

// CheckUserKernel returns an error off Linux, where NVRTC is not loaded.
func CheckUserKernel(spec primitives.KernelSpec, arch string) error {
	return fmt.Errorf("cuda: kernel %s: %w", spec.Name, errNoDriver)
}

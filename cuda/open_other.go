//go:build !linux

package cuda

import (
	"fmt"
	"runtime"
)

// errNoDriver marks the errors that mean this machine has no usable CUDA
// device: off Linux, none is ever opened.
var errNoDriver = fmt.Errorf("the CUDA device is supported on Linux only, not %s", runtime.GOOS)

// Device is the CUDA device; off Linux it cannot be opened.
type Device struct{}

// Open returns an error off Linux.
func Open() (*Device, error) { return nil, fmt.Errorf("cuda: %w", errNoDriver) }

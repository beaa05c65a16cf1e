//go:build !darwin

package metal

import (
	"errors"

	"github.com/loomrt/loom/runtime"
)

// Open returns an error: Metal is available on macOS only.
func Open() (runtime.Device, error) {
	return nil, errors.New("metal: Metal is available on macOS only")
}

//go:build !darwin

package mtl

import "errors"

// Default returns an error: Metal is available on macOS only.
func Default() (Device, error) {
	return nil, errors.New("metal: Metal is available on macOS only")
}

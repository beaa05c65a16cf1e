//go:build !linux && !darwin

package model

import (
	"io"
	"os"
)

// mapFile reads f whole: this system has no mmap that Loom uses.
func mapFile(f *os.File) ([]byte, func() error, error) {
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, nil, err
	}
	return b, func() error { return nil }, nil
}

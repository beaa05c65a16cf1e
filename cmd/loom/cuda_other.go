//go:build !linux

package main

import "errors"

func benchMembwCUDA(sizeMiB, reps int) error {
	return errors.New("the CUDA device is supported on Linux only")
}

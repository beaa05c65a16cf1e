//go:build !linux

package main

import (
	"errors"
	"time"

	"github.com/loomrt/loom/cuda"
	"github.com/loomrt/loom/runtime"
)

var errNoCUDA = errors.New("the CUDA device is supported on Linux only")

func openCUDA() (runtime.Device, error) { return nil, errNoCUDA }

func cudaBandwidth(sizeMiB, reps int) (cuda.Bandwidth, error) { return cuda.Bandwidth{}, errNoCUDA }

func benchMembwCUDA(sizeMiB, reps int) error { return errNoCUDA }

func cudaGraphSummary() string { return "" }

func cudaCuBLASLt() string { return "" }

var cudaHostClasses []string

func cudaHostTimes() []time.Duration { return nil }

func startKernelProfile() error { return errNoCUDA }

func stopKernelProfile() ([]cuda.KernelTime, error) { return nil, errNoCUDA }

package main

import (
	"fmt"
	"sync"
	"time"

	"github.com/loomrt/loom/cuda"
	"github.com/loomrt/loom/runtime"
)

var (
	cudaOnce sync.Once
	cudaDev  *cuda.Device
	cudaErr  error
	cudaBW   cuda.Bandwidth
	cudaBWOK bool
)

// openCUDA opens the CUDA device once per process.
func openCUDA() (runtime.Device, error) {
	cudaOnce.Do(func() { cudaDev, cudaErr = cuda.Open() })
	if cudaErr != nil {
		return nil, cudaErr
	}
	return cudaDev, nil
}

// cudaBandwidth measures the GPU's copy bandwidth (bytes read + written)
// once per process, with buffers of sizeMiB; memory-bound GPU figures are
// printed beside it.
func cudaBandwidth(sizeMiB, reps int) (cuda.Bandwidth, error) {
	if _, err := openCUDA(); err != nil {
		return cuda.Bandwidth{}, err
	}
	if !cudaBWOK {
		bw, err := cudaDev.MeasureBandwidth(int64(sizeMiB)<<20, reps)
		if err != nil {
			return cuda.Bandwidth{}, err
		}
		cudaBW, cudaBWOK = bw, true
	}
	return cudaBW, nil
}

// benchMembwCUDA prints the GPU's copy bandwidth, for loom bench membw
// -device cuda.
func benchMembwCUDA(sizeMiB, reps int) error {
	bw, err := cudaBandwidth(sizeMiB, reps)
	if err != nil {
		return err
	}
	fmt.Printf("CUDA device memory bandwidth, %s (sm_%s), %d MiB buffers, best of 3 batches of %d:\n",
		cudaDev.Name(), cudaDev.ComputeCapability(), sizeMiB, reps)
	fmt.Printf("  copy %.1f GB/s (cuMemcpyDtoD; bytes read + bytes written)\n", bw.Driver)
	fmt.Printf("  copy %.1f GB/s (copy_bytes kernel, 16 B per thread)\n", bw.Kernel)
	fmt.Printf("  read %.1f GB/s (sum_f32 kernel over rows of 64 Ki floats)\n", bw.Read)
	return nil
}

// cudaGraphSummary describes the CUDA graphs the device ran so far
// (LOOM_CUDA_GRAPHS=0 turns them off; LOOM_CUDA_PDL=0 their programmatic
// edges).
func cudaGraphSummary() string {
	if cudaDev == nil {
		return ""
	}
	s := cudaDev.GraphStats()
	return fmt.Sprintf("CUDA graphs: %d command buffers launched as graphs (%d of them replayed lists), %d built, %d kernel nodes updated, %d evicted, %d failures; PDL %v, %d programmatic edges",
		s.Launches, s.Replays, s.Captures, s.Updates, s.Evictions, s.Failures, cudaDev.PDL(), s.Programmatic)
}

// cudaCuBLASLt describes the CUDA device's use of cuBLASLt so far
// (LOOM_CUBLASLT, LOOM_CUBLASLT_ROWS); "" if the device is not open.
func cudaCuBLASLt() string {
	if cudaDev == nil {
		return ""
	}
	return cudaDev.CuBLASLt().String()
}

// cudaHostClasses name the figures of cudaHostTimes, in its order
// (cuda.HostTimes; its Wait is left out: the bench's wait is the
// runtime's, which holds it).
var cudaHostClasses = []string{"submit", "launch", "update", "stage", "record", "poll", "sync", "read"}

// cudaHostTimes is the host's time so far in the CUDA device's calls by
// class (cudaHostClasses); nil if the device is not open.
func cudaHostTimes() []time.Duration {
	if cudaDev == nil {
		return nil
	}
	h := cudaDev.HostTimes()
	return []time.Duration{h.Submit.Time, h.Launch.Time, h.Update.Time, h.Stage.Time, h.Record.Time, h.Poll.Time, h.Sync.Time, h.Read.Time}
}

// startKernelProfile starts a kernel profile of the CUDA device
// (loom bench decode -kernels).
func startKernelProfile() error {
	if _, err := openCUDA(); err != nil {
		return err
	}
	return cudaDev.StartProfile()
}

// stopKernelProfile ends it and returns its kernels.
func stopKernelProfile() ([]cuda.KernelTime, error) { return cudaDev.StopProfile() }

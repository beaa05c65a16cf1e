package main

import (
	"flag"
	"fmt"
	goruntime "runtime"
	"sync"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/runtime"
)

func init() {
	benchmarks["membw"] = benchmark{"measure this machine's memory bandwidth (copy and read)", benchMembw}
}

var (
	bwOnce sync.Once
	bw     cpu.Bandwidth
)

// machineBandwidth measures the memory bandwidth once per process; every
// memory-bound figure is printed beside it.
func machineBandwidth() cpu.Bandwidth {
	bwOnce.Do(func() { bw = cpu.MeasureBandwidth(256<<20, goruntime.GOMAXPROCS(0), 5) })
	return bw
}

// deviceBandwidth is the memory bandwidth that memory-bound figures on the
// named device are printed beside: this machine's for the CPU (and for
// Metal, whose memory is the same unified memory), the GPU's own for CUDA
// (Copy from the copy_bytes kernel, Read from a summing kernel).
func deviceBandwidth(device string) (cpu.Bandwidth, error) {
	if device != "cuda" {
		return machineBandwidth(), nil
	}
	cb, err := cudaBandwidth(1024, 5)
	if err != nil {
		return cpu.Bandwidth{}, err
	}
	return cpu.Bandwidth{Read: cb.Read, Copy: cb.Kernel}, nil
}

func benchMembw(args []string) error {
	fs := flag.NewFlagSet("bench membw", flag.ContinueOnError)
	size := fs.Int("mb", 256, "buffer size in MiB")
	reps := fs.Int("reps", 5, "repetitions (best is kept)")
	device := fs.String("device", "cpu", "cpu, or cuda for the GPU's device-to-device copy")
	if err := parseFlags(fs, args, ""); err != nil {
		return err
	}
	switch *device {
	case "cpu":
	case "cuda":
		return benchMembwCUDA(*size, *reps)
	default:
		return fmt.Errorf("unknown device %q (cpu or cuda)", *device)
	}
	b := cpu.MeasureBandwidth(*size<<20, goruntime.GOMAXPROCS(0), *reps)
	fmt.Printf("memory bandwidth, %d goroutines, %d MiB buffers, best of %d:\n", goruntime.GOMAXPROCS(0), *size, *reps)
	fmt.Printf("  copy %.1f GB/s (bytes read + bytes written)\n", b.Copy)
	fmt.Printf("  read %.1f GB/s\n", b.Read)
	return nil
}

// cpuRuntime is a runtime on a CPU device with a worker per GOMAXPROCS, for
// the CPU benchmarks, and that number of workers.
func cpuRuntime() (*runtime.Runtime, int, error) {
	workers := goruntime.GOMAXPROCS(0)
	rt, err := runtime.New(cpu.New(cpu.Options{Workers: workers}), runtime.Options{})
	return rt, workers, err
}

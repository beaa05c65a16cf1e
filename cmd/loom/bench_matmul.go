package main

import (
	"flag"
	"fmt"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/internal/loombench"
)

func init() {
	benchmarks["matmul"] = benchmark{"square matmul on the CPU (GFLOP/s beside the micro-kernel's in-cache peak)", benchMatmul}
}

func benchMatmul(args []string) error {
	fs := flag.NewFlagSet("bench matmul", flag.ContinueOnError)
	n := fs.Int("n", 1024, "matrix size: [n, n] · [n, n]")
	dtypes := fs.String("dtypes", "f32,bf16", "comma-separated dtypes")
	transB := fs.Bool("tb", false, "b transposed (the layout of linear-layer weights)")
	reps := fs.Int("reps", 10, "timed runs per dtype (best and median are printed)")
	if err := parseFlags(fs, args, ""); err != nil {
		return err
	}
	dts, err := parseDTypes(*dtypes)
	if err != nil {
		return err
	}
	rt, workers, err := cpuRuntime()
	if err != nil {
		return err
	}
	fmt.Printf("matmul [%d,%d]·[%d,%d]%s on the CPU, %d workers, best (median) of %d, through runtime.Eval:\n", *n, *n, *n, *n, tmark(*transB), workers, *reps)
	// The dtypes and the micro-kernel's in-cache peak are measured in
	// turns, so that changes in the machine's load affect them alike.
	var fns []func() error
	for _, dt := range dts {
		f, err := loombench.MatMul(rt, dt, *n, *n, *n, *transB)
		if err != nil {
			return err
		}
		fns = append(fns, f)
	}
	var peak float64
	fns = append(fns, func() error {
		peak = max(peak, cpu.MeasureMatMulPeak(workers, 1))
		return nil
	})
	t, err := loombench.Interleaved(*reps, fns...)
	if err != nil {
		return err
	}
	fmt.Printf("  micro-kernel peak, operands in L1: %.1f GFLOP/s\n", peak)
	flops := 2 * float64(*n) * float64(*n) * float64(*n)
	for i, dt := range dts {
		g := flops / t[i].Best.Seconds() / 1e9
		fmt.Printf("  %-9s %8.2f ms (%.2f ms)  %6.1f GFLOP/s  %3.0f%% of peak\n",
			dt, ms(t[i].Best), ms(t[i].Median), g, 100*g/peak)
	}
	return nil
}

func tmark(t bool) string {
	if t {
		return "ᵀ"
	}
	return ""
}

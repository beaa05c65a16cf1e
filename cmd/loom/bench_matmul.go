package main

import (
	"flag"
	"fmt"
	goruntime "runtime"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/internal/loombench"
	"github.com/loomrt/loom/runtime"
)

func init() {
	benchmarks["matmul"] = benchmark{"square matmul on the CPU (GFLOP/s beside the micro-kernel's in-cache peak)", benchMatmul}
}

func benchMatmul(args []string) error {
	fs := flag.NewFlagSet("matmul", flag.ContinueOnError)
	n := fs.Int("n", 1024, "matrix size: [n, n] · [n, n]")
	dtypes := fs.String("dtypes", "f32,bf16", "comma-separated dtypes")
	transB := fs.Bool("tb", false, "b transposed (the layout of linear-layer weights)")
	reps := fs.Int("reps", 10, "timed runs per dtype (best and median are printed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dts, err := parseDTypes(*dtypes)
	if err != nil {
		return err
	}
	workers := goruntime.GOMAXPROCS(0)
	rt, err := runtime.New(cpu.New(cpu.Options{Workers: workers}), runtime.Options{})
	if err != nil {
		return err
	}
	peak := cpu.MeasureMatMulPeak(workers, 5)
	fmt.Printf("matmul [%d,%d]·[%d,%d]%s on the CPU, %d workers, best (median) of %d:\n", *n, *n, *n, *n, tmark(*transB), workers, *reps)
	fmt.Printf("  micro-kernel peak, operands in L1: %.1f GFLOP/s\n", peak)
	flops := 2 * float64(*n) * float64(*n) * float64(*n)
	for _, dt := range dts {
		f, err := loombench.MatMul(rt, dt, *n, *n, *n, *transB)
		if err != nil {
			return err
		}
		t, err := loombench.Interleaved(*reps, f)
		if err != nil {
			return err
		}
		g := flops / t[0].Best.Seconds() / 1e9
		fmt.Printf("  %-9s %8.2f ms (%.2f ms)  %6.1f GFLOP/s  %3.0f%% of peak\n",
			dt, ms(t[0].Best), ms(t[0].Median), g, 100*g/peak)
	}
	return nil
}

func tmark(t bool) string {
	if t {
		return "ᵀ"
	}
	return ""
}

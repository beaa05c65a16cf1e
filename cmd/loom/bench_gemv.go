package main

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loombench"
)

func init() {
	benchmarks["gemv"] = benchmark{"decode matmul x[1,K]·Wᵀ on the CPU (weight GB/s beside measured memory bandwidth)", benchGemv}
}

func benchGemv(args []string) error {
	fs := flag.NewFlagSet("bench gemv", flag.ContinueOnError)
	n := fs.Int("n", 4096, "output size N (rows of W)")
	k := fs.Int("k", 4096, "input size K (columns of W)")
	dtypes := fs.String("dtypes", "f32,bf16,f16", "comma-separated dtypes of x and W")
	transB := fs.Bool("tb", true, "W stored [N, K] (the layout of linear-layer weights); false: [K, N]")
	reps := fs.Int("reps", 30, "timed runs per dtype (best and median are printed)")
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
	bw := machineBandwidth()
	layout := fmt.Sprintf("W[%d,%d]", *k, *n)
	if *transB {
		layout = fmt.Sprintf("W[%d,%d]ᵀ", *n, *k)
	}
	fmt.Printf("GEMV x[1,%d]·%s on the CPU, %d workers, best (median) of %d, through runtime.Eval:\n", *k, layout, workers, *reps)
	fmt.Printf("  machine memory bandwidth: read %.1f GB/s, copy %.1f GB/s (loom bench membw)\n", bw.Read, bw.Copy)
	for _, dt := range dts {
		f, err := loombench.MatMul(rt, dt, 1, *n, *k, *transB)
		if err != nil {
			return err
		}
		// The machine's load changes during a run: read bandwidth is also
		// measured in turns with the GEMV, on a buffer of at least 64 MiB,
		// twice the L3 cache (a smaller one would be read partly from the
		// cache, right after the measurement fills it), and the best of
		// each is compared.
		bytes := float64(*n) * float64(*k) * float64(dt.Size())
		var read float64
		rp := cpu.NewReadProbe(max(int(bytes), 64<<20), workers)
		probe := func() error {
			read = max(read, rp.Read())
			return nil
		}
		t, err := loombench.Interleaved(*reps, f, probe)
		if err != nil {
			return err
		}
		gbs := bytes / t[0].Best.Seconds() / 1e9
		fmt.Printf("  %-9s W %5.1f MiB %7.3f ms (%.3f ms)  %5.1f GB/s  %3.0f%% of read, %3.0f%% of copy; read in turns %.1f GB/s: %3.0f%%\n",
			dt, bytes/(1<<20), ms(t[0].Best), ms(t[0].Median), gbs, 100*gbs/bw.Read, 100*gbs/bw.Copy, read, 100*gbs/read)
	}
	return nil
}

// parseDTypes parses a comma-separated list of float dtypes.
func parseDTypes(s string) ([]graph.DType, error) {
	var out []graph.DType
	for _, name := range strings.Split(s, ",") {
		dt, err := graph.ParseDType(strings.TrimSpace(name))
		if err != nil {
			return nil, err
		}
		if !dt.IsFloat() {
			return nil, fmt.Errorf("dtype %s: matmul needs float32, float16 or bfloat16", dt)
		}
		out = append(out, dt)
	}
	return out, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

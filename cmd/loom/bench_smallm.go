package main

import (
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/internal/loombench"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
)

func init() {
	benchmarks["smallm"] = benchmark{"batched-decode matmul x[M,K]·Wᵀ on the CPU: the small-M path against the tiled kernel (weight GB/s beside read bandwidth, GFLOP/s beside the micro-kernel peak)", benchSmallM}
}

// tiledMatMul is MatMul lowered to the tiled kernel whatever the shapes:
// the same dispatch, with the kernel the lowering would take past
// primitives.MatMulSmallM rows.
type tiledMatMul struct{ primitives.MatMul }

func (t tiledMatMul) Name() string { return "matmul (tiled)" }

func (t tiledMatMul) Lower(l *primitives.Lowering) error {
	if err := t.MatMul.Lower(l); err != nil {
		return err
	}
	l.Dispatches[0].Kernel = "matmul_" + l.Inputs[0].DType.Short() + "_tiled"
	return nil
}

func benchSmallM(args []string) error {
	fs := flag.NewFlagSet("bench smallm", flag.ContinueOnError)
	n := fs.Int("n", 4096, "output size N")
	k := fs.Int("k", 4096, "input size K")
	rows := fs.String("m", "1,2,4,8,16,32,64,128,256", "comma-separated row counts M")
	dtypes := fs.String("dtypes", "bf16,f32", "comma-separated dtypes of x and W")
	transB := fs.Bool("tb", true, "W stored [N, K] (the layout of linear-layer weights); false: [K, N]")
	reps := fs.Int("reps", 10, "timed runs of each case (best and median are printed)")
	if err := parseFlags(fs, args, ""); err != nil {
		return err
	}
	dts, err := parseDTypes(*dtypes)
	if err != nil {
		return err
	}
	var rowCounts []int
	for _, s := range strings.Split(*rows, ",") {
		m, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || m < 1 {
			return fmt.Errorf("-m: %q is not a row count", s)
		}
		rowCounts = append(rowCounts, m)
	}
	rt, workers, err := cpuRuntime()
	if err != nil {
		return err
	}
	layout := fmt.Sprintf("W[%d,%d]", *k, *n)
	if *transB {
		layout = fmt.Sprintf("W[%d,%d]ᵀ", *n, *k)
	}
	fmt.Printf("matmul x[M,%d]·%s on the CPU, %d workers, best (median) of %d through runtime.Eval; the path the lowering takes, and the tiled kernel, in turns with a read of a buffer of at least 64 MiB and the tiled kernel's micro-kernel on L1 operands (its peak):\n",
		*k, layout, workers, *reps)
	for _, dt := range dts {
		bytes := float64(*n) * float64(*k) * float64(dt.Size())
		fmt.Printf("  %s, W %.1f MiB:\n", dt, bytes/(1<<20))
		rp := cpu.NewReadProbe(max(int(bytes), 64<<20), workers)
		x, err := loombench.Operand(rt, dt, 1, slices.Max(rowCounts), *k)
		if err != nil {
			return err
		}
		wShape := []int{*k, *n}
		if *transB {
			wShape = []int{*n, *k}
		}
		w, err := loombench.Operand(rt, dt, 2, wShape...)
		if err != nil {
			return err
		}
		for _, m := range rowCounts {
			xm := ops.Slice(x, []int{0, 0}, []int{m, *k})
			if err := rt.Eval(xm); err != nil {
				return err
			}
			var path string
			lowered := func() error {
				err := rt.Eval(ops.MatMulTransposed(xm, w, false, *transB))
				for name, c := range rt.LastStats().Counters {
					if strings.HasPrefix(name, "matmul_") && c > 0 {
						path = strings.TrimPrefix(name, "matmul_")
					}
				}
				return err
			}
			tiled := func() error {
				return rt.Eval(ops.Apply(tiledMatMul{primitives.MatMul{TransposeB: *transB}}, xm, w)[0])
			}
			var read, peak float64
			probe := func() error {
				read = max(read, rp.Read())
				peak = max(peak, cpu.MeasureMatMulPeak(workers, 1))
				return nil
			}
			t, err := loombench.Interleaved(*reps, lowered, tiled, probe)
			if err != nil {
				return err
			}
			flops := 2 * float64(m) * float64(*n) * float64(*k)
			gbs, gflops := bytes/t[0].Best.Seconds()/1e9, flops/t[0].Best.Seconds()/1e9
			fmt.Printf("    M=%-4d %-7s %8.3f ms (%.3f)  %5.1f GB/s %3.0f%% of read %4.1f  %6.1f GFLOP/s %3.0f%% of peak %5.1f | tiled %8.3f ms (%.3f): %.2f×\n",
				m, path, ms(t[0].Best), ms(t[0].Median), gbs, 100*gbs/read, read, gflops, 100*gflops/peak, peak,
				ms(t[1].Best), ms(t[1].Median), t[1].Best.Seconds()/t[0].Best.Seconds())
		}
	}
	return nil
}

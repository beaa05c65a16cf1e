package main

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loombench"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

func init() {
	benchmarks["gemv"] = benchmark{"decode matmul x[1,K]·Wᵀ on the CPU or CUDA, float or quantized weights (weight GB/s beside measured memory bandwidth)", benchGemv}
}

// gemvResult is one dtype's line of `loom bench gemv -json`.
type gemvResult struct {
	DType      string  `json:"dtype"` // f32, bf16, f16, or q4 / q8 (quantized, bfloat16 x, scales and biases)
	N          int     `json:"n"`
	K          int     `json:"k"`
	GroupSize  int     `json:"group_size,omitempty"`
	Bytes      int64   `json:"bytes"` // weights read a product: for q4/q8 the packed codes plus the scales and biases
	BestMS     float64 `json:"best_ms"`
	MedianMS   float64 `json:"median_ms"`
	GBs        float64 `json:"gbps"`              // bytes / best time
	ReadGBs    float64 `json:"read_gbps"`         // the best read bandwidth measured in turns with the product (CUDA: the GPU's, measured before the run)
	MachineGBs float64 `json:"machine_read_gbps"` // the read bandwidth measured before the run
	OfRead     float64 `json:"of_read"`           // gbps / read_gbps
	Device     string  `json:"device"`            // cpu or cuda
	Sets       int     `json:"weight_sets,omitempty"`
}

// gemvDType is a dtype of the benchmark: a float dtype, or quantized
// weights of bits bits (scales, biases and x in bfloat16).
type gemvDType struct {
	name string
	dt   graph.DType
	bits int
}

func benchGemv(args []string) error {
	fs := flag.NewFlagSet("bench gemv", flag.ContinueOnError)
	n := fs.Int("n", 4096, "output size N (rows of W)")
	k := fs.Int("k", 4096, "input size K (columns of W)")
	dtypes := fs.String("dtypes", "f32,bf16,f16", "comma-separated dtypes of x and W: f32, bf16, f16, or q4 and q8 (quantized W, docs/QUANT.md, with bf16 x, scales and biases)")
	groupSize := fs.Int("group-size", 64, "elements a scale and bias of q4 and q8")
	asJSON := fs.Bool("json", false, "print one JSON object a dtype, one a line")
	transB := fs.Bool("tb", true, "W stored [N, K] (the layout of linear-layer weights); false: [K, N]")
	reps := fs.Int("reps", 30, "timed runs per dtype (best and median are printed)")
	device := fs.String("device", "cpu", "cpu, or cuda: each timed run is one Eval of products by copies of the weights that together pass 256 MB (so that they come from memory, not the 50 MB L2), every kernel timed on the GPU (the kernel profile)")
	if err := parseFlags(fs, args, ""); err != nil {
		return err
	}
	var dts []gemvDType
	for _, name := range strings.Split(*dtypes, ",") {
		switch name = strings.TrimSpace(name); name {
		case "q4", "q8":
			dts = append(dts, gemvDType{name, graph.BFloat16, int(name[1] - '0')})
		default:
			dt, err := parseDTypes(name)
			if err != nil {
				return err
			}
			dts = append(dts, gemvDType{dt[0].String(), dt[0], 0})
		}
	}
	switch *device {
	case "cpu":
	case "cuda":
		if !*transB {
			return fmt.Errorf("-device cuda: the weights are stored [N, K]; drop -tb=false")
		}
		return benchGemvCUDA(dts, *n, *k, *groupSize, *reps, *asJSON)
	default:
		return fmt.Errorf("-device %q: want cpu or cuda", *device)
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
	logf := func(format string, a ...any) {
		if !*asJSON {
			fmt.Printf(format, a...)
		}
	}
	logf("GEMV x[1,%d]·%s on the CPU, %d workers, best (median) of %d, through runtime.Eval:\n", *k, layout, workers, *reps)
	logf("  machine memory bandwidth: read %.1f GB/s, copy %.1f GB/s (loom bench membw)\n", bw.Read, bw.Copy)
	for _, d := range dts {
		dt := d.dt
		var f func() error
		bytes := float64(*n) * float64(*k) * float64(dt.Size())
		if d.bits != 0 {
			if !*transB {
				return fmt.Errorf("-dtypes %s: quantized weights are stored [N, K]; drop -tb=false", d.name)
			}
			var b int64
			if f, b, err = loombench.QuantizedMatMul(rt, dt, d.bits, *groupSize, 1, *n, *k); err != nil {
				return err
			}
			bytes = float64(b)
		} else if f, err = loombench.MatMul(rt, dt, 1, *n, *k, *transB); err != nil {
			return err
		}
		// The machine's load changes during a run: read bandwidth is also
		// measured in turns with the GEMV, on a buffer of at least 64 MiB,
		// twice the L3 cache (a smaller one would be read partly from the
		// cache, right after the measurement fills it), and the best of
		// each is compared.
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
		if *asJSON {
			r := gemvResult{DType: d.name, N: *n, K: *k, Bytes: int64(bytes), BestMS: ms(t[0].Best), MedianMS: ms(t[0].Median),
				GBs: gbs, ReadGBs: read, MachineGBs: bw.Read, OfRead: gbs / read, Device: "cpu"}
			if d.bits != 0 {
				r.GroupSize = *groupSize
			}
			if err := printJSON(r); err != nil {
				return err
			}
			continue
		}
		fmt.Printf("  %-9s W %5.1f MiB %7.3f ms (%.3f ms)  %5.1f GB/s  %3.0f%% of read, %3.0f%% of copy; read in turns %.1f GB/s: %3.0f%%\n",
			d.name, bytes/(1<<20), ms(t[0].Best), ms(t[0].Median), gbs, 100*gbs/bw.Read, 100*gbs/bw.Copy, read, 100*gbs/read)
	}
	return nil
}

// benchGemvCUDA is benchGemv on the CUDA device. A timed run is one Eval
// of max(sets, 16) products x[1, K]·Wᵀ, W taking turns among sets copies
// of the weights that together pass 256 MB; the kernel profile times each
// launch on the GPU with the launches queued back to back (the host's
// launch time and the Eval's wait are outside), and a run's figure is its
// launches' mean.
func benchGemvCUDA(dts []gemvDType, n, k, groupSize, reps int, asJSON bool) error {
	dev, err := openCUDA()
	if err != nil {
		return err
	}
	rt, err := runtime.New(dev, runtime.Options{})
	if err != nil {
		return err
	}
	defer rt.Close()
	bw, err := deviceBandwidth("cuda")
	if err != nil {
		return err
	}
	if !asJSON {
		fmt.Printf("GEMV x[1,%d]·W[%d,%d]ᵀ on CUDA, each launch timed on the GPU (kernel profile), best (median) of %d Evals:\n", k, n, k, reps)
		fmt.Printf("  device memory bandwidth: read %.1f GB/s, copy %.1f GB/s (loom bench membw -device cuda)\n", bw.Read, bw.Copy)
	}
	x, err := loombench.Operand(rt, graph.BFloat16, 1, 1, k)
	if err != nil {
		return err
	}
	for _, d := range dts {
		// product(i) is the product by copy i of the weights.
		var product func(i int) *graph.Array
		var bytes int64
		var sets int
		xd := x
		if d.dt != graph.BFloat16 {
			if xd, err = loombench.Operand(rt, d.dt, 1, 1, k); err != nil {
				return err
			}
		}
		if d.bits != 0 {
			var qs []loombench.Quantized
			for len(qs) == 0 || int64(len(qs))*qs[0].Bytes() < 256<<20 {
				q, err := loombench.QuantizedOperands(rt, d.dt, d.bits, groupSize, n, k, uint64(7+8*len(qs)))
				if err != nil {
					return err
				}
				qs = append(qs, q)
			}
			product, bytes, sets = func(i int) *graph.Array { return qs[i%len(qs)].MatMul(xd) }, qs[0].Bytes(), len(qs)
		} else {
			var ws []*graph.Array
			bytes = int64(n) * int64(k) * int64(d.dt.Size())
			for len(ws) == 0 || int64(len(ws))*bytes < 256<<20 {
				w, err := loombench.Operand(rt, d.dt, uint64(2+len(ws)), n, k)
				if err != nil {
					return err
				}
				ws = append(ws, w)
			}
			product, sets = func(i int) *graph.Array { return ops.MatMulTransposed(xd, ws[i%len(ws)], false, true) }, len(ws)
		}
		launches := max(sets, 16)
		run := func() error {
			outs := make([]*graph.Array, launches)
			for i := range outs {
				outs[i] = product(i)
			}
			return rt.Eval(outs...)
		}
		if err := run(); err != nil { // compiles the kernel and plans the Eval
			return err
		}
		var times []time.Duration
		for range reps {
			ks, err := profiledRuns(1, run)
			if err != nil {
				return err
			}
			var sum time.Duration
			var count int64
			for _, kt := range ks {
				if strings.Contains(kt.Name, "matmul") {
					sum += kt.Time
					count += kt.Launches
				}
			}
			if count != int64(launches) {
				return fmt.Errorf("%s: the profile counted %d matmul launches, want %d", d.name, count, launches)
			}
			times = append(times, sum/time.Duration(count))
		}
		median := loombench.Median(times) // sorts times
		best := times[0]
		gbs := float64(bytes) / best.Seconds() / 1e9
		if asJSON {
			r := gemvResult{DType: d.name, N: n, K: k, Bytes: bytes, BestMS: ms(best), MedianMS: ms(median),
				GBs: gbs, ReadGBs: bw.Read, MachineGBs: bw.Read, OfRead: gbs / bw.Read, Device: "cuda", Sets: sets}
			if d.bits != 0 {
				r.GroupSize = groupSize
			}
			if err := printJSON(r); err != nil {
				return err
			}
			continue
		}
		fmt.Printf("  %-9s W %6.1f MiB ×%d %8.2f µs (%.2f µs)  %7.1f GB/s  %3.0f%% of read %.0f GB/s\n",
			d.name, float64(bytes)/(1<<20), sets, float64(best.Nanoseconds())/1e3, float64(median.Nanoseconds())/1e3, gbs, 100*gbs/bw.Read, bw.Read)
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

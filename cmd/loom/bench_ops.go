package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loombench"
	"github.com/loomrt/loom/model"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

func init() {
	benchmarks["ops"] = benchmark{"the per-layer decode ops (RMSNorm, RoPE, SiLU, Mul, Add, Softmax) on the CPU, GB/s beside memory bandwidth", benchOps}
}

// opCase is one decode op: build applies it to operands made once per run;
// bytes is what one application reads and writes.
type opCase struct {
	name  string
	bytes int
	build func(rt *runtime.Runtime, dt graph.DType) (func() *graph.Array, error)
}

// decodeOps are the ops every layer of a Qwen3-0.6B-sized model runs per
// decode step, on its row sizes (hidden 1024, MLP 3072, 16 heads of 128),
// for a batch of rows tokens, and the softmax over its vocabulary.
func decodeOps(rows int) []opCase {
	c := model.Qwen3_0_6B
	hidden, mlp, heads, head, vocab := c.HiddenSize, c.IntermediateSize, c.NumHeads, c.HeadDim, c.VocabSize
	operand := loombench.Operand
	return []opCase{
		{fmt.Sprintf("rms_norm [%d,%d]", rows, hidden), 2*rows*hidden + hidden, func(rt *runtime.Runtime, dt graph.DType) (func() *graph.Array, error) {
			x, err := operand(rt, dt, 1, rows, hidden)
			if err != nil {
				return nil, err
			}
			w, err := operand(rt, dt, 2, hidden)
			return func() *graph.Array { return ops.RMSNorm(x, w, 1e-6) }, err
		}},
		{fmt.Sprintf("rms_norm [%d,%d,%d]", rows, heads, head), 2*rows*heads*head + head, func(rt *runtime.Runtime, dt graph.DType) (func() *graph.Array, error) {
			x, err := operand(rt, dt, 1, rows, heads, head)
			if err != nil {
				return nil, err
			}
			w, err := operand(rt, dt, 2, head)
			return func() *graph.Array { return ops.RMSNorm(x, w, 1e-6) }, err
		}},
		{fmt.Sprintf("rope [%d,%d,%d]", rows, heads, head), 2 * rows * heads * head, func(rt *runtime.Runtime, dt graph.DType) (func() *graph.Array, error) {
			x, err := operand(rt, dt, 1, rows, heads, head)
			pos := graph.FromInt32s(make([]int32, rows))
			if err == nil {
				err = rt.Eval(pos)
			}
			return func() *graph.Array { return ops.RoPE(x, pos, 1e6) }, err
		}},
		{fmt.Sprintf("silu [%d,%d]", rows, mlp), 2 * rows * mlp, func(rt *runtime.Runtime, dt graph.DType) (func() *graph.Array, error) {
			x, err := operand(rt, dt, 1, rows, mlp)
			return func() *graph.Array { return ops.SiLU(x) }, err
		}},
		{fmt.Sprintf("mul [%d,%d]", rows, mlp), 3 * rows * mlp, func(rt *runtime.Runtime, dt graph.DType) (func() *graph.Array, error) {
			x, err := operand(rt, dt, 1, rows, mlp)
			if err != nil {
				return nil, err
			}
			y, err := operand(rt, dt, 2, rows, mlp)
			return func() *graph.Array { return ops.Mul(x, y) }, err
		}},
		{fmt.Sprintf("add [%d,%d]", rows, hidden), 3 * rows * hidden, func(rt *runtime.Runtime, dt graph.DType) (func() *graph.Array, error) {
			x, err := operand(rt, dt, 1, rows, hidden)
			if err != nil {
				return nil, err
			}
			y, err := operand(rt, dt, 2, rows, hidden)
			return func() *graph.Array { return ops.Add(x, y) }, err
		}},
		{fmt.Sprintf("softmax [%d,%d]", rows, vocab), 2 * rows * vocab, func(rt *runtime.Runtime, dt graph.DType) (func() *graph.Array, error) {
			x, err := operand(rt, dt, 1, rows, vocab)
			return func() *graph.Array { return ops.Softmax(x, -1) }, err
		}},
	}
}

func benchOps(args []string) error {
	fs := flag.NewFlagSet("bench ops", flag.ContinueOnError)
	dtypes := fs.String("dtypes", "f32,bf16,f16", "comma-separated dtypes")
	rows := fs.Int("rows", 1, "tokens per step (the batch)")
	k := fs.Int("k", 64, "applications of the op per Eval, to spread the Eval's fixed cost")
	reps := fs.Int("reps", 20, "timed Evals per op (best and median are printed)")
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
	fmt.Printf("decode ops on the CPU, %d workers, through runtime.Eval of %d independent applications; time per application, best (median) of %d:\n", workers, *k, *reps)
	fmt.Printf("  machine memory bandwidth: read %.1f GB/s, copy %.1f GB/s (loom bench membw)\n", bw.Read, bw.Copy)
	for _, dt := range dts {
		for _, c := range decodeOps(*rows) {
			build, err := c.build(rt, dt)
			if err != nil {
				return fmt.Errorf("%s %s: %w", c.name, dt, err)
			}
			eval := func() error {
				outs := make([]*graph.Array, *k)
				for i := range outs {
					outs[i] = build()
				}
				return rt.Eval(outs...)
			}
			t, err := loombench.Interleaved(*reps, eval)
			if err != nil {
				return fmt.Errorf("%s %s: %w", c.name, dt, err)
			}
			per := func(d time.Duration) time.Duration { return d / time.Duration(*k) }
			bytes := float64(c.bytes * dt.Size())
			gbs := bytes / per(t[0].Best).Seconds() / 1e9
			fmt.Printf("  %-9s %-24s %9.2f µs (%9.2f µs)  %6.2f GB/s  %5.1f%% of copy bandwidth\n",
				dt, c.name, us(per(t[0].Best)), us(per(t[0].Median)), gbs, 100*gbs/bw.Copy)
		}
	}
	return nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

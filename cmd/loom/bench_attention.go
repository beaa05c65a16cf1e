package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	goruntime "runtime"
	"strings"
	"sync"
	"time"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loombench"
	"github.com/loomrt/loom/metal"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

func init() {
	benchmarks["attention"] = benchmark{"paged attention suite, single pass vs split-KV (K/V GB/s beside measured memory bandwidth)", benchAttention}
}

// attentionCase is one case of the paged attention suite: per sequence, the
// query tokens and the KV length (including those tokens).
type attentionCase struct {
	name            string
	qLens, kvLens   []int
	heads, kvHeads  int
	headSize        int
	blockSize       int
	decodeBatchSize int // decode cases: B sequences of one query token
}

// attentionSuite is the microbenchmark suite of REFERENCE §5: 8 query heads,
// 8 KV heads, head size 128, block size 16 unless stated.
var attentionSuite = []attentionCase{
	decodeCase("decode-small", 1, 128, 8, 128),
	decodeCase("decode-typical", 8, 2048, 8, 128),
	decodeCase("decode-big-head", 8, 2048, 32, 256),
	decodeCase("decode-long", 32, 8192, 8, 128),
	decodeCase("decode-long-16384", 32, 16384, 8, 128),
	varlenCase("varlen-light", []int{1, 4, 16, 64}, []int{128, 256, 512, 1024}),
	varlenCase("varlen-typical", []int{32, 64, 128, 256}, []int{512, 1024, 2048, 4096}),
	varlenCase("varlen-single-long", []int{256}, []int{4096}),
	varlenCase("varlen-ragged-longtail", []int{1, 1, 8, 128}, []int{4096, 8192, 512, 2048}),
	varlenCase("varlen-ultra-long", []int{1, 1, 8, 128}, []int{8192, 16384, 4096, 16384}),
}

func decodeCase(name string, batch, kv, heads, headSize int) attentionCase {
	c := attentionCase{name: name, heads: heads, kvHeads: 8, headSize: headSize, blockSize: 16, decodeBatchSize: batch}
	for range batch {
		c.qLens = append(c.qLens, 1)
		c.kvLens = append(c.kvLens, kv)
	}
	return c
}

func varlenCase(name string, qLens, kvLens []int) attentionCase {
	return attentionCase{name: name, qLens: qLens, kvLens: kvLens, heads: 8, kvHeads: 8, headSize: 128, blockSize: 16}
}

// kvBytes is what the case must read of the caches: every K and V row of
// every sequence once per KV head.
func (c attentionCase) kvBytes(dt graph.DType) int64 {
	var n int64
	for _, kv := range c.kvLens {
		n += int64(kv)
	}
	return 2 * n * int64(c.kvHeads*c.headSize*dt.Size())
}

func (c attentionCase) describe() string {
	geom := fmt.Sprintf("%dq/%dkv hs%d", c.heads, c.kvHeads, c.headSize)
	if c.decodeBatchSize > 0 {
		return fmt.Sprintf("B=%d kv=%d %s", c.decodeBatchSize, c.kvLens[0], geom)
	}
	return fmt.Sprintf("q %v kv %v %s", c.qLens, c.kvLens, geom)
}

// attentionResult is one line of -json output.
type attentionResult struct {
	Case    string  `json:"case"`
	Mode    string  `json:"mode"`
	Path    string  `json:"path"`
	MS      float64 `json:"ms"`
	KVBytes int64   `json:"kv_bytes"`
	GBps    float64 `json:"gbps"`
	// KernelMS is the GPU time of an Eval's kernels (-kernels), without
	// the host's planning, launch and wait: the time to set beside a peer
	// whose calls are queued back to back.
	KernelMS float64 `json:"kernel_ms,omitempty"`
	best     float64 // fastest run, ms
}

func benchAttention(args []string) error {
	fs := flag.NewFlagSet("bench attention", flag.ContinueOnError)
	split := fs.String("split", "all", "split mode: auto, never, always, or all (every mode, interleaved)")
	asJSON := fs.Bool("json", false, "print one JSON object per case and mode (case, mode, path, ms, kv_bytes, gbps)")
	device := fs.String("device", "cpu", "device to run on: cpu, cuda or metal (macOS)")
	dtName := fs.String("dtype", "f16", "dtype of queries and caches")
	reps := fs.Int("reps", 9, "timed samples per case and mode, each of enough Evals to last 5 ms, after a warm-up (the median is printed)")
	only := fs.String("case", "", "run only the cases whose name contains this")
	kernels := fs.Int("kernels", 0, "after the timed samples, time this many Evals of each case and mode kernel by kernel on the GPU (CUDA; each launch timed with events) and print their kernels' time an Eval beside the Eval's")
	gate := fs.Bool("gate", false, "instead of the suite, time both paths for a growing number of groups (query tokens × KV heads): the measurement behind SplitAuto's threshold")
	if err := parseFlags(fs, args, ""); err != nil {
		return err
	}
	modes, err := parseSplitModes(*split)
	if err != nil {
		return err
	}
	dt, err := graph.ParseDType(*dtName)
	if err != nil || !dt.IsFloat() {
		return fmt.Errorf("-dtype %q: want f32, f16 or bf16", *dtName)
	}
	if *kernels < 0 || (*kernels > 0 && *device != "cuda") {
		return fmt.Errorf("-kernels %d: want a number of Evals ≥ 0, profiled on the CUDA device only", *kernels)
	}
	dev, err := openDevice(*device)
	if err != nil {
		return err
	}
	if *gate {
		return benchAttentionGate(dev, dt, *reps)
	}
	bw, err := deviceBandwidth(*device)
	if err != nil {
		return err
	}
	// On the CPU each case also reads a 256 MiB buffer before each of its
	// samples, and its "% read" is against the median of those reads: on a
	// shared machine the figure taken at the start drifts. The read also
	// leaves every mode's sample the same cold caches, as in a decode step
	// (with the read once a round, the mode after it ran up to 16 % slower
	// than the same dispatches run right after another mode, whose K/V the
	// L3 cache partly still held).
	var probe *cpu.ReadProbe
	if *device == "cpu" {
		probe = cpu.NewReadProbe(256<<20, goruntime.GOMAXPROCS(0))
	}
	if !*asJSON {
		fmt.Printf("paged attention on %s (%d cores), %s, per Eval: median (best) of %d samples of at least 5 ms; limit: memory bandwidth read %.1f GB/s, copy %.1f GB/s (loom bench membw)\n",
			*device, dev.Caps().Cores, dt, *reps, bw.Read, bw.Copy)
		if probe != nil {
			fmt.Printf("%% read: against the read bandwidth measured in turns with each case's samples\n")
		}
		fmt.Printf("%-22s %-6s %-6s %20s %9s %7s %7s  %s\n", "case", "mode", "path", "ms", "K/V MiB", "GB/s", "% read", "shape")
	}
	for _, c := range attentionSuite {
		if !strings.Contains(c.name, *only) {
			continue
		}
		res, read, err := runAttentionCase(dev, c, dt, modes, *reps, *kernels, probe)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		if read == 0 {
			read = bw.Read
		}
		for _, r := range res {
			if *asJSON {
				if err := printJSON(r); err != nil {
					return err
				}
				continue
			}
			fmt.Printf("%-22s %-6s %-6s %9.3f (%8.3f) %9.1f %7.1f %6.0f%%  %s\n",
				r.Case, r.Mode, r.Path, r.MS, r.best, float64(r.KVBytes)/(1<<20), r.GBps, 100*r.GBps/read, c.describe())
			if r.KernelMS > 0 {
				gbps := float64(r.KVBytes) / r.KernelMS / 1e6
				fmt.Printf("%-22s %-6s %-6s %9.4f ms of kernels an Eval (%d Evals, launch by launch) %7.1f GB/s %6.0f%% read\n", "", "", "kernel", r.KernelMS, *kernels, gbps, 100*gbps/read)
			}
		}
		if !*asJSON && len(res) == 3 {
			best := min(res[1].MS, res[2].MS)
			fmt.Printf("%-22s auto takes %.2f× the time of the best forced mode", "", res[0].MS/best)
			if probe != nil {
				fmt.Printf("; read in turns %.1f GB/s", read)
			}
			fmt.Println()
		}
	}
	return nil
}

func parseSplitModes(s string) ([]ops.SplitMode, error) {
	switch s {
	case "all":
		return []ops.SplitMode{ops.SplitAuto, ops.SplitNever, ops.SplitAlways}, nil
	case "auto":
		return []ops.SplitMode{ops.SplitAuto}, nil
	case "never":
		return []ops.SplitMode{ops.SplitNever}, nil
	case "always":
		return []ops.SplitMode{ops.SplitAlways}, nil
	}
	return nil, fmt.Errorf("-split %q: want auto, never, always or all", s)
}

// openDevice opens the device a benchmark runs on.
func openDevice(name string) (runtime.Device, error) {
	switch name {
	case "cpu":
		return cpu.New(cpu.Options{Workers: goruntime.GOMAXPROCS(0)}), nil
	case "cuda":
		return openCUDA()
	case "metal":
		return metal.Open()
	}
	return nil, fmt.Errorf("-device %q: want cpu, cuda or metal", name)
}

// minSample is the shortest timed sample of an attention case.
const minSample = 5 * time.Millisecond

// runAttentionCase times the case in each mode, in turns, and with probe
// (if not nil) a read of memory in turns with them, whose median it also
// returns; then, with kernels > 0, profiles that many Evals of each mode
// kernel by kernel (CUDA).
func runAttentionCase(dev runtime.Device, c attentionCase, dt graph.DType, modes []ops.SplitMode, reps, kernels int, probe *cpu.ReadProbe) ([]attentionResult, float64, error) {
	rt, err := runtime.New(dev, runtime.Options{})
	if err != nil {
		return nil, 0, err
	}
	defer goruntime.GC() // the caches of the long cases are gigabytes
	defer rt.Close()
	r := rand.New(rand.NewPCG(uint64(len(c.name)), 7))
	blocks := 0
	for _, kv := range c.kvLens {
		blocks += (kv + c.blockSize - 1) / c.blockSize
	}
	perm := r.Perm(blocks)
	maxBlocks, maxLen, tq := 0, 0, 0
	for _, kv := range c.kvLens {
		maxBlocks = max(maxBlocks, (kv+c.blockSize-1)/c.blockSize)
		maxLen = max(maxLen, kv)
	}
	tables := make([]int32, len(c.kvLens)*maxBlocks)
	lens := make([]int32, len(c.kvLens))
	cu := []int32{0}
	for s, kv := range c.kvLens {
		for b := range (kv + c.blockSize - 1) / c.blockSize {
			tables[s*maxBlocks+b] = int32(perm[0])
			perm = perm[1:]
		}
		lens[s] = int32(kv)
		tq += c.qLens[s]
		cu = append(cu, int32(tq))
	}
	meta := ops.AttentionMeta{
		BlockTables: graph.FromInt32s(tables, len(c.kvLens), maxBlocks),
		SeqLens:     graph.FromInt32s(lens),
		CuSeqlensQ:  graph.FromInt32s(cu),
		MaxSeqLen:   maxLen,
	}
	shape := []int{blocks, c.blockSize, c.kvHeads, c.headSize}
	kc := graph.FromBytes(dt, randomFloats(dt, graph.NumElements(shape), r.Uint64()), shape...)
	vc := graph.FromBytes(dt, randomFloats(dt, graph.NumElements(shape), r.Uint64()), shape...)
	if err := rt.Eval(kc, vc, meta.BlockTables, meta.SeqLens, meta.CuSeqlensQ); err != nil {
		return nil, 0, err
	}
	q, err := loombench.Operand(rt, dt, r.Uint64(), tq, c.heads, c.headSize)
	if err != nil {
		return nil, 0, err
	}
	paths := make([]string, len(modes))
	eval := func(i int) error {
		if err := rt.Eval(ops.PagedAttention(q, kc, vc, meta, ops.AttentionOptions{Split: modes[i]})); err != nil {
			return err
		}
		paths[i] = "single"
		if rt.LastStats().Counters["paged_attention.split"] > 0 {
			paths[i] = "split"
		}
		return nil
	}
	// Each timed sample is enough Evals to last about minSample: one Eval of
	// a small case is tens of microseconds, within the scheduler's noise.
	if err := eval(0); err != nil { // warm-up
		return nil, 0, err
	}
	start := time.Now()
	if err := eval(0); err != nil {
		return nil, 0, err
	}
	iters := int(min(max(minSample/max(time.Since(start), time.Microsecond), 1), 1000))
	// fns: each mode's sample, after a read of the probe's buffer if there
	// is a probe (see benchAttention).
	var fns []func() error
	var reads []float64
	for i := range modes {
		if probe != nil {
			fns = append(fns, func() error {
				reads = append(reads, probe.Read())
				return nil
			})
		}
		fns = append(fns, func() error {
			for range iters {
				if err := eval(i); err != nil {
					return err
				}
			}
			return nil
		})
	}
	all, err := loombench.Interleaved(reps, fns...)
	if err != nil {
		return nil, 0, err
	}
	ts := all
	if probe != nil {
		ts = make([]loombench.Timing, len(modes))
		for i := range modes {
			ts[i] = all[2*i+1]
		}
	}
	read := 0.0
	if len(reads) > 0 {
		read = loombench.Median(reads)
	}
	out := make([]attentionResult, len(modes))
	for i, mode := range modes {
		ts[i].Median /= time.Duration(iters)
		ts[i].Best /= time.Duration(iters)
		t := ts[i].Median
		out[i] = attentionResult{Case: c.name, Mode: mode.String(), Path: paths[i], MS: ms(t), KVBytes: c.kvBytes(dt),
			GBps: float64(c.kvBytes(dt)) / t.Seconds() / 1e9, best: ms(ts[i].Best)}
		if kernels == 0 {
			continue
		}
		ks, err := profiledRuns(kernels, func() error { return eval(i) })
		if err != nil {
			return nil, 0, err
		}
		var sum time.Duration
		for _, k := range ks {
			sum += k.Time
		}
		out[i].KernelMS = ms(sum / time.Duration(kernels))
	}
	return out, read, nil
}

// randomFloats returns n random values of dt in ±[1/16, 1/2), as bytes
// (see fillRandom).
func randomFloats(dt graph.DType, n int, seed uint64) []byte {
	b := make([]byte, n*dt.Size())
	fillRandom(dt, b, seed)
	return b
}

// fillRandom fills b with random values of dt in ±[1/16, 1/2), generated
// directly in the storage format (random sign, exponent −4..−1 and
// mantissa), in parallel: the K/V caches of the long cases are gigabytes.
func fillRandom(dt graph.DType, b []byte, seed uint64) {
	size := dt.Size()
	n := len(b) / size
	workers := goruntime.GOMAXPROCS(0)
	per := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := seed<<32 | uint64(w)<<8 | 1
			for i := w * per; i < min(n, (w+1)*per); i++ {
				x ^= x << 13 // xorshift: fast, and the values only need to vary
				x ^= x >> 7
				x ^= x << 17
				sign := x >> 63
				switch dt {
				case graph.Float32:
					binary.LittleEndian.PutUint32(b[4*i:], uint32(sign<<31|(123+(x>>23)&3)<<23|x&0x7fffff))
				case graph.Float16:
					binary.LittleEndian.PutUint16(b[2*i:], uint16(sign<<15|(11+(x>>10)&3)<<10|x&0x3ff))
				default:
					binary.LittleEndian.PutUint16(b[2*i:], uint16(sign<<15|(123+(x>>7)&3)<<7|x&0x7f))
				}
			}
		}()
	}
	wg.Wait()
}

// benchAttentionGate times decode over 8192 keys (16 partitions) on both
// paths for a growing number of sequences, with 8 KV heads and with 1, and
// prints which path SplitAuto takes.
func benchAttentionGate(dev runtime.Device, dt graph.DType, reps int) error {
	caps := dev.Caps()
	fmt.Printf("split-KV gate on %s (%d cores), %s, decode of B sequences over 8192 keys, 8 query heads, per Eval: median of %d samples of at least 5 ms\n", caps.Device, caps.Cores, dt, reps)
	if g := caps.SplitKV; g.GroupsPerCore == 0 {
		fmt.Println("SplitAuto splits whenever there are two partitions or more (Caps.SplitKV)")
	} else {
		fmt.Printf("SplitAuto splits below %d groups per core, a group being a query token%s (Caps.SplitKV)\n",
			g.GroupsPerCore, map[bool]string{true: " and KV head"}[g.PerHead])
	}
	fmt.Printf("%8s %4s %10s %10s %12s %6s\n", "kv heads", "B", "single ms", "split ms", "split/single", "auto")
	for _, kvh := range []int{8, 1} {
		for _, b := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 16} {
			c := decodeCase(fmt.Sprintf("gate-%d-%d", kvh, b), b, 8192, 8, 128)
			c.kvHeads = kvh
			res, _, err := runAttentionCase(dev, c, dt, []ops.SplitMode{ops.SplitNever, ops.SplitAlways, ops.SplitAuto}, reps, 0, nil)
			if err != nil {
				return err
			}
			fmt.Printf("%8d %4d %10.3f %10.3f %12.2f %6s\n", kvh, b, res[0].MS, res[1].MS, res[1].MS/res[0].MS, res[2].Path)
		}
	}
	return nil
}

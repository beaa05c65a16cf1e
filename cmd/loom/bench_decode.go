package main

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"time"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/cuda"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loombench"
	"github.com/loomrt/loom/model"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

func init() {
	benchmarks["decode"] = benchmark{"Qwen3-0.6B-shaped decode steps (random bf16 weights and KV cache; -model DIR: that model) (CPU by default; -device cuda|metal): TPOT, tokens/s, GB/s beside measured bandwidth", benchDecode}
}

// decodeResult is what `loom bench decode -json` prints.
type decodeResult struct {
	Model             string       `json:"model"`
	DType             string       `json:"dtype"`
	Weights           string       `json:"weights"` // bf16, q4 or q8; with -model the weights' dtype
	Batch             int          `json:"batch"`
	Context           int          `json:"context"`
	Steps             int          `json:"steps"`
	Device            string       `json:"device"`
	TPOTms            float64      `json:"tpot_ms"`                    // median step time
	TPOTBestms        float64      `json:"tpot_best_ms"`               // fastest step
	TokensPerSecond   float64      `json:"tokens_per_s"`               // batch / median step time
	MeanTokensPerS    float64      `json:"mean_tokens_per_s"`          // batch · steps / the steps' total time (counts the slow steps a median leaves out)
	TokensPerCPUs     float64      `json:"tokens_per_cpu_s,omitempty"` // batch · steps / the process's CPU time over the steps (a figure other processes' load hardly moves)
	WeightBytes       int64        `json:"weight_bytes"`               // read once per step
	KVBytes           int64        `json:"kv_bytes"`                   // K and V read per step
	WeightGBs         float64      `json:"weight_gb_s"`                // weight bytes / median step time
	TotalGBs          float64      `json:"total_gb_s"`                 // (weights + KV) / median step time
	MachineReadGBs    float64      `json:"machine_read_gb_s"`          // measured before the steps
	ReadGBs           float64      `json:"read_gb_s"`                  // median of the reads right before and after the steps (CPU), else MachineReadGBs
	WeightLimitms     float64      `json:"weight_limit_ms"`            // weight bytes / ReadGBs: the weights alone
	WeightKVLimitms   float64      `json:"weight_kv_limit_ms"`         // (weight bytes + KVBytes) / ReadGBs: all a step must read
	Dispatches        float64      `json:"dispatches_per_step"`
	CommandBuffers    float64      `json:"command_buffers_per_step"`
	HostWaits         float64      `json:"host_waits_per_step"`
	SplitAttention    float64      `json:"split_attention_per_step"`
	HostOverheadms    float64      `json:"host_overhead_ms"` // mean of a step's time less its device wait: scheduling, replaying (or building, planning, encoding), token read-back
	HostUsPerStep     float64      `json:"host_us_per_step"` // median of the same, in µs
	HostPhases        []hostPhase  `json:"host_phases"`      // where a step's host time and wait go (hostPhaseHelp)
	GCCycles          int          `json:"gc_cycles"`        // garbage collections completed during the timed steps
	SlowSteps         []slowStep   `json:"slow_steps"`       // the timed steps of the most host time, slowest first
	ReplayedSteps     int          `json:"replayed_steps"`   // timed steps the runtime replayed (Stats.CacheHits)
	NoCache           bool         `json:"nocache"`          // every step planned (runtime.Options.NoPlanCache)
	Hazards           int          `json:"hazards"`
	CheckingDevice    bool         `json:"checking_device"`
	SetupSeconds      float64      `json:"setup_s"`
	KVCacheMB         float64      `json:"kv_cache_mb"`
	ParametersMillion float64      `json:"parameters_m"`
	Kernels           []kernelStat `json:"kernels,omitempty"`  // -kernels: the GPU time of a step by kernel
	Logprobs          int          `json:"logprobs"`           // top log-probs reported per sequence and step, -1 for none
	CuBLASLt          string       `json:"cublaslt,omitempty"` // the CUDA device's use of cuBLASLt (its library and rows, or why it is off; its calls)
}

// hostPhase is one phase of the timed steps' host time or wait, over the
// steps: µs a step.
type hostPhase struct {
	Name     string  `json:"name"`
	MedianUs float64 `json:"median_us"`
	MeanUs   float64 `json:"mean_us"`
	MaxUs    float64 `json:"max_us"`
}

// slowStep is one of the timed steps of the most host time: its phases
// (hostPhaseHelp) in µs and the garbage collections completed in it.
type slowStep struct {
	Step     int                `json:"step"` // of the timed steps, from 0
	PhasesUs map[string]float64 `json:"phases_us"`
	GC       int                `json:"gc"`
}

// hostPhaseHelp says what each host phase is, in the order they are
// reported. Each step's figures are taken over the interval between two
// deliveries of tokens, which holds one submission (of the next step) and one wait and read-back (of the
// step delivered); call is that submission's Call, reported with the next
// step's statistics.
var hostPhaseHelp = []struct{ name, help string }{
	{"host", "the step's time less its wait (host_us_per_step): all below but wait, sync and retire"},
	{"busy", "host and retire: the step's time less the driver's wait for its event, all the host's own work"},
	{"call", "the compiled step's Call (of the step submitted): the runtime's replay, the poll and the submission"},
	{"submit", "of call, the device's submission (CUDA: queue.Submit, the driver calls below included)"},
	{"launch", "of submit, cuGraphLaunch (or the launches of a list not launched as a graph)"},
	{"update", "of submit, the kernel-node updates of the rebound arguments"},
	{"stage", "of submit, the uploads' copy into the exec's pinned staging"},
	{"record", "of submit, cuEventRecord of the completion event"},
	{"poll", "of call, cuEventQuery of the steps in flight"},
	{"read", "reading the tokens back: the copy to the host and its synchronise"},
	{"rest", "host less call and read: the decoder's scheduling and inputs, this loop, the Go runtime"},
	{"wait", "the host blocked for the device (the runtime's Stats.Wait), not host work"},
	{"sync", "of wait, the driver's wait for the step's event: its time left on the device and the wake-up"},
	{"retire", "of wait, host work inside it: the locks, the context, retiring the step (its status records)"},
}

// hostPhaseOrder is hostPhaseHelp's names, in its order: the order the
// phases are reported in.
func hostPhaseOrder() []string {
	names := make([]string, len(hostPhaseHelp))
	for i, p := range hostPhaseHelp {
		names[i] = p.name
	}
	return names
}

// phaseHelp is hostPhaseHelp's explanation of the named phase, "" for none.
func phaseHelp(name string) string {
	for _, p := range hostPhaseHelp {
		if p.name == name {
			return p.help
		}
	}
	return ""
}

// phases turns per-step durations into host phases, in order; a phase
// without figures (not measured on this device) is left out.
func phases(order []string, steps map[string][]time.Duration) []hostPhase {
	var out []hostPhase
	us := func(t time.Duration) float64 { return float64(t.Nanoseconds()) / 1e3 }
	for _, name := range order {
		v := steps[name]
		if len(v) == 0 {
			continue
		}
		var sum time.Duration
		for _, t := range v {
			sum += t
		}
		v = slices.Clone(v)
		med := loombench.Median(v) // sorts v
		out = append(out, hostPhase{name, us(med), us(sum) / float64(len(v)), us(v[len(v)-1])})
	}
	return out
}

// slowSteps returns the n timed steps of the most host time, slowest
// first, with their phases and garbage collections.
func slowSteps(order []string, steps map[string][]time.Duration, gcs []int, n int) []slowStep {
	host := steps["host"]
	idx := make([]int, len(host))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(host[b], host[a]) })
	var out []slowStep
	for _, i := range idx[:min(n, len(idx))] {
		st := slowStep{Step: i, PhasesUs: map[string]float64{}, GC: gcs[i]}
		for _, name := range order {
			if v := steps[name]; len(v) > i {
				st.PhasesUs[name] = float64(v[i].Nanoseconds()) / 1e3
			}
		}
		out = append(out, st)
	}
	return out
}

// kernelStat is one kernel's share of a profiled step (-kernels).
type kernelStat struct {
	Name            string  `json:"name"`
	LaunchesPerStep float64 `json:"launches_per_step"`
	UsPerStep       float64 `json:"us_per_step"` // GPU time
	Share           float64 `json:"share"`       // of the profiled kernels' time
	GBs             float64 `json:"gb_s"`        // argument bytes / GPU time (an upper bound on the traffic)
}

func benchDecode(args []string) error {
	fs := flag.NewFlagSet("bench decode", flag.ContinueOnError)
	batch := fs.Int("batch", 1, "sequences decoded together")
	context := fs.Int("context", 1024, "tokens already in each sequence's KV cache (random K/V, no prefill)")
	steps := fs.Int("steps", 16, "timed decode steps (after 3 warm-up steps)")
	check := fs.Bool("check", false, "run on the checking CPU device and report hazards")
	device := fs.String("device", "cpu", "device: cpu, cuda or metal (macOS)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	blockSize := fs.Int("block-size", 16, blockSizeHelp)
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the timed steps to this file")
	noCache := fs.Bool("nocache", false, "plan every step from scratch (no plan cache, no compiled step)")
	perCB := fs.Int("n", 0, "dispatches per command buffer (0: the runtime's default; -1: one command buffer per step)")
	weightsList := fs.String("weights", "bf16", "weights: bf16, or q4 / q8 (MLX's affine format, groups of -group-size, bf16 scales and biases; docs/QUANT.md); a comma-separated list runs each in turn in this process, one result each")
	groupSize := fs.Int("group-size", 64, "elements a scale and bias of q4 and q8 weights")
	kernels := fs.Int("kernels", 0, "after the timed steps, profile this many steps kernel by kernel (CUDA; launch by launch, each timed on the GPU) and print where a step's GPU time goes")
	logprobs := fs.Int("logprobs", -1, "report every sequence's drawn token's log-prob and this many top log-probs each step (0 to 20; -1: none)")
	dir := fs.String("model", "", "decode this model directory (its weights' dtype, -weights bf16 only) instead of the Qwen3-0.6B shape with random weights")
	if err := parseFlags(fs, args, ""); err != nil {
		return err
	}
	if *batch < 1 || *context < 0 || *steps < 1 || *kernels < 0 {
		return fmt.Errorf("-batch %d, -context %d, -steps %d, -kernels %d: want batch ≥ 1, context ≥ 0, steps ≥ 1, kernels ≥ 0", *batch, *context, *steps, *kernels)
	}
	if *logprobs < -1 || *logprobs > ops.MaxTopLogprobs {
		return fmt.Errorf("-logprobs %d: want -1 (none) to %d", *logprobs, ops.MaxTopLogprobs)
	}
	if *kernels > 0 && *device != "cuda" {
		return fmt.Errorf("-kernels: the kernel profile is supported on the CUDA device only, not %q", *device)
	}
	if err := checkBlockSize(*blockSize); err != nil {
		return err
	}
	bits := map[string]int{"bf16": 0, "q4": 4, "q8": 8}
	list := strings.Split(*weightsList, ",")
	for _, w := range list {
		if _, ok := bits[w]; !ok {
			return fmt.Errorf("-weights %q: want bf16, q4 or q8", w)
		}
		if *dir != "" && w != "bf16" {
			return fmt.Errorf("-weights %q with -model: unsupported (the directory's weights are decoded as they are)", w)
		}
	}
	for _, w := range list {
		if err := benchDecodeRun(*dir, w, bits[w], *groupSize, *batch, *context, *steps, *kernels, *logprobs, *blockSize, *device, *check, *asJSON, runtime.Options{NoPlanCache: *noCache, DispatchesPerCommandBuffer: *perCB}, *cpuProfile); err != nil {
			return err
		}
	}
	return nil
}

// benchDecodeRun is one run of benchDecode: of the model in dir, or
// without one of the Qwen3-0.6B shape with random weights of the named
// kind (quantized to bits bits where bits is not 0).
func benchDecodeRun(dir, weightsName string, bits, groupSize, batch, context, steps, profiled, logprobs, blockSize int, device string, check, asJSON bool, opts runtime.Options, cpuProfile string) error {
	// The warm-up: the prompt, the trace, and the first replay of each of
	// the two list sets the Decoder's steps alternate between (one in
	// flight while the next is submitted), whose first submission builds
	// its graph exec on CUDA (2–3 ms: in the timed steps it added 40–160
	// µs to the mean host work of 64 or 16 steps).
	const warmup = 3
	// A profile's steps are the ones submitted after the timed steps: one
	// more step is decoded to deliver the last of them.
	last := warmup + steps
	if profiled > 0 {
		last += profiled + 1
	}
	logf := func(format string, a ...any) {
		if !asJSON {
			fmt.Printf(format, a...)
		}
	}
	bw, err := deviceBandwidth(device)
	if err != nil {
		return err
	}
	setup := time.Now()
	rt, where, hazards, err := openRuntime(device, check, opts)
	if err != nil {
		return err
	}
	defer rt.Close() // the next run of a -weights list gets the memory back
	name := "Qwen3-0.6B (random weights)"
	var m *model.Model
	if dir == "" {
		m, err = randomModel(rt, model.Qwen3_0_6B, graph.BFloat16, bits, groupSize)
	} else {
		name = filepath.Base(dir)
		m, err = model.Load(rt, dir, graph.Invalid)
	}
	if err != nil {
		return err
	}
	if dir != "" {
		weightsName = m.DType.String()
	}
	cfg, dt := m.Config, m.DType
	if total := context + last; total > cfg.MaxPositionEmbeddings {
		return fmt.Errorf("-context %d + %d steps exceed the model's %d positions", context, last, cfg.MaxPositionEmbeddings)
	}
	logf("%s: %d layers, hidden %d, %d/%d heads of %d, MLP %d, vocab %d; %s weights\n",
		name, cfg.NumLayers, cfg.HiddenSize, cfg.NumHeads, cfg.NumKVHeads, cfg.HeadDim, cfg.IntermediateSize, cfg.VocabSize, weightsName)
	perSeq := (context + last + blockSize - 1) / blockSize
	cache, err := model.NewKVCache(rt, m.CacheConfig(batch*perSeq, blockSize), randomKV(dt))
	if err != nil {
		return err
	}
	e := &model.Engine{Model: m, Cache: cache}
	seqs := make([]int, batch)
	counts := make([]int, batch)
	tokens := make([][]int32, batch)
	r := rand.New(rand.NewPCG(3, 3))
	for i := range seqs {
		seqs[i], counts[i] = i, context
		tokens[i] = []int32{int32(r.IntN(cfg.VocabSize))}
		if err := cache.Add(i); err != nil {
			return err
		}
	}
	if context > 0 {
		// Account for the context already in the cache: its K/V are the
		// random values the cache was filled with.
		if _, err := cache.Schedule(seqs, counts); err != nil {
			return err
		}
	}
	res := decodeResult{Model: name, DType: dt.String(), Weights: weightsName, Batch: batch, Context: context, Steps: steps, Logprobs: logprobs,
		Device: where, CheckingDevice: check, NoCache: opts.NoPlanCache, SetupSeconds: time.Since(setup).Seconds(),
		KVCacheMB: float64(cache.Config().Bytes()) / 1e6, ParametersMillion: float64(cfg.Params()) / 1e6, MachineReadGBs: bw.Read}
	logf("setup %.1f s: weights %.0f MB, KV cache %.0f MB (%d blocks of %d); device %s\n", res.SetupSeconds,
		float64(m.WeightBytes())/1e6, res.KVCacheMB, cache.Config().NumBlocks, blockSize, where)

	var times, hosts []time.Duration
	// The host phases of each timed step: the runtime's statistics and
	// the CUDA device's time by class (cudaHostTimes), taken after every
	// delivery.
	perStep := map[string][]time.Duration{}
	var devTimes []time.Duration
	gcs := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	gcCycles := func() int {
		metrics.Read(gcs)
		return int(gcs[0].Value.Uint64())
	}
	var gc0, gcPrev int
	var gcSteps []int           // garbage collections completed in each timed step
	var encodes []time.Duration // each step's Call (Stats.Encode), by step
	// On the CPU the read bandwidth is measured again right before and
	// after the timed steps (the steps themselves leave the device no
	// quiet moment): on a shared machine the figure taken at setup can be
	// far from the one the steps get.
	var probe *cpu.ReadProbe
	var reads []float64
	probeReads := func() {
		for range 3 {
			reads = append(reads, probe.Read())
		}
	}
	if device == "cpu" && !check {
		probe = cpu.NewReadProbe(256<<20, goruntime.GOMAXPROCS(0))
	}
	// Greedy decoding on the device, each step submitted while the one
	// before runs; a step's time is the interval between two deliveries of
	// tokens.
	if probe != nil {
		probeReads()
	}
	d, err := e.NewDecoderWith(seqs, tokens, make([]ops.Sampling, batch), model.DecoderOptions{Logprobs: slices.Repeat([]int{logprobs}, batch)})
	if err != nil {
		return err
	}
	defer d.Close()
	var cpu0 time.Duration
	for i := range last {
		if i == warmup+steps && profiled > 0 {
			if err := startKernelProfile(); err != nil {
				return err
			}
		}
		if i == warmup && cpuProfile != "" {
			stop, err := startCPUProfile(cpuProfile)
			if err != nil {
				return err
			}
			defer stop()
		}
		timed := i >= warmup && i < warmup+steps
		if !asJSON && !timed {
			// Not in the timed steps, whose host time it would count.
			fmt.Fprintf(os.Stderr, "\rstep %d/%d", i+1, last)
		}
		st, err := d.Next(i+1 < last)
		if err != nil {
			return err
		}
		encodes = append(encodes, st.Stats.Encode)
		dev := cudaHostTimes()
		prev := devTimes
		devTimes = dev
		if !timed {
			if i == warmup-1 {
				cpu0, _ = processCPU()
				gc0 = gcCycles()
				gcPrev = gc0
			}
			continue
		}
		if prev != nil {
			for j, c := range cudaHostClasses {
				perStep[c] = append(perStep[c], dev[j]-prev[j])
			}
		}
		times = append(times, st.Time)
		s := st.Stats
		res.Dispatches += float64(s.Dispatches)
		res.CommandBuffers += float64(s.CommandBuffers)
		res.HostWaits += float64(s.HostWaits)
		res.SplitAttention += float64(s.Counters["paged_attention.split"])
		hosts = append(hosts, st.Time-s.Wait)
		perStep["host"] = append(perStep["host"], st.Time-s.Wait)
		perStep["wait"] = append(perStep["wait"], s.Wait)
		gc := gcCycles()
		gcSteps = append(gcSteps, gc-gcPrev)
		gcPrev = gc
		res.ReplayedSteps += s.CacheHits
		if i == warmup+steps-1 {
			if cpu1, ok := processCPU(); ok {
				res.TokensPerCPUs = float64(batch*steps) / (cpu1 - cpu0).Seconds()
			}
			res.GCCycles = gcPrev - gc0
		}
	}
	if profiled > 0 {
		ks, err := stopKernelProfile()
		if err != nil {
			return err
		}
		res.Kernels = kernelStats(ks, profiled)
	}
	if probe != nil {
		probeReads()
	}
	logf("\r")
	n := float64(steps)
	res.Dispatches /= n
	res.CommandBuffers /= n
	res.HostWaits /= n
	res.SplitAttention /= n
	var overhead, total time.Duration
	for _, h := range hosts {
		overhead += h
	}
	for _, t := range times {
		total += t
	}
	res.MeanTokensPerS = float64(batch*steps) / total.Seconds()
	res.HostOverheadms = ms(overhead) / n
	res.HostUsPerStep = float64(loombench.Median(hosts).Nanoseconds()) / 1e3
	for k, h := range perStep["host"] { // in step order (the median sorted hosts)
		// The Call in the step's interval is the next step's; the last
		// step of a run has none.
		var call time.Duration
		if j := warmup + k + 1; j < len(encodes) {
			call = encodes[j]
		}
		perStep["call"] = append(perStep["call"], call)
		rest := h - call
		if r := perStep["read"]; r != nil {
			rest -= r[k]
		}
		perStep["rest"] = append(perStep["rest"], rest)
		if s := perStep["sync"]; s != nil {
			retire := perStep["wait"][k] - s[k]
			perStep["retire"] = append(perStep["retire"], retire)
			perStep["busy"] = append(perStep["busy"], h+retire)
		}
	}
	order := hostPhaseOrder()
	res.HostPhases = phases(order, perStep)
	res.SlowSteps = slowSteps(order, perStep, gcSteps, 3)
	tpot := loombench.Median(times) // sorts times (and reads, below): [0] is the least
	res.TPOTms, res.TPOTBestms = ms(tpot), ms(times[0])
	res.TokensPerSecond = float64(batch) / tpot.Seconds()
	res.WeightBytes = m.WeightBytes()
	kvTok := int64(2*cfg.NumLayers*cfg.NumKVHeads*cfg.HeadDim) * int64(dt.Size())
	res.KVBytes = int64(batch) * int64(context+warmup+steps/2) * kvTok
	res.WeightGBs = float64(res.WeightBytes) / tpot.Seconds() / 1e9
	res.TotalGBs = float64(res.WeightBytes+res.KVBytes) / tpot.Seconds() / 1e9
	res.ReadGBs = bw.Read
	if len(reads) > 0 {
		res.ReadGBs = loombench.Median(reads)
	}
	res.WeightLimitms = float64(res.WeightBytes) / (res.ReadGBs * 1e9) * 1e3
	res.WeightKVLimitms = float64(res.WeightBytes+res.KVBytes) / (res.ReadGBs * 1e9) * 1e3
	if check {
		res.Hazards = len(hazards())
	}
	if device == "cuda" {
		res.CuBLASLt = cudaCuBLASLt()
	}
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Printf("decode, batch %d, context %d, %d steps:\n", batch, context, steps)
	fmt.Printf("  TPOT %.2f ms median (best %.2f ms), %.1f tokens/s (%.1f over the steps' total time)\n", res.TPOTms, res.TPOTBestms, res.TokensPerSecond, res.MeanTokensPerS)
	fmt.Printf("  weights %.0f MB per step: %.1f GB/s; with KV (%.0f MB): %.1f GB/s; measured bandwidth read %.1f GB/s, copy %.1f GB/s (loom bench membw)\n",
		float64(res.WeightBytes)/1e6, res.WeightGBs, float64(res.KVBytes)/1e6, res.TotalGBs, bw.Read, bw.Copy)
	if len(reads) > 0 {
		fmt.Printf("  read bandwidth right before and after the steps: median %.1f GB/s (%.1f–%.1f); the limit below uses it\n", res.ReadGBs, reads[0], reads[len(reads)-1])
	}
	fmt.Printf("  weight-read limit %.2f ms: TPOT is %.2f× the limit; weight+KV-read limit %.2f ms: TPOT is %.2f× it\n",
		res.WeightLimitms, res.TPOTms/res.WeightLimitms, res.WeightKVLimitms, res.TPOTms/res.WeightKVLimitms)
	fmt.Printf("  per step: %.0f dispatches, %.1f command buffers, %.2f host waits, %.1f split-KV attention calls\n",
		res.Dispatches, res.CommandBuffers, res.HostWaits, res.SplitAttention)
	fmt.Printf("  host work per step (a step's time less its device wait): %.0f µs median, %.2f ms mean; %d of %d steps replayed; %d garbage collections\n",
		res.HostUsPerStep, res.HostOverheadms, res.ReplayedSteps, steps, res.GCCycles)
	fmt.Printf("    %-7s %8s %8s %8s\n", "phase", "median", "mean", "max µs")
	for _, p := range res.HostPhases {
		fmt.Printf("    %-7s %8.1f %8.1f %8.1f  %s\n", p.Name, p.MedianUs, p.MeanUs, p.MaxUs, phaseHelp(p.Name))
	}
	for _, st := range res.SlowSteps {
		fmt.Printf("    slow step %d (%d garbage collections):", st.Step, st.GC)
		for _, p := range res.HostPhases {
			if p.Name != "wait" && p.Name != "sync" {
				fmt.Printf(" %s %.1f", p.Name, st.PhasesUs[p.Name])
			}
		}
		fmt.Println(" µs")
	}
	if check {
		fmt.Printf("  checking device: %d hazards\n", res.Hazards)
	}
	if device == "cuda" {
		fmt.Printf("  %s\n  %s\n", cudaGraphSummary(), res.CuBLASLt)
	}
	if len(res.Kernels) > 0 {
		printKernelStats(res.Kernels, fmt.Sprintf("%d steps", profiled), bw.Read)
	}
	return nil
}

// printKernelStats prints a kernel profile (kernelStats) of what: the
// profiled steps.
func printKernelStats(ks []kernelStat, what string, readGBs float64) {
	var total float64
	for _, k := range ks {
		total += k.UsPerStep
	}
	fmt.Printf("  GPU time of a step by kernel (%s launch by launch, each launch timed with events, the launches of a command buffer queued before the GPU starts them unless LOOM_CUDA_PROFILE_HOLD=0; %.0f µs of kernels a step; bandwidth %.0f GB/s read):\n",
		what, total, readGBs)
	fmt.Printf("    %-28s %9s %9s %7s %9s\n", "kernel", "launches", "µs", "share", "GB/s")
	for _, k := range ks {
		fmt.Printf("    %-28s %9.1f %9.1f %6.1f%% %9.0f\n", k.Name, k.LaunchesPerStep, k.UsPerStep, 100*k.Share, k.GBs)
	}
}

// profiledRuns calls run n times under a kernel profile of the CUDA
// device (the -kernels of loom bench attention and gemv) and returns the
// profile.
func profiledRuns(n int, run func() error) ([]cuda.KernelTime, error) {
	if err := startKernelProfile(); err != nil {
		return nil, err
	}
	for range n {
		if err := run(); err != nil {
			stopKernelProfile()
			return nil, err
		}
	}
	return stopKernelProfile()
}

// printJSON prints v as one line of JSON (the -json of the benchmarks).
func printJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}

// kernelStats turns a kernel profile of steps steps into per-step figures.
func kernelStats(ks []cuda.KernelTime, steps int) []kernelStat {
	var total time.Duration
	for _, k := range ks {
		total += k.Time
	}
	out := make([]kernelStat, len(ks))
	for i, k := range ks {
		out[i] = kernelStat{Name: k.Name, LaunchesPerStep: float64(k.Launches) / float64(steps),
			UsPerStep: k.Time.Seconds() * 1e6 / float64(steps)}
		if total > 0 {
			out[i].Share = float64(k.Time) / float64(total)
		}
		if k.Time > 0 {
			out[i].GBs = float64(k.Bytes) / k.Time.Seconds() / 1e9
		}
	}
	return out
}

// randomKV returns a KV cache fill of random values of dtype dt
// (fillRandom), different for every array.
func randomKV(dt graph.DType) func(layer int, b []byte) {
	var calls uint64
	return func(layer int, b []byte) {
		calls++
		fillRandom(dt, b, calls)
	}
}

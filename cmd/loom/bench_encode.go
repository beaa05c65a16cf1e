package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	goruntime "runtime"
	"time"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loombench"
	"github.com/loomrt/loom/model"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

func init() {
	benchmarks["encode"] = benchmark{"host cost of the 28-layer Qwen3-0.6B decode step a model.Decoder runs: the first of its structure (build, plan, encode) against replayed ones", benchEncode}
}

// encodeResult is what `loom bench encode -json` prints; times are medians
// over the timed steps unless said otherwise.
type encodeResult struct {
	Device         string `json:"device"`
	Mode           string `json:"mode"` // "compiled" (the Decoder's compiled step) or "nocache" (every step planned)
	Layers         int    `json:"layers"`
	Nodes          int    `json:"nodes"`
	Dispatches     int    `json:"dispatches"`
	CommandBuffers int    `json:"command_buffers"`
	HostWaits      int    `json:"host_waits"`
	// PlanUs and EncodeUs are the runtime's planning and encoding (for a
	// replay, the replay itself) of a step; BuildUs is the rest of the
	// host's time for the step: scheduling the cache, building the graph
	// or binding the compiled step's inputs, reading the tokens back.
	BuildUs  float64 `json:"build_us"`
	PlanUs   float64 `json:"plan_us"`
	EncodeUs float64 `json:"encode_us"`
	// Per node and per dispatch of the first step of the structure.
	HostUsPerNode     float64 `json:"host_us_per_node"`
	HostUsPerDispatch float64 `json:"host_us_per_dispatch"`
	DeviceMs          float64 `json:"device_ms"` // the host's wait for the step
	// HostUsCold is the host time of the first decode step of its
	// structure (build, plan, encode: the compiled step's trace).
	// HostUsReplay is the host time of the replayed timed steps, and
	// HostUs of all timed steps: everything the host does between two
	// steps except the wait.
	HostUsCold   float64 `json:"host_us_cold"`
	HostUsReplay float64 `json:"host_us_replay"`
	HostUs       float64 `json:"host_us"`
	// EvalUsReplay is the part of a replayed step spent in the compiled
	// step's Call replaying it (Stats.Encode).
	EvalUsReplay float64 `json:"eval_us_replay"`
	Replayed     int     `json:"replayed_steps"` // of the timed steps
	CacheHits    int     `json:"cache_hits"`
	CacheMisses  int     `json:"cache_misses"`
}

// benchEncode times the host side of the decode steps of a model.Decoder
// (batch 1, greedy, the Qwen3-0.6B shape): the host time of each step is
// the time of the Next that submits it less that Next's wait for the step
// before. The weights are random; their values do not change the host's
// work. The block tables are padded to -bucket blocks, so all steps share
// one structure: the first decode step traces it, the rest replay.
func benchEncode(args []string) error {
	var err error
	fs := flag.NewFlagSet("bench encode", flag.ContinueOnError)
	steps := fs.Int("steps", 20, "timed decode steps (after 2 warm-up steps)")
	device := fs.String("device", "cpu", "device: cpu, cuda or metal (macOS)")
	perCB := fs.Int("n", 0, "dispatches per command buffer (0: the runtime's default)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	bucket := fs.Int("bucket", 32, "pad the block tables to a multiple of this many blocks (model.Engine.PadBlocks)")
	noCache := fs.Bool("nocache", false, "plan every step from scratch (no plan cache, no compiled step)")
	if err := parseFlags(fs, args, ""); err != nil {
		return err
	}
	if *steps < 1 || *bucket < 1 {
		return fmt.Errorf("-steps %d, -bucket %d: want at least 1", *steps, *bucket)
	}
	var dev runtime.Device
	if *device == "cpu" {
		// The CPU device leaves the host a core: the step's kernels run
		// while the host prepares the next step, and sharing its cores
		// would count the time the host waits for one as host work.
		dev = cpu.New(cpu.Options{Workers: max(1, goruntime.GOMAXPROCS(0)-1)})
	} else if dev, err = openDevice(*device); err != nil {
		return err
	}
	rt, err := runtime.New(dev, runtime.Options{DispatchesPerCommandBuffer: *perCB, NoPlanCache: *noCache})
	if err != nil {
		return err
	}
	defer rt.Close()
	cfg := model.Qwen3_0_6B
	dt := graph.BFloat16
	m, err := model.New(rt, cfg, model.RandomWeights(cfg, dt, 1), dt)
	if err != nil {
		return err
	}
	const warmup, blockSize = 2, 16
	n := warmup + *steps
	cache, err := model.NewKVCache(rt, m.CacheConfig(n/blockSize+2, blockSize), nil)
	if err != nil {
		return err
	}
	if err := cache.Add(0); err != nil {
		return err
	}
	e := &model.Engine{Model: m, Cache: cache, PadBlocks: *bucket}
	d, err := e.NewDecoder([]int{0}, [][]int32{{1}}, []ops.Sampling{{}}, 0)
	if err != nil {
		return err
	}
	// Next i submits decode step i+1 and delivers step i (0: the prompt).
	host := make([]time.Duration, n)
	stats := make([]runtime.Stats, 0, n+1)
	for i := range n + 1 {
		t := time.Now()
		r, err := d.Next(i < n)
		if err != nil {
			return err
		}
		if i < n {
			host[i] = time.Since(t) - r.Stats.Wait
		}
		stats = append(stats, r.Stats)
	}
	var res encodeResult
	var build, plan, enc, wait, all, replay, evalReplay []time.Duration
	for i := warmup; i < n; i++ {
		s := stats[i+1]
		build, plan, enc = append(build, host[i]-s.Plan-s.Encode), append(plan, s.Plan), append(enc, s.Encode)
		wait, all = append(wait, s.Wait), append(all, host[i])
		if s.CacheHits > 0 {
			replay, evalReplay = append(replay, host[i]), append(evalReplay, s.Encode)
			res.Replayed++
		}
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	med := func(d []time.Duration) float64 { return us(loombench.Median(d)) }
	res.Device, res.Layers, res.Mode = *device, cfg.NumLayers, "compiled"
	if *noCache {
		res.Mode = "nocache"
	}
	cold := stats[1]
	res.Nodes, res.Dispatches, res.CommandBuffers, res.HostWaits = cold.Nodes, cold.Dispatches, cold.CommandBuffers, stats[n].HostWaits
	res.BuildUs, res.PlanUs, res.EncodeUs = med(build), med(plan), med(enc)
	res.DeviceMs = med(wait) / 1e3
	res.HostUsCold, res.HostUs = us(host[0]), med(all)
	if len(replay) > 0 {
		res.HostUsReplay, res.EvalUsReplay = med(replay), med(evalReplay)
	}
	cs := rt.CacheStats()
	res.CacheHits, res.CacheMisses = cs.Hits, cs.Misses
	res.HostUsPerNode = res.HostUsCold / float64(res.Nodes)
	res.HostUsPerDispatch = res.HostUsCold / float64(res.Dispatches)
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Printf("Qwen3-0.6B decode step (%d layers, batch 1, greedy on the device) on %s, %s, median of %d steps:\n", cfg.NumLayers, *device, res.Mode, *steps)
	fmt.Printf("  %d nodes, %d dispatches, %d command buffers, %d host waits\n", res.Nodes, res.Dispatches, res.CommandBuffers, res.HostWaits)
	fmt.Printf("  first step of the structure %.0f µs of host work: %.2f µs per node, %.2f µs per dispatch\n",
		res.HostUsCold, res.HostUsPerNode, res.HostUsPerDispatch)
	fmt.Printf("  a timed step: %.0f µs of host work (plan %.0f µs + encode or replay %.0f µs + the rest %.0f µs) beside the device's %.2f ms\n",
		res.HostUs, res.PlanUs, res.EncodeUs, res.BuildUs, res.DeviceMs)
	if res.Replayed > 0 {
		fmt.Printf("  replayed steps (%d of %d): %.0f µs of host work, %.1f%% of the first step's; of it %.0f µs in the replay\n",
			res.Replayed, *steps, res.HostUsReplay, 100*res.HostUsReplay/res.HostUsCold, res.EvalUsReplay)
	}
	fmt.Printf("  runtime: %d steps replayed, %d planned\n", res.CacheHits, res.CacheMisses)
	if *device == "cuda" {
		fmt.Printf("  %s\n", cudaGraphSummary())
	}
	return nil
}

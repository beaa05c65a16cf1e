package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loombench"
	"github.com/loomrt/loom/model"
	"github.com/loomrt/loom/runtime"
)

func init() {
	benchmarks["encode"] = benchmark{"host cost of one 28-layer Qwen3-0.6B decode step: building, planning and encoding, per node and per dispatch", benchEncode}
}

// encodeResult is what `loom bench encode -json` prints; times are medians
// over the timed steps.
type encodeResult struct {
	Device            string  `json:"device"`
	Compiled          bool    `json:"compiled"`
	Layers            int     `json:"layers"`
	Nodes             int     `json:"nodes"`
	Dispatches        int     `json:"dispatches"`
	CommandBuffers    int     `json:"command_buffers"`
	HostWaits         int     `json:"host_waits"`
	BuildUs           float64 `json:"build_us"`
	PlanUs            float64 `json:"plan_us"`
	EncodeUs          float64 `json:"encode_us"`
	HostUsPerNode     float64 `json:"host_us_per_node"`
	HostUsPerDispatch float64 `json:"host_us_per_dispatch"`
	DeviceMs          float64 `json:"device_ms"` // the host's wait for the step
	// HostUsCold is the host time of the first step of its structure:
	// build, plan and encode. HostUsReplay is the median host time of the
	// timed steps the plan cache replayed: everything the host does between
	// two steps except sampling (scheduling the cache, building the graph
	// or binding the compiled step's inputs, and submitting).
	HostUsCold   float64 `json:"host_us_cold"`
	HostUsReplay float64 `json:"host_us_replay"`
	// EvalUsReplay is the part of it spent in EvalAsync (or, compiled, in
	// the step's Call): the replay itself, without building the graph or
	// scheduling the cache.
	EvalUsReplay float64 `json:"eval_us_replay"`
	CacheHits    int     `json:"cache_hits"`
	CacheMisses  int     `json:"cache_misses"`
}

// benchEncode times the host side of decode steps of the Qwen3-0.6B shape:
// graph building (the model's Forward), planning and encoding, each from the
// runtime's statistics. The weights are random; their values do not change
// the host's work. The block tables are padded to -bucket blocks so that the
// step's structure repeats and the plan cache replays it (from the third
// step; the first two are the warm-up).
func benchEncode(args []string) error {
	fs := flag.NewFlagSet("encode", flag.ContinueOnError)
	steps := fs.Int("steps", 20, "timed decode steps (after 2 warm-up steps)")
	device := fs.String("device", "cpu", "device: cpu, cuda or metal (macOS)")
	perCB := fs.Int("n", 0, "dispatches per command buffer (0: the runtime's default)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	bucket := fs.Int("bucket", 32, "pad the block tables to a multiple of this many blocks")
	noCache := fs.Bool("nocache", false, "plan every step from scratch (no plan cache)")
	compiled := fs.Bool("compiled", false, "run the compiled decode step (model.CompileDecode): no graph building on replay")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *steps < 1 {
		return fmt.Errorf("-steps %d: want at least 1", *steps)
	}
	dev, err := openDevice(*device)
	if err != nil {
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
	cache, err := model.NewKVCache(rt, m.CacheConfig((warmup+*steps+64)/blockSize+1, blockSize), nil)
	if err != nil {
		return err
	}
	if err := cache.Add(0); err != nil {
		return err
	}
	var dec *model.CompiledDecode
	if *compiled {
		if dec, err = m.CompileDecode(cache, *bucket); err != nil {
			return err
		}
	}
	token := []int32{1}
	var build, plan, enc, wait, replay []time.Duration
	var res encodeResult
	var evalReplay []time.Duration
	for i := range warmup + *steps {
		t := time.Now()
		var logits *graph.Array
		var p *runtime.Pending
		var b time.Duration // building the graph: none for a replayed compiled step
		var e0 time.Time
		if dec != nil {
			e0 = time.Now()
			if logits, p, err = dec.Step([]int{0}, token); err != nil {
				return err
			}
		} else {
			st, err := cache.Schedule([]int{0}, []int{1})
			if err != nil {
				return err
			}
			if err := cache.Pad(st, *bucket); err != nil {
				return err
			}
			logits = m.Forward(token, st, cache)
			b = time.Since(t)
			e0 = time.Now()
			if p, err = rt.EvalAsync(logits); err != nil {
				return err
			}
		}
		host, eval := time.Since(t), time.Since(e0)
		if i == 0 {
			res.HostUsCold = float64(host.Nanoseconds()) / 1e3
		}
		if err := p.Wait(); err != nil {
			return err
		}
		if _, err := logits.Float32s(); err != nil {
			return err
		}
		if i < warmup {
			continue
		}
		s := p.Stats()
		build, plan, enc, wait = append(build, b), append(plan, s.Plan), append(enc, s.Encode), append(wait, s.Wait)
		if s.CacheHits > 0 {
			replay = append(replay, host)
			evalReplay = append(evalReplay, eval)
		}
		res.Nodes, res.Dispatches, res.CommandBuffers, res.HostWaits = s.Nodes, s.Dispatches, s.CommandBuffers, s.HostWaits
	}
	med := func(d []time.Duration) float64 {
		return float64(loombench.Median(d).Nanoseconds()) / 1e3
	}
	res.Device, res.Layers, res.Compiled = *device, cfg.NumLayers, *compiled
	res.BuildUs, res.PlanUs, res.EncodeUs = med(build), med(plan), med(enc)
	res.DeviceMs = med(wait) / 1e3
	if len(replay) > 0 {
		res.HostUsReplay, res.EvalUsReplay = med(replay), med(evalReplay)
	}
	cs := rt.CacheStats()
	res.CacheHits, res.CacheMisses = cs.Hits, cs.Misses
	host := res.BuildUs + res.PlanUs + res.EncodeUs
	res.HostUsPerNode = host / float64(res.Nodes)
	res.HostUsPerDispatch = host / float64(res.Dispatches)
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Printf("Qwen3-0.6B decode step (%d layers, batch 1) on %s, median of %d steps:\n", cfg.NumLayers, *device, *steps)
	fmt.Printf("  %d nodes, %d dispatches, %d command buffers, %d host waits\n", res.Nodes, res.Dispatches, res.CommandBuffers, res.HostWaits)
	fmt.Printf("  host: build %.0f µs + plan %.0f µs + encode %.0f µs = %.0f µs: %.2f µs per node, %.2f µs per dispatch\n",
		res.BuildUs, res.PlanUs, res.EncodeUs, host, res.HostUsPerNode, res.HostUsPerDispatch)
	fmt.Printf("  beside the device's %.2f ms for the step: host work is %.1f%% of it\n", res.DeviceMs, host/10/res.DeviceMs)
	fmt.Printf("  first step of the structure %.0f µs; replayed steps %.0f µs (%d replayed, %d planned)\n",
		res.HostUsCold, res.HostUsReplay, res.CacheHits, res.CacheMisses)
	fmt.Printf("  of a replayed step's host time, %.0f µs replaying (EvalAsync, or the compiled step's Call)\n", res.EvalUsReplay)
	return nil
}

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
}

// benchEncode times the host side of decode steps of the Qwen3-0.6B shape:
// graph building (the model's Forward), planning and encoding, each from the
// runtime's statistics. The weights are random; their values do not change
// the host's work.
func benchEncode(args []string) error {
	fs := flag.NewFlagSet("encode", flag.ContinueOnError)
	steps := fs.Int("steps", 20, "timed decode steps (after 2 warm-up steps)")
	device := fs.String("device", "cpu", "device: cpu, cuda or metal (macOS)")
	perCB := fs.Int("n", 0, "dispatches per command buffer (0: the runtime's default)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
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
	rt, err := runtime.New(dev, runtime.Options{DispatchesPerCommandBuffer: *perCB})
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
	token := []int32{1}
	var build, plan, enc, wait []time.Duration
	var res encodeResult
	for i := range warmup + *steps {
		t := time.Now()
		st, err := cache.Schedule([]int{0}, []int{1})
		if err != nil {
			return err
		}
		logits := m.Forward(token, st, cache)
		b := time.Since(t)
		p, err := rt.EvalAsync(logits)
		if err != nil {
			return err
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
		res.Nodes, res.Dispatches, res.CommandBuffers, res.HostWaits = s.Nodes, s.Dispatches, s.CommandBuffers, s.HostWaits
	}
	med := func(d []time.Duration) float64 {
		return float64(loombench.Median(d).Nanoseconds()) / 1e3
	}
	res.Device, res.Layers = *device, cfg.NumLayers
	res.BuildUs, res.PlanUs, res.EncodeUs = med(build), med(plan), med(enc)
	res.DeviceMs = med(wait) / 1e3
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
	if *device == "cuda" {
		fmt.Printf("  %s\n", cudaGraphSummary())
	}
	return nil
}

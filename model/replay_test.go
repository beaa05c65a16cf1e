package model

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

// replayConfig is a 28-layer model with tiny dimensions: the decode step
// has the Qwen3-0.6B structure (647 nodes) at almost no compute.
var replayConfig = Config{VocabSize: 64, HiddenSize: 32, IntermediateSize: 48, NumLayers: 28, NumHeads: 2, NumKVHeads: 1, HeadDim: 64,
	MaxPositionEmbeddings: 1024, RMSNormEps: 1e-6, RopeTheta: 10000, BOSTokenID: -1}

// decodeLoop runs steps decode steps of token sequence ids (teacher
// forced, so that each step is submitted before the previous one has
// completed) with padded block tables, the model's weights and activations
// of dtype dt, and returns each step's logits and statistics.
func decodeLoop(t testing.TB, rt *runtime.Runtime, cfg Config, dt graph.DType, steps int) ([][]float32, []runtime.Stats) {
	t.Helper()
	m, err := New(rt, cfg, RandomWeights(cfg, dt, 3), dt)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := NewKVCache(rt, m.CacheConfig(8, 8), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.Add(0); err != nil {
		t.Fatal(err)
	}
	var logits []*graph.Array
	var pend []*runtime.Pending
	for i := range steps {
		st, err := cache.Schedule([]int{0}, []int{1})
		if err != nil {
			t.Fatal(err)
		}
		if err := cache.Pad(st, 4); err != nil {
			t.Fatal(err)
		}
		out := m.Forward([]int32{int32(i*7) % int32(cfg.VocabSize)}, st, cache)
		p, err := rt.EvalAsync(out)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		logits, pend = append(logits, out), append(pend, p)
	}
	var got [][]float32
	var stats []runtime.Stats
	for i, a := range logits {
		if err := pend[i].Wait(); err != nil {
			t.Fatal(err)
		}
		v, err := a.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		got, stats = append(got, v), append(stats, pend[i].Stats())
	}
	return got, stats
}

// TestReplayedDecodeIsBitIdentical: decode steps replayed from the plan
// cache, each submitted while the previous ones run, give the same logits
// bit for bit as the same steps planned from scratch, on every CPU target,
// with no hazard on the checking devices.
func TestReplayedDecodeIsBitIdentical(t *testing.T) {
	cfg := replayConfig
	cfg.NumLayers = 3
	const steps = 10
	want, _ := decodeLoop(t, newRuntime(t, cpu.New(cpu.Options{}), runtime.Options{NoPlanCache: true}), cfg, graph.Float32, steps)
	for _, c := range []struct {
		name string
		dev  cpu.Options
		opts runtime.Options
	}{
		{"cpu", cpu.Options{}, runtime.Options{}},
		{"cpu-check", cpu.Options{Check: true}, runtime.Options{DispatchesPerCommandBuffer: 1}},
		{"cpu-adversarial", cpu.Options{Check: true, Seed: 7}, runtime.Options{DispatchesPerCommandBuffer: 3, DispatchesPerPass: 2}},
		{"cpu-lazy", cpu.Options{Check: true, Lazy: true, Seed: 3}, runtime.Options{DispatchesPerCommandBuffer: 5}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dev := cpu.New(c.dev)
			rt := newRuntime(t, dev, c.opts)
			got, stats := decodeLoop(t, rt, cfg, graph.Float32, steps)
			for i := range want {
				if !slices.Equal(got[i], want[i]) {
					t.Fatalf("step %d (%v): logits differ from the step planned from scratch", i, stats[i])
				}
			}
			// Steps 0 and 1 are planned (the second is recorded); the rest replay.
			for i, s := range stats {
				if hit := s.CacheHits == 1; hit != (i >= 2) {
					t.Fatalf("step %d: replayed %v", i, hit)
				}
			}
			if hz := dev.Hazards(); len(hz) > 0 {
				t.Fatalf("%d hazards, first: %v", len(hz), hz[0])
			}
		})
	}
}

func newRuntime(t testing.TB, dev *cpu.Device, opts runtime.Options) *runtime.Runtime {
	t.Helper()
	rt, err := runtime.New(dev, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(); dev.Close() })
	return rt
}

// BenchmarkReplayHost times the host side of a 28-layer decode step with
// tiny dimensions: a Decoder's steps planned every step (NoPlanCache) and
// compiled (replayed without building the graph), and, between them, the
// logits step built with ops every step and replayed from the plan cache.
// A step's host time excludes the wait for the device.
func BenchmarkReplayHost(b *testing.B) {
	for _, mode := range []string{"planned", "cached", "compiled"} {
		b.Run(mode, func(b *testing.B) {
			// One worker, so that the device's kernels leave the host a core.
			rt := newRuntime(b, cpu.New(cpu.Options{Workers: 1}), runtime.Options{NoPlanCache: mode == "planned"})
			cfg := replayConfig
			m, err := New(rt, cfg, RandomWeights(cfg, graph.Float32, 3), graph.Float32)
			if err != nil {
				b.Fatal(err)
			}
			e, err := NewEngine(m, 64, 16)
			if err != nil {
				b.Fatal(err)
			}
			var d *Decoder
			restart := func() {
				if d != nil {
					if err := d.Close(); err != nil {
						b.Fatal(err)
					}
				}
				e.Cache.Free(0)
				e.Cache.Add(0)
				if mode != "cached" {
					if d, err = e.NewDecoder([]int{0}, [][]int32{{1}}, []ops.Sampling{{}}, 0); err != nil {
						b.Fatal(err)
					}
				}
			}
			restart()
			var host time.Duration
			for i := 0; b.Loop(); i++ {
				if e.Cache.Len(0) >= 512 {
					b.StopTimer()
					restart()
					b.StartTimer()
				}
				t0 := time.Now()
				if mode == "cached" {
					st, err := e.schedule([]int{0}, []int{1})
					if err != nil {
						b.Fatal(err)
					}
					out := m.Forward([]int32{int32(i % 64)}, st, e.Cache)
					p, err := rt.EvalAsync(out)
					if err != nil {
						b.Fatal(err)
					}
					host += time.Since(t0)
					b.StopTimer()
					if err := p.Wait(); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					continue
				}
				r, err := d.Next(true)
				if err != nil {
					b.Fatal(err)
				}
				host += time.Since(t0) - r.Stats.Wait
			}
			b.ReportMetric(float64(host.Microseconds())/float64(b.N), "host-µs/step")
		})
	}
}

// hostOnly is the CPU device with a queue that runs nothing: a submitted
// list completes at once. The host's work is all that is left of a step,
// its time and its allocations (the CPU device's kernels allocate on the
// queue's goroutine, which a benchmark's allocation count would include).
type hostOnly struct{ *cpu.Device }

func (hostOnly) NewQueue() (runtime.Queue, error) { return &nopQueue{}, nil }

type nopQueue struct{ fences int }

type nopEvent struct{ v atomic.Uint64 }

type nopSubmission struct{}

func (q *nopQueue) Submit(l *runtime.CommandList) runtime.Submission {
	for _, s := range l.Signals {
		s.Event.(*nopEvent).v.Store(s.Value)
	}
	return nopSubmission{}
}
func (q *nopQueue) NewFence() runtime.Fence { q.fences++; return q.fences }
func (q *nopQueue) NewEvent() runtime.Event { return &nopEvent{} }
func (q *nopQueue) Close()                  {}
func (e *nopEvent) Wait(v uint64) {
	if e.v.Load() < v {
		panic("nopEvent: waiting for a list never submitted")
	}
}
func (e *nopEvent) Value() uint64 { return e.v.Load() }
func (nopSubmission) Err() error  { return nil }

// BenchmarkReplayedStepHost is the host's work of a replayed decode step
// of a Decoder (a compiled step with the Qwen3-0.6B structure: 28 layers,
// 228 dispatches) and nothing else: everything Next does between two
// steps — scheduling the cache, binding the inputs, the compiled step's
// lookup and checks, the replay, submitting its list, settling the step
// before and reading its tokens — on a device that runs no kernel
// (hostOnly), so the time and the allocations are the host's alone.
// host-µs/step is the time of Next. "warm" runs the steps of one
// sequence back to back; "cold" writes 64 MB through the host's caches
// before each step, as the CPU device's kernels do with the weights every
// step: the regime of `loom bench encode` on the CPU (ns/op is then mostly
// the writing; the timer keeps running through it, since stopping it every
// step would stop the world to read the allocation counts right before
// each step). The batch cases are warm steps of `loom bench decode`'s GPU
// shapes: 1 and 8 sequences of 1,024 tokens, 32 of 2,048 (block tables 80
// and 144 blocks wide).
func BenchmarkReplayedStepHost(b *testing.B) {
	for _, c := range []struct {
		name           string
		batch, context int
		cold           bool
	}{
		{"warm", 1, 0, false},
		{"cold", 1, 0, true},
		{"batch1-ctx1024", 1, 1024, false},
		{"batch8-ctx1024", 8, 1024, false},
		{"batch32-ctx2048", 32, 2048, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			rt, err := runtime.New(hostOnly{cpu.New(cpu.Options{})}, runtime.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(rt.Close)
			cfg := replayConfig
			cfg.MaxPositionEmbeddings = 4096
			m, err := New(rt, cfg, RandomWeights(cfg, graph.Float32, 3), graph.Float32)
			if err != nil {
				b.Fatal(err)
			}
			// Each sequence's context and 256 tokens more.
			e, err := NewEngine(m, c.batch*(c.context+256)/16, 16)
			if err != nil {
				b.Fatal(err)
			}
			seqs, counts := make([]int, c.batch), make([]int, c.batch)
			prompts, sampling := make([][]int32, c.batch), make([]ops.Sampling, c.batch)
			for i := range seqs {
				seqs[i], counts[i], prompts[i] = i, c.context, []int32{int32(i % cfg.VocabSize)}
			}
			var d *Decoder
			restart := func() {
				if d != nil {
					if err := d.Close(); err != nil {
						b.Fatal(err)
					}
				}
				for _, id := range seqs {
					e.Cache.Free(id)
					e.Cache.Add(id)
				}
				if c.context > 0 { // the context's K/V, as loom bench decode: whatever the cache holds
					if _, err := e.Cache.Schedule(seqs, counts); err != nil {
						b.Fatal(err)
					}
				}
				if d, err = e.NewDecoder(seqs, prompts, sampling, 0); err != nil {
					b.Fatal(err)
				}
				for range 3 { // the trace, and the first replays
					if _, err := d.Next(true); err != nil {
						b.Fatal(err)
					}
				}
			}
			restart()
			var flush []byte
			if c.cold {
				flush = make([]byte, 64<<20)
			}
			var host time.Duration
			b.ReportAllocs()
			for b.Loop() {
				// A restart within 256 tokens past the context keeps the
				// tables' width, so that every timed step replays one trace.
				if e.Cache.Len(0) >= c.context+240 {
					b.StopTimer()
					restart()
					b.StartTimer()
				}
				for i := 0; i < len(flush); i += 64 {
					flush[i]++
				}
				t := time.Now()
				r, err := d.Next(true)
				host += time.Since(t)
				if err != nil {
					b.Fatal(err)
				}
				if r.Stats.CacheHits != 1 {
					b.Fatalf("a step was not replayed: %v", r.Stats)
				}
			}
			b.ReportMetric(float64(host.Nanoseconds())/1e3/float64(b.N), "host-µs/step")
		})
	}
}

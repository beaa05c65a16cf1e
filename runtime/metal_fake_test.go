package runtime_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/internal/mtlfake"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

// The runtime's ordering, replay and failure handling on the Metal device
// over the recording fake of its Objective-C layer: the Metal translation
// of the command lists is what runs, and the fake's happens-before model
// (the checking device's) judges the calls it makes. The Metal device runs
// only catalog kernels, so these scenarios use built-in ops instead of the
// test primitives of the other runtime tests.

// onFake returns a runtime on the Metal device over a new fake.
func onFake(t *testing.T, opts runtime.Options, fo mtlfake.Options) (*mtlfake.Device, *runtime.Runtime) {
	t.Helper()
	f, ok := loomtest.MetalFake(t, fo)
	if !ok {
		t.Skip("no g++: the fake reads the MSL kernels through it")
	}
	rt, err := runtime.New(f.Device(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	return f.Fake, rt
}

// fakeClean fails the test on a hazard or a call against Metal's rules.
func fakeClean(t *testing.T, what string, f *mtlfake.Device) {
	t.Helper()
	if hz := f.Hazards(); len(hz) > 0 {
		t.Fatalf("%s: %d hazards, first: %v", what, len(hz), hz[0])
	}
	if v := f.Violations(); len(v) > 0 {
		t.Fatalf("%s: %d violations, first: %s", what, len(v), v[0])
	}
}

// opsChain evaluates a chain of dependent built-in ops and a diamond, all
// in one pass when opts allow: every link needs a barrier or a fence wait.
func opsChain(t *testing.T, rt *runtime.Runtime) {
	t.Helper()
	if err := opsChainErr(rt); err != nil {
		t.Fatal(err)
	}
}

func opsChainErr(rt *runtime.Runtime) error {
	r := loomtest.Rand(1)
	a := graph.FromFloat32s(loomtest.Float32s(r, 64, -1, 1), 8, 8)
	b := graph.FromFloat32s(loomtest.Float32s(r, 8, -1, 1), 8)
	x := ops.Mul(a, a)
	y := ops.Add(x, b)
	z := ops.MatMul(y, x)
	w := ops.Sub(z, y)
	return rt.Eval(ops.Maximum(w, x), ops.Neg(z))
}

// TestMetalFakeMutations breaks the encoder one way at a time, as the
// mutation tests do on the checking device: dropping any one barrier or
// fence wait, or freeing a buffer early, must be reported by the fake.
func TestMetalFakeMutations(t *testing.T) {
	cases := []struct {
		mut      string
		opts     runtime.Options
		scenario func(*testing.T, *runtime.Runtime)
		count    func(runtime.Stats) int
	}{
		{runtime.MutDropBarrier, runtime.Options{DispatchesPerCommandBuffer: -1}, opsChain,
			func(s runtime.Stats) int { return s.Barriers }},
		{runtime.MutDropFenceWait, runtime.Options{DispatchesPerCommandBuffer: 1}, fanIn,
			func(s runtime.Stats) int { return s.FenceWaits }},
		{runtime.MutDropFenceWait, runtime.Options{DispatchesPerCommandBuffer: -1, DispatchesPerPass: 1}, fanIn,
			func(s runtime.Stats) int { return s.FenceWaits }},
		{runtime.MutFreeEarly, runtime.Options{DispatchesPerCommandBuffer: 1}, opsChain,
			func(s runtime.Stats) int { return min(4, s.Dispatches) }},
		{runtime.MutFreeEarly, runtime.Options{DispatchesPerCommandBuffer: -1}, opsChain,
			func(s runtime.Stats) int { return min(4, s.Dispatches) }},
	}
	for _, c := range cases {
		name := fmt.Sprintf("%s/%d/%d", c.mut, c.opts.DispatchesPerCommandBuffer, c.opts.DispatchesPerPass)
		t.Run(name, func(t *testing.T) {
			f, rt := onFake(t, c.opts, mtlfake.Options{Seed: 3})
			c.scenario(t, rt)
			fakeClean(t, "unbroken", f)
			n := c.count(rt.LastStats())
			if n < 3 {
				t.Fatalf("the scenario needs at least 3 to break; it has %d", n)
			}
			for nth := 1; nth <= n; nth++ {
				f, rt := onFake(t, c.opts, mtlfake.Options{Seed: uint64(nth)})
				runtime.SetMutation(rt, c.mut, nth)
				if c.mut == runtime.MutFreeEarly {
					// A buffer released before a later dispatch that uses
					// it is encoded is refused by the Metal device; one
					// released while in flight is a hazard.
					if err := opsChainErr(rt); err != nil {
						continue
					}
				} else {
					c.scenario(t, rt)
				}
				if len(f.Hazards()) == 0 {
					t.Errorf("%s #%d of %d: no hazard reported", c.mut, nth, n)
				}
			}
		})
	}
}

// replaySteps evaluates reps steps of one structure with EvalAsync, each
// submitted while the earlier ones run, with new input bytes each step (so
// the third and later replay, with uploads), and returns every step's
// result and the float64 reference.
func replaySteps(t *testing.T, rt *runtime.Runtime, reps int) (got, want [][]float64, stats []runtime.Stats) {
	t.Helper()
	r := loomtest.Rand(5)
	const n = 6
	wHost := loomtest.Float32s(r, n*n, -1, 1)
	w := graph.FromFloat32s(wHost, n, n)
	if err := rt.Eval(w); err != nil {
		t.Fatal(err)
	}
	var outs []*graph.Array
	var pend []*runtime.Pending
	for range reps {
		xHost := loomtest.Float32s(r, 2*n, -1, 1)
		x := graph.FromFloat32s(xHost, 2, n)
		out := ops.Add(ops.MatMul(x, w), x)
		p, err := rt.EvalAsync(out)
		if err != nil {
			t.Fatal(err)
		}
		outs, pend = append(outs, out), append(pend, p)
		ref := make([]float64, 2*n)
		for i := range 2 {
			for j := range n {
				var s float64
				for k := range n {
					s += float64(xHost[i*n+k]) * float64(wHost[k*n+j])
				}
				ref[i*n+j] = float64(float32(s)) + float64(xHost[i*n+j])
			}
		}
		want = append(want, ref)
	}
	for i, p := range pend {
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
		v, err := outs[i].Float64s()
		if err != nil {
			t.Fatal(err)
		}
		got, stats = append(got, v), append(stats, p.Stats())
	}
	return got, want, stats
}

// TestMetalFakeReplay: replayed steps on the Metal device (their uploads
// staged and copied where they stand) are right and ordered; a replay that
// leaves an upload with the recorded bytes computes wrong numbers.
func TestMetalFakeReplay(t *testing.T) {
	for _, broken := range []bool{false, true} {
		for _, opts := range []runtime.Options{{}, {DispatchesPerCommandBuffer: 1}} {
			f, rt := onFake(t, opts, mtlfake.Options{Seed: 9})
			if broken {
				runtime.SetMutation(rt, runtime.MutStaleUpload, 1)
			}
			got, want, stats := replaySteps(t, rt, 6)
			if stats[3].CacheHits != 1 || stats[3].Uploads == 0 {
				t.Fatalf("the scenario needs replayed uploads: %+v", stats[3])
			}
			fakeClean(t, fmt.Sprintf("broken %v %+v", broken, opts), f)
			wrong := 0
			for i := range got {
				if loomtest.CloseErr(got[i], want[i], 1e-5, 1e-5) != nil {
					wrong++
				}
			}
			if (wrong > 0) != broken {
				t.Fatalf("broken %v %+v: %d of %d steps wrong", broken, opts, wrong, len(got))
			}
		}
	}
}

// TestMetalFakeFaults makes command buffers fail at random during a loop
// of in-place cache updates (some failed command buffers never signal
// their event value, and the Metal device signals it from the host). Every
// failed step reports an error and consumes nothing else; the runtime keeps
// working; every step that succeeds is right; no hazard, and no value of
// the event signalled out of turn.
func TestMetalFakeFaults(t *testing.T) {
	for _, n := range []int{1, 40} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var mu sync.Mutex
			rng, rate := rand.New(rand.NewPCG(uint64(n), 3)), 0.0
			fail := func(int) bool {
				mu.Lock()
				defer mu.Unlock()
				return rng.Float64() < rate
			}
			setRate := func(r float64) {
				mu.Lock()
				rate = r
				mu.Unlock()
			}
			f, rt := onFake(t, runtime.Options{DispatchesPerCommandBuffer: n}, mtlfake.Options{Seed: 7, Fail: fail})
			r := loomtest.Rand(21)
			const rows, cols = 8, 8
			wHost := loomtest.Float32s(r, cols*cols, -1, 1)
			w := graph.FromFloat32s(wHost, cols, cols)
			host := loomtest.Float32s(r, rows*cols, -1, 1)
			cache := graph.FromFloat32s(append([]float32(nil), host...), rows, cols)
			if err := rt.Eval(w, cache); err != nil {
				t.Fatal(err)
			}
			step := func(s int) error {
				x := loomtest.Float32s(r, cols, -1, 1)
				h := ops.MatMul(graph.FromFloat32s(x, 1, cols), w)
				next := ops.ScatterRows(cache, graph.FromInt32s([]int32{int32(s % rows)}), h)
				sum := ops.Sum(next, 0, false)
				if err := rt.Eval(sum, next); err != nil {
					if next.Err() == nil || sum.Err() == nil {
						t.Fatalf("step %d failed (%v) but an output has no error", s, err)
					}
					cache = graph.FromFloat32s(append([]float32(nil), host...), rows, cols) // reload
					return err
				}
				for j := range cols {
					var v float64
					for k := range cols {
						v += float64(x[k]) * float64(wHost[k*cols+j])
					}
					host[(s%rows)*cols+j] = float32(v)
				}
				want := make([]float64, cols)
				for i := range rows {
					for j := range cols {
						want[j] += float64(host[i*cols+j])
					}
				}
				got, err := sum.Float64s()
				if err != nil {
					t.Fatal(err)
				}
				if err := loomtest.CloseErr(got, want, 1e-4, 1e-4); err != nil {
					t.Fatalf("step %d: %v", s, err)
				}
				cache = next
				return nil
			}
			setRate(0.15)
			failed := 0
			for s := range 40 {
				if err := step(s); err != nil {
					if !strings.Contains(err.Error(), "(injected)") {
						t.Fatalf("step %d: %v, want the injected failure", s, err)
					}
					failed++
				}
			}
			if failed == 0 || failed == 40 {
				t.Fatalf("%d of 40 steps failed; the test needs some of each", failed)
			}
			setRate(0)
			for s := 40; s < 50; s++ {
				if err := step(s); err != nil {
					t.Fatalf("step %d without faults: %v", s, err)
				}
			}
			fakeClean(t, "faults", f)
		})
	}
}

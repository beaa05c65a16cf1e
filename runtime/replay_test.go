package runtime_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

// perturb adds delta to every float32 constant the graph of outs reads, so
// that the same structure runs on other data.
func perturb(outs []*graph.Array, delta float32) {
	seen := map[*graph.Array]bool{}
	var walk func(a *graph.Array)
	walk = func(a *graph.Array) {
		if seen[a] {
			return
		}
		seen[a] = true
		if a.Primitive() == nil {
			if !a.Evaluated() && a.DType() == graph.Float32 {
				b := a.HostBytes()
				v := graph.DecodeFloat64s(graph.Float32, b)
				f := make([]float32, len(v))
				for i, x := range v {
					f[i] = float32(x) + delta
				}
				graph.PutFloat32s(graph.Float32, b, f)
			}
			return
		}
		for _, in := range a.Inputs() {
			walk(in)
		}
	}
	for _, o := range outs {
		walk(o)
	}
}

// repeatProgram evaluates seed's one-step random program reps times on rt,
// each time built anew with its constants shifted by the repetition, all
// submitted before any is waited for. It returns every output's bytes and
// the statistics of each repetition.
func repeatProgram(t *testing.T, rt *runtime.Runtime, seed uint64, reps int) ([][]byte, []runtime.Stats) {
	t.Helper()
	var all []*graph.Array
	var pend []*runtime.Pending
	for rep := range reps {
		g := &genGraph{r: loomtest.Rand(seed)}
		outs := g.step(4 + g.r.IntN(20))
		perturb(outs, float32(rep)/4)
		p, err := rt.EvalAsync(outs...)
		if err != nil {
			t.Fatalf("seed %d repetition %d: %v", seed, rep, err)
		}
		all, pend = append(all, outs...), append(pend, p)
	}
	var stats []runtime.Stats
	for _, p := range pend {
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
		stats = append(stats, p.Stats())
	}
	var res [][]byte
	for _, a := range all {
		b, err := a.Bytes()
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		res = append(res, b)
	}
	return res, stats
}

// TestReplayRandomPrograms evaluates random programs several times over
// with other constants: the replays match a runtime that plans every Eval
// from scratch bit for bit, on the plain device and every checking
// schedule, with no hazard, though each repetition is submitted while the
// earlier ones run.
func TestReplayRandomPrograms(t *testing.T) {
	seeds := 150
	if testing.Short() {
		seeds = 30
	}
	const reps = 5
	hits, want := 0, 0
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		ref := newRT(t, cpu.New(cpu.Options{Workers: 1}), runtime.Options{NoPlanCache: true})
		wantOut, refStats := repeatProgram(t, ref, seed, reps)
		if refStats[0].Nodes == 0 {
			continue // the program only asks for a constant: nothing to plan
		}
		want += 4 * (reps - 2)
		for i, c := range []struct {
			dev  cpu.Options
			opts runtime.Options
		}{
			{cpu.Options{}, runtime.Options{}},
			{cpu.Options{Check: true}, runtime.Options{DispatchesPerCommandBuffer: 1}},
			{cpu.Options{Check: true, Seed: seed}, runtime.Options{DispatchesPerCommandBuffer: 3, DispatchesPerPass: 2}},
			{cpu.Options{Check: true, Lazy: true, Seed: seed + 1}, runtime.Options{DispatchesPerCommandBuffer: int(seed%5) + 1}},
		} {
			dev := cpu.New(c.dev)
			rt := newRT(t, dev, c.opts)
			got, stats := repeatProgram(t, rt, seed, reps)
			for k := range wantOut {
				if !bytes.Equal(got[k], wantOut[k]) {
					t.Fatalf("seed %d, target %d: output %d differs from planning from scratch (%v)", seed, i, k, stats)
				}
			}
			if hz := dev.Hazards(); len(hz) > 0 {
				t.Fatalf("seed %d, target %d: %d hazards, first: %v", seed, i, len(hz), hz[0])
			}
			for _, s := range stats[2:] {
				hits += s.CacheHits
			}
			if stats[0].CacheHits+stats[1].CacheHits > 0 {
				t.Fatalf("seed %d: a structure replayed before it was recorded", seed)
			}
		}
	}
	if hits != want {
		t.Fatalf("%d replays of %d", hits, want)
	}
}

func newRT(t testing.TB, dev *cpu.Device, opts runtime.Options) *runtime.Runtime {
	t.Helper()
	rt, err := runtime.New(dev, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(); dev.Close() })
	return rt
}

// keyRig holds the state that the key tests' graphs read: an evaluated
// weight, a second one of the same shape, and a cache updated in place.
type keyRig struct {
	t      *testing.T
	rt     *runtime.Runtime
	w, w2  *graph.Array
	cache  *graph.Array
	r      uint64
	params tScatter
}

func newKeyRig(t *testing.T) *keyRig {
	dev := cpu.New(cpu.Options{Check: true, Lazy: true, Seed: 5})
	k := &keyRig{t: t, rt: newRT(t, dev, runtime.Options{DispatchesPerCommandBuffer: 2})}
	r := loomtest.Rand(3)
	k.w = graph.FromFloat32s(loomtest.Float32s(r, 64, -1, 1), 8, 8)
	k.w2 = graph.FromFloat32s(loomtest.Float32s(r, 64, -1, 1), 8, 8)
	k.cache = graph.FromFloat32s(loomtest.Float32s(r, 64, -1, 1), 8, 8)
	if err := k.rt.Eval(k.w, k.w2, k.cache); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if hz := dev.Hazards(); len(hz) > 0 {
			t.Errorf("%d hazards, first: %v", len(hz), hz[0])
		}
	})
	return k
}

// variant says how a key test's graph differs from the base one.
type variant struct {
	bShape     []int        // the bias constant's shape: [1, 8] in the base
	bDType     graph.DType  // the bias's dtype, cast to float32: bfloat16 in the base
	w          *graph.Array // the weight
	scratch    bool         // the scatter primitive's parameter
	xEvaluated bool         // x is an evaluated array, not a constant
	swap       bool         // Sub's operands swapped
	alsoY      bool         // the product is requested too
}

// step evaluates y = x·w, z = (y + b) − y, cache' = scatter(cache, idx, y)
// and its column sums.
func (k *keyRig) step(v variant) runtime.Stats {
	k.t.Helper()
	k.r++
	r := loomtest.Rand(k.r)
	if v.bShape == nil {
		v.bShape = []int{1, 8}
	}
	if v.bDType == 0 {
		v.bDType = graph.BFloat16
	}
	if v.w == nil {
		v.w = k.w
	}
	x := graph.FromFloat32s(loomtest.Float32s(r, 32, -1, 1), 4, 8)
	if v.xEvaluated {
		if err := k.rt.Eval(x); err != nil {
			k.t.Fatal(err)
		}
	}
	b := ops.Cast(graph.FromFloat32sAs(v.bDType, loomtest.Float32s(r, graph.NumElements(v.bShape), -1, 1), v.bShape...), graph.Float32)
	y := ops.Apply(tMatMul{}, x, v.w)[0]
	z := ops.Sub(ops.Add(y, b), y)
	if v.swap {
		z = ops.Sub(y, ops.Add(y, b))
	}
	idx := graph.FromInt32s([]int32{int32(k.r % 8), -1, int32((k.r + 3) % 8), int32((k.r + 5) % 8)})
	k.cache = ops.Apply(tScatter{scratch: v.scratch}, k.cache, idx, y)[0]
	outs := []*graph.Array{z, k.cache, ops.Apply(tReadSum{}, k.cache)[0]}
	if v.alsoY {
		outs = append(outs, y)
	}
	p, err := k.rt.EvalAsync(outs...)
	if err != nil {
		k.t.Fatal(err)
	}
	return p.Stats()
}

// TestReplayKeyFields: each field of the structural key, changed alone,
// misses the cache; the base structure still replays afterwards.
func TestReplayKeyFields(t *testing.T) {
	for _, c := range []struct {
		name  string
		v     variant
		setup func(k *keyRig) // run before the variant
	}{
		{name: "shape", v: variant{bShape: []int{4, 8}}},
		{name: "dtype", v: variant{bDType: graph.Float16}},
		{name: "primitive parameter", v: variant{scratch: true}},
		{name: "computed input", v: variant{xEvaluated: true}},
		{name: "evaluated input storage", v: variant{w: nil}, setup: func(k *keyRig) { k.w, k.w2 = k.w2, k.w }},
		{name: "wiring", v: variant{swap: true}},
		{name: "requested outputs", v: variant{alsoY: true}},
		{name: "refused donation", setup: func(k *keyRig) {
			// A second holder of the cache's buffer: the next update must
			// copy it.
			if err := k.rt.Eval(ops.Reshape(k.cache, 64)); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := newKeyRig(t)
			for i := range 3 {
				if s := k.step(variant{}); s.CacheHits != min(1, i/2) {
					t.Fatalf("base step %d: %d cache hits", i, s.CacheHits)
				}
			}
			if c.setup != nil {
				c.setup(k)
			}
			s := k.step(c.v)
			if s.CacheHits != 0 || s.CacheMisses != 1 {
				t.Fatalf("the variant replayed the base structure's plan: %v", s)
			}
			if c.name == "refused donation" && s.DonationsRefused != 1 {
				t.Fatalf("the donation was not refused: %v", s)
			}
			if c.setup == nil {
				if s := k.step(variant{}); s.CacheHits != 1 {
					t.Fatalf("the base structure no longer replays: %v", s)
				}
			}
		})
	}
}

// TestReplayStaleUploadIsCaught: a replay that leaves one constant's bytes
// from the recording (the stale-upload mutation) gives wrong results, which
// the comparison with planning from scratch catches; unbroken, it does not.
func TestReplayStaleUploadIsCaught(t *testing.T) {
	const seed, reps = 4, 4
	want, _ := repeatProgram(t, newRT(t, cpu.New(cpu.Options{}), runtime.Options{NoPlanCache: true}), seed, reps)
	for _, broken := range []bool{false, true} {
		rt := newRT(t, cpu.New(cpu.Options{}), runtime.Options{})
		if broken {
			runtime.SetMutation(rt, runtime.MutStaleUpload, 1)
		}
		got, stats := repeatProgram(t, rt, seed, reps)
		if stats[2].Uploads == 0 || stats[2].CacheHits != 1 {
			t.Fatalf("the scenario needs replayed uploads: %v", stats[2])
		}
		same := true
		for i := range want {
			same = same && bytes.Equal(got[i], want[i])
		}
		if same == broken {
			t.Fatalf("broken %v: results match planning from scratch: %v", broken, same)
		}
	}
}

// TestReplayThenOtherWork: Evals of other structures interleaved with
// replays, all in flight together, read and update the replays' buffers
// (the cache updated in place) with no hazard: the replays left the
// encoder's hazard state as encoding would have.
func TestReplayThenOtherWork(t *testing.T) {
	for _, co := range []cpu.Options{{Check: true, Lazy: true, Seed: 11}, {Check: true}, {Check: true, Seed: 2}} {
		dev := cpu.New(co)
		rt := newRT(t, dev, runtime.Options{DispatchesPerCommandBuffer: 1})
		ref := newRT(t, cpu.New(cpu.Options{}), runtime.Options{NoPlanCache: true})
		run := func(rt *runtime.Runtime) []float32 {
			r := loomtest.Rand(8)
			cache := graph.FromFloat32s(loomtest.Float32s(r, 64, -1, 1), 8, 8)
			var sums []*graph.Array
			for i := range 9 {
				rows := graph.FromFloat32s(loomtest.Float32s(r, 16, -1, 1), 2, 8)
				cache = ops.Apply(tScatter{}, cache, graph.FromInt32s([]int32{int32(i % 8), int32((i + 4) % 8)}), rows)[0]
				sum := ops.Apply(tReadSum{}, cache)[0]
				outs := []*graph.Array{sum, cache}
				if i%3 == 2 { // another structure: reads the cache three times
					outs[0] = ops.Add(sum, ops.Apply(tReadSum{}, ops.Mul(cache, cache))[0])
				}
				if _, err := rt.EvalAsync(outs...); err != nil {
					t.Fatal(err)
				}
				sums = append(sums, outs[0])
			}
			var all []float32
			for _, s := range sums {
				v, err := s.Float32s()
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, v...)
			}
			return all
		}
		got, want := run(rt), run(ref)
		if !slices.Equal(got, want) {
			t.Fatalf("%+v: results differ from planning from scratch", co)
		}
		if cs := rt.CacheStats(); cs.Hits == 0 {
			t.Fatalf("%+v: nothing replayed: %+v", co, cs)
		}
		if hz := dev.Hazards(); len(hz) > 0 {
			t.Fatalf("%+v: %d hazards, first: %v", co, len(hz), hz[0])
		}
	}
}

// TestReplayEviction cycles through more recorded structures than the
// cache holds: entries are evicted, their buffers go back to the pool while
// replays that used them may still be in flight, and every result matches.
func TestReplayEviction(t *testing.T) {
	dev := cpu.New(cpu.Options{Check: true, Seed: 21})
	rt := newRT(t, dev, runtime.Options{DispatchesPerCommandBuffer: 2})
	ref := newRT(t, cpu.New(cpu.Options{}), runtime.Options{NoPlanCache: true})
	run := func(rt *runtime.Runtime) [][]float32 {
		var outs []*graph.Array
		for round := range 2 {
			for n := 1; n <= 12; n++ { // 12 structures: chains of n links
				for rep := range 3 { // planned, recorded, replayed
					r := loomtest.Rand(uint64(round*1000 + n*10 + rep))
					x := graph.FromFloat32s(loomtest.Float32s(r, 64, -1, 1), 8, 8)
					for range n {
						x = ops.Apply(tScan{}, ops.Add(x, x))[0]
					}
					if _, err := rt.EvalAsync(x); err != nil {
						t.Fatal(err)
					}
					outs = append(outs, x)
				}
			}
		}
		var res [][]float32
		for _, o := range outs {
			v, err := o.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			res = append(res, v)
		}
		return res
	}
	got, want := run(rt), run(ref)
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Fatalf("result %d differs", i)
		}
	}
	cs := rt.CacheStats()
	if cs.Evicted < 12 || cs.Entries > 8 || cs.Hits != 24 || cs.Recorded != 24 {
		t.Fatalf("want 24 recorded, replayed and 12 evicted, at most 8 entries: %+v", cs)
	}
	if hz := dev.Hazards(); len(hz) > 0 {
		t.Fatalf("%d hazards, first: %v", len(hz), hz[0])
	}
}

// TestReplayUncacheable: a structure whose result would live in a
// constant's buffer (a view of a constant) is never replayed — the next
// replay's upload would overwrite it under its holder — and every
// evaluation of it is still right.
func TestReplayUncacheable(t *testing.T) {
	rt := newRT(t, cpu.New(cpu.Options{Check: true, Seed: 13}), runtime.Options{})
	var views []*graph.Array
	for i := range 4 {
		c := graph.FromFloat32s([]float32{float32(i), 1, 2, 3}, 2, 2)
		v := ops.Reshape(c, 4)
		s := ops.Add(c, c)
		if err := rt.Eval(v, s); err != nil {
			t.Fatal(err)
		}
		if st := rt.LastStats(); st.CacheHits != 0 {
			t.Fatalf("evaluation %d replayed: %v", i, st)
		}
		views = append(views, v)
	}
	for i, v := range views {
		got, err := v.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if want := []float32{float32(i), 1, 2, 3}; !slices.Equal(got, want) {
			t.Fatalf("view %d is %v, want %v", i, got, want)
		}
	}
}

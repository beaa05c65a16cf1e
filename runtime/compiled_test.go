package runtime_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

// compiledRig is a decode-shaped step: per-call data x and slot indices,
// a weight, and a cache updated in place every step.
type compiledRig struct {
	w, cache *graph.Array
	builds   int
}

func newCompiledRig(t *testing.T, rt *runtime.Runtime) *compiledRig {
	r := loomtest.Rand(17)
	c := &compiledRig{
		w:     graph.FromFloat32s(loomtest.Float32s(r, 64, -1, 1), 8, 8),
		cache: graph.FromFloat32s(loomtest.Float32s(r, 64, -1, 1), 8, 8),
	}
	if err := rt.Eval(c.w, c.cache); err != nil {
		t.Fatal(err)
	}
	return c
}

// data returns step i's inputs: x [2, 8] and two cache rows.
func stepData(i int) (x []float32, idx []int32) {
	return loomtest.Float32s(loomtest.Rand(uint64(100+i)), 16, -1, 1), []int32{int32(i % 8), int32((i + 3) % 8)}
}

// build makes step i's graph: y = x·w, the cache rows written in place,
// and the cache's column sums plus y's. Its inputs are x and the rows.
func (c *compiledRig) build(i int) (outs, inputs []*graph.Array) {
	c.builds++
	x, idx := stepData(i)
	xa, ia := graph.FromFloat32s(x, 2, 8), graph.FromInt32s(idx)
	y := ops.Apply(tMatMul{}, xa, c.w)[0]
	c.cache = ops.Apply(tScatter{}, c.cache, ia, y)[0]
	return []*graph.Array{ops.Add(ops.Apply(tReadSum{}, c.cache)[0], ops.Apply(tReadSum{}, y)[0]), c.cache}, []*graph.Array{xa, ia}
}

func stepInputs(i int) []runtime.Input {
	x, idx := stepData(i)
	return []runtime.Input{runtime.Bytes(graph.FromFloat32s(x).HostBytes()), runtime.Int32s(idx)}
}

// reference runs the steps planned from scratch and returns every step's
// sums and the final cache.
func reference(t *testing.T, steps int) ([][]float32, []float32) {
	rt := newRT(t, cpu.New(cpu.Options{}), runtime.Options{NoPlanCache: true})
	c := newCompiledRig(t, rt)
	var sums [][]float32
	for i := range steps {
		outs, _ := c.build(i)
		if err := rt.Eval(outs...); err != nil {
			t.Fatal(err)
		}
		v, err := outs[0].Float32s()
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, v)
	}
	v, err := c.cache.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return sums, v
}

// TestCompiledStep calls a compiled step many times, each call submitted
// before the earlier ones complete: build runs once, the results and the
// cache updated in place match planning every step from scratch bit for
// bit, and the checking devices see no hazard.
func TestCompiledStep(t *testing.T) {
	const steps = 12
	wantSums, wantCache := reference(t, steps)
	for _, c := range []struct {
		dev  cpu.Options
		opts runtime.Options
	}{
		{cpu.Options{}, runtime.Options{}},
		{cpu.Options{Check: true}, runtime.Options{DispatchesPerCommandBuffer: 1}},
		{cpu.Options{Check: true, Seed: 3}, runtime.Options{DispatchesPerCommandBuffer: 2, DispatchesPerPass: 1}},
		{cpu.Options{Check: true, Lazy: true, Seed: 9}, runtime.Options{}},
	} {
		dev := cpu.New(c.dev)
		rt := newRT(t, dev, c.opts)
		rig := newCompiledRig(t, rt)
		step := rt.Compile()
		var sums []*graph.Array
		for i := range steps {
			outs, _, err := step.Call("decode", func() ([]*graph.Array, []*graph.Array) { return rig.build(i) }, stepInputs(i)...)
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			if outs[1] != rig.cache {
				t.Fatalf("call %d: the cache is not updated in place in the array that holds it", i)
			}
			sums = append(sums, outs[0])
		}
		if rig.builds != 1 {
			t.Fatalf("%+v: build ran %d times", c.dev, rig.builds)
		}
		// The cache first, with the calls still in flight: reading it
		// waits for the latest call.
		v, err := rig.cache.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(v, wantCache) {
			t.Fatalf("%+v: the cache differs from planning from scratch", c.dev)
		}
		for i, a := range sums {
			v, err := a.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(v, wantSums[i]) {
				t.Fatalf("%+v: call %d differs from planning from scratch", c.dev, i)
			}
		}
		if hz := dev.Hazards(); len(hz) > 0 {
			t.Fatalf("%+v: %d hazards, first: %v", c.dev, len(hz), hz[0])
		}
	}
}

// TestCompiledRetrace: once the state array is donated by an ordinary Eval,
// the next Call traces again from the new state; inputs that are not the
// graph's constants are refused.
func TestCompiledRetrace(t *testing.T) {
	dev := cpu.New(cpu.Options{Check: true, Seed: 5})
	rt := newRT(t, dev, runtime.Options{})
	rig := newCompiledRig(t, rt)
	step := rt.Compile()
	call := func(i int) []*graph.Array {
		t.Helper()
		outs, _, err := step.Call(2, func() ([]*graph.Array, []*graph.Array) { return rig.build(i) }, stepInputs(i)...)
		if err != nil {
			t.Fatal(err)
		}
		return outs
	}
	call(0)
	call(1)
	// An ordinary step on the state: the trace's array is spent.
	rig.cache = ops.Apply(tScatter{}, rig.cache, graph.FromInt32s([]int32{7}), graph.FromFloat32s(make([]float32, 8), 1, 8))[0]
	if err := rt.Eval(rig.cache); err != nil {
		t.Fatal(err)
	}
	outs := call(2)
	if rig.builds != 2 {
		t.Fatalf("build ran %d times, want a new trace after the state moved", rig.builds)
	}
	call(3)
	if rig.builds != 2 || outs[1] != rig.cache {
		t.Fatalf("builds %d; the cache must stay in its array", rig.builds)
	}
	if hz := dev.Hazards(); len(hz) > 0 {
		t.Fatalf("%d hazards, first: %v", len(hz), hz[0])
	}

	if _, _, err := step.Call([]int{1}, nil); err == nil || !strings.Contains(err.Error(), "not comparable") {
		t.Fatalf("a slice key: %v", err)
	}
}

// TestCompiledInputErrors: a trace whose inputs do not match the call's
// args, or whose graph reads a constant that is not an input, is refused
// with an error that names the array and where it was built; under
// NoCompile every call is checked.
func TestCompiledInputErrors(t *testing.T) {
	for _, opts := range []runtime.Options{{}, {NoCompile: true}} {
		rt := newRT(t, cpu.New(cpu.Options{}), opts)
		step := rt.Compile()
		other := graph.FromFloat32s(make([]float32, 4), 4)
		if err := rt.Eval(other); err != nil {
			t.Fatal(err)
		}
		x, idx := stepData(4)
		bx, bi := stepInputs(4)[0], runtime.Int32s(idx)
		for i, c := range []struct {
			inputs func(x, i, w *graph.Array) []*graph.Array
			args   []runtime.Input
			want   string
		}{
			{func(x, i, w *graph.Array) []*graph.Array { return []*graph.Array{x, i} }, []runtime.Input{bx},
				"build returned 2 inputs, the call gives 1 args"},
			{func(x, i, w *graph.Array) []*graph.Array { return []*graph.Array{x, i} }, stepInputs(5),
				"arg 0 (64 bytes) is not the bytes of input 0, the constant float32[2 8] built at"},
			{func(x, i, w *graph.Array) []*graph.Array { return []*graph.Array{x} }, []runtime.Input{bx},
				"the graph reads the constant int32[2] built at"},
			{func(x, i, w *graph.Array) []*graph.Array { return []*graph.Array{x, x} }, []runtime.Input{bx, bx},
				"input 1 (float32[2 8] built at"},
			{func(x, i, w *graph.Array) []*graph.Array { return []*graph.Array{x, nil} }, []runtime.Input{bx, bi},
				"input 1 is nil"},
			{func(x, i, w *graph.Array) []*graph.Array { return []*graph.Array{x, i} }, []runtime.Input{runtime.Array(other), bi},
				"the call's arg 0 another array float32[4]"},
			{func(x, i, w *graph.Array) []*graph.Array { return []*graph.Array{x, i, w} }, []runtime.Input{bx, bi, runtime.Bytes(make([]byte, 256))},
				"input 2 (float32[8 8] built at"},
			{func(x, i, w *graph.Array) []*graph.Array {
				return []*graph.Array{x, i, graph.FromInt32s([]int32{1})}
			}, []runtime.Input{bx, bi, runtime.Int32s([]int32{1})},
				"is not a constant the graph reads"},
			{func(x, i, w *graph.Array) []*graph.Array { return []*graph.Array{x, i, other} }, []runtime.Input{bx, bi, runtime.Array(other)},
				"input 2 (float32[4] built at"},
		} {
			rig := newCompiledRig(t, rt)
			build := func() ([]*graph.Array, []*graph.Array) {
				xa, ia := graph.FromFloat32s(x, 2, 8), graph.FromInt32s(idx)
				y := ops.Apply(tMatMul{}, xa, rig.w)[0]
				cache := ops.Apply(tScatter{}, rig.cache, ia, y)[0]
				return []*graph.Array{cache}, c.inputs(xa, ia, rig.w)
			}
			_, _, err := step.Call(i, build, c.args...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("NoCompile %v, case %d: error %v, want one containing %q", opts.NoCompile, i, err, c.want)
			}
		}
	}
}

// TestCompiledNoCompile: with NoCompile (the plan cache still on) and with
// NoPlanCache, every Call builds its graph and the results are those of
// planning every step from scratch; a call whose args are not what build
// makes of them fails there, where a compiled replay could not tell.
func TestCompiledNoCompile(t *testing.T) {
	const steps = 6
	wantSums, wantCache := reference(t, steps)
	for _, opts := range []runtime.Options{{NoCompile: true}, {NoPlanCache: true}} {
		dev := cpu.New(cpu.Options{Check: true, Seed: 4})
		rt := newRT(t, dev, opts)
		rig := newCompiledRig(t, rt)
		step := rt.Compile()
		var hits int
		for i := range steps {
			outs, p, err := step.Call("decode", func() ([]*graph.Array, []*graph.Array) { return rig.build(i) }, stepInputs(i)...)
			if err != nil {
				t.Fatalf("%+v call %d: %v", opts, i, err)
			}
			hits += p.Stats().CacheHits
			v, err := outs[0].Float32s()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(v, wantSums[i]) {
				t.Fatalf("%+v: call %d differs from planning from scratch", opts, i)
			}
		}
		v, err := rig.cache.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if rig.builds != steps || !slices.Equal(v, wantCache) {
			t.Fatalf("%+v: build ran %d times of %d; cache equal %v", opts, rig.builds, steps, slices.Equal(v, wantCache))
		}
		// The plan cache replays from the third call on, unless it is off.
		if want := map[bool]int{false: steps - 2, true: 0}[opts.NoPlanCache]; hits != want {
			t.Fatalf("%+v: %d plan-cache hits, want %d", opts, hits, want)
		}
		if hz := dev.Hazards(); len(hz) > 0 {
			t.Fatalf("%+v: %d hazards, first: %v", opts, len(hz), hz[0])
		}
		_, _, err = step.Call("decode", func() ([]*graph.Array, []*graph.Array) { return rig.build(steps) }, stepInputs(steps-1)...)
		if err == nil || !strings.Contains(err.Error(), "is not the bytes of input 0") {
			t.Fatalf("%+v: stale args: error %v", opts, err)
		}
	}
}

// TestCompiledStaleInputIsCaught: with one input's upload left stale (the
// stale-upload mutation) the compiled step's results differ from planning
// from scratch; unbroken they match.
func TestCompiledStaleInputIsCaught(t *testing.T) {
	const steps = 5
	want, _ := reference(t, steps)
	for _, broken := range []bool{false, true} {
		rt := newRT(t, cpu.New(cpu.Options{}), runtime.Options{})
		if broken {
			runtime.SetMutation(rt, runtime.MutStaleUpload, 2)
		}
		rig := newCompiledRig(t, rt)
		step := rt.Compile()
		same := true
		for i := range steps {
			outs, _, err := step.Call(0, func() ([]*graph.Array, []*graph.Array) { return rig.build(i) }, stepInputs(i)...)
			if err != nil {
				t.Fatal(err)
			}
			v, err := outs[0].Float32s()
			if err != nil {
				t.Fatal(err)
			}
			same = same && slices.Equal(v, want[i])
		}
		if same == broken {
			t.Fatalf("broken %v: results match planning from scratch: %v", broken, same)
		}
	}
}

// TestCompiledBoundArrays feeds each call's output back as the next call's
// input array, as a device-resident decode loop feeds step k's sampled
// tokens into step k+1, with no host wait between calls: build runs once,
// every result matches planning from scratch, and the checking devices see
// no hazard. An array of another shape, or one sharing a buffer the trace
// reads, makes the call trace again.
func TestCompiledBoundArrays(t *testing.T) {
	const steps = 10
	r := loomtest.Rand(4)
	wData := loomtest.Float32s(r, 64, -0.5, 0.5)
	x0 := loomtest.Float32s(r, 16, -1, 1)
	// h_{k+1} = h_k·w + c_k, with c_k a per-step constant.
	c := func(k int) []float32 { return loomtest.Float32s(loomtest.Rand(uint64(50+k)), 16, -1, 1) }
	run := func(rt *runtime.Runtime, compiled bool) ([][]float32, int) {
		w := graph.FromFloat32s(wData, 8, 8)
		h := graph.FromFloat32s(x0, 2, 8)
		if err := rt.Eval(w, h); err != nil {
			t.Fatal(err)
		}
		step := rt.Compile()
		builds := 0
		var hs []*graph.Array
		for k := range steps {
			in := h
			build := func() (outs, inputs []*graph.Array) {
				builds++
				ck := graph.FromFloat32s(c(k), 2, 8)
				return []*graph.Array{ops.Add(ops.Apply(tMatMul{}, in, w)[0], ck)}, []*graph.Array{in, ck}
			}
			if compiled {
				outs, _, err := step.Call("chain", build, runtime.Array(in), runtime.Bytes(graph.FromFloat32s(c(k)).HostBytes()))
				if err != nil {
					t.Fatalf("call %d: %v", k, err)
				}
				h = outs[0]
			} else {
				outs, _ := build()
				h = outs[0]
				if err := rt.Eval(h); err != nil {
					t.Fatal(err)
				}
			}
			hs = append(hs, h)
		}
		var res [][]float32
		for _, a := range hs {
			v, err := a.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			res = append(res, v)
		}
		return res, builds
	}
	want, _ := run(newRT(t, cpu.New(cpu.Options{}), runtime.Options{NoPlanCache: true}), false)
	for _, co := range []cpu.Options{{}, {Check: true}, {Check: true, Seed: 8}, {Check: true, Lazy: true, Seed: 2}} {
		dev := cpu.New(co)
		got, builds := run(newRT(t, dev, runtime.Options{DispatchesPerCommandBuffer: 1}), true)
		if builds != 1 {
			t.Fatalf("%+v: build ran %d times", co, builds)
		}
		for k := range want {
			if !slices.Equal(got[k], want[k]) {
				t.Fatalf("%+v: step %d differs from planning from scratch", co, k)
			}
		}
		if hz := dev.Hazards(); len(hz) > 0 {
			t.Fatalf("%+v: %d hazards, first: %v", co, len(hz), hz[0])
		}
	}

	// An array arg of the traced spec replays; one of another shape traces
	// again; an array input must be one the graph reads.
	rt := newRT(t, cpu.New(cpu.Options{}), runtime.Options{})
	w := graph.FromFloat32s(wData, 8, 8)
	h := graph.FromFloat32s(x0, 2, 8)
	other := graph.FromFloat32s(x0, 2, 8)
	wide := graph.FromFloat32s(append(slices.Clone(x0), x0[:8]...), 3, 8)
	if err := rt.Eval(w, h, other, wide); err != nil {
		t.Fatal(err)
	}
	step := rt.Compile()
	builds := 0
	call := func(read, declared *graph.Array) ([]float32, error) {
		build := func() (outs, inputs []*graph.Array) {
			builds++
			return []*graph.Array{ops.Apply(tMatMul{}, read, w)[0]}, []*graph.Array{declared}
		}
		outs, _, err := step.Call("chain", build, runtime.Array(declared))
		if err != nil {
			return nil, err
		}
		return outs[0].Float32s()
	}
	var got [][]float32
	for i, a := range []*graph.Array{h, h, other, wide, wide} {
		v, err := call(a, a)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		got = append(got, v)
	}
	if builds != 2 {
		t.Fatalf("build ran %d times, want 2", builds)
	}
	if !slices.Equal(got[2], got[0]) || !slices.Equal(got[4][:16], got[0]) {
		t.Fatal("a replay with another array of the same values gave other results")
	}
	if _, err := call(h, other); err == nil || !strings.Contains(err.Error(), "input 0 (float32[2 8] built at") ||
		!strings.Contains(err.Error(), "is not an evaluated array the graph reads") {
		t.Fatalf("binding an array the graph does not read: %v", err)
	}
}

// TestCompiledStateOrdersLaterEvals: replays leave the hazard state of the
// buffers they touch to be computed when next needed (storage.state); an
// ordinary Eval after a run of replays still in flight — one that writes
// in place the weight they read, one that reads the cache they wrote —
// waits for them: the results match planning from scratch and the
// checking devices, holding all work back until the host blocks, see no
// hazard.
func TestCompiledStateOrdersLaterEvals(t *testing.T) {
	const steps = 5
	run := func(rt *runtime.Runtime, compiled bool) ([]float32, []float32) {
		rig := newCompiledRig(t, rt)
		step := rt.Compile()
		for i := range steps {
			if compiled {
				if _, _, err := step.Call(0, func() ([]*graph.Array, []*graph.Array) { return rig.build(i) }, stepInputs(i)...); err != nil {
					t.Fatal(err)
				}
				continue
			}
			outs, _ := rig.build(i)
			if _, err := rt.EvalAsync(outs...); err != nil {
				t.Fatal(err)
			}
		}
		sum := ops.Apply(tReadSum{}, rig.cache)[0]
		w := ops.Apply(tScatter{}, rig.w, graph.FromInt32s([]int32{3}), graph.FromFloat32s(make([]float32, 8), 1, 8))[0]
		if _, err := rt.EvalAsync(sum, w); err != nil {
			t.Fatal(err)
		}
		s, err := sum.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		v, err := w.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		return s, v
	}
	wantSum, wantW := run(newRT(t, cpu.New(cpu.Options{}), runtime.Options{NoPlanCache: true}), false)
	for _, co := range []cpu.Options{{Check: true, Lazy: true, Seed: 1}, {Check: true, Lazy: true, Seed: 6}, {Check: true, Seed: 2}} {
		dev := cpu.New(co)
		s, w := run(newRT(t, dev, runtime.Options{DispatchesPerCommandBuffer: 1}), true)
		if !slices.Equal(s, wantSum) || !slices.Equal(w, wantW) {
			t.Fatalf("%+v: results differ from planning from scratch", co)
		}
		if hz := dev.Hazards(); len(hz) > 0 {
			t.Fatalf("%+v: %d hazards, first: %v", co, len(hz), hz[0])
		}
	}
}

// TestCompiledReusesLists checks that a replay rebinds a copy of its
// plan's lists only once the host has seen that copy's previous replay
// complete, and that the copies kept are bounded: calls each waited for
// keep one; calls in flight keep one each, at most MaxListSets (the others
// submit a copy of their own), and waiting for each call again keeps no
// more. On the lazy checking device work runs only once the host waits,
// so the calls in flight are known. Every result matches planning from
// scratch and no hazard is seen.
func TestCompiledReusesLists(t *testing.T) {
	const waited, inFlight, steps = 5, runtime.MaxListSets + 3, 20
	wantSums, wantCache := reference(t, steps)
	dev := cpu.New(cpu.Options{Check: true, Lazy: true, Seed: 5})
	rt := newRT(t, dev, runtime.Options{DispatchesPerCommandBuffer: 2})
	c := newCompiledRig(t, rt)
	step := rt.Compile()
	sums := make([]*graph.Array, steps)
	read := func(i int) {
		t.Helper()
		v, err := sums[i].Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(v, wantSums[i]) {
			t.Fatalf("step %d differs from planning from scratch", i)
		}
	}
	done := 0 // calls read
	for i := range steps {
		outs, _, err := step.Call("step", func() (outs, inputs []*graph.Array) { return c.build(i) }, stepInputs(i)...)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		sums[i], c.cache = outs[0], outs[1]
		want := 1
		switch {
		case i == 0: // traced
			want = 0
		case i >= waited && i < waited+inFlight: // calls waited… in flight
			want = min(1+i-waited, runtime.MaxListSets)
		case i >= waited+inFlight:
			want = runtime.MaxListSets
		}
		if got := runtime.ListSets(step); got != want {
			t.Fatalf("after call %d: %d copies of the lists kept, want %d", i, got, want)
		}
		if i < waited || i >= waited+inFlight-1 {
			for ; done <= i; done++ {
				read(done)
			}
		}
	}
	v, err := c.cache.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(v, wantCache) || c.builds != 1 {
		t.Fatalf("cache differs from planning from scratch, or build ran %d times", c.builds)
	}
	if hz := dev.Hazards(); len(hz) > 0 {
		t.Fatalf("%d hazards, first: %v", len(hz), hz[0])
	}
}

// TestCompiledArgSharesReadBuffer checks that a call whose array arg is an
// evaluated array the trace reads otherwise (here the weight) is not a
// replay of that trace: the call traces again, and its result is the
// graph's.
func TestCompiledArgSharesReadBuffer(t *testing.T) {
	rt := newRT(t, cpu.New(cpu.Options{}), runtime.Options{})
	r := loomtest.Rand(9)
	w := graph.FromFloat32s(loomtest.Float32s(r, 64, -1, 1), 8, 8)
	x := graph.FromFloat32s(loomtest.Float32s(r, 64, -1, 1), 8, 8)
	if err := rt.Eval(w, x); err != nil {
		t.Fatal(err)
	}
	step := rt.Compile()
	builds := 0
	call := func(in *graph.Array) []float32 {
		t.Helper()
		build := func() (outs, inputs []*graph.Array) {
			builds++
			return []*graph.Array{ops.Apply(tMatMul{}, in, w)[0]}, []*graph.Array{in}
		}
		outs, _, err := step.Call("k", build, runtime.Array(in))
		if err != nil {
			t.Fatal(err)
		}
		v, err := outs[0].Float32s()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	call(x)
	call(x)
	if builds != 1 {
		t.Fatalf("build ran %d times for two calls with x, want 1", builds)
	}
	got := call(w)
	if builds != 2 {
		t.Fatalf("a call whose arg is the weight the trace reads replayed it (build ran %d times)", builds)
	}
	want := ops.Apply(tMatMul{}, w, w)[0]
	if err := rt.Eval(want); err != nil {
		t.Fatal(err)
	}
	wv, err := want.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, wv) {
		t.Fatal("w·w through the compiled step differs from its evaluation")
	}
}

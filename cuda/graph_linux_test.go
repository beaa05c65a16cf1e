package cuda

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// withGraphs runs f with CUDA graphs on or off and returns the graph
// statistics' growth over f.
func withGraphs(t *testing.T, d *Device, on bool, f func()) GraphStats {
	t.Helper()
	was := d.graphs.Load()
	if err := d.SetGraphs(on); err != nil {
		t.Fatal(err)
	}
	defer d.SetGraphs(was)
	before := d.GraphStats()
	f()
	after := d.GraphStats()
	return GraphStats{Launches: after.Launches - before.Launches, Replays: after.Replays - before.Replays, Captures: after.Captures - before.Captures,
		Updates: after.Updates - before.Updates, Evictions: after.Evictions - before.Evictions, Failures: after.Failures - before.Failures,
		Programmatic: after.Programmatic - before.Programmatic}
}

func randF32(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// chain is a command buffer of four dependent elementwise dispatches,
// t1 = a + b, t2 = t1 · c, t3 = t2 + b, out = t3 · c, over n floats; c may
// have one element (broadcast).
type chain struct {
	a, b, c, t1, t2, t3, out runtime.Buffer
}

func (ch chain) encode(t *testing.T, d *Device, cb *runtime.CommandList, n int) {
	t.Helper()
	add, err := d.Kernel("add_f32")
	if err != nil {
		t.Fatal(err)
	}
	mul, err := d.Kernel("mul_f32")
	if err != nil {
		t.Fatal(err)
	}
	full, _ := primitives.NewElementwiseParams([]int{n}, []int{n}, []int{n})
	cp := full
	if ch.c.Len() == 4 {
		cp, _ = primitives.NewElementwiseParams([]int{n}, []int{n}, []int{1})
	}
	grid, group := primitives.Dim3{X: (n + 255) / 256, Y: 1, Z: 1}, primitives.Dim3{X: 256, Y: 1, Z: 1}
	cb.NewPass()
	for _, s := range []struct {
		k       runtime.Kernel
		x, y, o runtime.Buffer
		p       *primitives.ElementwiseParams
	}{{add, ch.a, ch.b, ch.t1, full}, {mul, ch.t1, ch.c, ch.t2, cp}, {add, ch.t2, ch.b, ch.t3, full}, {mul, ch.t3, ch.c, ch.out, cp}} {
		cb.Dispatch(s.k, grid, group, []runtime.BufferArg{arg(s.x, "a", primitives.Read), arg(s.y, "b", primitives.Read), arg(s.o, "out", primitives.Write)}, s.p, 0)
		cb.Barrier()
	}
}

// want is the chain's result in float32 arithmetic, rounded after each
// operation as the kernels do.
func (ch chain) want(a, b, c []float32) []float32 {
	out := make([]float32, len(a))
	for i := range a {
		ci := c[min(i, len(c)-1)]
		t1 := float32(float64(a[i]) + float64(b[i]))
		t2 := float32(float64(t1) * float64(ci))
		t3 := float32(float64(t2) + float64(b[i]))
		out[i] = float32(float64(t3) * float64(ci))
	}
	return out
}

// TestGraphReplayMatchesLaunches repeats a command buffer whose dispatches
// read the previous one's results: with graphs on, all but the first are
// graph launches, and the results are bit for bit those of launch by
// launch.
func TestGraphReplayMatchesLaunches(t *testing.T) {
	d := device(t)
	const n, reps = 1003, 12
	r := rand.New(rand.NewPCG(5, 6))
	a0, b, c := randF32(r, n), randF32(r, n), make([]float32, n)
	for i := range c {
		c[i] = 0.5 + r.Float32() // keeps the values finite over the repeats
	}
	run := func(on bool) ([]float32, GraphStats) {
		var got []float32
		st := withGraphs(t, d, on, func() {
			q, err := d.NewQueue()
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			x := f32Buffer(t, d, a0)
			ch := chain{a: x, b: f32Buffer(t, d, b), c: f32Buffer(t, d, c), t1: f32Buffer(t, d, make([]float32, n)),
				t2: f32Buffer(t, d, make([]float32, n)), t3: f32Buffer(t, d, make([]float32, n)), out: x}
			ev := q.NewEvent()
			var cbs []runtime.Submission
			for i := range reps {
				cb := &runtime.CommandList{}
				ch.encode(t, d, cb, n)
				cb.Signal(ev, uint64(i+1))
				cbs = append(cbs, q.Submit(cb))
			}
			ev.Wait(reps)
			for _, cb := range cbs {
				if err := cb.Err(); err != nil {
					t.Fatal(err)
				}
			}
			got = readF32(t, x)
		})
		return got, st
	}
	off, stOff := run(false)
	on, stOn := run(true)
	if stOff != (GraphStats{}) {
		t.Errorf("graphs off: statistics %+v, want none", stOff)
	}
	if stOn.Launches != reps-1 || stOn.Captures != 1 || stOn.Updates != 0 || stOn.Failures != 0 {
		t.Errorf("graphs on: statistics %+v, want %d launches, 1 capture, no updates or failures", stOn, reps-1)
	}
	want := slices.Clone(a0)
	for range reps {
		want = chain{}.want(want, b, c)
	}
	for i := range want {
		if math.Float32bits(off[i]) != math.Float32bits(want[i]) || math.Float32bits(on[i]) != math.Float32bits(off[i]) {
			t.Fatalf("x[%d]: graphs off %v, on %v, want %v", i, off[i], on[i], want[i])
		}
	}
}

// TestGraphReplayWithChangedArguments replays one structure with other
// input and output buffers and other params: the exec's changed nodes are
// updated (or a new exec built) and every result is the new one, while the
// earlier outputs keep theirs.
func TestGraphReplayWithChangedArguments(t *testing.T) {
	d := device(t)
	const n = 777
	r := rand.New(rand.NewPCG(7, 8))
	vals := map[runtime.Buffer][]float32{}
	buf := func(v []float32) runtime.Buffer {
		b := f32Buffer(t, d, v)
		vals[b] = v
		return b
	}
	a, a2, b, c := buf(randF32(r, n)), buf(randF32(r, n)), buf(randF32(r, n)), buf(randF32(r, n))
	c1 := buf([]float32{-1.75})
	tmp := func() runtime.Buffer { return buf(make([]float32, n)) }
	t1, t2, t3 := tmp(), tmp(), tmp()
	out, out2, out3, out4 := tmp(), tmp(), tmp(), tmp()
	q, err := d.NewQueue()
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ev := q.NewEvent()
	seq := uint64(0)
	type round struct {
		name                        string
		ch                          chain
		launches, captures, updates int64
	}
	base := chain{a: a, b: b, c: c, t1: t1, t2: t2, t3: t3, out: out}
	changed := base
	changed.a, changed.out = a2, out2 // the first and last nodes
	bcast := changed
	bcast.c = c1 // the second and fourth nodes: another buffer and params
	other := chain{a: a2, b: c, c: b, t1: t3, t2: t1, t3: t2, out: out3}
	only := bcast
	only.out = out4
	for _, rd := range []round{
		{"first (launch by launch)", base, 0, 0, 0},
		{"repeat (captured)", base, 1, 1, 0},
		{"input and output changed", changed, 1, 0, 2},
		{"broadcast params", bcast, 1, 0, 2},
		{"every node changed (new exec)", other, 1, 1, 0},
		{"only the output changed", only, 1, 0, 1},
		{"three nodes changed (new exec)", base, 1, 1, 0},
	} {
		st := withGraphs(t, d, true, func() {
			seq++
			cb := &runtime.CommandList{}
			rd.ch.encode(t, d, cb, n)
			cb.Signal(ev, seq)
			sub := q.Submit(cb)
			ev.Wait(seq)
			if err := sub.Err(); err != nil {
				t.Fatalf("%s: %v", rd.name, err)
			}
		})
		if st.Launches != rd.launches || st.Captures != rd.captures || st.Updates != rd.updates || st.Failures != 0 {
			t.Errorf("%s: statistics %+v, want %d launches, %d captures, %d updates", rd.name, st, rd.launches, rd.captures, rd.updates)
		}
		want := rd.ch.want(vals[rd.ch.a], vals[rd.ch.b], vals[rd.ch.c])
		vals[rd.ch.out] = want
		for _, o := range []runtime.Buffer{out, out2, out3, out4} {
			got, w := readF32(t, o), vals[o]
			for i := range w {
				if math.Float32bits(got[i]) != math.Float32bits(w[i]) {
					t.Fatalf("%s: output %p [%d] = %v, want %v", rd.name, o, i, got[i], w[i])
				}
			}
		}
	}
}

// TestGraphBadIndexIsReported: a gather replayed as a graph reports a bad
// index exactly as launch by launch does, in the command buffer that had
// it, also when two launches of the same exec are in flight; the records
// are zeroed for the next launch.
func TestGraphBadIndexIsReported(t *testing.T) {
	d := device(t)
	table := f32Buffer(t, d, make([]float32, 10*64))
	out := f32Buffer(t, d, make([]float32, 300*64))
	idxBuf := func(bad bool) runtime.Buffer {
		idx := make([]float32, 300) // int32 bits, written as floats' bits
		for i := range idx {
			idx[i] = math.Float32frombits(uint32(i % 10))
		}
		if bad {
			for i, v := range map[int]int32{170: 10, 3: -7, 250: 99} {
				idx[i] = math.Float32frombits(uint32(v))
			}
		}
		return f32Buffer(t, d, idx)
	}
	good, bad := idxBuf(false), idxBuf(true)
	gather, err := d.Kernel("gather_rows_f32_i32")
	if err != nil {
		t.Fatal(err)
	}
	add, err := d.Kernel("add_f32")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := primitives.NewElementwiseParams([]int{300 * 64}, []int{300 * 64}, []int{300 * 64})
	q, err := d.NewQueue()
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ev := q.NewEvent()
	seq := uint64(0)
	commit := func(ib runtime.Buffer) runtime.Submission {
		cb := &runtime.CommandList{}
		cb.NewPass()
		// An addition first, so that the gather's record is not the first.
		cb.Dispatch(add, primitives.Dim3{X: 75, Y: 1, Z: 1}, primitives.Dim3{X: 256, Y: 1, Z: 1},
			[]runtime.BufferArg{arg(out, "a", primitives.Read), arg(out, "b", primitives.Read), arg(out, "out", primitives.Write)}, p, 0)
		cb.Dispatch(gather, primitives.Dim3{X: 300 * 64 / 256, Y: 1, Z: 1}, primitives.Dim3{X: 256, Y: 1, Z: 1},
			[]runtime.BufferArg{arg(table, "table", primitives.Read), arg(ib, "indices", primitives.Read), arg(out, "out", primitives.Write)},
			&primitives.RowsParams{Rows: 300, TableRows: 10, RowElems: 64}, 0)
		seq++
		cb.Signal(ev, seq)
		return q.Submit(cb)
	}
	const want = "cuda kernel gather_rows_f32_i32: indices[3] = -7 is out of range [0, 10) (and 2 more reports)"
	check := func(name string, cb runtime.Submission, wantErr bool) {
		t.Helper()
		err := cb.Err()
		if wantErr && (err == nil || err.Error() != want) {
			t.Fatalf("%s: error %v, want %q", name, err, want)
		}
		if !wantErr && err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	st := withGraphs(t, d, true, func() {
		for i, ib := range []runtime.Buffer{good, good, bad, good, bad, bad} {
			cb := commit(ib)
			ev.Wait(seq)
			check(string(rune('0'+i)), cb, ib == bad)
		}
		// Two launches of the exec in flight, the bad one first, and the
		// other way round.
		for _, pair := range [][2]runtime.Buffer{{bad, good}, {good, bad}} {
			cb1, cb2 := commit(pair[0]), commit(pair[1])
			ev.Wait(seq)
			check("in flight, first", cb1, pair[0] == bad)
			check("in flight, second", cb2, pair[1] == bad)
		}
	})
	if st.Launches != 9 || st.Failures != 0 || st.Updates == 0 {
		t.Errorf("statistics %+v, want 9 graph launches with updates and no failures", st)
	}
	// The same with graphs off, for the error text.
	withGraphs(t, d, false, func() {
		cb := commit(bad)
		ev.Wait(seq)
		check("graphs off", cb, true)
	})
}

// TestGraphPipelinedEvalAsync evaluates a chain of dependent steps, each
// of several command buffers, submitted before the step before is awaited,
// from two goroutines, with graphs on and off: the results agree with the
// host's, and most command buffers ran as graphs.
func TestGraphPipelinedEvalAsync(t *testing.T) {
	d := device(t)
	const n, steps = 1000, 60
	r := rand.New(rand.NewPCG(9, 10))
	x0, w := randF32(r, n), randF32(r, n)
	run := func(on bool) ([]float32, GraphStats) {
		var got []float32
		st := withGraphs(t, d, on, func() {
			rt, err := runtime.New(d, runtime.Options{DispatchesPerCommandBuffer: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer rt.Close()
			x, wa := graph.FromFloat32s(x0), graph.FromFloat32s(w)
			waits, done := waiter(8)
			for s := range steps {
				x = ops.Add(ops.Mul(ops.Sub(x, wa), graph.Full(graph.Float32, 0.5, n)), graph.Full(graph.Float32, float64(s%3), n))
				p, err := rt.EvalAsync(x)
				if err != nil {
					t.Fatal(err)
				}
				waits <- p
			}
			if err := done(); err != nil {
				t.Fatal(err)
			}
			if got, err = x.Float32s(); err != nil {
				t.Fatal(err)
			}
		})
		return got, st
	}
	want := slices.Clone(x0)
	for s := range steps {
		for i := range want {
			v := float32(float64(want[i]) - float64(w[i]))
			v = float32(float64(v) * 0.5)
			want[i] = float32(float64(v) + float64(s%3))
		}
	}
	for _, on := range []bool{false, true} {
		got, st := run(on)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("graphs %v: x[%d] = %v, want %v", on, i, got[i], want[i])
			}
		}
		// A replayed step is one list, its own exec's launch; the first
		// two steps are planned.
		if on && (st.Launches < steps-3 || st.Failures != 0) {
			t.Errorf("graphs on: statistics %+v, want at least %d graph launches and no failures", st, steps-3)
		}
		if !on && st != (GraphStats{}) {
			t.Errorf("graphs off: statistics %+v", st)
		}
		t.Logf("graphs %v: %+v", on, st)
	}
}

// TestGraphLaunchErrorsUnchanged: a repeated structure whose dispatch the
// device rejects is issued launch by launch and fails with today's error.
func TestGraphLaunchErrorsUnchanged(t *testing.T) {
	d := device(t)
	x := f32Buffer(t, d, make([]float32, 256))
	add, err := d.Kernel("add_f32")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := primitives.NewElementwiseParams([]int{256}, []int{256}, []int{256})
	q, err := d.NewQueue()
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ev := q.NewEvent()
	g1, t256 := primitives.Dim3{X: 1, Y: 1, Z: 1}, primitives.Dim3{X: 256, Y: 1, Z: 1}
	st := withGraphs(t, d, true, func() {
		for i, off := range []int64{0, 0, 0, 512, 0} {
			cb := &runtime.CommandList{}
			cb.NewPass()
			for range 2 {
				cb.Dispatch(add, g1, t256, []runtime.BufferArg{arg(x, "a", primitives.Read), arg(x, "b", primitives.Read),
					{Buffer: x, Offset: off, Size: 1024, Access: primitives.Write, Name: "out"}}, p, 0)
			}
			cb.Signal(ev, uint64(i+1))
			sub := q.Submit(cb)
			ev.Wait(uint64(i + 1))
			err := sub.Err()
			if off == 0 && err != nil {
				t.Fatalf("command buffer %d: %v", i, err)
			}
			const want = "cuda: kernel add_f32: argument out: cuda: bytes [512,+1024) outside a buffer of 1024 bytes"
			if off != 0 && (err == nil || err.Error() != want) {
				t.Fatalf("command buffer %d: error %v, want %q", i, err, want)
			}
		}
	})
	if st.Launches != 3 || st.Failures != 0 {
		t.Errorf("statistics %+v, want 3 graph launches (the bad command buffer launch by launch)", st)
	}
}

// TestGraphKey: every field of a launch's structure changes the key, and
// its arguments' values do not.
func TestGraphKey(t *testing.T) {
	k1, k2 := &kernel{name: "k1", fn: 0x1000}, &kernel{name: "k2", fn: 0x2000}
	x, y := &buffer{ptr: 0x10, n: 64}, &buffer{ptr: 0x20, n: 64}
	dim := func(x, y, z int) primitives.Dim3 { return primitives.Dim3{X: x, Y: y, Z: z} }
	base := launch{k: k1, grid: dim(4, 2, 1), group: dim(128, 1, 1), args: []runtime.BufferArg{{Buffer: x}, {Buffer: y}},
		params: &primitives.RowsParams{Rows: 1}, shared: 256}
	key := func(l launch) string { return string(appendKey(nil, []launch{base, l})) }
	same := base
	same.args = []runtime.BufferArg{{Buffer: y, Offset: 8}, {Buffer: x}}
	same.params = &primitives.RowsParams{Rows: 7}
	if key(same) != key(base) {
		t.Error("other buffers and params changed the key")
	}
	for name, change := range map[string]func(*launch){
		"kernel":    func(l *launch) { l.k = k2 },
		"grid x":    func(l *launch) { l.grid.X++ },
		"grid y":    func(l *launch) { l.grid.Y++ },
		"grid z":    func(l *launch) { l.grid.Z++ },
		"group x":   func(l *launch) { l.group.X++ },
		"group y":   func(l *launch) { l.group.Y++ },
		"group z":   func(l *launch) { l.group.Z++ },
		"shared":    func(l *launch) { l.shared++ },
		"arguments": func(l *launch) { l.args = l.args[:1] },
	} {
		l := base
		change(&l)
		if key(l) == key(base) {
			t.Errorf("a different %s did not change the key", name)
		}
	}
	if string(appendKey(nil, []launch{base})) == key(base) {
		t.Error("the number of launches did not change the key")
	}
}

// TestNearestExec: an exact match wins, else the exec with the fewest
// launches whose values differ.
func TestNearestExec(t *testing.T) {
	offs := []int{0, 2, 4, 6}
	exec := func(v string) *graphExec { return &graphExec{vals: []byte(v), offs: offs} }
	far, near, exact := exec("aaaaaa"), exec("xxyyaa"), exec("xxyyzz")
	g := &graphKey{execs: []*graphExec{far, near, exact}}
	if e, diff := nearestExec(g, []byte("xxyyzz"), offs); e != exact || diff != 0 {
		t.Errorf("exact values: exec %p with %d differences, want %p with 0", e, diff, exact)
	}
	g.execs = g.execs[:2]
	if e, diff := nearestExec(g, []byte("xxyyzz"), offs); e != near || diff != 1 {
		t.Errorf("exec %p with %d differences, want %p with 1", e, diff, near)
	}
	if e, diff := nearestExec(&graphKey{}, []byte("xxyyzz"), offs); e != nil || diff != len(offs) {
		t.Errorf("no execs: %p, %d", e, diff)
	}
}

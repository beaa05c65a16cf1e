package cuda

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// replayDevice is the device for the tests of replayed lists' execs,
// which LOOM_CUDA_REPLAY=0 turns off.
func replayDevice(t *testing.T) *Device {
	d := device(t)
	if !d.replays {
		t.Skip("LOOM_CUDA_REPLAY=0: replayed lists go through the structure cache")
	}
	return d
}

// replayRig is an identified list (runtime.CommandList.Replay) as a
// replay submits it: an upload of the step's input into a, then the chain
// over a, b and c into out, with b (read by dispatches 0 and 2) and out
// (written by dispatch 3) rebound.
type replayRig struct {
	d        *Device
	q        runtime.Queue
	ev       runtime.Event
	seq      uint64
	a, c, t1 runtime.Buffer
	t2, t3   runtime.Buffer
	vals     map[runtime.Buffer][]float32
}

var replayRebound = []runtime.ReboundArg{{Dispatch: 0, Arg: 1}, {Dispatch: 2, Arg: 1}, {Dispatch: 3, Arg: 2}}

// list is the rig's list with input x, b and out bound, under identity id.
func (rg *replayRig) list(t *testing.T, id uint64, x []float32, b, out runtime.Buffer) *runtime.CommandList {
	l := &runtime.CommandList{Replay: id, Rebound: replayRebound}
	l.NewPass()
	raw := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	l.Upload(rg.a, 0, raw)
	chain{a: rg.a, b: b, c: rg.c, t1: rg.t1, t2: rg.t2, t3: rg.t3, out: out}.encode(t, rg.d, l, len(x))
	rg.seq++
	l.Signal(rg.ev, rg.seq)
	return l
}

// check waits for sub and compares every output buffer with what it must
// hold.
func (rg *replayRig) check(t *testing.T, name string, sub runtime.Submission, outs []runtime.Buffer) {
	t.Helper()
	rg.ev.Wait(rg.seq)
	if err := sub.Err(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, o := range outs {
		got, w := readF32(t, o), rg.vals[o]
		for i := range w {
			if math.Float32bits(got[i]) != math.Float32bits(w[i]) {
				t.Fatalf("%s: output %p [%d] = %v, want %v", name, o, i, got[i], w[i])
			}
		}
	}
}

// TestReplayListLaunch submits an identified list again and again with
// other input bytes and other rebound buffers: the first submission builds
// the list's exec, every later one launches it with only the changed
// nodes updated, and every result is this submission's (a stale exec
// would read the old b or write the old out). A submission while the exec
// is in flight, or one that breaks the contract (another grid under the
// same identity), is issued like any other list, correctly.
func TestReplayListLaunch(t *testing.T) {
	d := replayDevice(t)
	if !d.unified {
		t.Error("the device reports no unified addressing: replayed lists' uploads are not graph nodes")
	}
	const n = 1501 // the upload: 6,004 bytes, two groups of copy_bytes and a tail of 4 bytes
	r := rand.New(rand.NewPCG(21, 22))
	rg := &replayRig{d: d, vals: map[runtime.Buffer][]float32{}}
	buf := func(v []float32) runtime.Buffer {
		b := f32Buffer(t, d, v)
		rg.vals[b] = v
		return b
	}
	cv := make([]float32, n)
	for i := range cv {
		cv[i] = 0.5 + r.Float32()
	}
	rg.a, rg.c = buf(make([]float32, n)), buf(cv)
	rg.t1, rg.t2, rg.t3 = buf(make([]float32, n)), buf(make([]float32, n)), buf(make([]float32, n))
	bs := []runtime.Buffer{buf(randF32(r, n)), buf(randF32(r, n)), buf(randF32(r, n))}
	outs := []runtime.Buffer{buf(make([]float32, n)), buf(make([]float32, n))}
	q, err := d.NewQueue()
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	rg.q, rg.ev = q, q.NewEvent()
	const id = 1 << 60 // far from the runtime's identities
	submit := func(bi, oi int) runtime.Submission {
		x := randF32(r, n)
		sub := q.Submit(rg.list(t, id, x, bs[bi], outs[oi]))
		rg.vals[outs[oi]] = chain{}.want(x, rg.vals[bs[bi]], cv)
		return sub
	}
	type round struct {
		name            string
		b, out          int
		replays, builds int64
		updates         int64
	}
	withGraphs(t, d, true, func() {
		prevOut := 0
		for _, rd := range []round{
			{"first (the exec built)", 0, 0, 1, 1, 0},
			{"same buffers, new input", 0, 0, 1, 0, 0},
			{"b rebound", 1, 0, 1, 0, 2},
			{"out rebound", 1, 1, 1, 0, 1},
			{"both rebound", 2, 0, 1, 0, 3},
			{"back", 0, 1, 1, 0, 3},
			{"same again", 0, 1, 1, 0, 0},
		} {
			st := withGraphs(t, d, true, func() { rg.check(t, rd.name, submit(rd.b, rd.out), outs) })
			if st.Replays != rd.replays || st.Launches != rd.replays || st.Captures != rd.builds || st.Updates != rd.updates || st.Failures != 0 {
				t.Errorf("%s: statistics %+v, want %d replays, %d builds, %d updates", rd.name, st, rd.replays, rd.builds, rd.updates)
			}
			prevOut = rd.out
		}
		// The exec stages the upload and copies its status records back
		// itself.
		if e := q.(*queue).graphs.replays[id]; e == nil || e.exec == nil || len(e.staged) != 1 || !e.exec.copies {
			t.Errorf("the identity's entry %+v: want an exec with one staged upload that copies its records", e)
		}

		// Two submissions in flight: the second is not launched as the
		// identity's exec (its first launch may still read the values).
		st := withGraphs(t, d, true, func() {
			s1 := submit(1, 1-prevOut)
			s2 := submit(2, prevOut)
			rg.check(t, "in flight", s2, outs)
			rg.check(t, "in flight, first", s1, outs)
		})
		if st.Replays != 1 || st.Failures != 0 {
			t.Errorf("in flight: statistics %+v, want 1 replay", st)
		}

		// Another grid under the same identity: issued as an ordinary list.
		st = withGraphs(t, d, true, func() {
			x := randF32(r, n)
			l := rg.list(t, id, x, bs[0], outs[0])
			l.Passes[1].Commands[0].Grid.X++ // one more block of threads, which return at once
			sub := q.Submit(l)
			rg.vals[outs[0]] = chain{}.want(x, rg.vals[bs[0]], cv)
			rg.check(t, "another grid", sub, outs)
		})
		if st.Replays != 0 || st.Failures != 0 {
			t.Errorf("another grid: statistics %+v, want no replay", st)
		}
		// And the identity's exec is still right afterwards.
		st = withGraphs(t, d, true, func() { rg.check(t, "after", submit(2, 1), outs) })
		if st.Replays != 1 || st.Failures != 0 {
			t.Errorf("after: statistics %+v, want 1 replay", st)
		}
	})

	// A rebound argument outside the list: the identity is never a graph,
	// its lists run launch by launch.
	withGraphs(t, d, true, func() {
		for i := range 3 {
			x := randF32(r, n)
			l := rg.list(t, id+1, x, bs[i], outs[i%2])
			l.Rebound = []runtime.ReboundArg{{Dispatch: 4, Arg: 0}}
			sub := q.Submit(l)
			rg.vals[outs[i%2]] = chain{}.want(x, rg.vals[bs[i]], cv)
			rg.check(t, "bad rebound", sub, outs)
		}
	})
	// Graphs off: launch by launch.
	st := withGraphs(t, d, false, func() { rg.check(t, "graphs off", submit(1, 0), outs) })
	if st != (GraphStats{}) {
		t.Errorf("graphs off: statistics %+v", st)
	}
}

// TestReplayListBadIndex: a bad index reported by an identified list's
// exec fails that submission with the launch-by-launch error, and the
// next submission (good indices, rebound) succeeds.
func TestReplayListBadIndex(t *testing.T) {
	d := replayDevice(t)
	table := f32Buffer(t, d, make([]float32, 10*64))
	outs := []runtime.Buffer{f32Buffer(t, d, make([]float32, 300*64)), f32Buffer(t, d, make([]float32, 300*64))}
	idx := f32Buffer(t, d, make([]float32, 300))
	gather, err := d.Kernel("gather_rows_f32_i32")
	if err != nil {
		t.Fatal(err)
	}
	q, err := d.NewQueue()
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ev := q.NewEvent()
	seq := uint64(0)
	submit := func(bad bool, out runtime.Buffer) runtime.Submission {
		raw := make([]byte, 4*300)
		for i := range 300 {
			binary.LittleEndian.PutUint32(raw[4*i:], uint32(i%10))
		}
		if bad {
			for i, v := range map[int]int32{170: 10, 3: -7, 250: 99} {
				binary.LittleEndian.PutUint32(raw[4*i:], uint32(v))
			}
		}
		l := &runtime.CommandList{Replay: 1<<60 + 7, Rebound: []runtime.ReboundArg{{Dispatch: 0, Arg: 2}}}
		l.NewPass()
		l.Upload(idx, 0, raw)
		l.Dispatch(gather, primitives.Dim3{X: 300 * 64 / 256, Y: 1, Z: 1}, primitives.Dim3{X: 256, Y: 1, Z: 1},
			[]runtime.BufferArg{arg(table, "table", primitives.Read), arg(idx, "indices", primitives.Read), arg(out, "out", primitives.Write)},
			&primitives.RowsParams{Rows: 300, TableRows: 10, RowElems: 64}, 0)
		seq++
		l.Signal(ev, seq)
		return q.Submit(l)
	}
	const want = "cuda kernel gather_rows_f32_i32: indices[3] = -7 is out of range [0, 10) (and 2 more reports)"
	st := withGraphs(t, d, true, func() {
		for i, bad := range []bool{false, true, false, true, true, false} {
			sub := submit(bad, outs[i%2])
			ev.Wait(seq)
			err := sub.Err()
			if bad && (err == nil || err.Error() != want) {
				t.Fatalf("submission %d: error %v, want %q", i, err, want)
			}
			if !bad && err != nil {
				t.Fatalf("submission %d: %v", i, err)
			}
		}
	})
	if st.Replays != 6 || st.Captures != 1 || st.Failures != 0 {
		t.Errorf("statistics %+v, want 6 replays of one exec", st)
	}
}

// TestReplayCompiledStep runs a compiled step on the CUDA device, each
// call's output fed back as the next call's input array and a per-call
// constant uploaded, pipelined a few calls deep from two goroutines (one
// submits, one waits) as the Decoder does: the results are bit for bit
// those with graphs off, and the replays' lists ran as their own execs;
// also with programmatic dependent launch (SetPDL), where the device can.
func TestReplayCompiledStep(t *testing.T) {
	d := replayDevice(t)
	const n, steps = 515, 40
	r := rand.New(rand.NewPCG(23, 24))
	x0, w, sc := randF32(r, n), randF32(r, n), make([]float32, n)
	for i := range sc {
		sc[i] = 0.25 + r.Float32()/2 // keeps the values finite over the steps
	}
	cs := make([][]float32, steps)
	for k := range cs {
		cs[k] = randF32(r, n)
	}
	run := func(on, pdl bool) ([]float32, GraphStats) {
		var got []float32
		was := d.PDL()
		defer d.SetPDL(was)
		if err := d.SetPDL(pdl); err != nil {
			t.Fatal(err)
		}
		st := withGraphs(t, d, on, func() {
			rt, err := runtime.New(d, runtime.Options{DispatchesPerCommandBuffer: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer rt.Close()
			h, wa, sa := graph.FromFloat32s(x0), graph.FromFloat32s(w), graph.FromFloat32s(sc)
			if err := rt.Eval(h, wa, sa); err != nil {
				t.Fatal(err)
			}
			step := rt.Compile()
			waits, done := waiter(1)
			for k := range steps {
				in := h
				build := func() (outs, inputs []*graph.Array) {
					c := graph.FromFloat32s(cs[k])
					y := ops.Add(ops.Mul(ops.Sub(in, wa), sa), c)
					return []*graph.Array{ops.Mul(y, y), y}, []*graph.Array{in, c}
				}
				outs, p, err := step.Call("step", build, runtime.Array(in), runtime.Bytes(graph.FromFloat32s(cs[k]).HostBytes()))
				if err != nil {
					t.Fatal(err)
				}
				h = outs[1]
				waits <- p
			}
			if err := done(); err != nil {
				t.Fatal(err)
			}
			if got, err = h.Float32s(); err != nil {
				t.Fatal(err)
			}
		})
		return got, st
	}
	want := slices.Clone(x0)
	for k := range steps {
		for i := range want {
			v := float32(float64(want[i]) - float64(w[i]))
			v = float32(float64(v) * float64(sc[i]))
			want[i] = float32(float64(v) + float64(cs[k][i]))
		}
	}
	modes := []struct{ graphs, pdl bool }{{false, false}, {true, false}}
	if err := d.pdlSupport(); err != nil {
		t.Logf("not with PDL: %v", err)
	} else {
		modes = append(modes, struct{ graphs, pdl bool }{true, true})
	}
	for _, m := range modes {
		on := m.graphs
		got, st := run(on, m.pdl)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("graphs %v, PDL %v: h[%d] = %v, want %v", on, m.pdl, i, got[i], want[i])
			}
		}
		t.Logf("graphs %v, PDL %v: %+v", on, m.pdl, st)
		if (st.Programmatic > 0) != m.pdl {
			t.Errorf("graphs %v, PDL %v: %d programmatic edges", on, m.pdl, st.Programmatic)
		}
		// Every call after the first is a replay, one list; a replay that
		// finds every kept list set in flight submits a list without
		// identity, so most, not all, are their own exec's launches.
		if on && (st.Replays < steps/2 || st.Replays > steps-1 || st.Failures != 0) {
			t.Errorf("graphs on: statistics %+v, want %d to %d lists launched as their own execs and no failures", st, steps/2, steps-1)
		}
	}
}

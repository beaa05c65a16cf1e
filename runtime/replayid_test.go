package runtime_test

import (
	"slices"
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/model"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

// The replay identity of command lists (CommandList.Replay and Rebound): a
// device such as CUDA keeps a graph exec per identity and refreshes only
// what the contract says may change, so a list that changes anything else
// under the same identity would run a stale exec. idDevice checks every
// submission against the previous one of its identity.

type idDevice struct {
	*cpu.Device
	t    *testing.T
	last map[uint64]idSnap // the latest submission of each identity

	ids      []uint64 // of every submitted list, in order (0: none)
	rebinds  int      // submissions that bound a Rebound argument to another buffer
	repeated int      // submissions of an identity seen before
}

// idSnap is what a submission of an identified list must repeat: its
// commands other than fence waits and updates, their arguments cloned and
// the uploads' bytes left out (they may change), and its Rebound.
type idSnap struct {
	cmds    []runtime.Command
	rebound []runtime.ReboundArg
	signal  uint64
}

func newIDDevice(t *testing.T, co cpu.Options) *idDevice {
	return &idDevice{Device: cpu.New(co), t: t, last: map[uint64]idSnap{}}
}

func (d *idDevice) NewQueue() (runtime.Queue, error) {
	q, err := d.Device.NewQueue()
	return idQueue{q, d}, err
}

type idQueue struct {
	runtime.Queue
	d *idDevice
}

func (q idQueue) Submit(l *runtime.CommandList) runtime.Submission {
	q.d.check(l)
	return q.Queue.Submit(l)
}

// check reports a broken contract with Errorf and stops checking the list:
// it runs inside Submit, under the runtime's lock, which Fatalf would leave
// held.
func (d *idDevice) check(l *runtime.CommandList) {
	t := d.t
	d.ids = append(d.ids, l.Replay)
	if l.Replay == 0 {
		if l.Rebound != nil {
			t.Errorf("a list without a replay identity names rebound arguments %v", l.Rebound)
		}
		return
	}
	s := idSnap{rebound: slices.Clone(l.Rebound), signal: l.Signals[len(l.Signals)-1].Value}
	var dispatches [][]runtime.BufferArg
	for _, p := range l.Passes {
		for _, c := range p.Commands {
			if c.Kind == runtime.CmdWaitFence || c.Kind == runtime.CmdUpdateFence {
				continue
			}
			c.Args, c.Data = slices.Clone(c.Args), make([]byte, len(c.Data))
			s.cmds = append(s.cmds, c)
			if c.Kind == runtime.CmdDispatch {
				dispatches = append(dispatches, c.Args)
			}
		}
	}
	for i, rb := range l.Rebound {
		if rb.Dispatch < 0 || rb.Dispatch >= len(dispatches) || rb.Arg < 0 || rb.Arg >= len(dispatches[rb.Dispatch]) {
			t.Errorf("list %d: rebound argument %+v is not an argument of its %d dispatches", l.Replay, rb, len(dispatches))
			return
		}
		if i > 0 && (rb.Dispatch < l.Rebound[i-1].Dispatch || rb == l.Rebound[i-1]) {
			t.Errorf("list %d: rebound arguments %v out of dispatch order", l.Replay, l.Rebound)
			return
		}
	}
	prev, ok := d.last[l.Replay]
	d.last[l.Replay] = s
	if !ok {
		return
	}
	d.repeated++
	if seen := l.Signals[0].Event.Value(); seen < prev.signal {
		t.Errorf("list %d submitted again while its previous submission (signal %d) is in flight (event at %d)", l.Replay, prev.signal, seen)
		return
	}
	if !slices.Equal(s.rebound, prev.rebound) || len(s.cmds) != len(prev.cmds) {
		t.Errorf("list %d: submitted again with %d commands and rebound %v, before %d and %v", l.Replay, len(s.cmds), s.rebound, len(prev.cmds), prev.rebound)
		return
	}
	dispatch, rebound := -1, false
	for i, c := range s.cmds {
		p := prev.cmds[i]
		if c.Kind == runtime.CmdDispatch {
			dispatch++
		}
		if c.Kind != p.Kind || c.Kernel != p.Kernel || c.Grid != p.Grid || c.Group != p.Group || c.Params != p.Params ||
			c.Shared != p.Shared || len(c.Data) != len(p.Data) || len(c.Args) != len(p.Args) {
			t.Errorf("list %d, command %d: %+v, before %+v", l.Replay, i, c, p)
			return
		}
		for j, a := range c.Args {
			b := p.Args[j]
			may := c.Kind == runtime.CmdDispatch && slices.Contains(s.rebound, runtime.ReboundArg{Dispatch: dispatch, Arg: j})
			if may && a.Buffer != b.Buffer {
				rebound = true
				b.Buffer = a.Buffer
			}
			if a != b {
				t.Errorf("list %d, command %d (dispatch %d), argument %d changed outside Rebound: %+v, before %+v", l.Replay, i, dispatch, j, a, b)
				return
			}
		}
	}
	if rebound {
		d.rebinds++
	}
}

// TestReplayListIdentity: the Decoder's compiled decode steps, pipelined
// one step ahead, submit lists whose identity keeps the contract (only
// signals, fences, upload bytes and the Rebound arguments' buffers change;
// never resubmitted in flight); the tokens and results are rebound; at
// most maxListSets sets of lists are identified.
func TestReplayListIdentity(t *testing.T) {
	for _, c := range []struct {
		dev  cpu.Options
		opts runtime.Options
	}{
		{cpu.Options{}, runtime.Options{}},
		{cpu.Options{Check: true, Seed: 11}, runtime.Options{DispatchesPerCommandBuffer: 7}},
		{cpu.Options{Check: true, Lazy: true, Seed: 12}, runtime.Options{DispatchesPerCommandBuffer: 13, DispatchesPerPass: 5}},
	} {
		dev := newIDDevice(t, c.dev)
		rt, err := runtime.New(dev, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rt.Close(); dev.Close() })
		m, err := model.Load(rt, "../testdata/tiny-qwen3", graph.Float32)
		if err != nil {
			t.Fatal(err)
		}
		e, err := model.NewEngine(m, 32, 8)
		if err != nil {
			t.Fatal(err)
		}
		e.PadBlocks = 4
		seqs := []int{0, 1}
		for _, id := range seqs {
			if err := e.Cache.Add(id); err != nil {
				t.Fatal(err)
			}
		}
		d, err := e.NewDecoder(seqs, [][]int32{{3256, 362, 289}, {3256, 265}}, []ops.Sampling{{}, {Temperature: 0.9, Seed: 7}}, 4)
		if err != nil {
			t.Fatal(err)
		}
		const steps = 14
		replayed := 0
		for k := range steps {
			r, err := d.Next(k+1 < steps)
			if err != nil {
				t.Fatal(err)
			}
			replayed += r.Stats.CacheHits
		}
		ids := map[uint64]bool{}
		for _, id := range dev.ids {
			if id != 0 {
				ids[id] = true
			}
		}
		if replayed < steps-4 || dev.repeated == 0 || dev.rebinds == 0 {
			t.Fatalf("%+v %+v: %d replayed steps, %d lists submitted again, %d with rebound buffers", c.dev, c.opts, replayed, dev.repeated, dev.rebinds)
		}
		if len(ids) > runtime.MaxListSets {
			t.Fatalf("%+v %+v: %d identities, want at most one a list set", c.dev, c.opts, len(ids))
		}
		if hz := dev.Hazards(); len(hz) > 0 {
			t.Fatalf("%d hazards, first: %v", len(hz), hz[0])
		}
	}
}

// TestReplayListIdentityOnce: replays submitted while every kept set is in
// flight (nothing is awaited, the device holds work back) submit lists
// without identity; random programs replayed by the plan cache keep the
// contract too.
func TestReplayListIdentityOnce(t *testing.T) {
	dev := newIDDevice(t, cpu.Options{Check: true, Lazy: true, Seed: 3})
	rt, err := runtime.New(dev, runtime.Options{DispatchesPerCommandBuffer: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { rt.Close(); dev.Close() }()
	r := loomtest.Rand(4)
	w := graph.FromFloat32s(loomtest.Float32s(r, 64, -0.5, 0.5), 8, 8)
	h := graph.FromFloat32s(loomtest.Float32s(r, 16, -1, 1), 2, 8)
	if err := rt.Eval(w, h); err != nil {
		t.Fatal(err)
	}
	step := rt.Compile()
	const steps = 12
	var calls [][]uint64 // each call's lists' identities
	for k := range steps {
		mark := len(dev.ids)
		in := h
		ck := loomtest.Float32s(loomtest.Rand(uint64(50+k)), 16, -1, 1)
		build := func() (outs, inputs []*graph.Array) {
			c := graph.FromFloat32s(ck, 2, 8)
			return []*graph.Array{ops.Add(ops.Apply(tMatMul{}, in, w)[0], c)}, []*graph.Array{in, c}
		}
		outs, _, err := step.Call("chain", build, runtime.Array(in), runtime.Bytes(graph.FromFloat32s(ck).HostBytes()))
		if err != nil {
			t.Fatal(err)
		}
		h = outs[0]
		calls = append(calls, dev.ids[mark:])
	}
	// The trace's lists, then one list per replay: the first MaxListSets
	// identified, the rest (all in flight) not.
	for k := 1; k < steps; k++ {
		if identified := k <= runtime.MaxListSets; len(calls[k]) != 1 || (calls[k][0] != 0) != identified {
			t.Fatalf("replay %d: lists %v, want one, identified %v (all calls: %v)", k, calls[k], identified, calls)
		}
	}
	if _, err := h.Float32s(); err != nil {
		t.Fatal(err)
	}
	if hz := dev.Hazards(); len(hz) > 0 {
		t.Fatalf("%d hazards, first: %v", len(hz), hz[0])
	}

	for seed := uint64(1); seed <= 20; seed++ {
		dev := newIDDevice(t, cpu.Options{Check: true, Seed: seed})
		rt, err := runtime.New(dev, runtime.Options{DispatchesPerCommandBuffer: int(seed%4) + 1})
		if err != nil {
			t.Fatal(err)
		}
		repeatProgram(t, rt, seed, 7)
		rt.Close()
		dev.Close()
	}
}

// TestReplayListIdentityRetrace: a compiled step traced again (its state
// was donated by an ordinary Eval) submits lists with identities never
// used before.
func TestReplayListIdentityRetrace(t *testing.T) {
	dev := newIDDevice(t, cpu.Options{})
	rt, err := runtime.New(dev, runtime.Options{DispatchesPerCommandBuffer: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { rt.Close(); dev.Close() }()
	rig := newCompiledRig(t, rt)
	step := rt.Compile()
	call := func(i int) {
		t.Helper()
		if _, _, err := step.Call(0, func() ([]*graph.Array, []*graph.Array) { return rig.build(i) }, stepInputs(i)...); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		call(i)
	}
	before := map[uint64]bool{}
	for _, id := range dev.ids {
		before[id] = id != 0
	}
	rig.cache = ops.Apply(tScatter{}, rig.cache, graph.FromInt32s([]int32{7}), graph.FromFloat32s(make([]float32, 8), 1, 8))[0]
	if err := rt.Eval(rig.cache); err != nil {
		t.Fatal(err)
	}
	n := len(dev.ids)
	for i := 5; i < 10; i++ {
		call(i)
	}
	if rig.builds != 2 {
		t.Fatalf("build ran %d times, want a second trace", rig.builds)
	}
	fresh := 0
	for _, id := range dev.ids[n:] {
		if before[id] {
			t.Fatalf("the new trace's lists reuse identity %d", id)
		}
		if id != 0 {
			fresh++
		}
	}
	if len(before) < 2 || fresh == 0 {
		t.Fatalf("identities before the retrace %v, %d identified lists after", before, fresh)
	}
}

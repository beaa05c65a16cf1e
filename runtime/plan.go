package runtime

import (
	"cmp"
	"errors"
	"fmt"
	goruntime "runtime"
	"slices"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// Planning decides everything about an evaluation before any device call:
// the order (array ids), the lowering of every node, the kernels, and the
// storage of every array and scratch buffer. Only then is it encoded, so an
// evaluation that fails (an unknown kernel, the memory limit) changes nothing
// already computed: no in-place update has been applied, and the buffers it
// took go back to the pool.

// step is one dispatch of a plan, with its buffers resolved.
type step struct {
	node   *graph.Array // the node whose lowering it belongs to
	kernel Kernel
	d      *primitives.Dispatch
	args   []BufferArg
	sts    []*storage // the storage of each argument, for hazard tracking
}

// nodeInfo is what the plan knows of one array.
type nodeInfo struct {
	st   *storage
	uses int  // consumers in this plan not yet planned
	keep bool // requested output, or the result of an in-place update
	pre  bool // evaluated before this plan
}

// plan is an evaluation decided but not yet encoded.
type plan struct {
	rt    *Runtime
	nodes []*graph.Array // to compute, in id order

	// The lowering of node i is disp[lo[i]:lo[i+1]] with kernels kern[...],
	// and scratch sizes scratch[so[i]:so[i+1]] (zeroed[...]: to be taken
	// zeroed).
	disp    []primitives.Dispatch
	kern    []Kernel
	lo      []int
	scratch []int64
	zeroed  []bool
	so      []int

	info    map[*graph.Array]*nodeInfo
	slab    []nodeInfo
	touched []*storage // storages whose held count this plan changed
	taken   []*storage // storages taken from the pool or allocated

	steps []step
	keep  []*graph.Array // arrays that get storage when the plan is applied
	spent []*graph.Array // inputs overwritten in place by a donation
	moved []*arrayData   // evaluated inputs whose storage a donation took
}

// plan plans the evaluation of nodes. With rec, the plan is being recorded
// for the plan cache: constants get buffers of their own, filled by upload
// commands (see startRecording), and buffers the plan frees are reused only
// by the plan itself.
func (rt *Runtime) plan(nodes, consts, outs []*graph.Array, p *Pending, rec *recording) (*plan, error) {
	pl := &plan{rt: rt, nodes: nodes, info: make(map[*graph.Array]*nodeInfo, 2*len(nodes)+len(consts))}
	if err := pl.lower(&p.stats); err != nil {
		return nil, err
	}
	if rec == nil {
		if err := rt.upload(consts, &p.stats); err != nil {
			return nil, err
		}
	} else {
		for _, c := range consts {
			s, err := rt.pool.get(c.Spec().Bytes(), false, &p.stats)
			if err != nil {
				rt.abandonRecording(pl, rec)
				return nil, &graph.Error{Op: "constant", Site: c.Site(), Msg: err.Error(), Err: err}
			}
			s.pinned = true
			rec.consts = append(rec.consts, s)
			ni := pl.node(c)
			ni.st, ni.pre = s, true
		}
		rt.pool.local = rec.free
	}
	err := pl.build(outs, &p.stats)
	rt.pool.local = nil
	if err != nil {
		if rec != nil {
			rt.abandonRecording(pl, rec)
		} else {
			pl.fail()
		}
		return nil, err
	}
	return pl, nil
}

// collect finds the arrays to compute (sorted by id, which is a topological
// order), the constants to upload, and the evaluations still in flight whose
// outputs it reads (whose failure it inherits). It walks the graph
// iteratively so that a chain of any length cannot overflow the stack, and
// marks the arrays it visits with a stamp of walk number w instead of a map.
func (rt *Runtime) collect(outs []*graph.Array, w uint64) (nodes, consts []*graph.Array, deps []*Pending, err error) {
	stack := make([]*graph.Array, 0, len(outs))
	for i := len(outs) - 1; i >= 0; i-- {
		if outs[i] == nil {
			return nil, nil, nil, fmt.Errorf("eval: output %d is nil", i)
		}
		stack = append(stack, outs[i])
	}
	for len(stack) > 0 {
		a := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if rt.visited(a, w) {
			continue
		}
		switch {
		case a.Err() != nil:
			return nil, nil, nil, a.Err()
		case a.Overwritten():
			return nil, nil, nil, a.OverwrittenError("eval")
		case a.Evaluated():
			d, ok := a.Data().(*arrayData)
			if !ok || d.rt != rt {
				return nil, nil, nil, graph.Errorf(0, "eval", "array %s built at %s was evaluated by another runtime", a.Spec(), a.Site())
			}
			if deps, err = rt.addDep(deps, d.pending()); err != nil {
				return nil, nil, nil, err
			}
			continue
		case a.Primitive() == nil:
			consts = append(consts, a)
			continue
		}
		if _, ok := a.Primitive().(primitives.Primitive); !ok {
			return nil, nil, nil, graph.Errorf(0, a.Primitive().Name(), "node at %s: %T does not implement primitives.Primitive", a.Site(), a.Primitive())
		}
		nodes = append(nodes, a)
		for _, s := range a.Siblings() {
			s.SetStamp(w, -1)
		}
		for _, in := range a.Inputs() {
			if !rt.seen(in, w) {
				stack = append(stack, in)
			}
		}
	}
	rt.sortByID(nodes)
	return nodes, consts, deps, nil
}

// sortByID sorts nodes by id. The ids of one graph's nodes are nearly
// dense (the arrays built between them are few), so placing each at its
// offset from the smallest is linear; sparse ids fall back to a sort.
func (rt *Runtime) sortByID(nodes []*graph.Array) {
	if len(nodes) < 2 {
		return
	}
	lo, hi := nodes[0].ID(), nodes[0].ID()
	for _, a := range nodes {
		lo, hi = min(lo, a.ID()), max(hi, a.ID())
	}
	span := hi - lo + 1
	if span > uint64(4*len(nodes)+256) {
		slices.SortFunc(nodes, func(x, y *graph.Array) int { return cmp.Compare(x.ID(), y.ID()) })
		return
	}
	if uint64(cap(rt.byID)) < span {
		rt.byID = make([]*graph.Array, span)
	}
	slots := rt.byID[:span]
	for _, a := range nodes {
		slots[a.ID()-lo] = a
	}
	i := 0
	for _, a := range slots {
		if a != nil {
			nodes[i] = a
			i++
		}
	}
	clear(slots)
}

// seen reports whether walk w has visited a. An array this runtime
// evaluated carries the stamp in its data: arrays such as weights are shared
// by graphs that other goroutines may be walking on other runtimes.
func (rt *Runtime) seen(a *graph.Array, w uint64) bool {
	if d, ok := a.Data().(*arrayData); ok && d.rt == rt {
		return d.walk == w
	}
	x, _ := a.Stamp()
	return x == w
}

// visited marks a visited by walk w and reports whether it already was.
func (rt *Runtime) visited(a *graph.Array, w uint64) bool {
	if rt.seen(a, w) {
		return true
	}
	if d, ok := a.Data().(*arrayData); ok && d.rt == rt {
		d.walk, d.slot = w, -1
	} else {
		a.SetStamp(w, -1)
	}
	return false
}

// outputsOf returns all outputs of a's primitive.
func outputsOf(a *graph.Array) []*graph.Array {
	if s := a.Siblings(); s != nil {
		return s
	}
	return []*graph.Array{a}
}

// lower lowers every node and checks what can be checked before anything
// changes: kernels exist, argument ranges lie inside their buffers.
func (pl *plan) lower(st *Stats) error {
	rt := pl.rt
	var l primitives.Lowering
	l.Caps = rt.caps
	var specs []graph.Spec
	pl.lo = make([]int, 1, len(pl.nodes)+1)
	pl.so = make([]int, 1, len(pl.nodes)+1)
	pl.disp = make([]primitives.Dispatch, 0, len(pl.nodes))
	pl.kern = make([]Kernel, 0, len(pl.nodes))
	for _, a := range pl.nodes {
		prim := a.Primitive().(primitives.Primitive)
		outs := outputsOf(a)
		specs = specs[:0]
		for _, x := range a.Inputs() {
			specs = append(specs, x.Spec())
		}
		for _, x := range outs {
			specs = append(specs, x.Spec())
		}
		n := len(a.Inputs())
		l.Reset(specs[:n:n], specs[n:])
		fail := func(cause error, format string, args ...any) error {
			return &graph.Error{Op: prim.Name(), Site: a.Site(), Msg: fmt.Sprintf(format, args...), Err: cause}
		}
		if err := prim.Lower(&l); err != nil {
			return fail(err, "lowering: %v", err)
		}
		for j := range l.Dispatches {
			d := &l.Dispatches[j]
			if err := primitives.CheckDispatch(d); err != nil {
				if errors.Is(err, primitives.ErrNotInCatalog) {
					err = fmt.Errorf("%w: %w", ErrUnsupportedKernel, err)
				}
				return fail(err, "%v", err)
			}
			k, err := rt.kernel(d.Kernel)
			if err != nil {
				return fail(err, "%v", err)
			}
			if err := checkGrid(d); err != nil {
				return fail(err, "dispatch %s: %v", d.Kernel, err)
			}
			for _, arg := range d.Args {
				size, err := refSize(&l, arg.Ref)
				if err != nil {
					return fail(err, "dispatch %s argument %s: %v", d.Kernel, arg.Name, err)
				}
				if arg.Offset < 0 || arg.Size < 0 || arg.Offset+arg.Size > size {
					return fail(nil, "dispatch %s argument %s: bytes [%d,+%d) outside its %d-byte buffer", d.Kernel, arg.Name, arg.Offset, arg.Size, size)
				}
				// An empty grid runs nothing, so it may only stand for a
				// dispatch with nothing to do: skipping one that should
				// write a fresh buffer would leave stale pool bytes in it.
				// An output in an input's buffer (an in-place update of no
				// rows) already holds its value.
				fresh := arg.Ref.Kind != primitives.OutputRef || !slices.ContainsFunc(aliases(prim), func(x graph.Alias) bool { return x.Output == arg.Ref.Index })
				if n := cmp.Or(arg.Size, size-arg.Offset); d.Grid.Count() == 0 && arg.Access.Writes() && fresh && n > 0 {
					return fail(nil, "dispatch %s has an empty grid %v but writes %d bytes of argument %s; only a dispatch that writes nothing may have an empty grid",
						d.Kernel, d.Grid, n, arg.Name)
				}
			}
			pl.kern = append(pl.kern, k)
		}
		pl.disp = append(pl.disp, l.Dispatches...)
		pl.lo = append(pl.lo, len(pl.disp))
		pl.scratch = append(pl.scratch, l.Scratch...)
		pl.zeroed = append(pl.zeroed, l.Zeroed...)
		pl.so = append(pl.so, len(pl.scratch))
		st.addCounters(l.Counters)
	}
	return nil
}

// aliases are prim's aliases, if it has any.
func aliases(prim primitives.Primitive) []graph.Alias {
	if al, ok := prim.(graph.Aliaser); ok {
		return al.Aliases()
	}
	return nil
}

// checkGrid rejects negative grid or threadgroup sizes and a non-empty grid
// of empty threadgroups.
func checkGrid(d *primitives.Dispatch) error {
	for _, v := range []int{d.Grid.X, d.Grid.Y, d.Grid.Z, d.Group.X, d.Group.Y, d.Group.Z} {
		if v < 0 {
			return fmt.Errorf("grid %v or threadgroup %v has a negative size", d.Grid, d.Group)
		}
	}
	if d.Grid.Count() > 0 && d.Group.Count() == 0 {
		return fmt.Errorf("grid %v has an empty threadgroup %v", d.Grid, d.Group)
	}
	return nil
}

func refSize(l *primitives.Lowering, r primitives.Ref) (int64, error) {
	var n int
	switch r.Kind {
	case primitives.InputRef:
		n = len(l.Inputs)
	case primitives.OutputRef:
		n = len(l.Outputs)
	case primitives.ScratchRef:
		n = len(l.Scratch)
	}
	if r.Index < 0 || r.Index >= n {
		return 0, fmt.Errorf("reference %v out of range", r)
	}
	switch r.Kind {
	case primitives.InputRef:
		return l.Inputs[r.Index].Bytes(), nil
	case primitives.OutputRef:
		return l.Outputs[r.Index].Bytes(), nil
	}
	return l.Scratch[r.Index], nil
}

func (rt *Runtime) kernel(name string) (Kernel, error) {
	if k, ok := rt.kernels[name]; ok {
		return k, nil
	}
	k, err := rt.dev.Kernel(name)
	if err != nil {
		return nil, err
	}
	rt.kernels[name] = k
	return k, nil
}

// upload gives each constant device storage. Constants become evaluated
// arrays, so a weight built from a Go slice is uploaded once.
func (rt *Runtime) upload(consts []*graph.Array, st *Stats) error {
	for _, a := range consts {
		s, err := rt.pool.get(a.Spec().Bytes(), true, st)
		if err != nil {
			return &graph.Error{Op: "constant", Site: a.Site(), Msg: err.Error(), Err: err}
		}
		if err := s.buf.Write(0, a.HostBytes()); err != nil {
			rt.pool.put(s)
			return &graph.Error{Op: "constant", Site: a.Site(), Msg: err.Error(), Err: err}
		}
		rt.attach(a, s, nil)
		st.Constants++
	}
	return nil
}

// attach makes s the storage of a, evaluated by p (nil if already complete).
func (rt *Runtime) attach(a *graph.Array, s *storage, p *Pending) {
	d := rt.hold(s, a.Spec(), p)
	a.SetData(d)
	goruntime.AddCleanup(a, (*arrayData).drop, d)
}

// result is a new array of spec holding s, evaluated by p: attach without
// a graph node.
func (rt *Runtime) result(spec graph.Spec, s *storage, p *Pending) *graph.Array {
	d := rt.hold(s, spec, p)
	a := graph.NewResult(spec, d)
	goruntime.AddCleanup(a, (*arrayData).drop, d)
	return a
}

// hold is the data of an array of spec holding s, evaluated by p; the
// array's cleanup gives the hold back (arrayData.drop).
func (rt *Runtime) hold(s *storage, spec graph.Spec, p *Pending) *arrayData {
	s.refs++
	rt.changed(s)
	return &arrayData{rt: rt, st: s, nbytes: spec.Bytes(), pend: p}
}

// build assigns storage to every node and makes the steps.
//
// Holds: every array this plan computes holds its storage (storage.held)
// from its creation until its last consumer is planned; then the storage
// returns to the pool unless an evaluated array (storage.refs) still holds
// it. A view or a donated output shares its input's storage and holds it
// too. Arrays kept as results turn their hold into an evaluated array's when
// the plan is applied.
func (pl *plan) build(outs []*graph.Array, st *Stats) error {
	rt := pl.rt
	for _, o := range outs {
		pl.node(o).keep = true
	}
	for _, a := range pl.nodes {
		for _, in := range a.Inputs() {
			pl.node(in).uses++
		}
	}
	pl.steps = make([]step, 0, len(pl.disp))
	nargs := 0
	for i := range pl.disp {
		nargs += len(pl.disp[i].Args)
	}
	argSlab := make([]BufferArg, nargs)
	stSlab := make([]*storage, nargs)
	for i, a := range pl.nodes {
		prim := a.Primitive().(primitives.Primitive)
		outsA := outputsOf(a)
		fail := func(err error) error {
			return &graph.Error{Op: prim.Name(), Site: a.Site(), Msg: err.Error(), Err: err}
		}
		outSt := make([]*storage, len(outsA))

		aliases := aliases(prim)
		for _, x := range aliases {
			in := a.Inputs()[x.Input]
			ii := pl.node(in)
			switch {
			case !x.Donate: // a view
				outSt[x.Output] = ii.st
			case pl.exclusive(ii):
				outSt[x.Output] = ii.st
				st.Donations++
				pl.spent = append(pl.spent, in)
				if ii.pre {
					pl.moved = append(pl.moved, in.Data().(*arrayData))
				}
			default:
				// Something else still holds the input: update a copy.
				s, err := pl.take(in.Spec().Bytes(), st, true)
				if err != nil {
					return fail(err)
				}
				outSt[x.Output] = s
				st.DonationsRefused++
				pl.copyStep(a, ii.st, s, in.Spec().Bytes())
			}
			if x.Donate {
				pl.node(outsA[x.Output]).keep = true // the in-place result is state
			}
		}
		for j, o := range outsA {
			if outSt[j] == nil {
				s, err := pl.take(o.Spec().Bytes(), st, pl.node(o).keep)
				if err != nil {
					return fail(err)
				}
				outSt[j] = s
			}
			pl.node(o).st = outSt[j]
			pl.hold(outSt[j], +1)
		}
		sizes, zeroed := pl.scratch[pl.so[i]:pl.so[i+1]], pl.zeroed[pl.so[i]:pl.so[i+1]]
		scratch := make([]*storage, len(sizes))
		for j, n := range sizes {
			var s *storage
			var err error
			if zeroed[j] {
				s, err = pl.takeZeroed(n, st)
			} else {
				s, err = pl.take(n, st, false)
			}
			if err != nil {
				return fail(err)
			}
			scratch[j] = s
			st.ScratchBytes += n
		}
		for j := pl.lo[i]; j < pl.lo[i+1]; j++ {
			d := &pl.disp[j]
			if d.Grid.Count() == 0 {
				continue // it writes nothing (lower checked)
			}
			args, sts := argSlab[:len(d.Args):len(d.Args)], stSlab[:len(d.Args):len(d.Args)]
			argSlab, stSlab = argSlab[len(d.Args):], stSlab[len(d.Args):]
			for k, arg := range d.Args {
				var s *storage
				var size int64
				switch arg.Ref.Kind {
				case primitives.InputRef:
					in := a.Inputs()[arg.Ref.Index]
					s, size = pl.node(in).st, in.Spec().Bytes()
				case primitives.OutputRef:
					s, size = outSt[arg.Ref.Index], outsA[arg.Ref.Index].Spec().Bytes()
				default:
					s, size = scratch[arg.Ref.Index], sizes[arg.Ref.Index]
				}
				n := arg.Size
				if n == 0 {
					n = size - arg.Offset
				}
				args[k] = BufferArg{Buffer: s.buf, Offset: arg.Offset, Size: n, Access: arg.Access, Name: arg.Name}
				sts[k] = s
			}
			pl.steps = append(pl.steps, step{node: a, kernel: pl.kern[j], d: d, args: args, sts: sts})
		}
		if rt.mut.exemptAlias() && len(scratch) > 0 {
			for _, x := range aliases {
				if x.Donate {
					outSt[x.Output].state().untracked = true
				}
			}
		}
		st.Nodes++
		for _, s := range scratch {
			pl.unhold(s)
		}
		for _, in := range a.Inputs() {
			ni := pl.node(in)
			ni.uses--
			if ni.uses == 0 && !ni.pre && !ni.keep {
				pl.hold(ni.st, -1)
				pl.unhold(ni.st)
			}
		}
		for _, o := range outsA {
			oi := pl.node(o)
			switch {
			case oi.keep:
				pl.keep = append(pl.keep, o)
			case oi.uses == 0:
				pl.hold(oi.st, -1)
				pl.unhold(oi.st)
			}
		}
	}
	return nil
}

// node returns the plan's record of a, creating it on first use.
func (pl *plan) node(a *graph.Array) *nodeInfo {
	if ni := pl.info[a]; ni != nil {
		return ni
	}
	if len(pl.slab) == cap(pl.slab) {
		pl.slab = make([]nodeInfo, 0, 256) // a new chunk: pointers into the old one stay valid
	}
	pl.slab = append(pl.slab, nodeInfo{})
	ni := &pl.slab[len(pl.slab)-1]
	if d, ok := a.Data().(*arrayData); ok {
		ni.st, ni.pre = d.st, true
	}
	pl.info[a] = ni
	return ni
}

func (pl *plan) hold(s *storage, delta int) {
	if s.held == 0 && delta > 0 {
		pl.touched = append(pl.touched, s)
	}
	s.held += delta
}

// exclusive reports whether an input's storage can be donated: nothing but
// the input itself holds it, this node is its only remaining consumer, and
// it is not wanted as an output of this evaluation.
func (pl *plan) exclusive(ii *nodeInfo) bool {
	return !ii.keep && ii.uses == 1 && ii.st.refs+ii.st.held == 1
}

// take returns a storage for a new array or scratch buffer; kept says the
// array is a result. A plan being recorded takes a result's buffer from the
// pool, never one it freed itself: each replay gives results fresh storage,
// and a buffer used only by the result needs rebinding in few commands.
func (pl *plan) take(n int64, st *Stats, kept bool) (*storage, error) {
	p := &pl.rt.pool
	local := p.local
	if kept {
		p.local = nil
	}
	s, err := p.get(n, false, st)
	p.local = local
	if err != nil {
		return nil, err
	}
	pl.taken = append(pl.taken, s)
	return s, nil
}

// takeZeroed is take for a scratch buffer of the plan's that must come in
// zeroed (primitives.Lowering.NewZeroedScratch).
func (pl *plan) takeZeroed(n int64, st *Stats) (*storage, error) {
	s, err := pl.rt.pool.getZeroed(n, st)
	if err != nil {
		return nil, err
	}
	pl.taken = append(pl.taken, s)
	return s, nil
}

// unhold returns s to the pool if nothing holds it any more.
func (pl *plan) unhold(s *storage) {
	if s.refs+s.held == 0 && !s.pinned {
		pl.rt.pool.put(s)
	}
}

// copyStep adds a copy of n bytes from src to dst, for a refused donation
// by node a.
func (pl *plan) copyStep(a *graph.Array, src, dst *storage, n int64) {
	d := primitives.CopyDispatch(primitives.In(0), primitives.Out(0), n)
	k, err := pl.rt.kernel(d.Kernel)
	if err != nil {
		panic("runtime: the device lacks the copy kernel: " + err.Error())
	}
	pl.steps = append(pl.steps, step{node: a, kernel: k, d: &d,
		args: []BufferArg{
			{Buffer: src.buf, Size: n, Access: primitives.Read, Name: d.Args[0].Name},
			{Buffer: dst.buf, Size: n, Access: primitives.Write, Name: d.Args[1].Name},
		},
		sts: []*storage{src, dst},
	})
}

// fail undoes a plan that could not be completed: every storage it took
// goes back to the pool. Uploaded constants stay uploaded.
func (pl *plan) fail() {
	for _, s := range pl.touched {
		s.held = 0
	}
	for _, s := range pl.taken {
		if s.refs == 0 {
			pl.rt.pool.put(s)
		}
	}
}

// apply makes the plan's results visible: outputs get their storage, and
// inputs updated in place are marked overwritten.
func (pl *plan) apply(p *Pending) {
	for _, d := range pl.moved {
		d.moved = true
		d.st.refs--
		pl.rt.changed(d.st)
	}
	for _, a := range pl.spent {
		a.MarkOverwritten()
		if d, ok := a.Data().(*arrayData); ok {
			pl.rt.changed(d.st)
		}
	}
	for _, a := range pl.keep {
		pl.rt.attach(a, pl.info[a].st, p)
	}
	for _, s := range pl.touched {
		s.held = 0
	}
}

// Package runtime evaluates Loom graphs on a device. Eval orders the nodes,
// lowers each primitive to dispatches, assigns buffers (reusing freed ones
// and honouring in-place donations) and encodes the whole graph into command
// buffers. The encoder in this package is the only code in Loom that decides
// ordering: barriers, fences and command-buffer boundaries.
package runtime

import (
	"errors"
	"fmt"
	goruntime "runtime"
	"slices"
	"sync"
	"time"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// Options tune a Runtime.
type Options struct {
	// DispatchesPerCommandBuffer commits a command buffer after this many
	// dispatches. 0 means the default, 40; a negative value means no limit
	// (one command buffer per Eval).
	DispatchesPerCommandBuffer int
	// DispatchesPerPass ends a pass after this many dispatches; 0 means one
	// pass per command buffer.
	DispatchesPerPass int
	// MemoryLimit caps the device memory the runtime holds, in bytes; 0 means
	// no cap. Exceeding it makes Eval fail with an error that says so.
	MemoryLimit int64
}

// DefaultDispatchesPerCommandBuffer is the commit interval when Options
// leaves it 0. Larger command buffers cost fewer boundaries; smaller ones
// let the device start earlier (MLX measured 40–50 as a good middle).
const DefaultDispatchesPerCommandBuffer = 40

// Runtime evaluates graphs on one device through one queue. It is safe for
// use by several goroutines; evaluations are encoded one at a time.
type Runtime struct {
	dev  Device
	caps primitives.Caps
	opts Options

	mu       sync.Mutex
	enc      *encoder
	pool     pool
	kernels  map[string]Kernel
	mut      *mutation
	lastEnd  time.Time
	lastStat Stats
}

// New returns a runtime for dev.
func New(dev Device, opts Options) (*Runtime, error) {
	q, err := dev.NewQueue()
	if err != nil {
		return nil, fmt.Errorf("runtime: creating a queue: %w", err)
	}
	if opts.DispatchesPerCommandBuffer == 0 {
		opts.DispatchesPerCommandBuffer = DefaultDispatchesPerCommandBuffer
	}
	rt := &Runtime{dev: dev, caps: dev.Caps(), opts: opts, kernels: map[string]Kernel{}}
	rt.enc = newEncoder(rt, q, q.NewEvent())
	rt.pool = pool{dev: dev, enc: rt.enc, free: map[int64][]*storage{}, limit: opts.MemoryLimit}
	return rt, nil
}

// Close waits for all submitted work, releases the pooled device memory and
// closes the queue. Arrays the runtime evaluated keep their memory (it is
// freed when they are garbage) but must not be used in a new Eval.
func (rt *Runtime) Close() {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	e := rt.enc
	if e.cbSeq > e.completed {
		e.event.Wait(e.cbSeq)
		e.observe(e.cbSeq)
	}
	rt.pool.trim(rt.pool.allocated)
	e.queue.Close()
}

// Device is the runtime's device.
func (rt *Runtime) Device() Device { return rt.dev }

// Caps are the device's caps as primitives see them.
func (rt *Runtime) Caps() primitives.Caps { return rt.caps }

// Eval computes the given arrays and waits for them.
func (rt *Runtime) Eval(outs ...*graph.Array) error {
	p, err := rt.EvalAsync(outs...)
	if err != nil {
		return err
	}
	err = p.Wait()
	rt.mu.Lock()
	rt.lastStat = p.Stats()
	rt.mu.Unlock()
	return err
}

// LastStats returns the statistics of the most recent Eval (not EvalAsync;
// a Pending reports its own).
func (rt *Runtime) LastStats() Stats {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.lastStat
}

// MemoryInUse returns the device memory the runtime holds and how much of it
// sits in the pool.
func (rt *Runtime) MemoryInUse() (held, pooled int64) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.pool.allocated, rt.pool.pooled
}

// Pending is an evaluation in flight.
type Pending struct {
	rt    *Runtime
	seq   uint64 // the last command buffer of the evaluation
	cbs   []CommandBuffer
	stats Stats

	once sync.Once
	err  error
}

// Wait blocks until the evaluation has completed and returns its error. It
// may be called any number of times.
func (p *Pending) Wait() error {
	p.once.Do(func() {
		rt := p.rt
		rt.mu.Lock()
		done := p.seq <= rt.enc.completed
		rt.mu.Unlock()
		if !done {
			t := time.Now()
			rt.enc.event.Wait(p.seq)
			p.stats.Wait = time.Since(t)
			p.stats.HostWaits++
		}
		rt.mu.Lock()
		rt.enc.observe(p.seq)
		rt.mu.Unlock()
		for _, cb := range p.cbs {
			if err := cb.Err(); err != nil {
				p.err = err
				break
			}
		}
		p.cbs = nil
	})
	return p.err
}

// Stats returns the evaluation's statistics; host waits and wait time are
// final once Wait has returned.
func (p *Pending) Stats() Stats { return p.stats }

// EvalAsync encodes and submits the computation of the given arrays and
// returns without waiting. The arrays may be used in further graphs right
// away; reading their values waits.
func (rt *Runtime) EvalAsync(outs ...*graph.Array) (*Pending, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	start := time.Now()
	p := &Pending{rt: rt}
	if !rt.lastEnd.IsZero() {
		p.stats.Build = start.Sub(rt.lastEnd)
	}
	defer func() { rt.lastEnd = time.Now() }()
	rt.enc.poll()

	pl, err := rt.plan(outs, p)
	if err != nil {
		return nil, err
	}
	t := time.Now()
	p.stats.Plan = t.Sub(start)

	e := rt.enc
	e.stats = &p.stats
	e.committed = e.committed[:0]
	for i := range pl.steps {
		s := &pl.steps[i]
		e.dispatch(s.kernel, &s.d, s.args)
	}
	e.commit()
	p.seq = e.cbSeq
	p.cbs = slices.Clone(e.committed)
	e.stats = nil
	pl.apply(p)
	p.stats.Encode = time.Since(t)
	return p, nil
}

// step is one encoded dispatch of a plan.
type step struct {
	kernel Kernel
	d      primitives.Dispatch
	args   []BufferArg
}

// plan is an evaluation decided but not yet encoded: the only state changes
// so far are uploaded constants and pool bookkeeping, which fail() undoes.
type plan struct {
	rt    *Runtime
	steps []step
	info  map[*graph.Array]*nodeInfo
	held  map[*storage]int // holds by arrays of this plan
	taken []*storage       // storages taken from the pool or allocated
	keep  []*graph.Array   // arrays that get storage when the plan is applied
	spent []*graph.Array   // inputs overwritten in place by a donation
	moved []*arrayData     // evaluated inputs whose storage a donation took
}

type nodeInfo struct {
	st   *storage
	uses int  // consumers in this plan not yet planned
	keep bool // requested output, or the result of an in-place update
	pre  bool // evaluated before this plan
}

func (rt *Runtime) plan(outs []*graph.Array, p *Pending) (*plan, error) {
	nodes, consts, err := rt.collect(outs)
	if err != nil {
		return nil, err
	}
	pl := &plan{rt: rt, info: make(map[*graph.Array]*nodeInfo, len(nodes)+len(consts)), held: map[*storage]int{}}
	lows, err := rt.lower(nodes)
	if err != nil {
		return nil, err
	}
	if err := rt.upload(consts, &p.stats); err != nil {
		return nil, err
	}
	if err := pl.build(nodes, lows, outs, &p.stats); err != nil {
		pl.fail()
		return nil, err
	}
	return pl, nil
}

// collect finds the arrays to compute (sorted by id, which is a topological
// order) and the constants to upload. It walks the graph iteratively so that
// a chain of any length cannot overflow the stack.
func (rt *Runtime) collect(outs []*graph.Array) (nodes, consts []*graph.Array, err error) {
	seen := make(map[*graph.Array]bool)
	stack := make([]*graph.Array, 0, len(outs))
	for i := len(outs) - 1; i >= 0; i-- {
		if outs[i] == nil {
			return nil, nil, fmt.Errorf("eval: output %d is nil", i)
		}
		stack = append(stack, outs[i])
	}
	for len(stack) > 0 {
		a := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[a] {
			continue
		}
		seen[a] = true
		switch {
		case a.Err() != nil:
			return nil, nil, a.Err()
		case a.Overwritten():
			return nil, nil, a.OverwrittenError("eval")
		case a.Evaluated():
			if d, ok := a.Data().(*arrayData); !ok || d.rt != rt {
				return nil, nil, graph.Errorf(0, "eval", "array %s built at %s was evaluated by another runtime", a.Spec(), a.Site())
			}
			continue
		case a.Primitive() == nil:
			consts = append(consts, a)
			continue
		}
		if _, ok := a.Primitive().(primitives.Primitive); !ok {
			return nil, nil, graph.Errorf(0, a.Primitive().Name(), "node at %s: %T does not implement primitives.Primitive", a.Site(), a.Primitive())
		}
		nodes = append(nodes, a)
		for _, s := range a.Siblings() {
			seen[s] = true
		}
		for _, in := range a.Inputs() {
			if !seen[in] {
				stack = append(stack, in)
			}
		}
	}
	slices.SortFunc(nodes, func(x, y *graph.Array) int { return cmpID(x.ID(), y.ID()) })
	return nodes, consts, nil
}

func cmpID(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// outputsOf returns all outputs of a's primitive.
func outputsOf(a *graph.Array) []*graph.Array {
	if s := a.Siblings(); s != nil {
		return s
	}
	return []*graph.Array{a}
}

func specsOf(as []*graph.Array) []graph.Spec {
	s := make([]graph.Spec, len(as))
	for i, a := range as {
		s[i] = a.Spec()
	}
	return s
}

// lowered is a node's lowering with its kernels looked up.
type lowered struct {
	l       *primitives.Lowering
	kernels []Kernel
}

// lower lowers every node and checks what can be checked before anything
// changes: kernels exist, argument ranges lie inside their buffers.
func (rt *Runtime) lower(nodes []*graph.Array) ([]lowered, error) {
	lows := make([]lowered, len(nodes))
	for i, a := range nodes {
		prim := a.Primitive().(primitives.Primitive)
		outs := outputsOf(a)
		l := primitives.NewLowering(specsOf(a.Inputs()), specsOf(outs), rt.caps)
		fail := func(format string, args ...any) error {
			return &graph.Error{Op: prim.Name(), Site: a.Site(), Msg: fmt.Sprintf(format, args...)}
		}
		if err := prim.Lower(l); err != nil {
			return nil, fail("lowering: %v", err)
		}
		ks := make([]Kernel, len(l.Dispatches))
		for j := range l.Dispatches {
			d := &l.Dispatches[j]
			k, err := rt.kernel(d.Kernel)
			if err != nil {
				return nil, fail("%v", err)
			}
			ks[j] = k
			for _, arg := range d.Args {
				size, err := refSize(l, arg.Ref)
				if err != nil {
					return nil, fail("dispatch %s argument %s: %v", d.Kernel, arg.Name, err)
				}
				if arg.Offset < 0 || arg.Size < 0 || arg.Offset+arg.Size > size {
					return nil, fail("dispatch %s argument %s: bytes [%d,+%d) outside its %d-byte buffer", d.Kernel, arg.Name, arg.Offset, arg.Size, size)
				}
			}
		}
		lows[i] = lowered{l, ks}
	}
	return lows, nil
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
			return &graph.Error{Op: "constant", Site: a.Site(), Msg: err.Error()}
		}
		if err := s.buf.Write(0, a.HostBytes()); err != nil {
			rt.pool.put(s)
			return &graph.Error{Op: "constant", Site: a.Site(), Msg: err.Error()}
		}
		rt.attach(a, s, nil)
		st.Constants++
	}
	return nil
}

// attach makes s the storage of a, evaluated by p (nil if already complete).
func (rt *Runtime) attach(a *graph.Array, s *storage, p *Pending) {
	s.refs++
	d := &arrayData{rt: rt, st: s, nbytes: a.Spec().Bytes(), pend: p}
	a.SetData(d)
	goruntime.AddCleanup(a, (*arrayData).drop, d)
}

// build assigns storage to every node and makes the steps.
//
// Holds: every array this plan computes holds its storage (held) from its
// creation until its last consumer is planned; then the storage returns to
// the pool unless an evaluated array (refs) still holds it. A view or a
// donated output shares its input's storage and holds it too. Arrays kept as
// results turn their hold into an evaluated array's when the plan is applied.
func (pl *plan) build(nodes []*graph.Array, lows []lowered, outs []*graph.Array, st *Stats) error {
	rt := pl.rt
	for _, o := range outs {
		pl.node(o).keep = true
	}
	for _, a := range nodes {
		for _, in := range a.Inputs() {
			pl.node(in).uses++
		}
	}
	for i, a := range nodes {
		prim := a.Primitive().(primitives.Primitive)
		l := lows[i].l
		outsA := outputsOf(a)
		fail := func(err error) error { return &graph.Error{Op: prim.Name(), Site: a.Site(), Msg: err.Error()} }
		outSt := make([]*storage, len(outsA))

		var aliases []graph.Alias
		if al, ok := prim.(graph.Aliaser); ok {
			aliases = al.Aliases()
		}
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
				s, err := pl.take(in.Spec().Bytes(), st)
				if err != nil {
					return fail(err)
				}
				outSt[x.Output] = s
				st.DonationsRefused++
				pl.steps = append(pl.steps, pl.copyStep(ii.st, s, in.Spec().Bytes()))
			}
			if x.Donate {
				pl.node(outsA[x.Output]).keep = true // the in-place result is state
			}
		}
		for j, o := range outsA {
			if outSt[j] == nil {
				s, err := pl.take(o.Spec().Bytes(), st)
				if err != nil {
					return fail(err)
				}
				outSt[j] = s
			}
			pl.node(o).st = outSt[j]
			pl.held[outSt[j]]++
		}
		scratch := make([]*storage, len(l.Scratch))
		for j, n := range l.Scratch {
			s, err := pl.take(n, st)
			if err != nil {
				return fail(err)
			}
			scratch[j] = s
			st.ScratchBytes += n
		}
		for j := range l.Dispatches {
			d := l.Dispatches[j]
			if d.Grid.Count() == 0 {
				continue
			}
			args := make([]BufferArg, len(d.Args))
			for k, arg := range d.Args {
				var s *storage
				var size int64
				switch arg.Ref.Kind {
				case primitives.InputRef:
					s, size = pl.node(a.Inputs()[arg.Ref.Index]).st, l.Inputs[arg.Ref.Index].Bytes()
				case primitives.OutputRef:
					s, size = outSt[arg.Ref.Index], l.Outputs[arg.Ref.Index].Bytes()
				default:
					s, size = scratch[arg.Ref.Index], l.Scratch[arg.Ref.Index]
				}
				n := arg.Size
				if n == 0 {
					n = size - arg.Offset
				}
				args[k] = BufferArg{Buffer: s.buf, Offset: arg.Offset, Size: n, Access: arg.Access, Name: arg.Name}
			}
			pl.steps = append(pl.steps, step{kernel: lows[i].kernels[j], d: d, args: args})
		}
		if rt.mut.exemptAlias() && len(scratch) > 0 {
			for _, x := range aliases {
				if x.Donate {
					rt.enc.stateOf(outSt[x.Output].buf).untracked = true
				}
			}
		}
		st.addCounters(l.Counters)
		st.Nodes++
		for _, s := range scratch {
			pl.unhold(s)
		}
		for _, in := range a.Inputs() {
			pl.release(pl.node(in))
		}
		for _, o := range outsA {
			if oi := pl.node(o); oi.uses == 0 && !oi.keep {
				pl.held[oi.st]--
				pl.unhold(oi.st)
			}
			if pl.node(o).keep {
				pl.keep = append(pl.keep, o)
			}
		}
	}
	return nil
}

// release notes that one consumer of an array has been planned.
func (pl *plan) release(ni *nodeInfo) {
	ni.uses--
	if ni.uses == 0 && !ni.pre && !ni.keep {
		pl.held[ni.st]--
		pl.unhold(ni.st)
	}
}

func (pl *plan) node(a *graph.Array) *nodeInfo {
	ni := pl.info[a]
	if ni == nil {
		ni = &nodeInfo{}
		if d, ok := a.Data().(*arrayData); ok {
			ni.st, ni.pre = d.st, true
		}
		pl.info[a] = ni
	}
	return ni
}

// exclusive reports whether an input's storage can be donated: nothing but
// the input itself holds it, this node is its only remaining consumer, and
// it is not wanted as an output of this evaluation.
func (pl *plan) exclusive(ii *nodeInfo) bool {
	return !ii.keep && ii.uses == 1 && ii.st.refs+pl.held[ii.st] == 1
}

func (pl *plan) take(n int64, st *Stats) (*storage, error) {
	s, err := pl.rt.pool.get(n, false, st)
	if err != nil {
		return nil, err
	}
	pl.taken = append(pl.taken, s)
	return s, nil
}

// unhold returns s to the pool if nothing holds it any more.
func (pl *plan) unhold(s *storage) {
	if s.refs+pl.held[s] == 0 {
		pl.rt.pool.put(s)
	}
}

func (pl *plan) copyStep(src, dst *storage, n int64) step {
	d := primitives.CopyDispatch(primitives.In(0), primitives.Out(0), n)
	k, err := pl.rt.kernel(d.Kernel)
	if err != nil {
		panic("runtime: device lacks the copy kernel: " + err.Error())
	}
	return step{kernel: k, d: d, args: []BufferArg{
		{Buffer: src.buf, Size: n, Access: primitives.Read, Name: d.Args[0].Name},
		{Buffer: dst.buf, Size: n, Access: primitives.Write, Name: d.Args[1].Name},
	}}
}

// fail undoes a plan that could not be completed: every storage it took
// goes back to the pool. Uploaded constants stay uploaded.
func (pl *plan) fail() {
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
	}
	for _, a := range pl.spent {
		a.MarkOverwritten()
	}
	for _, a := range pl.keep {
		pl.rt.attach(a, pl.info[a].st, p)
	}
}

// arrayData is the storage of an evaluated array.
type arrayData struct {
	rt     *Runtime
	st     *storage
	nbytes int64
	pend   *Pending // the evaluation that produced it; nil for constants
	moved  bool     // a donation took the storage over
}

// Read waits for the producing evaluation and copies the bytes out.
func (d *arrayData) Read(dst []byte) error {
	if d.pend != nil {
		if err := d.pend.Wait(); err != nil {
			return err
		}
	}
	if d.moved {
		return errors.New("read of an array whose storage was donated")
	}
	return d.st.buf.Read(0, dst[:d.nbytes])
}

// drop runs when the array holding d is garbage: the storage loses a holder
// and returns to the pool with its last one.
func (d *arrayData) drop() {
	rt := d.rt
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if d.moved {
		return
	}
	d.st.refs--
	if d.st.refs == 0 {
		rt.pool.put(d.st)
	}
}

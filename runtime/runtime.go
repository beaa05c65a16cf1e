// Package runtime evaluates Loom graphs on a device. Eval orders the nodes,
// lowers each primitive to dispatches, assigns buffers (reusing freed ones
// and honouring in-place donations) and encodes the whole graph into command
// buffers. The encoder in this package is the only code in Loom that decides
// ordering: barriers, fences and command-buffer boundaries.
package runtime

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
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
	// NoPlanCache plans every Eval from scratch (see replay.go), and
	// every compiled step's Call (it implies NoCompile).
	NoPlanCache bool
	// NoCompile makes every compiled step's Call build its graph, check
	// the call's args against it and evaluate it as EvalAsync does (see
	// Compiled).
	NoCompile bool
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
	cache    planCache
	byID     []*graph.Array // scratch of collect's sort
	compiled []*Compiled
	lastEnd  time.Time
	lastStat Stats
	closed   bool
	// epoch counts the changes of holders of the storage compiled traces
	// read as fixed inputs: a trace verified at the current epoch is still
	// valid without looking at each of its inputs again.
	epoch uint64
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
	rt.pool = pool{dev: dev, enc: rt.enc, free: map[poolKey][]*storage{}, limit: opts.MemoryLimit}
	return rt, nil
}

// Close waits for all submitted work, releases the pooled device memory and
// closes the queue. Arrays the runtime evaluated keep their memory (it is
// freed when they are garbage) and stay readable. Eval and EvalAsync after
// Close return ErrClosed; closing again does nothing.
func (rt *Runtime) Close() {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.closed {
		return
	}
	rt.closed = true
	e := rt.enc
	if e.cbSeq > e.completed {
		e.event.Wait(e.cbSeq)
		e.observe(e.cbSeq)
	}
	rt.dropPlans()
	rt.pool.trim(rt.pool.allocated)
	e.queue.Close()
}

// ReleaseMemory empties the plan cache and the compiled steps' traces (the
// next Eval or Call of each structure is planned, or traced, again) and
// gives the pool's idle buffers back to the device; buffers that work in
// flight may still use stay pooled. What remains held is the memory of
// evaluated arrays and of work in flight. For memory pressure, and for
// measuring what evaluated arrays alone hold.
func (rt *Runtime) ReleaseMemory() {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.enc.poll()
	rt.dropPlans()
	rt.pool.trim(rt.pool.allocated)
}

func (rt *Runtime) dropPlans() {
	for _, en := range rt.cache.entries {
		rt.evict(en)
	}
	rt.cache.entries = nil
	for _, c := range rt.compiled {
		for _, tr := range c.traces {
			rt.dropTrace(tr)
		}
		clear(c.traces)
		c.order = nil
	}
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
	rt      *Runtime
	seq     uint64 // the last command buffer of the evaluation
	cbs     []Submission
	cbFirst []int      // the index in sites of each command buffer's first dispatch
	sites   []opSite   // each dispatch's op, to name it in a kernel's error
	deps    []*Pending // evaluations in flight when it was planned whose outputs it reads
	stats   Stats
	// A replay's one submission and its usual one dependency (the step
	// before), held without allocating.
	cb1  [1]Submission
	dep1 [1]*Pending

	// done is set, under rt.mu, once err is final: the evaluation and its
	// dependencies have completed and their errors have been collected.
	done atomic.Bool
	err  error
}

// opSite is the op that encoded a dispatch and the call site that built it.
type opSite struct {
	prim graph.Primitive
	pc   uintptr
}

// Wait blocks until the evaluation has completed and returns its error: the
// first kernel error, naming the op and its call site, or the error of an
// earlier evaluation whose failed outputs it read. It may be called any
// number of times.
func (p *Pending) Wait() error {
	if p.done.Load() {
		return p.err
	}
	rt := p.rt
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if !p.done.Load() && p.seq > rt.enc.completed {
		rt.mu.Unlock()
		t := time.Now()
		rt.enc.event.Wait(p.seq)
		wait := time.Since(t)
		rt.mu.Lock()
		if !p.done.Load() {
			p.stats.Wait = wait
			p.stats.HostWaits++
		}
		rt.enc.observe(p.seq)
	}
	p.settle()
	return p.err
}

// settle collects the error of a completed evaluation. rt.mu is held.
func (p *Pending) settle() {
	if p.done.Load() {
		return
	}
	for _, d := range p.deps {
		d.settle() // earlier, so complete too
		if p.err == nil {
			p.err = d.err
		}
	}
	for i, cb := range p.cbs {
		if err := cb.Err(); err != nil && p.err == nil {
			p.err = p.siteError(i, err)
		}
	}
	p.cbs, p.cbFirst, p.sites, p.deps = nil, nil, nil, nil
	p.cb1, p.dep1 = [1]Submission{}, [1]*Pending{}
	p.done.Store(true)
}

// addDep notes that an evaluation reads what q produced (q may be nil): if
// q is in flight, it joins deps (the reader inherits its failure); if it has
// completed with an error, that error is returned. rt.mu is held.
func (rt *Runtime) addDep(deps []*Pending, q *Pending) ([]*Pending, error) {
	if q == nil {
		return deps, nil
	}
	if !q.done.Load() && q.seq > rt.enc.completed {
		if !slices.Contains(deps, q) {
			deps = append(deps, q)
		}
		return deps, nil
	}
	q.settle()
	return deps, q.err
}

// siteError names the op and call site of the dispatch that command buffer
// i reports failed, when the device says which one.
func (p *Pending) siteError(i int, err error) error {
	var de *DispatchError
	if !errors.As(err, &de) {
		return err
	}
	if k := p.cbFirst[i] + de.Index; de.Index >= 0 && k < len(p.sites) && (i+1 == len(p.cbFirst) || k < p.cbFirst[i+1]) {
		return graph.ErrorAt(p.sites[k].pc, p.sites[k].prim.Name(), err)
	}
	return err
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
	if rt.closed {
		return nil, ErrClosed
	}
	return rt.eval(outs, nil)
}

// begin starts an evaluation: its build time is the host's time since the
// previous evaluation returned, and the host notes, without blocking, how
// far the device has got. rt.mu is held; the caller sets rt.lastEnd when it
// returns.
func (rt *Runtime) begin() (*Pending, time.Time) {
	start := time.Now()
	p := &Pending{rt: rt}
	if !rt.lastEnd.IsZero() {
		p.stats.Build = start.Sub(rt.lastEnd)
	}
	rt.enc.poll()
	return p, start
}

// eval is EvalAsync with rt.mu held. With tr, it checks a compiled step's
// inputs, and if tr.compile it traces the step: the plan is recorded into
// tr at once, and the plan cache is left alone.
func (rt *Runtime) eval(outs []*graph.Array, tr *trace) (*Pending, error) {
	p, start := rt.begin()
	defer func() { rt.lastEnd = time.Now() }()

	w := walks.Add(1)
	nodes, consts, deps, err := rt.collect(outs, w)
	if err != nil {
		return nil, err
	}
	p.deps = deps
	k := &rt.cache.scratch
	defer func() { clear(k.extArrays) }() // keep no array of this graph alive
	var en *cacheEntry
	tracing := tr != nil && tr.compile
	cached := !tracing && len(nodes) > 0 && !rt.opts.NoPlanCache
	if cached || tr != nil {
		rt.buildKey(k, w, nodes, outs)
	}
	if tr != nil {
		if err := tr.checkInputs(consts, w); err != nil {
			return nil, err
		}
	}
	if cached && k.ok {
		en = rt.cache.lookup(&k.planKey)
	}
	if en != nil && en.plan != nil {
		if err := rt.replay(en.plan, k, nodes, p); err != nil {
			return nil, err
		}
		rt.cache.stats.Hits++
		p.stats.Encode = time.Since(start)
		return p, nil
	}
	var rec *recording
	switch {
	case tracing:
		if len(nodes) > 0 {
			rec = &recording{free: map[poolKey][]*storage{}}
		}
	case !cached || !k.ok:
	case en == nil:
		en = rt.remember(&k.planKey)
	case !en.uncacheable:
		rec = &recording{free: map[poolKey][]*storage{}}
	}
	if len(nodes) > 0 {
		rt.cache.stats.Misses++
		p.stats.CacheMisses = 1
	}
	pl, err := rt.plan(nodes, consts, outs, p, rec)
	if err != nil {
		return nil, err
	}
	if rec != nil && !pl.recordable(rec, outs) {
		rt.abandonRecording(pl, rec)
		rec = nil
		if en != nil {
			en.uncacheable = true
		}
		p.stats = Stats{Build: p.stats.Build, CacheMisses: p.stats.CacheMisses}
		if pl, err = rt.plan(nodes, consts, outs, p, nil); err != nil {
			return nil, err
		}
	}
	t := time.Now()
	p.stats.Plan = t.Sub(start)

	e := rt.enc
	e.stats = &p.stats
	e.committed = e.committed[:0]
	e.committedFirst = e.committedFirst[:0]
	p.sites = make([]opSite, len(pl.steps))
	if rec != nil {
		e.startRecording(rec, consts)
	}
	for i := range pl.steps {
		s := &pl.steps[i]
		p.sites[i] = opSite{s.node.Primitive(), s.node.PC()}
		e.dispatch(s.kernel, s.d, s.args, s.sts)
	}
	e.commit()
	e.rec = nil
	p.seq = e.cbSeq
	p.cbs = slices.Clone(e.committed)
	p.cbFirst = slices.Clone(e.committedFirst)
	e.stats = nil
	if rec != nil {
		r := rt.finishRecording(pl, rec, k, consts, &p.stats)
		r.sites, r.cbFirst = p.sites, p.cbFirst
		if tracing {
			if !tr.record(r, pl, k, outs) {
				rt.release(r)
			}
		} else {
			en.plan = r
		}
		rt.cache.stats.Recorded++
	}
	pl.apply(p)
	p.stats.Encode = time.Since(t)
	return p, nil
}

// arrayData is the storage of an evaluated array.
type arrayData struct {
	rt     *Runtime
	st     *storage
	nbytes int64
	pend   *Pending // the evaluation that produced it; nil for constants
	// latest, once set, replaces pend: the array is a compiled step's
	// state, updated in place by every call, and *latest is the latest
	// call's evaluation (trace.last).
	latest **Pending
	moved  bool   // a donation took the storage over
	walk   uint64 // the last walk that visited the array (see collect)
	slot   int32  // its external slot in that walk's key, -1 if none yet
}

// Err is the error of the producing evaluation once it is known to have
// failed.
func (d *arrayData) Err() error {
	if q := d.pending(); q != nil && q.done.Load() {
		return q.err
	}
	return nil
}

// pending is the evaluation that produced the array's value.
func (d *arrayData) pending() *Pending {
	if d.latest != nil {
		return *d.latest
	}
	return d.pend
}

// Read waits for the producing evaluation and copies the bytes out.
func (d *arrayData) Read(dst []byte) error {
	if q := d.pending(); q != nil {
		if err := q.Wait(); err != nil {
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
	rt.changed(d.st)
	switch {
	case d.st.refs > 0:
	case rt.closed: // nothing is in flight, and nobody will take it from the pool
		d.st.buf.Release()
		rt.pool.allocated -= d.st.size
	default:
		rt.pool.put(d.st)
	}
}

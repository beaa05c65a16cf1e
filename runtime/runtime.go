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
	// NoPlanCache plans every Eval from scratch (see replay.go).
	NoPlanCache bool
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
	for _, en := range rt.cache.entries {
		rt.evict(en)
	}
	rt.cache.entries = nil
	for _, c := range rt.compiled {
		for _, tr := range c.traces {
			rt.release(tr.plan)
		}
		clear(c.traces)
		c.order = nil
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
	cbs   []Submission
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
	return rt.eval(outs, nil)
}

// eval is EvalAsync with rt.mu held. With tr, it traces a compiled step:
// the plan is recorded into tr at once, and the plan cache is left alone.
func (rt *Runtime) eval(outs []*graph.Array, tr *trace) (*Pending, error) {
	start := time.Now()
	p := &Pending{rt: rt}
	if !rt.lastEnd.IsZero() {
		p.stats.Build = start.Sub(rt.lastEnd)
	}
	defer func() { rt.lastEnd = time.Now() }()
	rt.enc.poll()

	w := walks.Add(1)
	nodes, consts, err := rt.collect(outs, w)
	if err != nil {
		return nil, err
	}
	k := &rt.cache.scratch
	defer func() { clear(k.extArrays) }() // keep no array of this graph alive
	var en *cacheEntry
	cached := tr == nil && len(nodes) > 0 && !rt.opts.NoPlanCache
	if cached || tr != nil {
		rt.buildKey(k, w, nodes, outs)
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
	case tr != nil:
		if err := tr.checkInputs(consts, w); err != nil {
			return nil, err
		}
		if len(nodes) > 0 {
			rec = &recording{free: map[int64][]*storage{}}
		}
	case !cached || !k.ok:
	case en == nil:
		en = rt.remember(&k.planKey)
	case !en.uncacheable:
		rec = &recording{free: map[int64][]*storage{}}
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
	if rec != nil {
		e.startRecording(rec, consts)
	}
	for i := range pl.steps {
		s := &pl.steps[i]
		e.dispatch(s.kernel, s.d, s.args, s.sts)
	}
	e.commit()
	e.rec = nil
	p.seq = e.cbSeq
	p.cbs = slices.Clone(e.committed)
	e.stats = nil
	if rec != nil {
		r := rt.finishRecording(pl, rec, k, consts, &p.stats)
		if tr != nil {
			if !tr.record(r, pl, k, consts, outs) {
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
	moved  bool     // a donation took the storage over
	walk   uint64   // the last walk that visited the array (see collect)
	slot   int32    // its external slot in that walk's key, -1 if none yet
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

package runtime

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"time"
	"unsafe"

	"github.com/loomrt/loom/graph"
)

// Compiled is a step whose graph is built once per structure and replayed
// afterwards without building it again (the anchors: mx.compile, tinygrad's
// TinyJit).
//
// Call(key, build, args...) evaluates the graph that build returns. build
// returns the graph's outputs and its inputs: the arrays whose data change
// from call to call, one per arg and in the args' order. An input is either
// a constant build created (its arg gives the bytes: Bytes, Int32s) or an
// evaluated array build read (its arg gives an evaluated array of the same
// dtype and shape: Array), such as step k's sampled tokens as step k+1's
// input. Every other constant the graph reads must be empty: a constant
// left out of the inputs would keep its first bytes in every replay.
//
// The first Call with a key calls build, checks the inputs against the
// args (each constant holds its arg's bytes, each array is its arg, the
// graph reads them all, no other constant has bytes; the errors name the
// array and where it was built), evaluates the graph and records its plan
// (the trace). Later Calls with the key do not call build: they bind the
// args' bytes to the constants' uploads and the args' arrays in place of
// the traced ones, and replay the plan. So everything else is fixed by the
// trace: the other evaluated arrays the graph reads (weights, state) and
// the structure, which key must identify (shapes and primitive parameters:
// for a decode step, the batch and the block tables' width).
//
// State the graph updates in place by donation (a KV cache) is updated in
// place by every Call: the array that holds the result after the tracing
// Call keeps holding it, with each Call's values, and reading it waits for
// the latest Call. If that array stops being the state's only holder (it is
// donated elsewhere, or another array shares its buffer) the next Call
// traces again, and so it does whenever an evaluated array the trace read
// no longer holds the same buffer.
//
// With Options.NoCompile (or NoPlanCache) every Call builds, checks and
// evaluates its graph as EvalAsync does, the plan cache applying unless
// NoPlanCache: the same step without the compiled replay, to compare
// against, with every call's args checked against what build makes.
type Compiled struct {
	rt     *Runtime
	traces map[any]*trace
	order  []any // keys, least recently used first
}

// An Input is one Call's data for one of a compiled graph's inputs: the
// bytes of a constant, or an evaluated array. A replay's upload reads the
// bytes when the device runs it: leave them unchanged until the call's
// Pending has completed.
type Input struct {
	bytes []byte
	array *graph.Array
}

// Bytes is the data of a constant input: its bytes as the graph.From
// functions lay them out.
func Bytes(b []byte) Input { return Input{bytes: b} }

// Int32s is the data of an int32 constant input (graph.FromInt32s), without
// a copy.
func Int32s(v []int32) Input {
	return Input{bytes: unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))}
}

// Array is an evaluated array input: the array a replay reads in place of
// the one build read.
func Array(a *graph.Array) Input { return Input{array: a} }

func (in Input) String() string {
	if in.array != nil {
		return fmt.Sprintf("array %s", in.array.Spec())
	}
	return fmt.Sprintf("%d bytes", len(in.bytes))
}

// Compile returns an empty compiled step on rt.
func (rt *Runtime) Compile() *Compiled {
	c := &Compiled{rt: rt, traces: map[any]*trace{}}
	rt.mu.Lock()
	rt.compiled = append(rt.compiled, c)
	rt.mu.Unlock()
	return c
}

// trace is a compiled step's recording for one key.
type trace struct {
	args    []Input        // the tracing Call's; dropped once recorded
	inputs  []*graph.Array // build's
	compile bool           // record the plan; else only check the inputs

	sizes  []int        // per arg: its byte size, or -1 for an array
	specs  []graph.Spec // per array arg, in order
	plan   *replayPlan  // nil if the trace cannot be replayed: every Call builds
	bind   []int        // upload u binds arg bind[u]; -1 for an empty constant
	ext    []*graph.Array
	extKey []extKey // per external slot: the buffer and holders each evaluated one must still have
	state  []int32  // external slots updated in place
	arrays []int32  // the external slot of each array arg, in order
	outs   []int    // per output of build: index in plan.keep, or -1-slot for an evaluated array
	ospecs []graph.Spec
	// last is the latest call's evaluation: the producer of the state's
	// arrays, whose data point here (arrayData.latest) once the first
	// replay has verified them, so that a call sets one pointer, not one
	// per state array (a decode step has 56).
	last  *Pending
	bound []*storage // the storage of a Call's array args, reused by the next
	// watched is the storage of the evaluated arrays the trace reads other
	// than the array args; the trace is valid for them at epoch verified-1.
	watched  []*storage
	verified uint64
}

// Call evaluates build's graph for structure key with args, one per input
// build returns, and returns build's outputs. The Pending covers the
// evaluation.
func (c *Compiled) Call(key any, build func() (outs, inputs []*graph.Array), args ...Input) ([]*graph.Array, *Pending, error) {
	if key == nil || !reflect.TypeOf(key).Comparable() {
		return nil, nil, fmt.Errorf("compiled step: key %T is not comparable", key)
	}
	rt := c.rt
	rt.mu.Lock()
	if rt.closed {
		rt.mu.Unlock()
		return nil, nil, ErrClosed
	}
	compile := !rt.opts.NoCompile && !rt.opts.NoPlanCache
	if tr := c.traces[key]; compile && tr != nil && tr.plan != nil {
		if bound, ok := tr.valid(rt, args); ok {
			c.touch(key)
			outs, p, err := rt.callReplay(tr, args, bound)
			rt.mu.Unlock()
			return outs, p, err
		}
	}
	rt.mu.Unlock()

	outs, inputs := build()
	tr := &trace{args: args, inputs: inputs, compile: compile}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.closed {
		return nil, nil, ErrClosed
	}
	p, err := rt.eval(outs, tr)
	if err != nil {
		return nil, nil, err
	}
	if !compile {
		return outs, p, nil
	}
	tr.args, tr.inputs = nil, nil // keep no array of this graph alive
	if old := c.traces[key]; old != nil {
		rt.dropTrace(old)
	}
	c.traces[key] = tr
	c.touch(key)
	if len(c.order) > planCacheSize {
		rt.dropTrace(c.traces[c.order[0]])
		delete(c.traces, c.order[0])
		c.order = c.order[1:]
		rt.cache.stats.Evicted++
	}
	return outs, p, nil
}

func (c *Compiled) touch(key any) {
	if n := len(c.order); n > 0 && c.order[n-1] == key {
		return // the most recent already
	}
	if i := slices.Index(c.order, key); i >= 0 {
		c.order = slices.Delete(c.order, i, i+1)
	}
	c.order = append(c.order, key)
}

// checkInputs checks, before a trace is evaluated, that build's inputs are
// what the args say, that the graph reads each of them, and that every
// other constant is empty. consts are the graph's constants and w its walk.
func (tr *trace) checkInputs(consts []*graph.Array, w uint64) error {
	if len(tr.inputs) != len(tr.args) {
		return fmt.Errorf("compiled step: build returned %d inputs, the call gives %d args", len(tr.inputs), len(tr.args))
	}
	for i, a := range tr.inputs {
		arg := tr.args[i]
		switch {
		case a == nil:
			return fmt.Errorf("compiled step: input %d is nil", i)
		case slices.Index(tr.inputs[:i], a) >= 0:
			return fmt.Errorf("compiled step: input %d (%s built at %s) is input %d again", i, a.Spec(), a.Site(), slices.Index(tr.inputs[:i], a))
		case arg.array != nil:
			if a != arg.array {
				return fmt.Errorf("compiled step: input %d is %s built at %s, the call's arg %d another %s", i, a.Spec(), a.Site(), i, arg)
			}
			if d, ok := a.Data().(*arrayData); !ok || d.walk != w || d.slot < 0 {
				return fmt.Errorf("compiled step: input %d (%s built at %s) is not an evaluated array the graph reads", i, a.Spec(), a.Site())
			}
		case !slices.Contains(consts, a):
			return fmt.Errorf("compiled step: input %d (%s built at %s) is not a constant the graph reads, and the call's arg %d is %s", i, a.Spec(), a.Site(), i, arg)
		case !bytes.Equal(a.HostBytes(), arg.bytes):
			return fmt.Errorf("compiled step: arg %d (%s) is not the bytes of input %d, the constant %s built at %s", i, arg, i, a.Spec(), a.Site())
		}
	}
	for _, a := range consts {
		if len(a.HostBytes()) > 0 && !slices.Contains(tr.inputs, a) {
			return fmt.Errorf("compiled step: the graph reads the constant %s built at %s, which is not among build's inputs: a replay would keep its bytes", a.Spec(), a.Site())
		}
	}
	return nil
}

// record keeps what replaying the trace needs, and reports whether it can
// be replayed. It runs before the plan is applied. A trace whose results
// cannot all be handed out (a result that needs fresh storage but is not an
// output of build, or an output that is a constant or an array arg), or
// that donates or binds twice an array arg, is kept unreplayable: every
// Call builds.
func (tr *trace) record(r *replayPlan, pl *plan, k *keyScratch, outs []*graph.Array) bool {
	for _, u := range r.uploads {
		tr.bind = append(tr.bind, slices.Index(tr.inputs, k.extArrays[u.slot]))
	}
	tr.ext = slices.Clone(k.extArrays)
	tr.extKey = slices.Clone(k.ext)
	// An array arg's buffer changes from call to call: the arguments and
	// the hazard state that name it are rebound like a result's.
	for i, arg := range tr.args {
		tr.sizes = append(tr.sizes, len(arg.bytes))
		if arg.array == nil {
			continue
		}
		tr.sizes[i] = -1
		slot := arg.array.Data().(*arrayData).slot
		if slices.Contains(r.moved, slot) || slices.Contains(tr.arrays, slot) {
			return false
		}
		st, n := tr.extKey[slot].st, len(r.slots)+len(tr.arrays)
		for j, x := range tr.extKey {
			if x.st == st && int32(j) != slot {
				return false // shares its buffer with an array that stays
			}
		}
		tr.arrays = append(tr.arrays, slot)
		tr.specs = append(tr.specs, arg.array.Spec())
		tr.ext[slot] = nil // each call's own
		for j := range pl.steps {
			var cp *cmdPatch
			for arg, s := range pl.steps[j].sts {
				if s == st {
					if cp == nil {
						r.patches = append(r.patches, cmdPatch{pos: r.pos[j]})
						cp = &r.patches[len(r.patches)-1]
					}
					cp.args = append(cp.args, argPatch{arg, n})
				}
			}
		}
		for j := range r.touches {
			if r.touches[j].st == st {
				r.touches[j].st, r.touches[j].slot = nil, n
			}
		}
	}
	returned := map[int]bool{}
	for _, o := range outs {
		tr.ospecs = append(tr.ospecs, o.Spec())
		if i := slices.Index(pl.keep, o); i >= 0 {
			tr.outs = append(tr.outs, i)
			returned[i] = true
			continue
		}
		d, ok := o.Data().(*arrayData)
		if !ok || d.slot < 0 || tr.ext[d.slot] == nil {
			return false // a constant, an array the graph does not read, or an array arg
		}
		tr.outs = append(tr.outs, -1-int(d.slot))
	}
	for i, kr := range r.keep {
		if kr.slot >= 0 && !returned[i] {
			return false
		}
	}
	// Each donated external array's state goes on in the array that holds
	// the result.
	for _, slot := range r.moved {
		st := tr.extKey[slot].st
		for i, kr := range r.keep {
			if kr.st == st {
				tr.ext[slot] = pl.keep[i]
				break
			}
		}
		tr.state = append(tr.state, slot)
	}
	for j, x := range tr.extKey {
		if x.st != nil && !slices.Contains(tr.arrays, int32(j)) {
			x.st.watch++
			tr.watched = append(tr.watched, x.st)
		}
	}
	tr.plan = r
	return true
}

// changed notes that s changed holders (or was donated or overwritten): a
// trace that reads it must look at its inputs again.
func (rt *Runtime) changed(s *storage) {
	if s.watch > 0 {
		rt.epoch++
	}
}

// dropTrace gives a trace's plan back (see release) and stops watching its
// inputs.
func (rt *Runtime) dropTrace(tr *trace) {
	rt.release(tr.plan)
	for _, s := range tr.watched {
		s.watch--
	}
	// The state's arrays may still point at last; the rest goes, so that
	// they keep alive neither the plan nor the arrays the trace read.
	*tr = trace{last: tr.last}
}

// valid reports whether the trace can be replayed with args: they are of
// the traced kinds and sizes, the arrays are evaluated by rt, of the
// traced specs, and share no buffer with each other or with what the trace
// reads, and every other evaluated array the trace reads still holds its
// buffer with the same holders. It returns the arrays' storage.
func (tr *trace) valid(rt *Runtime, args []Input) ([]*storage, bool) {
	if len(args) != len(tr.sizes) {
		return nil, false
	}
	bound := tr.bound[:0]
	defer func() { tr.bound = bound }()
	for i, arg := range args {
		if arg.array == nil {
			if len(arg.bytes) != tr.sizes[i] {
				return nil, false
			}
			continue
		}
		a := arg.array
		d, ok := a.Data().(*arrayData)
		if tr.sizes[i] >= 0 || !ok || d.rt != rt || d.moved || a.Overwritten() || !specEqual(a.Spec(), tr.specs[len(bound)]) {
			return nil, false
		}
		// The trace watches every buffer it reads other than the array
		// args' (see record): an unwatched one is none of them.
		if d.st.watch > 0 {
			for j, x := range tr.extKey {
				if x.st == d.st && !slices.Contains(tr.arrays, int32(j)) {
					return nil, false
				}
			}
		}
		if slices.Contains(bound, d.st) {
			return nil, false
		}
		bound = append(bound, d.st)
	}
	if tr.verified == rt.epoch+1 {
		return bound, true // no input the trace watches changed since it was verified
	}
	for j, x := range tr.extKey {
		if x.st == nil || slices.Contains(tr.arrays, int32(j)) {
			continue
		}
		a := tr.ext[j]
		d, ok := a.Data().(*arrayData)
		if !ok || d.moved || a.Overwritten() || d.st != x.st || d.st.refs != x.refs {
			return nil, false
		}
	}
	for _, slot := range tr.state {
		// Before the first replay the state's arrays are the trace's
		// results, all produced by the tracing evaluation.
		if d := tr.ext[slot].Data().(*arrayData); d.latest == nil {
			tr.last, d.latest = d.pend, &tr.last
		}
	}
	tr.verified = rt.epoch + 1
	return bound, true
}

func specEqual(a, b graph.Spec) bool { return a.DType == b.DType && slices.Equal(a.Shape, b.Shape) }

// callReplay replays a trace with new args. rt.mu is held.
func (rt *Runtime) callReplay(tr *trace, args []Input, bound []*storage) ([]*graph.Array, *Pending, error) {
	p, start := rt.begin()
	defer func() { rt.lastEnd = time.Now() }()
	r := tr.plan
	// The call inherits the failure of an evaluation whose results it
	// reads: the array args, and the state the previous call left.
	var err error
	p.deps = p.dep1[:0]
	for _, arg := range args {
		if arg.array != nil {
			if p.deps, err = rt.addDep(p.deps, arg.array.Data().(*arrayData).pending()); err != nil {
				return nil, nil, err
			}
		}
	}
	if p.deps, err = rt.addDep(p.deps, tr.last); err != nil {
		return nil, nil, err
	}
	data := func(u int) []byte {
		if i := tr.bind[u]; i >= 0 && !rt.mut.staleUpload(i) {
			return args[i].bytes
		}
		return nil // an empty constant, or a broken binding (a test's mutation)
	}
	slots, list, err := rt.prepareReplay(r, data, bound, p)
	if err != nil {
		return nil, nil, fmt.Errorf("compiled step: %w", err)
	}
	if len(tr.state) > 0 {
		tr.last = p
	}
	outs := make([]*graph.Array, len(tr.outs))
	for i, ref := range tr.outs {
		if ref < 0 {
			outs[i] = tr.ext[-1-ref]
			continue
		}
		if j := slices.Index(tr.outs[:i], ref); j >= 0 { // build returned it twice
			outs[i] = outs[j]
			continue
		}
		kr := r.keep[ref]
		if kr.slot < 0 {
			if j := slices.IndexFunc(tr.state, func(s int32) bool { return tr.extKey[s].st == kr.st }); j >= 0 {
				outs[i] = tr.ext[tr.state[j]]
				continue
			}
		}
		s := kr.st
		if s == nil {
			s = slots[kr.slot]
		}
		outs[i] = rt.result(tr.ospecs[i], s, p)
	}
	rt.submit(list, p)
	rt.cache.stats.Hits++
	p.stats.Encode = time.Since(start)
	return outs, p, nil
}

// release gives a recorded plan's buffers back to the pool (see evict).
func (rt *Runtime) release(r *replayPlan) {
	if r == nil {
		return
	}
	for i := range r.touches {
		if s := r.touches[i].st; s != nil && s.owner == r {
			s.state()
		}
	}
	for _, s := range r.owned {
		rt.pool.put(s)
	}
}

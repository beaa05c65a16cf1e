package runtime

import (
	"bytes"
	"cmp"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/loomrt/loom/graph"
)

// Compiled is a step whose graph is built once per structure and replayed
// afterwards without building it again (the anchors: mx.compile, tinygrad's
// TinyJit).
//
// Call(key, build, arrays, inputs...) evaluates the graph that build
// returns. The first Call with a key calls build, evaluates the graph and
// records its plan (the trace); later Calls with the key do not call build:
// they bind inputs to the graph's constants, in the order build created
// them, and arrays to the evaluated arrays build read in their place (the
// same dtypes and shapes: step k's sampled tokens, computed on the device,
// as step k+1's input), and replay the plan. So a step's per-call data are
// the constants build creates (token ids, positions, slot mapping, ...) and
// the arrays, and everything else is fixed by the trace: the other evaluated
// arrays the graph reads (weights, state) and the structure, which key must
// identify (shapes and primitive parameters: for a decode step, the batch
// and the block tables' width).
//
// State the graph updates in place by donation (a KV cache) is updated in
// place by every Call: the array that holds the result after the tracing
// Call keeps holding it, with each Call's values, and reading it waits for
// the latest Call. If that array stops being the state's only holder (it is
// donated elsewhere, or another array shares its buffer) the next Call
// traces again, and so it does whenever an evaluated array the trace read
// no longer holds the same buffer.
type Compiled struct {
	rt     *Runtime
	traces map[any]*trace
	order  []any // keys, least recently used first
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
	inputs [][]byte       // the tracing Call's inputs
	bound  []*graph.Array // and arrays
	plan   *replayPlan    // nil if the trace cannot be replayed: every Call builds
	bind   []int          // upload u binds input bind[u]
	ext    []*graph.Array
	extKey []extKey     // per external slot: the buffer and holders each evaluated one must still have
	state  []int32      // external slots updated in place
	arrays []int32      // the external slot of each bound array
	outs   []int        // per output of build: index in plan.keep, or -1-slot for an evaluated array
	specs  []graph.Spec // per output
}

// Call evaluates build's graph for structure key with the given arrays
// (evaluated arrays build reads) and inputs (one per constant of the graph,
// in creation order) and returns build's outputs. The Pending covers the
// evaluation.
func (c *Compiled) Call(key any, build func() []*graph.Array, arrays []*graph.Array, inputs ...[]byte) ([]*graph.Array, *Pending, error) {
	if key == nil || !reflect.TypeOf(key).Comparable() {
		return nil, nil, fmt.Errorf("compiled step: key %T is not comparable", key)
	}
	rt := c.rt
	rt.mu.Lock()
	if rt.closed {
		rt.mu.Unlock()
		return nil, nil, ErrClosed
	}
	if tr := c.traces[key]; tr != nil && tr.plan != nil {
		if bound, ok := tr.valid(rt, arrays, inputs); ok {
			c.touch(key)
			outs, p, err := rt.callReplay(tr, arrays, bound, inputs)
			rt.mu.Unlock()
			return outs, p, err
		}
	}
	rt.mu.Unlock()

	outs := build()
	tr := &trace{inputs: inputs, bound: arrays}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.closed {
		return nil, nil, ErrClosed
	}
	p, err := rt.eval(outs, tr)
	if err != nil {
		return nil, nil, err
	}
	if old := c.traces[key]; old != nil {
		rt.release(old.plan)
	}
	c.traces[key] = tr
	c.touch(key)
	if len(c.order) > planCacheSize {
		rt.release(c.traces[c.order[0]].plan)
		delete(c.traces, c.order[0])
		c.order = c.order[1:]
		rt.cache.stats.Evicted++
	}
	return outs, p, nil
}

func (c *Compiled) touch(key any) {
	if i := slices.Index(c.order, key); i >= 0 {
		c.order = slices.Delete(c.order, i, i+1)
	}
	c.order = append(c.order, key)
}

// checkInputs checks, before a trace is evaluated, that the inputs are the
// bytes of the graph's constants in creation order and that the graph reads
// the arrays.
func (tr *trace) checkInputs(consts []*graph.Array, w uint64) error {
	for i, a := range tr.bound {
		if d, ok := a.Data().(*arrayData); !ok || d.walk != w || d.slot < 0 {
			return fmt.Errorf("compiled step: array %d (%s) is not an evaluated array the graph reads", i, a.Spec())
		}
	}
	if len(consts) != len(tr.inputs) {
		return fmt.Errorf("compiled step: the graph reads %d constants, the call gives %d inputs", len(consts), len(tr.inputs))
	}
	sorted := slices.SortedFunc(slices.Values(consts), func(x, y *graph.Array) int { return cmp.Compare(x.ID(), y.ID()) })
	for i, a := range sorted {
		if !bytes.Equal(a.HostBytes(), tr.inputs[i]) {
			return fmt.Errorf("compiled step: input %d (%d bytes) is not the bytes of the graph's constant %d, %s built at %s",
				i, len(tr.inputs[i]), i, a.Spec(), a.Site())
		}
	}
	return nil
}

// record keeps what replaying the trace needs, and reports whether it can
// be replayed. It runs before the plan is applied. A trace whose results
// cannot all be handed out (a result that needs fresh storage but is not an
// output of build, or an output that is a constant), or that donates or
// binds twice a bound array, is kept unreplayable: every Call builds.
func (tr *trace) record(r *replayPlan, pl *plan, k *keyScratch, consts, outs []*graph.Array) bool {
	sorted := slices.SortedFunc(slices.Values(consts), func(x, y *graph.Array) int { return cmp.Compare(x.ID(), y.ID()) })
	for _, u := range r.uploads {
		tr.bind = append(tr.bind, slices.Index(sorted, k.extArrays[u.slot]))
	}
	tr.ext = slices.Clone(k.extArrays)
	tr.extKey = slices.Clone(k.ext)
	// A bound array's buffer changes from call to call: the arguments and
	// the hazard state that name it are rebound like a result's.
	for i, a := range tr.bound {
		slot := a.Data().(*arrayData).slot
		if slices.Contains(r.moved, slot) || slices.Contains(tr.arrays, slot) {
			return false
		}
		st, n := tr.extKey[slot].st, len(r.slots)+i
		for j, x := range tr.extKey {
			if x.st == st && int32(j) != slot {
				return false // shares its buffer with an array that stays
			}
		}
		tr.arrays = append(tr.arrays, slot)
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
		tr.specs = append(tr.specs, o.Spec())
		if i := slices.Index(pl.keep, o); i >= 0 {
			tr.outs = append(tr.outs, i)
			returned[i] = true
			continue
		}
		d, ok := o.Data().(*arrayData)
		if !ok || d.slot < 0 {
			return false // a constant, or an array the graph does not read
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
	tr.plan = r
	return true
}

// valid reports whether the trace can be replayed with arrays and inputs:
// they have the traced sizes and specs, the arrays are evaluated by rt and
// share no buffer with each other or with what the trace reads, and every
// other evaluated array the trace reads still holds its buffer with the
// same holders. It returns the arrays' storage.
func (tr *trace) valid(rt *Runtime, arrays []*graph.Array, inputs [][]byte) ([]*storage, bool) {
	if len(inputs) != len(tr.inputs) || len(arrays) != len(tr.arrays) {
		return nil, false
	}
	for i, b := range inputs {
		if len(b) != len(tr.inputs[i]) {
			return nil, false
		}
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
	bound := make([]*storage, len(arrays))
	for i, a := range arrays {
		d, ok := a.Data().(*arrayData)
		if !ok || d.rt != rt || d.moved || a.Overwritten() || !specEqual(a.Spec(), tr.ext[tr.arrays[i]].Spec()) {
			return nil, false
		}
		for j, x := range tr.extKey {
			if x.st == d.st && !slices.Contains(tr.arrays, int32(j)) {
				return nil, false
			}
		}
		if slices.Contains(bound[:i], d.st) {
			return nil, false
		}
		bound[i] = d.st
	}
	return bound, true
}

func specEqual(a, b graph.Spec) bool { return a.DType == b.DType && slices.Equal(a.Shape, b.Shape) }

// callReplay replays a trace with new inputs. rt.mu is held.
func (rt *Runtime) callReplay(tr *trace, arrays []*graph.Array, bound []*storage, inputs [][]byte) ([]*graph.Array, *Pending, error) {
	start := time.Now()
	p := &Pending{rt: rt}
	if !rt.lastEnd.IsZero() {
		p.stats.Build = start.Sub(rt.lastEnd)
	}
	defer func() { rt.lastEnd = time.Now() }()
	rt.enc.poll()
	r := tr.plan
	// The call inherits the failure of an evaluation whose results it
	// reads: the bound arrays, and the state the previous call left.
	var err error
	for _, a := range arrays {
		if p.deps, err = rt.addDep(p.deps, a.Data().(*arrayData)); err != nil {
			return nil, nil, err
		}
	}
	for _, slot := range tr.state {
		if p.deps, err = rt.addDep(p.deps, tr.ext[slot].Data().(*arrayData)); err != nil {
			return nil, nil, err
		}
	}
	slots, lists, err := rt.prepareReplay(r, func(u int) []byte { return inputs[tr.bind[u]] }, bound, p)
	if err != nil {
		return nil, nil, fmt.Errorf("compiled step: %w", err)
	}
	for _, slot := range tr.state {
		tr.ext[slot].Data().(*arrayData).pend = p
	}
	outs := make([]*graph.Array, len(tr.outs))
	made := map[int]*graph.Array{}
	for i, ref := range tr.outs {
		if ref < 0 {
			outs[i] = tr.ext[-1-ref]
			continue
		}
		if a, ok := made[ref]; ok {
			outs[i] = a
			continue
		}
		kr := r.keep[ref]
		if kr.slot < 0 {
			if j := slices.IndexFunc(tr.state, func(s int32) bool { return tr.extKey[s].st == kr.st }); j >= 0 {
				outs[i] = tr.ext[tr.state[j]]
				made[ref] = outs[i]
				continue
			}
		}
		s := kr.st
		if s == nil {
			s = slots[kr.slot]
		}
		a := graph.NewResult(tr.specs[i])
		rt.attach(a, s, p)
		outs[i], made[ref] = a, a
	}
	rt.submit(lists, p)
	rt.cache.stats.Hits++
	p.stats.Encode = time.Since(start)
	return outs, p, nil
}

// release gives a recorded plan's buffers back to the pool (see evict).
func (rt *Runtime) release(r *replayPlan) {
	if r == nil {
		return
	}
	for _, s := range r.owned {
		rt.pool.put(s)
	}
}

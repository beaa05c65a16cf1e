package runtime

import (
	"cmp"
	"hash/maphash"
	"reflect"
	"slices"
	"sync/atomic"
	"unsafe"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// The plan cache: replaying a step whose structure has been seen before.
//
// After collect, every Eval computes a structural key of its graph (see
// keyScratch). The first time a key is seen the Eval is planned and encoded
// as usual and the key is remembered. The second time it is planned again in
// recording mode: its intermediate and scratch buffers and its constants'
// buffers become the cache entry's own (fixed addresses), constants are
// bound by upload commands, and the command lists are kept with what a
// replay needs to rebind them. From the third time on the Eval is a replay:
// no lowering, no buffer assignment, no encoding decisions; the new
// constants' bytes go into the uploads, the requested outputs get fresh
// storage, the donations are applied, and the recorded lists are submitted
// again (tinygrad's TinyJit also captures on the second call: a one-off
// graph never costs a recording).
//
// Ordering against work already in flight, and of later work against the
// replay, stays the encoder's: the replay's first pass waits (transitively
// minimally) for every pass in flight, and every other recorded pass is
// ordered after the first, directly by a gate wait or through the passes
// it waits for, so the whole replay follows everything submitted before it.
// Afterwards the hazard state of every buffer the replay touched is what
// encoding the same dispatches would have left, so later Evals order
// against the replay exactly as against any other work.

// planCacheSize bounds the entries, recorded or only seen once.
const planCacheSize = 8

// walks numbers the graph walks of all runtimes: stamps live on the arrays,
// which runtimes may share.
var walks atomic.Uint64

var keySeed = maphash.MakeSeed()

// planKey is the structure of an evaluation: everything that planning
// depends on.
//
//   - code: for each node in id order, its outputs' dtypes and shapes, and
//     each input as (node, output) or external slot; each external input's
//     dtype and shape where it is first used; then the requested outputs.
//     Lowering depends on the specs; buffer assignment and donation on the
//     wiring and on which arrays are requested.
//   - prims: each node's primitive, compared with ==: its parameters select
//     the lowering (a split decision, a scale baked into params).
//   - ext: per external input, whether it is a constant (uploaded every
//     step) or an evaluated array, and then its storage and how many arrays
//     hold that storage. The replay reads and writes those very buffers, and
//     a donation is decided on the holders: a second holder turns an
//     in-place update into a copy, so the key misses.
type planKey struct {
	hash  uint64
	code  []int64
	prims []primitives.Primitive
	ext   []extKey
}

type extKey struct {
	st   *storage // nil for a constant
	refs int
}

func (k *planKey) equal(o *planKey) bool {
	return k.hash == o.hash && slices.Equal(k.code, o.code) && slices.Equal(k.ext, o.ext) && slices.Equal(k.prims, o.prims)
}

func (k *planKey) clone() planKey {
	return planKey{hash: k.hash, code: slices.Clone(k.code), prims: slices.Clone(k.prims), ext: slices.Clone(k.ext)}
}

// keyScratch is the key of the Eval being planned, reused across Evals, and
// the arrays bound to its external slots.
type keyScratch struct {
	planKey
	extArrays []*graph.Array
	ok        bool // every primitive is comparable, so the key can be compared
}

// buildKey computes the key of nodes (sorted, stamped with walk w by
// collect) and outs.
func (rt *Runtime) buildKey(k *keyScratch, w uint64, nodes, outs []*graph.Array) {
	k.code, k.prims, k.ext, k.extArrays = k.code[:0], k.prims[:0], k.ext[:0], k.extArrays[:0]
	k.ok = true
	for i, a := range nodes {
		for _, o := range outputsOf(a) {
			o.SetStamp(w, int32(i))
		}
	}
	for _, a := range nodes {
		prim := a.Primitive().(primitives.Primitive)
		if !reflect.TypeOf(prim).Comparable() {
			k.ok = false
		}
		k.prims = append(k.prims, prim)
		os := outputsOf(a)
		k.code = append(k.code, int64(len(os)))
		for _, o := range os {
			k.spec(o.Spec())
		}
		ins := a.Inputs()
		k.code = append(k.code, int64(len(ins)))
		for _, in := range ins {
			k.ref(in, w)
		}
	}
	k.code = append(k.code, -1)
	for _, o := range outs {
		k.ref(o, w)
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(k.code))), 8*len(k.code))
	h := maphash.Bytes(keySeed, b)
	for _, x := range k.ext {
		h = (h^uint64(uintptr(unsafe.Pointer(x.st))))*0x100000001b3 + uint64(x.refs)
	}
	k.hash = h
}

func (k *keyScratch) spec(s graph.Spec) {
	k.code = append(k.code, int64(s.DType), int64(len(s.Shape)))
	for _, d := range s.Shape {
		k.code = append(k.code, int64(d))
	}
}

// ref appends a reference to a: a node's output, or an external slot
// (-2-slot), giving the external input its slot on first use.
func (k *keyScratch) ref(a *graph.Array, w uint64) {
	if d, ok := a.Data().(*arrayData); ok {
		if d.slot < 0 {
			d.slot = int32(len(k.ext))
			k.ext = append(k.ext, extKey{d.st, d.st.refs})
			k.extArrays = append(k.extArrays, a)
			k.spec(a.Spec())
		}
		k.code = append(k.code, -2-int64(d.slot), 0)
		return
	}
	_, idx := a.Stamp()
	if a.Primitive() == nil { // a constant
		if idx == -1 {
			idx = -2 - int32(len(k.ext))
			a.SetStamp(w, idx)
			k.ext = append(k.ext, extKey{})
			k.extArrays = append(k.extArrays, a)
			k.spec(a.Spec())
		}
		k.code = append(k.code, int64(idx), 0)
		return
	}
	k.code = append(k.code, int64(idx), int64(a.OutputIndex()))
}

// planCache holds the entries, most recently used first.
type planCache struct {
	entries []*cacheEntry
	scratch keyScratch
	stats   CacheStats
}

// CacheStats counts the plan cache's work since the runtime was made.
type CacheStats struct {
	Hits     int // Evals replayed
	Misses   int // Evals planned: structure seen for the first or second time, or not cacheable
	Recorded int // plans recorded for replay
	Evicted  int // entries dropped to keep the cache bounded
	Entries  int // entries now
}

type cacheEntry struct {
	key         planKey
	plan        *replayPlan // nil until recorded
	uncacheable bool        // recording was tried and is not possible
}

// lookup returns the entry for k, moving it to the front, or nil.
func (c *planCache) lookup(k *planKey) *cacheEntry {
	for i, en := range c.entries {
		if en.key.equal(k) {
			copy(c.entries[1:i+1], c.entries[:i])
			c.entries[0] = en
			return en
		}
	}
	return nil
}

// CacheStats returns the plan cache's counters.
func (rt *Runtime) CacheStats() CacheStats {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	s := rt.cache.stats
	s.Entries = len(rt.cache.entries)
	return s
}

// remember adds an entry for k, evicting the least recently used one if the
// cache is full.
func (rt *Runtime) remember(k *planKey) *cacheEntry {
	c := &rt.cache
	en := &cacheEntry{key: k.clone()}
	c.entries = slices.Insert(c.entries, 0, en)
	if len(c.entries) > planCacheSize {
		rt.evict(c.entries[len(c.entries)-1])
		c.entries = c.entries[:len(c.entries)-1]
		c.stats.Evicted++
	}
	return en
}

// evict releases an entry's buffers to the pool. The encoder's hazard state
// of each still orders its next user after the replays that may be in
// flight, and the pool releases memory to the device only once the host has
// seen that work complete. The entry's fences are dropped, never recycled:
// in-flight replays may still update them.
func (rt *Runtime) evict(en *cacheEntry) {
	rt.release(en.plan)
	en.plan = nil
}

// recording is what the encoder notes while it encodes a plan being
// recorded.
type recording struct {
	firstPass uint64 // the recording's first pass
	prologue  int    // fence waits at the head of the first pass
	lists     []*CommandList
	pos       []cmdPos // each dispatch's command, in plan step order
	uploadPos []cmdPos // each upload's command, in constant order

	consts []*storage             // each constant's buffer, in constant order
	free   map[poolKey][]*storage // buffers the plan freed, for its own reuse only
}

// cmdPos locates a command in a replay's lists.
type cmdPos struct{ list, pass, cmd int }

// relSite is a site relative to the start of a recording, in the replay's
// one command buffer.
type relSite struct {
	pass uint64
	seg  int
}

// replayPlan is a recorded plan.
type replayPlan struct {
	lists    []*CommandList
	prologue int
	pos      []cmdPos // each dispatch's command, in plan step order
	uploads  []upload
	patches  []cmdPatch
	slots    []int64 // byte sizes of the outputs' storage, fresh every replay; bound inputs' follow

	keep  []keepRef // arrays that get storage
	spent []arrRef  // arrays overwritten in place
	moved []int32   // external slots whose storage a donation took

	touches []touch
	passes  []recPass
	// claimed: every storage in touches is owned by the plan (see
	// storage.state), whose latest replay began at cbBase and passBase.
	claimed          bool
	cbBase, passBase uint64
	slotTouches      []int // the touches of results and bound inputs

	owned []*storage // intermediates, scratch and constants' buffers
	sets  []*listSet // copies of lists for replays to bind (see listSet)
	// slotBuf is the storage of a replay's slots (see prepareReplay),
	// reused by the next.
	slotBuf []*storage
	stats   Stats // what every replay repeats, its Counters shared

	sites   []opSite // each dispatch's op, to name it in a kernel's error
	cbFirst []int    // the index in sites of each recorded list's first dispatch
}

type upload struct {
	pos  cmdPos
	slot int32 // external slot of the constant
}

// cmdPatch rebinds arguments of one command to an output's storage.
type cmdPatch struct {
	pos  cmdPos
	args []argPatch
}

type argPatch struct{ arg, slot int }

// keepRef is an array that gets storage: a fixed storage (an evaluated
// input's, viewed or donated) or output slot.
type keepRef struct {
	node, out int32
	st        *storage
	slot      int
}

// arrRef is a node's output (node ≥ 0) or external slot -2-node.
type arrRef struct{ node, out int32 }

// touch is the hazard state a recording left in one buffer, relative to the
// recording's start: a storage, or an output slot if st is nil.
type touch struct {
	st       *storage
	slot     int
	hasWrite bool
	write    relSite
	reads    []relSite
}

// apply sets tr to the state a replay whose command buffer is cbBase and
// first pass passBase left.
func (t *touch) apply(tr *bufState, cbBase, passBase uint64) {
	abs := func(s relSite) site { return site{cbBase, passBase + s.pass, s.seg} }
	if t.hasWrite {
		tr.write = abs(t.write)
	}
	tr.reads = tr.reads[:0]
	for _, rd := range t.reads {
		tr.reads = append(tr.reads, abs(rd))
	}
	tr.lastUse = cbBase
}

type recPass struct {
	fence Fence
	inner []uint64 // relative passes of the recording it is ordered after
}

// startRecording encodes the head of a recording: the first pass waits for
// everything in flight, then the constants are uploaded into their buffers.
func (e *encoder) startRecording(rec *recording, consts []*graph.Array) {
	e.rec = rec
	e.open()
	rec.firstPass = e.passID
	fences, cov := e.inFlight()
	for _, f := range fences {
		e.list.WaitFence(f)
	}
	e.stats.FenceWaits += len(fences)
	e.covered.merge(&cov)
	rec.prologue = len(fences)
	for i, c := range consts {
		e.upload(rec.consts[i], c.HostBytes())
	}
}

// inFlight returns the fences a pass must wait on to be ordered after every
// pass in flight, latest first and transitively minimal, and the passes
// they cover.
func (e *encoder) inFlight() ([]Fence, coverage) {
	cov := coverage{upto: e.donePasses}
	t := &e.passFences
	fs := e.fences[:0]
	defer func() { e.fences = fs }()
	for i := len(t.entries) - 1; i >= 0; i-- {
		pf := &t.entries[i]
		p := t.base + uint64(i)
		if pf.cb == 0 || cov.has(p) {
			continue
		}
		cov.merge(&pf.after)
		cov.add(p)
		fs = append(fs, pf.fence)
	}
	return fs, cov
}

// recordable reports whether a plan built in recording mode can be
// replayed: it has work, and no result lives in a constant's buffer (the
// next replay's upload would overwrite it under the user).
func (pl *plan) recordable(rec *recording, outs []*graph.Array) bool {
	if len(pl.steps) == 0 {
		return false
	}
	for _, o := range outs {
		if o.Primitive() == nil && !o.Evaluated() {
			return false // a requested constant must become evaluated
		}
	}
	for _, a := range pl.keep {
		if slices.Contains(rec.consts, pl.info[a].st) {
			return false
		}
	}
	return true
}

// abandonRecording gives back what a recording plan took.
func (rt *Runtime) abandonRecording(pl *plan, rec *recording) {
	rt.pool.local = nil
	pl.fail()
	for _, s := range rec.consts {
		s.pinned = false
		rt.pool.put(s)
	}
}

// finishRecording turns an encoded recording into a replay plan. It runs
// before the plan is applied, while the arrays still show their walk stamps
// and storage.
func (rt *Runtime) finishRecording(pl *plan, rec *recording, k *keyScratch, consts []*graph.Array, st *Stats) *replayPlan {
	e := rt.enc
	r := &replayPlan{lists: rec.lists, prologue: rec.prologue, pos: rec.pos}
	for i, c := range consts {
		_, idx := c.Stamp()
		r.uploads = append(r.uploads, upload{rec.uploadPos[i], -2 - idx})
	}
	taken := map[*storage]bool{}
	for _, s := range pl.taken {
		taken[s] = true
	}
	slot := map[*storage]int{}
	for _, a := range pl.keep {
		st := pl.info[a].st
		_, idx := a.Stamp()
		kr := keepRef{node: idx, out: int32(a.OutputIndex()), st: st, slot: -1}
		if taken[st] {
			j, ok := slot[st]
			if !ok {
				j = len(r.slots)
				slot[st] = j
				r.slots = append(r.slots, st.size)
			}
			kr.st, kr.slot = nil, j
		}
		r.keep = append(r.keep, kr)
	}
	for i := range pl.steps {
		s := &pl.steps[i]
		var cp *cmdPatch
		for j, st := range s.sts {
			if n, ok := slot[st]; ok {
				if cp == nil {
					r.patches = append(r.patches, cmdPatch{pos: rec.pos[i]})
					cp = &r.patches[len(r.patches)-1]
				}
				cp.args = append(cp.args, argPatch{j, n})
			}
		}
	}
	for _, a := range pl.spent {
		if d, ok := a.Data().(*arrayData); ok {
			r.spent = append(r.spent, arrRef{-2 - d.slot, 0})
			continue
		}
		_, idx := a.Stamp()
		r.spent = append(r.spent, arrRef{idx, int32(a.OutputIndex())})
	}
	for _, d := range pl.moved {
		r.moved = append(r.moved, d.slot)
	}

	rel := func(s site) relSite { return relSite{s.pass - rec.firstPass, s.seg} }
	seen := map[*storage]bool{}
	note := func(st *storage) {
		if seen[st] {
			return
		}
		seen[st] = true
		tr := st.state()
		t := touch{st: st, slot: -1}
		if n, ok := slot[st]; ok {
			t.st, t.slot = nil, n
		}
		if w := tr.write; w.cb != 0 && w.pass >= rec.firstPass {
			t.hasWrite, t.write = true, rel(w)
		}
		for _, rd := range tr.reads {
			if rd.pass >= rec.firstPass {
				t.reads = append(t.reads, rel(rd))
			}
		}
		r.touches = append(r.touches, t)
	}
	for _, s := range rec.consts {
		note(s)
	}
	for i := range pl.steps {
		for _, st := range pl.steps[i].sts {
			note(st)
		}
	}
	for id := rec.firstPass; id <= e.passID; id++ {
		pf := e.passFences.get(id)
		rp := recPass{fence: pf.fence}
		for p := rec.firstPass; p <= pf.after.upto; p++ {
			rp.inner = append(rp.inner, p-rec.firstPass)
		}
		for _, p := range pf.after.more {
			if p >= rec.firstPass {
				rp.inner = append(rp.inner, p-rec.firstPass)
			}
		}
		r.passes = append(r.passes, rp)
	}
	for _, s := range pl.taken {
		if _, out := slot[s]; !out && !slices.Contains(r.owned, s) {
			r.owned = append(r.owned, s)
		}
	}
	r.owned = append(r.owned, rec.consts...)

	for _, s := range rec.consts {
		s.pinned = false
	}
	r.stats = Stats{
		Nodes: st.Nodes, Dispatches: st.Dispatches, Uploads: st.Uploads, CommandBuffers: 1,
		Passes: st.Passes, Barriers: st.Barriers, FenceWaits: st.FenceWaits - rec.prologue,
		ScratchBytes: st.ScratchBytes, Donations: st.Donations, DonationsRefused: st.DonationsRefused,
		Counters: st.Counters,
	}
	return r
}

// replay submits a recorded plan again for the arrays of this Eval and
// applies it to them.
func (rt *Runtime) replay(r *replayPlan, k *keyScratch, nodes []*graph.Array, p *Pending) error {
	data := func(u int) []byte {
		if rt.mut.staleUpload(u) {
			return nil // a broken binding (a test's mutation)
		}
		return k.extArrays[r.uploads[u].slot].HostBytes()
	}
	slots, list, err := rt.prepareReplay(r, data, nil, p)
	if err != nil {
		return &graph.Error{Op: "replay", Site: nodes[len(nodes)-1].Site(), Msg: err.Error(), Err: err}
	}
	rt.applyReplay(r, k, nodes, slots, p)
	rt.submit(list, p)
	return nil
}

// submit submits a replay's list. It comes last: on a device that shares
// the host's cores (the CPU), the work starts competing with the host as
// soon as it is submitted.
func (rt *Runtime) submit(l *CommandList, p *Pending) {
	p.cb1[0] = rt.enc.queue.Submit(l)
	p.cbs = p.cb1[:]
}

// maxListSets bounds the copies of its lists a recorded plan keeps: one
// per replay in flight (a Decoder has two: the step running and the one
// submitted after it). A replay that finds them all in flight submits a
// copy of its own.
const maxListSets = 4

// listSet is a copy of a recorded plan's lists that replays submit, made
// once and rebound by every replay that uses it. The recorded lists go
// into one list, their passes one after the other and their signals at
// the end: a replay submits all of them at once anyway, the passes are
// ordered by the same fences within a list as across lists, and one list
// costs a device one submission (one CUDA graph launch, one Metal command
// buffer) instead of one per recorded list; the command buffers' numbers
// stay those of the recording, each signalled in order when the list
// completes. The set owns copies of the passes whose commands change (the
// first, with the fence waits on the work in flight at its head, and those
// holding an upload or a command bound to a result or a bound input); the
// other passes are the recording's, shared. A replay binds a set only once
// the host has seen the set's previous replay complete: the device no
// longer reads it.
type listSet struct {
	list   CommandList
	starts []int         // where each recorded list's passes start in list.Passes
	waits  int           // fence waits at the head of list.Passes[0]
	args   [][]BufferArg // per patch of the plan, its command's own arguments (shared by patches of one command)
	until  uint64        // the last command buffer the set was submitted as
}

// listSet returns a set of r's lists that no replay in flight uses.
func (r *replayPlan) listSet(e *encoder) *listSet {
	for range 2 {
		for _, ls := range r.sets {
			if ls.until <= e.completed {
				return ls
			}
		}
		e.poll()
	}
	kept := len(r.sets) < maxListSets
	ls := r.newListSet(kept)
	if kept {
		r.sets = append(r.sets, ls)
	}
	return ls
}

// listIDs numbers the kept list sets (CommandList.Replay) of all runtimes:
// a device may serve several.
var listIDs atomic.Uint64

// newListSet makes a set of r's lists. The list of a kept set, which later
// replays submit again, gets a Replay identity and its Rebound arguments;
// a set used once is submitted like any other list.
func (r *replayPlan) newListSet(kept bool) *listSet {
	ls := &listSet{waits: r.prologue}
	for _, l := range r.lists {
		ls.starts = append(ls.starts, len(ls.list.Passes))
		ls.list.Passes = append(ls.list.Passes, l.Passes...)
	}
	ls.list.Signals = make([]Signal, 1)
	if kept {
		ls.list.Replay, ls.list.Rebound = listIDs.Add(1), r.rebound()
	}
	own := func(pos cmdPos) *Command {
		pc := &ls.list.Passes[ls.starts[pos.list]+pos.pass].Commands
		if unsafe.SliceData(*pc) == unsafe.SliceData(r.lists[pos.list].Passes[pos.pass].Commands) {
			*pc = slices.Clone(*pc)
		}
		return &(*pc)[pos.cmd]
	}
	own(cmdPos{})
	for _, u := range r.uploads {
		own(u.pos)
	}
	for i, cp := range r.patches {
		// Patches of one command (a result and a bound input) share its
		// arguments.
		if j := slices.IndexFunc(r.patches[:i], func(o cmdPatch) bool { return o.pos == cp.pos }); j >= 0 {
			ls.args = append(ls.args, ls.args[j])
			continue
		}
		ls.args = append(ls.args, slices.Clone(own(cp.pos).Args))
	}
	return ls
}

// rebound returns the arguments r's patches bind, in the dispatch order of
// a list set's list.
func (r *replayPlan) rebound() []ReboundArg {
	var out []ReboundArg
	for _, cp := range r.patches {
		d := 0
		for _, l := range r.lists[:cp.pos.list] {
			for _, p := range l.Passes {
				d += countDispatches(p.Commands)
			}
		}
		l := r.lists[cp.pos.list]
		for _, p := range l.Passes[:cp.pos.pass] {
			d += countDispatches(p.Commands)
		}
		d += countDispatches(l.Passes[cp.pos.pass].Commands[:cp.pos.cmd])
		for _, ap := range cp.args {
			out = append(out, ReboundArg{d, ap.arg})
		}
	}
	slices.SortFunc(out, func(a, b ReboundArg) int { return cmp.Or(a.Dispatch-b.Dispatch, a.Arg-b.Arg) })
	return out
}

func countDispatches(cmds []Command) int {
	n := 0
	for i := range cmds {
		if cmds[i].Kind == CmdDispatch {
			n++
		}
	}
	return n
}

// bind makes the set the list of a replay whose command buffer is cbBase: signalling ev, waiting first for fences, upload u binding data(u)
// unless that is nil (the recorded bytes), and the patched arguments
// bound to slots.
func (ls *listSet) bind(r *replayPlan, ev Event, cbBase uint64, fences []Fence, data func(u int) []byte, slots []*storage) {
	ls.list.Signals[0] = Signal{ev, cbBase}
	ls.until = cbBase
	first := &ls.list.Passes[0]
	if len(fences) != ls.waits {
		head := r.lists[0].Passes[0].Commands[r.prologue:]
		cmds := slices.Grow(first.Commands[:0], len(fences)+len(head))
		for range fences {
			cmds = append(cmds, Command{Kind: CmdWaitFence})
		}
		first.Commands = append(cmds, head...)
		ls.waits = len(fences)
	}
	for i, f := range fences {
		first.Commands[i].Fence = f
	}
	cmd := func(pos cmdPos) *Command {
		if pos.list == 0 && pos.pass == 0 {
			pos.cmd += ls.waits - r.prologue
		}
		return &ls.list.Passes[ls.starts[pos.list]+pos.pass].Commands[pos.cmd]
	}
	for i, u := range r.uploads {
		b := data(i)
		if b == nil {
			b = r.lists[u.pos.list].Passes[u.pos.pass].Commands[u.pos.cmd].Data
		}
		cmd(u.pos).Data = b
	}
	for i, cp := range r.patches {
		c := cmd(cp.pos)
		c.Args = ls.args[i]
		for _, ap := range cp.args {
			c.Args[ap.arg].Buffer = slots[ap.slot].buf
		}
	}
}

// prepareReplay gives the results fresh storage, makes the list to submit
// (a list set of the recorded ones, with upload u binding data(u) unless
// that is nil (the recorded bytes), and arguments bound to the storage of
// the results and then of the bound inputs) and leaves the
// encoder's state as encoding the recorded lists would have. It returns
// the results' storage and the list.
func (rt *Runtime) prepareReplay(r *replayPlan, data func(u int) []byte, bound []*storage, p *Pending) ([]*storage, *CommandList, error) {
	e := rt.enc
	slots := append(r.slotBuf[:0], make([]*storage, len(r.slots))...)
	for i, n := range r.slots {
		s, err := rt.pool.get(n, false, &p.stats)
		if err != nil {
			for _, s := range slots[:i] {
				rt.pool.put(s)
			}
			return nil, nil, err
		}
		slots[i] = s
	}
	slots = append(slots, bound...)
	r.slotBuf = slots
	ls := r.listSet(e)
	fences, _ := e.inFlight()
	cbBase, passBase := e.cbSeq+1, e.passID+1
	ls.bind(r, e.event, cbBase, fences, data, slots)
	e.cbSeq = cbBase
	e.passID = passBase + uint64(len(r.passes)) - 1
	p.seq = e.cbSeq

	// The hazard state encoding these dispatches would have left: the
	// buffers that are the same every replay stay owned by the plan (see
	// storage.state), claimed again only if another plan or an Eval used
	// one since; the results and bound inputs get theirs now.
	if !r.claimed {
		r.slotTouches = r.slotTouches[:0]
		for i := range r.touches {
			if s := r.touches[i].st; s != nil {
				s.state() // as the previous owner left it
				s.owner, s.touch = r, i
			} else {
				r.slotTouches = append(r.slotTouches, i)
			}
		}
		r.claimed = true
	}
	r.cbBase, r.passBase = cbBase, passBase
	for _, i := range r.slotTouches {
		t := &r.touches[i]
		t.apply(slots[t.slot].state(), cbBase, passBase)
	}
	for i, rp := range r.passes {
		after := coverage{upto: passBase - 1}
		for _, j := range rp.inner {
			after.add(passBase + j)
		}
		e.passFences.set(passBase+uint64(i), passFence{rp.fence, cbBase, after, true})
	}

	fenceWaits, reused, allocated := len(fences), p.stats.BytesReused, p.stats.BytesAllocated
	p.stats = r.stats
	p.stats.FenceWaits += fenceWaits
	p.stats.BytesReused, p.stats.BytesAllocated = reused, allocated
	p.stats.CacheHits = 1
	// One list: its dispatches are counted from the replay's first.
	p.sites, p.cbFirst = r.sites, r.cbFirst[:1]
	return slots, &ls.list, nil
}

// applyReplay makes a replay's results visible, as plan.apply does.
func (rt *Runtime) applyReplay(r *replayPlan, k *keyScratch, nodes []*graph.Array, slots []*storage, p *Pending) {
	// The arrays are found first: attaching storage to one output of a
	// node drops its list of siblings.
	arr := func(x arrRef) *graph.Array {
		if x.node < 0 {
			return k.extArrays[-2-x.node]
		}
		return outputsOf(nodes[x.node])[x.out]
	}
	spent := make([]*graph.Array, len(r.spent)+len(r.keep))
	kept := spent[len(r.spent):]
	for i, x := range r.spent {
		spent[i] = arr(x)
	}
	for i, kr := range r.keep {
		kept[i] = arr(arrRef{kr.node, kr.out})
	}
	for _, slot := range r.moved {
		d := k.extArrays[slot].Data().(*arrayData)
		d.moved = true
		d.st.refs--
		rt.changed(d.st)
	}
	for _, a := range spent[:len(r.spent)] {
		a.MarkOverwritten()
		if d, ok := a.Data().(*arrayData); ok {
			rt.changed(d.st)
		}
	}
	for i, kr := range r.keep {
		s := kr.st
		if s == nil {
			s = slots[kr.slot]
		}
		rt.attach(kept[i], s, p)
	}
}

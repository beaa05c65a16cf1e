package runtime

import (
	"cmp"
	"slices"

	"github.com/loomrt/loom/primitives"
)

// The encoder is the only code in Loom that orders device work. It sees every
// buffer access of every dispatch, with its mode, and keeps for each buffer
// the last write and the reads since. From those it derives, per dispatch:
//
//   - a Barrier when a conflicting access is in the same segment of the
//     current pass (the dispatches since the last barrier);
//   - a WaitFence on the fence of an earlier pass when a conflicting access
//     is there (every pass updates its own fence when it ends);
//   - nothing when the conflicting access is in a command buffer the host has
//     already seen complete.
//
// The state persists across Eval calls, so step k+1's in-place write of the
// KV cache waits for step k's attention reads of it even when step k is
// still running. Read-after-write, write-after-write and write-after-read
// are all conflicts; two reads are not.

// site is where a dispatch was encoded: its command buffer, pass and segment.
type site struct {
	cb   uint64 // command buffer sequence number, from 1
	pass uint64 // global pass number, from 1
	seg  int    // segment within the pass: the number of barriers before it
}

// bufState is the hazard-tracking state of one buffer.
type bufState struct {
	write     site // last write; write.cb == 0 if none is outstanding
	reads     []site
	lastUse   uint64 // newest command buffer that touched the buffer
	untracked bool   // only ever set by a test mutation
}

type encoder struct {
	rt    *Runtime
	queue Queue
	event Event // signalled with each command buffer's sequence number

	list      *CommandList // the open command buffer, nil if none
	cbSeq     uint64       // sequence number of the open command buffer, or of the last one
	completed uint64       // the host has seen every command buffer up to this one complete
	committed []Submission // submitted during the Eval being encoded
	// committedFirst is, for each of them, the Eval's dispatch count when it
	// was opened: the index of its first dispatch.
	committedFirst []int
	cbFirst        int // the same for the open command buffer

	passOpen   bool
	passID     uint64
	seg        int
	passCount  int      // dispatches in the open pass
	cbCount    int      // dispatches in the open command buffer
	covered    coverage // passes the open pass is ordered after, directly or through them
	waits      []uint64 // scratch for dispatch
	fences     []Fence  // scratch for inFlight
	passFences passTable
	donePasses uint64 // every pass up to this one is in a completed command buffer
	freeFences []Fence

	stats *Stats     // the statistics of the Eval being encoded
	rec   *recording // the plan being recorded for the plan cache, if any
}

type passFence struct {
	fence Fence
	cb    uint64   // 0 for a pass without a fence (see passTable)
	after coverage // the passes it is ordered after: waiting for it covers them too
	owned bool     // the fence belongs to a cached plan: never recycled
}

// passTable holds the fences of the passes in flight by pass number: a
// window of consecutive passes, entry i being pass base+i. Passes are
// numbered in the order they are encoded, so a new one always goes at the
// end, and their command buffers complete in that order too, so the passes
// the host has seen complete always leave from the front. A pass that
// updates no fence (it has no dispatch) has an empty entry (cb 0).
type passTable struct {
	base    uint64
	entries []passFence
}

// get returns pass p's fence, the empty entry if it has none in flight.
func (t *passTable) get(p uint64) passFence {
	if p < t.base || p-t.base >= uint64(len(t.entries)) {
		return passFence{}
	}
	return t.entries[p-t.base]
}

// set adds pass p's fence; p is after every pass in the table.
func (t *passTable) set(p uint64, pf passFence) {
	if len(t.entries) == 0 {
		t.base = p
	}
	for t.base+uint64(len(t.entries)) < p {
		t.entries = append(t.entries, passFence{})
	}
	t.entries = append(t.entries, pf)
}

func newEncoder(rt *Runtime, q Queue, ev Event) *encoder {
	return &encoder{rt: rt, queue: q, event: ev}
}

// busy reports whether device work that touches s may still be running.
func (e *encoder) busy(s *storage) bool { return s.state().lastUse > e.completed }

// dispatch encodes one kernel launch with the orderings its accesses need.
func (e *encoder) dispatch(k Kernel, d *primitives.Dispatch, args []BufferArg, sts []*storage) {
	e.command(Command{Kind: CmdDispatch, Kernel: k, Grid: d.Grid, Group: d.Group, Args: args, Params: d.Params, Shared: d.SharedBytes}, sts)
}

// upload encodes an upload of data into s, ordered like a dispatch that
// writes it. It does not count towards the dispatch limits.
func (e *encoder) upload(s *storage, data []byte) {
	e.command(Command{Kind: CmdUpload, Data: data,
		Args: []BufferArg{{Buffer: s.buf, Size: int64(len(data)), Access: primitives.Write, Name: "upload"}}}, []*storage{s})
}

// command encodes a dispatch or an upload with the orderings its accesses
// need.
func (e *encoder) command(c Command, sts []*storage) {
	e.open()
	args := c.Args
	barrier := false
	waits := e.waits[:0]
	rec := e.rec
	need := func(s site) {
		switch {
		case s.cb == 0 || s.cb <= e.completed:
		case rec != nil && s.pass < rec.firstPass:
			// Before the recording: the recording's first pass waits for
			// all of it and every other pass for the first (see gate).
		case s.pass == e.passID:
			if s.seg == e.seg {
				barrier = true
			}
		case !e.covered.has(s.pass):
			waits = append(waits, s.pass) // duplicates are covered by the first wait
		}
	}
	for i, a := range args {
		st := sts[i].state()
		if st.untracked {
			continue
		}
		need(st.write)
		if a.Access.Writes() {
			for _, r := range st.reads {
				need(r)
			}
		}
	}
	if rec != nil && e.passCount == 0 && e.passID != rec.firstPass && !e.covered.has(rec.firstPass) && !slices.Contains(waits, rec.firstPass) {
		waits = append(waits, rec.firstPass) // the gate
	}
	// Latest first: a later pass may cover an earlier one, never the reverse.
	slices.SortFunc(waits, func(a, b uint64) int { return cmp.Compare(b, a) })
	for _, p := range waits {
		if e.covered.has(p) {
			continue // an earlier wait in this loop covers it
		}
		pf := e.passFences.get(p)
		e.covered.merge(&pf.after)
		e.covered.add(p)
		if e.rt.mut.dropFenceWait() {
			continue
		}
		e.list.WaitFence(pf.fence)
		e.stats.FenceWaits++
	}
	e.waits = waits
	if barrier {
		e.seg++
		if !e.rt.mut.dropBarrier() {
			e.list.Barrier()
			e.stats.Barriers++
		}
	}
	if rec != nil {
		p := &e.list.Passes[len(e.list.Passes)-1]
		pos := cmdPos{len(rec.lists), len(e.list.Passes) - 1, len(p.Commands)}
		if c.Kind == CmdUpload {
			rec.uploadPos = append(rec.uploadPos, pos)
		} else {
			rec.pos = append(rec.pos, pos)
		}
	}
	e.list.add(c)
	if c.Kind == CmdUpload {
		e.stats.Uploads++
	} else {
		e.stats.Dispatches++
	}

	here := site{e.cbSeq, e.passID, e.seg}
	for i, a := range args {
		st := sts[i].state()
		st.lastUse = e.cbSeq
		if !a.Access.Writes() {
			st.addRead(here, e.completed, &e.covered)
		}
	}
	for i, a := range args {
		if a.Access.Writes() {
			st := sts[i].state()
			st.write = here
			st.reads = st.reads[:0]
		}
	}
	if c.Kind == CmdUpload {
		return
	}
	e.passCount++
	e.cbCount++
	if n := e.rt.opts.DispatchesPerPass; n > 0 && e.passCount >= n {
		e.endPass()
	}
	if n := e.rt.opts.DispatchesPerCommandBuffer; n > 0 && e.cbCount >= n {
		e.commit()
	}
}

// addRead records a read at s, dropping the reads that a later write need
// not wait for separately, so that the list stays short however many passes
// read the buffer: reads the host has seen complete, the earlier read of the
// same pass (a later write in that pass is ordered after earlier segments by
// the barriers between them), and reads in passes the current pass is
// already ordered after (covered). A write that waits for s, or follows it
// in its pass, is ordered after those through s's pass. The list is in pass
// order, so each check looks only at its ends.
func (st *bufState) addRead(s site, completed uint64, covered *coverage) {
	reads := st.reads
	for len(reads) > 0 && (reads[0].cb <= completed || covered.has(reads[0].pass)) {
		reads = reads[1:]
	}
	for n := len(reads); n > 0 && (reads[n-1].pass == s.pass || covered.has(reads[n-1].pass)); n-- {
		reads = reads[:n-1]
	}
	st.reads = append(reads, s)
}

// open makes sure a command buffer and a pass are open.
func (e *encoder) open() {
	if e.list == nil {
		e.list = &CommandList{}
		e.cbSeq++
		e.cbCount = 0
		e.cbFirst = e.stats.Dispatches
	}
	if !e.passOpen {
		// Room for the pass's dispatches and a barrier or wait before each.
		n := e.rt.opts.DispatchesPerPass
		if n <= 0 {
			n = e.rt.opts.DispatchesPerCommandBuffer
		}
		if n <= 0 || n > 128 {
			n = 128
		}
		e.list.Passes = append(e.list.Passes, Pass{Commands: make([]Command, 0, 2*n+2)})
		e.passOpen = true
		e.passID++
		e.seg = 0
		e.passCount = 0
		e.covered = coverage{upto: e.donePasses}
		e.stats.Passes++
	}
}

// endPass ends the open pass, updating its fence so that later passes can
// wait for it.
func (e *encoder) endPass() {
	if !e.passOpen {
		return
	}
	if e.passCount > 0 {
		var f Fence
		if n := len(e.freeFences); n > 0 {
			f = e.freeFences[n-1]
			e.freeFences = e.freeFences[:n-1]
		} else {
			f = e.queue.NewFence()
		}
		e.list.UpdateFence(f)
		e.passFences.set(e.passID, passFence{f, e.cbSeq, e.covered, e.rec != nil})
	}
	e.passOpen = false
}

// commit ends the open command buffer and submits it. It signals the event
// with its sequence number when done.
func (e *encoder) commit() {
	if e.list == nil {
		return
	}
	e.endPass()
	e.list.Signal(e.event, e.cbSeq)
	if e.rec != nil {
		e.rec.lists = append(e.rec.lists, e.list)
	}
	e.committed = append(e.committed, e.queue.Submit(e.list))
	e.committedFirst = append(e.committedFirst, e.cbFirst)
	e.list = nil
	e.stats.CommandBuffers++
}

// poll notes, without blocking, how far the device has got.
func (e *encoder) poll() {
	if v := e.event.Value(); v > e.completed {
		e.observe(v)
	}
}

// observe records that every command buffer up to seq has completed, so
// their fences can be reused and their buffers freed.
func (e *encoder) observe(seq uint64) {
	if seq <= e.completed {
		return
	}
	e.completed = seq
	t := &e.passFences
	n := 0
	for ; n < len(t.entries) && t.entries[n].cb <= seq; n++ {
		if pf := &t.entries[n]; pf.cb != 0 {
			if !pf.owned {
				e.freeFences = append(e.freeFences, pf.fence)
			}
			e.donePasses = max(e.donePasses, t.base+uint64(n))
		}
	}
	// Moved down in place, so that the window's storage is reused.
	clear(t.entries[copy(t.entries, t.entries[n:]):])
	t.entries = t.entries[:len(t.entries)-n]
	t.base += uint64(n)
}

// coverage is a set of passes: every pass up to upto, and those in more. A
// chain of dependent passes covers a prefix, so it stays one number however
// long the chain; only passes beyond a gap are listed, and those are few
// (independent work in flight). Entries beyond maxCoverage are dropped,
// oldest first: forgetting a pass costs at most a redundant wait on its fence
// later, never a missing one.
type coverage struct {
	upto uint64
	more []uint64 // sorted, all > upto
}

const maxCoverage = 64

func (c *coverage) has(p uint64) bool {
	if p <= c.upto {
		return true
	}
	_, ok := slices.BinarySearch(c.more, p)
	return ok
}

func (c *coverage) add(p uint64) {
	if c.has(p) {
		return
	}
	if p == c.upto+1 { // extending the chain: no list to grow
		c.upto = p
		c.normalize()
		return
	}
	i, _ := slices.BinarySearch(c.more, p)
	c.more = slices.Insert(c.more, i, p)
	c.normalize()
}

// merge adds every pass o covers.
func (c *coverage) merge(o *coverage) {
	if o.upto > c.upto {
		c.upto = o.upto
	}
	for _, p := range o.more {
		if p > c.upto {
			i, found := slices.BinarySearch(c.more, p)
			if !found {
				c.more = slices.Insert(c.more, i, p)
			}
		}
	}
	c.normalize()
}

// normalize folds listed passes that extend the prefix into upto, drops
// those it already covers, and bounds the list.
func (c *coverage) normalize() {
	i := 0
	for i < len(c.more) && c.more[i] <= c.upto+1 {
		c.upto = max(c.upto, c.more[i])
		i++
	}
	c.more = c.more[i:]
	if n := len(c.more); n > maxCoverage {
		c.more = c.more[n-maxCoverage:]
	}
	// Clipped, so that a later insert copies: a pass's recorded coverage
	// (passFence.after) shares this backing array.
	c.more = slices.Clip(c.more)
}

package cpu

import (
	"fmt"

	"github.com/loomrt/loom/primitives"
)

// Trace is the checking device's happens-before model (see check.go) for a
// device that schedules its work itself: the Metal device over a recording
// fake of its Objective-C calls (internal/mtlfake). The device adds a node
// for every call that orders work — a command buffer's start and end, a
// pass with its dispatches, barriers and fences, an event's signal and
// wait, a host action — and Trace checks every access of a dispatch or the
// host against the earlier conflicting ones, reporting the pairs that no
// path orders. Nodes are ids; an edge points from an earlier node to a
// later one.
//
// The Trace also runs the work, with the checking device's adversarial
// scheduler: once Schedule has seen a node, it completes after its
// predecessors, a dispatch's work running one at a time in a seeded random
// order among the ready ones, and a node's callback (Then) running in the
// same lottery after the node completes. A Trace is safe for concurrent
// use.
type Trace struct {
	c      *checker
	linked int32 // nodes before this one have been scheduled
}

// NewTrace returns an empty model whose scheduler draws from seed.
func NewTrace(seed uint64) *Trace { return &Trace{c: newChecker(max(seed, 1), false)} }

// Close stops the scheduler once the work it has is done.
func (t *Trace) Close() { t.c.close() }

// Then makes fn run after node id completes, off the scheduler's lock.
// Call it before the Schedule that first sees the node.
func (t *Trace) Then(id int32, fn func()) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.c.nodes[id].then = fn
}

// At makes fn run the moment node id completes, before its successors
// start: an event's signal setting the value. fn must not call the Trace.
// Call it before the Schedule that first sees the node.
func (t *Trace) At(id int32, fn func()) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.c.nodes[id].at = fn
}

// Hold holds back the dispatches that become ready while on, and starts
// them when turned off: the work submitted meanwhile then runs together,
// in the scheduler's order.
func (t *Trace) Hold(on bool) {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lazy = on
	if !on {
		held := c.held
		c.held = nil
		for _, id := range held {
			c.start(id)
		}
	}
}

// Schedule starts the nodes added since the last call: each completes once
// its predecessors have.
func (t *Trace) Schedule() {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	first := t.linked
	t.linked = int32(len(t.c.nodes))
	t.c.link(first)
}

// Join adds a node that completes once all of preds have: a command
// buffer's start or end, an event's signal or wait.
func (t *Trace) Join(preds ...int32) int32 {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	return t.c.add(nodeJoin, preds...)
}

// Host adds a host action, ordered after the host's earlier ones and after
// preds (the signal of an event value the host observed).
func (t *Trace) Host(what string, preds ...int32) int32 {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	return t.c.addHost(what, preds...)
}

// HostAccess records a host read or write of bytes [off, off+n) of buffer
// b (any comparable value naming it, printed in reports).
func (t *Trace) HostAccess(b any, off, n int64, mode primitives.Access, what string) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.c.access(t.c.addHost(fmt.Sprintf("%s of %v", what, b)), b, off, n, mode, -1)
}

// HostRelease records that the host released b, n bytes long: any access
// to it afterwards, and any earlier one not ordered before, is a hazard.
func (t *Trace) HostRelease(b any, n int64) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.c.access(t.c.addHost(fmt.Sprintf("release of %v", b)), b, 0, n, releaseAccess, -1)
}

// Hazards returns the hazards found so far.
func (t *Trace) Hazards() []Hazard { return t.c.hazardList() }

// TracePass is a compute pass being added to a Trace.
type TracePass struct {
	t *Trace
	p pass
}

// Pass starts a compute pass whose work starts after node start.
func (t *Trace) Pass(start int32) *TracePass { return &TracePass{t, pass{gate: start}} }

// TraceArg is a dispatch's access to bytes [Offset, Offset+Size) of
// Buffer (any comparable value naming it, printed in reports).
type TraceArg struct {
	Buffer       any
	Offset, Size int64
	Access       primitives.Access
	Name         string
}

// Dispatch adds a dispatch of the named kernel, unordered with the pass's
// others since its last barrier, and checks its accesses. run is its work.
func (p *TracePass) Dispatch(kernel string, args []TraceArg, run func()) int32 {
	c := p.t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.passNode(&p.p)
	c.nodes[n].what, c.nodes[n].targs, c.nodes[n].run = kernel, args, run
	for i, a := range args {
		c.access(n, a.Buffer, a.Offset, a.Size, a.Access, i)
	}
	return n
}

// Barrier orders the pass's dispatches so far before its later ones.
func (p *TracePass) Barrier() {
	p.t.c.mu.Lock()
	defer p.t.c.mu.Unlock()
	p.t.c.passBarrier(&p.p)
}

// WaitFence holds the pass's later dispatches until the latest update of
// fence f added before.
func (p *TracePass) WaitFence(f any) {
	p.t.c.mu.Lock()
	defer p.t.c.mu.Unlock()
	p.t.c.passWaitFence(&p.p, f)
}

// UpdateFence updates fence f once the pass's dispatches so far complete.
func (p *TracePass) UpdateFence(f any) {
	p.t.c.mu.Lock()
	defer p.t.c.mu.Unlock()
	p.t.c.passUpdateFence(&p.p, f)
}

// End returns the node that completes with the whole pass.
func (p *TracePass) End() int32 {
	p.t.c.mu.Lock()
	defer p.t.c.mu.Unlock()
	return p.t.c.passEnd(&p.p)
}

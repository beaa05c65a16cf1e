package cpu

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"

	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// Checking mode.
//
// The checker builds a happens-before graph from the device calls alone —
// dispatch, barrier, fence wait and update, commit, signal, host wait and
// host access — and never from the runtime's own bookkeeping. Each dispatch,
// each barrier and fence point, each command buffer's start and end, each
// event signal and each host action is a node; an edge means "completes
// before starts". The guarantees modelled are the weakest Metal gives:
//
//   - dispatches of one pass are ordered only by barriers between them;
//   - a fence update covers the dispatches encoded before it in its pass; a
//     fence wait holds back only the dispatches encoded after it, and waits
//     for the most recent update of that fence committed before it;
//   - passes and command buffers are otherwise unordered, commit order
//     included;
//   - a command buffer's signal follows all its work and the previous value's
//     signal; the host learns of completion only through events;
//   - host actions are ordered among themselves in the order they are made.
//
// Every access of a dispatch or host action to a byte range of a buffer is
// checked against the earlier conflicting accesses to overlapping bytes (the
// last write; for a write, also the reads since). A pair with no path between
// them in the graph is a hazard. Nodes are created in encoding order, and
// edges only point back to earlier nodes, so the check at creation time is
// final.
//
// Execution follows the same graph: a dispatch runs once all its
// predecessors have completed, concurrently on goroutines, or one at a time
// in a seeded random order (the adversarial scheduler).

// releaseAccess marks a host Release: it conflicts with every access.
const releaseAccess primitives.Access = 0x80 | primitives.Write

// Hazard is a pair of conflicting accesses to a buffer that nothing orders.
type Hazard struct {
	Kind   string // read-after-write, write-after-read, write-after-write, use-after-release
	Buffer string
	Bytes  [2]int64 // the overlapping range
	First  string   // the earlier-encoded access
	Second string
}

func (h Hazard) String() string {
	return fmt.Sprintf("%s on %s bytes [%d,%d): %s and %s are unordered", h.Kind, h.Buffer, h.Bytes[0], h.Bytes[1], h.First, h.Second)
}

type nodeKind uint8

const (
	nodeJoin nodeKind = iota // a barrier, fence point, pass or command-buffer boundary
	nodeDispatch
	nodeSignal
	nodeHost
)

type hbNode struct {
	kind    nodeKind
	preds   []int32
	succs   []int32
	pending int32 // predecessors not yet completed
	done    bool
	cmd     *runtime.Command
	index   int // a dispatch's position among its list's dispatches
	sub     *submission
	sig     runtime.Signal
	what    string     // host nodes: what the host did
	targs   []TraceArg // a Trace's dispatch: its accesses (what names its kernel)
	run     func()     // a Trace's dispatch: its work
	at      func()     // a Trace's node: what its completion does, under the lock
	then    func()     // a Trace's node: what follows its completion, off the lock
}

type access struct {
	node int32
	mode primitives.Access
	arg  int // index into the dispatch's args, or -1
}

type span struct {
	lo, hi int64
	write  access // node -1: none
	reads  []access
}

type memState struct {
	spans    []span // sorted, disjoint
	released bool
}

type checker struct {
	mu        sync.Mutex
	nodes     []hbNode
	host      int32         // the last host node, -1 if none
	fenceLast map[any]int32 // a fence → its latest update
	signals   map[*event]map[uint64]int32
	lastSig   map[*event]int32
	mem       map[any]*memState // keyed by buffer
	hazards   []Hazard
	reported  map[[3]any]bool

	visit    []uint32
	visitGen uint32

	// adversarial scheduling
	rng   *rand.Rand
	ready []int32
	then  []func() // callbacks of completed nodes, run by serial like dispatches
	wake  *sync.Cond

	// lazy execution: dispatches ready while no host waits are held back
	lazy    bool
	waiting int
	held    []int32

	closed bool
}

// close stops the adversarial scheduler once the work it has is done.
func (c *checker) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.wake != nil {
		c.wake.Broadcast()
	}
}

func newChecker(seed uint64, lazy bool) *checker {
	c := &checker{
		lazy:      lazy,
		host:      -1,
		fenceLast: map[any]int32{},
		signals:   map[*event]map[uint64]int32{},
		lastSig:   map[*event]int32{},
		mem:       map[any]*memState{},
		reported:  map[[3]any]bool{},
	}
	if seed != 0 {
		c.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		c.wake = sync.NewCond(&c.mu)
		go c.serial()
	}
	return c
}

func (c *checker) hazardList() []Hazard {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Hazard(nil), c.hazards...)
}

// add creates a node with the given predecessors and returns its id.
func (c *checker) add(kind nodeKind, preds ...int32) int32 {
	id := int32(len(c.nodes))
	c.nodes = append(c.nodes, hbNode{kind: kind, preds: preds})
	return id
}

// addHost appends a host action to the host timeline. Host nodes complete
// as they are made: the host has already done what they stand for.
func (c *checker) addHost(what string, extra ...int32) int32 {
	preds := extra
	if c.host >= 0 {
		preds = append(preds, c.host)
	}
	id := c.add(nodeHost, preds...)
	c.nodes[id].what = what
	c.nodes[id].done = true
	c.host = id
	return id
}

// commit turns a submitted list's commands into nodes, checks their
// accesses and schedules them.
func (c *checker) commit(sub *submission) {
	c.mu.Lock()
	defer c.mu.Unlock()
	first := int32(len(c.nodes))
	h := c.addHost("commit")
	start := c.add(nodeJoin, h)
	var ends []int32
	index := 0 // of the next dispatch
	for _, p := range sub.list.Passes {
		ps := pass{gate: start}
		for i := range p.Commands {
			o := &p.Commands[i]
			switch o.Kind {
			case runtime.CmdDispatch, runtime.CmdUpload:
				n := c.passDispatch(&ps, o)
				c.nodes[n].sub, c.nodes[n].index = sub, index
				if o.Kind == runtime.CmdDispatch {
					index++
				}
			case runtime.CmdBarrier:
				c.passBarrier(&ps)
			case runtime.CmdWaitFence:
				c.passWaitFence(&ps, o.Fence)
			case runtime.CmdUpdateFence:
				c.passUpdateFence(&ps, o.Fence)
			}
		}
		ends = append(ends, c.passEnd(&ps))
	}
	end := c.add(nodeJoin, append([]int32{start}, ends...)...)
	for _, s := range sub.list.Signals {
		ev := s.Event.(*event)
		preds := []int32{end}
		if prev, ok := c.lastSig[ev]; ok {
			preds = append(preds, prev)
		}
		n := c.add(nodeSignal, preds...)
		c.nodes[n].sig = s
		c.lastSig[ev] = n
		if c.signals[ev] == nil {
			c.signals[ev] = map[uint64]int32{}
		}
		c.signals[ev][s.Value] = n
	}
	c.link(first)
}

// link links the nodes from first on to their predecessors and starts those
// that are ready. c.mu is held.
func (c *checker) link(first int32) {
	var ready []int32
	for id := first; id < int32(len(c.nodes)); id++ {
		n := &c.nodes[id]
		if n.done {
			continue
		}
		for _, p := range n.preds {
			if !c.nodes[p].done {
				c.nodes[p].succs = append(c.nodes[p].succs, id)
				n.pending++
			}
		}
		if n.pending == 0 {
			ready = append(ready, id)
		}
	}
	for _, id := range ready {
		c.start(id)
	}
}

// pass is a compute pass being turned into nodes: gate is the node its
// next dispatch waits for (the pass's start, its last barrier or fence
// wait), seg the dispatches since.
type pass struct {
	gate int32
	seg  []int32
}

// passDispatch adds a dispatch or upload to the pass and checks its
// accesses. c.mu is held.
func (c *checker) passDispatch(p *pass, o *runtime.Command) int32 {
	n := c.passNode(p)
	c.nodes[n].cmd = o
	for ai, a := range o.Args {
		c.access(n, a.Buffer, a.Offset, a.Size, a.Access, ai)
	}
	return n
}

// passNode adds a dispatch node to the pass. c.mu is held.
func (c *checker) passNode(p *pass) int32 {
	n := c.add(nodeDispatch, p.gate)
	p.seg = append(p.seg, n)
	return n
}

// passBarrier orders the pass's dispatches so far before its later ones.
func (c *checker) passBarrier(p *pass) {
	p.gate = c.add(nodeJoin, append([]int32{p.gate}, p.seg...)...)
	p.seg = nil
}

// passWaitFence holds the pass's later dispatches until the latest update
// of f made before.
func (c *checker) passWaitFence(p *pass, f any) {
	if u, ok := c.fenceLast[f]; ok {
		p.gate = c.add(nodeJoin, p.gate, u)
	}
}

// passUpdateFence makes f's latest update the completion of the pass's
// dispatches so far.
func (c *checker) passUpdateFence(p *pass, f any) {
	c.fenceLast[f] = c.add(nodeJoin, append([]int32{p.gate}, p.seg...)...)
}

// passEnd returns the node that completes with the whole pass.
func (c *checker) passEnd(p *pass) int32 {
	return c.add(nodeJoin, append([]int32{p.gate}, p.seg...)...)
}

// start runs a node whose predecessors have all completed. c.mu is held.
func (c *checker) start(id int32) {
	n := &c.nodes[id]
	if n.kind != nodeDispatch {
		c.complete(id)
		return
	}
	if c.lazy && c.waiting == 0 {
		c.held = append(c.held, id)
		return
	}
	if c.rng != nil {
		c.ready = append(c.ready, id)
		c.wake.Signal()
		return
	}
	o, sub, index := n.cmd, n.sub, n.index
	go func() {
		err := sub.q.dev.execute(o, index)
		if err != nil {
			sub.fail(err)
		}
		c.mu.Lock()
		c.complete(id)
		c.mu.Unlock()
	}()
}

// hostBlocks counts hosts blocked on an event; the first releases held work.
func (c *checker) hostBlocks(delta int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waiting += delta
	if c.waiting > 0 && len(c.held) > 0 {
		held := c.held
		c.held = nil
		for _, id := range held {
			c.start(id)
		}
	}
}

// serial is the adversarial scheduler: it runs one ready dispatch at a time,
// chosen at random.
// A Trace's completion callbacks are drawn in the same lottery, so that
// they may run late too.
func (c *checker) serial() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for len(c.ready) == 0 && len(c.then) == 0 && !c.closed {
			c.wake.Wait()
		}
		if len(c.ready) == 0 && len(c.then) == 0 {
			return
		}
		i := c.rng.IntN(len(c.ready) + len(c.then))
		if i >= len(c.ready) {
			i -= len(c.ready)
			fn := c.then[i]
			c.then = append(c.then[:i], c.then[i+1:]...)
			c.mu.Unlock()
			fn()
			c.mu.Lock()
			continue
		}
		id := c.ready[i]
		c.ready[i] = c.ready[len(c.ready)-1]
		c.ready = c.ready[:len(c.ready)-1]
		n := &c.nodes[id]
		run, o, sub, index := n.run, n.cmd, n.sub, n.index
		c.mu.Unlock()
		if run != nil {
			run()
		} else if err := sub.q.dev.execute(o, index); err != nil {
			sub.fail(err)
		}
		c.mu.Lock()
		c.complete(id)
	}
}

// complete marks a node done and starts the successors it releases. c.mu is
// held.
func (c *checker) complete(id int32) {
	work := []int32{id}
	for len(work) > 0 {
		id := work[len(work)-1]
		work = work[:len(work)-1]
		n := &c.nodes[id]
		n.done = true
		if n.kind == nodeSignal {
			n.sig.Event.(*event).set(n.sig.Value)
		}
		if n.at != nil {
			n.at()
		}
		if n.then != nil {
			c.then = append(c.then, n.then)
			c.wake.Signal()
		}
		for _, s := range n.succs {
			m := &c.nodes[s]
			m.pending--
			if m.pending == 0 {
				if m.kind == nodeDispatch {
					c.start(s)
				} else {
					work = append(work, s)
				}
			}
		}
		n.succs = nil
	}
}

// hostObserve records that the host saw ev at value v, which orders the host
// after the signal that set it.
func (c *checker) hostObserve(ev *event, v uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sig, ok := c.signals[ev][v]
	if !ok {
		c.addHost(fmt.Sprintf("observe event at %d", v))
		return
	}
	c.addHost(fmt.Sprintf("observe event at %d", v), sig)
}

// hostAccess records a host read, write or release of a buffer.
func (c *checker) hostAccess(b *buffer, off, n int64, mode primitives.Access, what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.addHost(fmt.Sprintf("%s of %v", what, b))
	c.access(id, b, off, n, mode, -1)
}

// access checks one access against the earlier conflicting ones and records
// it.
func (c *checker) access(node int32, b any, off, n int64, mode primitives.Access, arg int) {
	ms := c.mem[b]
	if ms == nil {
		ms = &memState{}
		c.mem[b] = ms
	}
	if ms.released {
		c.report("use-after-release", b, off, off+n, access{node: c.releaseNode(b), mode: releaseAccess, arg: -1}, access{node, mode, arg})
		return
	}
	lo, hi := off, off+n
	if n == 0 {
		return
	}
	cur := access{node, mode, arg}
	ms.spans = splitSpans(ms.spans, lo, hi)
	// Gather the candidates, then answer all with one graph search.
	type cand struct {
		a      access
		lo, hi int64
	}
	var cands []cand
	for i := range ms.spans {
		s := &ms.spans[i]
		if s.hi <= lo || s.lo >= hi {
			continue
		}
		if s.write.node >= 0 && s.write.node != node {
			cands = append(cands, cand{s.write, s.lo, s.hi})
		}
		if mode.Writes() {
			for _, r := range s.reads {
				if r.node != node {
					cands = append(cands, cand{r, s.lo, s.hi})
				}
			}
		}
	}
	if len(cands) > 0 {
		minID := cands[0].a.node
		for _, cd := range cands {
			minID = min(minID, cd.a.node)
		}
		c.ancestors(node, minID)
		for _, cd := range cands {
			if c.visit[cd.a.node] != c.visitGen {
				c.report(kindOf(cd.a.mode, mode), b, cd.lo, cd.hi, cd.a, cur)
			}
		}
	}
	for i := range ms.spans {
		s := &ms.spans[i]
		if s.hi <= lo || s.lo >= hi {
			continue
		}
		if mode.Writes() {
			s.write = cur
			s.reads = s.reads[:0]
		} else if len(s.reads) == 0 || s.reads[len(s.reads)-1].node != node {
			s.reads = append(s.reads, cur)
		}
	}
	if mode == releaseAccess {
		ms.released = true
	}
}

func (c *checker) releaseNode(b any) int32 {
	for _, s := range c.mem[b].spans {
		if s.write.mode == releaseAccess {
			return s.write.node
		}
	}
	return -1
}

// splitSpans makes span boundaries at lo and hi and fills the gaps of
// [lo, hi) with empty spans.
func splitSpans(spans []span, lo, hi int64) []span {
	var out []span
	pos := lo
	for _, s := range spans {
		if s.hi <= lo || s.lo >= hi {
			out = append(out, s)
			continue
		}
		if s.lo < lo {
			left := s
			left.hi = lo
			left.reads = append([]access(nil), s.reads...)
			out = append(out, left)
			s.lo = lo
		}
		if pos < s.lo {
			out = append(out, span{lo: pos, hi: s.lo, write: access{node: -1}})
		}
		if s.hi > hi {
			right := s
			right.lo = hi
			right.reads = append([]access(nil), s.reads...)
			s.hi = hi
			s.reads = append([]access(nil), s.reads...)
			out = append(out, s, right)
		} else {
			out = append(out, s)
		}
		pos = s.hi
	}
	if pos < hi {
		out = append(out, span{lo: pos, hi: hi, write: access{node: -1}})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].lo < out[j].lo })
	return out
}

func kindOf(first, second primitives.Access) string {
	switch {
	case first == releaseAccess || second == releaseAccess:
		return "use-after-release"
	case first.Writes() && second.Writes():
		return "write-after-write"
	case first.Writes():
		return "read-after-write"
	}
	return "write-after-read"
}

// ancestors marks, with the current visit generation, every node with id at
// least minID from which node can be reached.
func (c *checker) ancestors(node, minID int32) {
	if len(c.visit) < len(c.nodes) {
		c.visit = append(c.visit, make([]uint32, len(c.nodes)-len(c.visit)+1024)...)
	}
	c.visitGen++
	stack := []int32{node}
	c.visit[node] = c.visitGen
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, p := range c.nodes[id].preds {
			if p >= minID && c.visit[p] != c.visitGen {
				c.visit[p] = c.visitGen
				stack = append(stack, p)
			}
		}
	}
}

func (c *checker) report(kind string, b any, lo, hi int64, first, second access) {
	key := [3]any{first.node, second.node, b}
	if c.reported[key] {
		return
	}
	c.reported[key] = true
	c.hazards = append(c.hazards, Hazard{
		Kind: kind, Buffer: fmt.Sprint(b), Bytes: [2]int64{lo, hi},
		First: c.describe(first), Second: c.describe(second),
	})
}

// describe names an access: the dispatch's kernel with all its arguments and
// their access kinds, marking the one involved, or the host action.
func (c *checker) describe(a access) string {
	if a.node < 0 {
		return "unknown access"
	}
	n := &c.nodes[a.node]
	if n.kind != nodeDispatch {
		return n.what
	}
	var b strings.Builder
	arg := func(i int, name string, mode primitives.Access, buf any) {
		if i > 0 {
			b.WriteString(", ")
		}
		mark := ""
		if i == a.arg {
			mark = "*"
		}
		fmt.Fprintf(&b, "%s%s %s %v", mark, name, mode, buf)
	}
	switch {
	case n.cmd == nil:
		fmt.Fprintf(&b, "dispatch %s(", n.what)
		for i, ta := range n.targs {
			arg(i, ta.Name, ta.Access, ta.Buffer)
		}
	case n.cmd.Kind == runtime.CmdUpload:
		b.WriteString("upload(")
	default:
		fmt.Fprintf(&b, "dispatch %s(", n.cmd.Kernel.Name())
	}
	if n.cmd != nil {
		for i, ba := range n.cmd.Args {
			arg(i, ba.Name, ba.Access, ba.Buffer)
		}
	}
	b.WriteString(")")
	return b.String()
}

var _ runtime.Device = (*Device)(nil)

package cuda

import (
	"bytes"
	"encoding/binary"
	"slices"
	"time"
	"unsafe"

	"github.com/loomrt/loom/runtime"
)

// CUDA graphs. Issuing a command buffer launch by launch costs a driver
// call per dispatch (about 5 µs each on the host); a graph exec runs the
// same launches with one cuGraphLaunch. A queue keys each command buffer by
// its structure: the kernels in order with their grids, groups, shared
// bytes and argument counts. The first command buffer of a structure is
// issued launch by launch; a later one is built into a graph exec (a memset
// node zeroing the status records, then a chain of kernel nodes, each after
// the one before, as the stream would run them), and from then on launched
// as that exec, after the kernel nodes whose argument values (buffer
// pointers, params struct) differ from the exec's are updated with
// cuGraphExecKernelNodeSetParams. Updates affect the later launches only,
// so an exec may be updated while an earlier launch of it runs.
//
// A structure may have several execs: the command buffers of a model's
// layers share one structure with different weights, and updating every
// node would cost as much as launching it. A command buffer takes the exec
// whose values differ in the fewest nodes; when that is more than half of
// them, it gets an exec of its own while the structure has fewer than
// maxExecsPerKey.
//
// The nodes write their status records at fixed addresses, which belong to
// the exec; after the launch they are copied to the command buffer's own
// host records, so errors are reported per command buffer as before. An
// exec is destroyed (evicted, or after a failed update) only once no launch
// of it is in flight. A command buffer the device rejects (a bad dispatch)
// and a structure whose build, update or launch failed are issued launch by
// launch, which reports the same errors as before.

const (
	maxGraphExecs  = 128 // per queue
	maxExecsPerKey = 32
	maxGraphKeys   = 512 // structures remembered per queue, with or without execs
)

// GraphStats counts the CUDA-graph work of a device since it opened.
type GraphStats struct {
	Launches  int64 // command buffers issued as one cuGraphLaunch
	Replays   int64 // of them, lists a replay submits again launched as their own exec (replay_linux.go)
	Captures  int64 // graph execs built
	Updates   int64 // kernel nodes whose arguments changed before a launch
	Evictions int64 // execs dropped to stay within the cache's bounds
	Failures  int64 // failed builds, updates or launches (those command buffers were issued launch by launch)
	// Kernel nodes built to depend on the node before programmatically
	// (SetPDL).
	Programmatic int64
}

// graphCache holds a queue's graph execs by command-buffer structure. With
// q.mu held, inside do.
type graphCache struct {
	keys  map[string]*graphKey
	execs int    // in keys
	clock uint64 // counts launchGraph calls, for least-recently-used eviction
	dead  []*graphExec
	// Scratch for launchGraph: the structure's key, and the command
	// buffer's argument values, launch i's at vals[offs[i]:offs[i+1]].
	key  []byte
	vals []byte
	offs []int

	// The execs of the lists replays submit again, by identity, and
	// launchReplay's scratch.
	replays map[uint64]*replayList
	ups     []*runtime.Command
	binds   []rebind
}

// graphKey is one structure's entry.
type graphKey struct {
	execs  []*graphExec
	used   uint64
	failed bool // issued launch by launch from now on
}

// graphExec is an instantiated graph of one command buffer's launches.
type graphExec struct {
	graph, exec uintptr
	nodes       []uintptr // launch i's kernel node; 0 for a launch without work
	vals        []byte    // the nodes' argument values now, as in graphCache
	offs        []int
	status      *statusBlock   // the nodes' status records (its device side)
	staging     unsafe.Pointer // pinned host memory its upload nodes read (replay_linux.go), or nil
	copies      bool           // its graph copies the status records to status's host side (replay_linux.go)
	inflight    int            // command buffers issued with it and not yet retired
	used        uint64
}

// kernelNodeParams is CUDA_KERNEL_NODE_PARAMS (the first form).
type kernelNodeParams struct {
	fn           uintptr
	grid, block  [3]uint32
	shared       uint32
	_            uint32
	params, extr uintptr
}

// graphEdgeData is CUgraphEdgeData.
type graphEdgeData struct {
	fromPort, toPort, typ uint8
	_                     [5]uint8
}

// memsetNodeParams is CUDA_MEMSET_NODE_PARAMS.
type memsetNodeParams struct {
	dst, pitch         uint64
	value, elementSize uint32
	width, height      uint64
}

// appendKey appends the structure of launches to key. An upload counts by
// its size; a product cuBLASLt runs by its plan, one a shape.
func appendKey(key []byte, launches []launch) []byte {
	for i := range launches {
		l := &launches[i]
		if l.k == nil {
			key = binary.LittleEndian.AppendUint64(key, 0)
			key = binary.LittleEndian.AppendUint64(key, uint64(len(l.data)))
			continue
		}
		key = binary.LittleEndian.AppendUint64(key, uint64(l.function()))
		key = binary.LittleEndian.AppendUint64(key, uint64(uintptr(unsafe.Pointer(l.lt))))
		for _, v := range [...]int{l.grid.X, l.grid.Y, l.grid.Z, l.group.X, l.group.Y, l.group.Z, l.shared, len(l.args)} {
			key = binary.LittleEndian.AppendUint32(key, uint32(v))
		}
	}
	return key
}

// launchGraph launches cb as a graph exec and returns the exec, or returns
// nil if cb is to be issued launch by launch. Inside do, with q.mu held.
func (q *queue) launchGraph(cb *commandBuffer) *graphExec {
	d, c := q.dev, &q.graphs
	if !d.graphs.Load() || d.prof != nil || len(cb.launches) == 0 {
		return nil
	}
	q.reapGraphs()
	c.clock++
	c.key = appendKey(c.key[:0], cb.launches)
	g := c.keys[string(c.key)]
	if g == nil {
		if c.keys == nil {
			c.keys = map[string]*graphKey{}
		}
		c.keys[string(c.key)] = &graphKey{used: c.clock}
		if len(c.keys) > maxGraphKeys {
			q.evictKey()
		}
		return nil
	}
	g.used = c.clock
	if g.failed {
		return nil
	}
	// Uploads are copies from host memory, which a graph cannot hold:
	// those before the first dispatch are issued on the stream before the
	// graph launch (the same order); a list with an upload after a
	// dispatch is issued launch by launch.
	head := 0
	for head < len(cb.launches) && cb.launches[head].k == nil {
		head++
	}
	if slices.ContainsFunc(cb.launches[head:], func(l launch) bool { return l.k == nil }) {
		return nil
	}
	c.vals, c.offs = c.vals[:0], c.offs[:0]
	for i := range cb.launches {
		c.offs = append(c.offs, len(c.vals))
		if i < head {
			continue // an upload: no node
		}
		var err error
		if c.vals, _, err = q.values(&cb.launches[i], c.vals); err != nil {
			return nil // the launch-by-launch path reports it
		}
	}
	c.offs = append(c.offs, len(c.vals))
	e, diff := nearestExec(g, c.vals, c.offs)
	if e == nil || 2*diff > len(cb.launches) && len(g.execs) < maxExecsPerKey {
		ne, err := q.buildGraph(cb.launches, c.vals, c.offs, false)
		if err != nil {
			g.failed = true
			d.graphStats.failures.Add(1)
			return nil
		}
		d.graphStats.captures.Add(1)
		g.execs = append(g.execs, ne)
		c.execs++
		e = ne
		if c.execs > maxGraphExecs {
			q.evictExec(e)
		}
	} else if diff > 0 {
		if err := q.updateGraph(e, cb.launches, c.vals, c.offs); err != nil {
			g.failed = true
			d.graphStats.failures.Add(1)
			q.dropExec(g, e)
			return nil
		}
	}
	for i := range head {
		if err := q.upload(&cb.launches[i]); err != nil {
			return nil // the launch-by-launch path reports it
		}
	}
	t := time.Now()
	err := d.drv.call(d.drv.graphLaunch, e.exec, q.stream)
	d.since(hostLaunch, t)
	if err != nil {
		g.failed = true
		d.graphStats.failures.Add(1)
		q.dropExec(g, e)
		return nil
	}
	d.graphStats.launches.Add(1)
	e.used = c.clock
	return e
}

// nearestExec returns the exec of g whose argument values differ from
// vals in the fewest launches, and that number; nil if g has none.
func nearestExec(g *graphKey, vals []byte, offs []int) (*graphExec, int) {
	var best *graphExec
	bestDiff := len(offs)
	for _, e := range g.execs {
		if bytes.Equal(e.vals, vals) {
			return e, 0
		}
		diff := 0
		for i := 0; i+1 < len(offs) && diff < bestDiff; i++ {
			if !bytes.Equal(e.vals[offs[i]:offs[i+1]], vals[offs[i]:offs[i+1]]) {
				diff++
			}
		}
		if diff < bestDiff {
			best, bestDiff = e, diff
		}
	}
	return best, bestDiff
}

// nodeParams describes launch l's kernel node, its parameters laid out in
// the arena (by put).
func (q *queue) nodeParams(l *launch) kernelNodeParams {
	return kernelNodeParams{
		fn:     l.function(),
		grid:   [3]uint32{uint32(l.grid.X), uint32(l.grid.Y), uint32(l.grid.Z)},
		block:  [3]uint32{uint32(l.group.X), uint32(l.group.Y), uint32(l.group.Z)},
		shared: uint32(l.shared),
		params: uintptr(q.dev.arena),
	}
}

// buildGraph builds and instantiates the graph of launches with the
// argument values vals (see graphCache); with copyBack, a last node copies
// the status records to the host side of the exec's status block, for an
// exec that is never launched while a launch of it is in flight.
func (q *queue) buildGraph(launches []launch, vals []byte, offs []int, copyBack bool) (*graphExec, error) {
	d := q.dev
	n := len(launches)
	st, err := q.statusBlock(n)
	if err != nil {
		return nil, err
	}
	e := &graphExec{status: st, nodes: make([]uintptr, n), vals: slices.Clone(vals), offs: slices.Clone(offs)}
	fail := func(err error) (*graphExec, error) {
		q.destroyExec(e)
		return nil, err
	}
	if err := d.drv.call(d.drv.graphCreate, uintptr(unsafe.Pointer(&e.graph)), 0); err != nil {
		return fail(err)
	}
	words := uint64(n * statusWords)
	zero := memsetNodeParams{dst: st.dev, pitch: 4 * words, elementSize: 4, width: words, height: 1}
	ch := chainer{q: q, e: e, pdl: d.pdl.Load()}
	if err := d.drv.call(d.drv.graphAddMemsetNode, uintptr(unsafe.Pointer(&ch.prev)), e.graph, 0, 0, uintptr(unsafe.Pointer(&zero)), d.ctx); err != nil {
		return fail(err)
	}
	for i := range launches {
		l := &launches[i]
		if l.k == nil || l.grid.Count() == 0 {
			continue // an upload, or a dispatch without work: no node
		}
		if l.lt != nil {
			if err := q.addLtNode(&ch, i, l, vals[offs[i]:offs[i+1]]); err != nil {
				return fail(err)
			}
			continue
		}
		q.put(l.k, vals[offs[i]:offs[i+1]], st.dev+uint64(i*statusWords*4))
		p := q.nodeParams(l)
		if err := ch.add(&e.nodes[i], l.k, &p); err != nil {
			return fail(err)
		}
	}
	if copyBack {
		if err := q.addStatusCopy(&ch); err != nil {
			return fail(err)
		}
	}
	if err := d.drv.call(d.drv.graphInstantiate, uintptr(unsafe.Pointer(&e.exec)), e.graph, 0); err != nil {
		return fail(err)
	}
	return e, nil
}

// chainer adds the kernel nodes of a graph exec one after the other, each
// depending on the node added before it (the memset zeroing the status
// records first), as the stream would run them.
type chainer struct {
	q           *queue
	e           *graphExec
	pdl         bool    // programmatic dependent launch (Device.SetPDL)
	prev        uintptr // the last node added
	afterKernel bool    // prev is a kernel node
}

// programmatic reports whether a kernel node of k that follows a kernel
// node (afterKernel) depends on it programmatically, with PDL on: k may
// then be scheduled while the node before runs, and waits for it (and so
// for every node before) in grid_dependency_wait, its first statement. A
// catalog kernel does (the tests hold each to it); a kernel compiled from
// its own source at first use (kernel.user) does not wait, so it follows
// an ordinary edge, as does every node after a node that is not a kernel
// (the memset): a programmatic edge joins two kernel nodes only.
func programmatic(pdl, afterKernel bool, k *kernel) bool {
	return pdl && afterKernel && !k.user
}

// add adds a kernel node of k with params p after the last node, into
// *node.
func (c *chainer) add(node *uintptr, k *kernel, p *kernelNodeParams) error {
	d := c.q.dev
	if !programmatic(c.pdl, c.afterKernel, k) {
		if err := d.drv.call(d.drv.graphAddKernelNode, uintptr(unsafe.Pointer(node)), c.e.graph, uintptr(unsafe.Pointer(&c.prev)), 1, uintptr(unsafe.Pointer(p))); err != nil {
			return err
		}
	} else {
		// cuGraphAddKernelNode's dependencies are ordinary edges: the node
		// is added without any, then its programmatic edge.
		if err := d.drv.call(d.drv.graphAddKernelNode, uintptr(unsafe.Pointer(node)), c.e.graph, 0, 0, uintptr(unsafe.Pointer(p))); err != nil {
			return err
		}
		edge := graphEdgeData{fromPort: graphPortProgrammatic, typ: graphEdgeProgrammatic}
		if err := d.drv.call(d.drv.graphAddDependencies, c.e.graph, uintptr(unsafe.Pointer(&c.prev)), uintptr(unsafe.Pointer(node)), uintptr(unsafe.Pointer(&edge)), 1); err != nil {
			return err
		}
		d.graphStats.programmatic.Add(1)
	}
	c.prev, c.afterKernel = *node, true
	return nil
}

// addLtNode adds launch i, l, a product cuBLASLt runs, with argument
// values vals, after the last node: a child graph node of its call
// captured, with an ordinary edge (a node after it follows it with one
// too).
func (q *queue) addLtNode(c *chainer, i int, l *launch, vals []byte) error {
	d := q.dev
	g, err := q.ltCapture(l, vals)
	if err != nil {
		d.ltFailed(err)
		return err
	}
	defer d.drv.call(d.drv.graphDestroy, g) // the node holds a copy
	node := &c.e.nodes[i]
	if err := d.drv.call(d.drv.graphAddChildNode, uintptr(unsafe.Pointer(node)), c.e.graph, uintptr(unsafe.Pointer(&c.prev)), 1, g); err != nil {
		return err
	}
	d.ltStats.captures.Add(1)
	c.prev, c.afterKernel = *node, false
	return nil
}

// updateGraph sets the arguments of e's kernel nodes whose values differ
// from vals.
func (q *queue) updateGraph(e *graphExec, launches []launch, vals []byte, offs []int) error {
	for i := range launches {
		seg, cur := vals[offs[i]:offs[i+1]], e.vals[offs[i]:offs[i+1]]
		if e.nodes[i] == 0 || bytes.Equal(seg, cur) {
			continue
		}
		copy(cur, seg)
		if err := q.updateNode(e, &launches[i], i); err != nil {
			return err
		}
	}
	return nil
}

// updateNode sets the arguments of e's kernel node of launch i, l, to its
// values in e.vals.
func (q *queue) updateNode(e *graphExec, l *launch, i int) error {
	d := q.dev
	if l.lt != nil {
		// Captured again with the new pointers: the same plan gives a
		// graph of the same shape, as cuGraphExecChildGraphNodeSetParams
		// requires.
		g, err := q.ltCapture(l, e.vals[e.offs[i]:e.offs[i+1]])
		if err != nil {
			d.ltFailed(err)
			return err
		}
		defer d.drv.call(d.drv.graphDestroy, g)
		if err := d.drv.call(d.drv.graphExecSetChild, e.exec, e.nodes[i], g); err != nil {
			d.ltFailed(err)
			return err
		}
		d.ltStats.captures.Add(1)
		d.graphStats.updates.Add(1)
		return nil
	}
	q.put(l.k, e.vals[e.offs[i]:e.offs[i+1]], e.status.dev+uint64(i*statusWords*4))
	p := q.nodeParams(l)
	if err := d.drv.call(d.drv.graphExecSetKernel, e.exec, e.nodes[i], uintptr(unsafe.Pointer(&p))); err != nil {
		return err
	}
	d.graphStats.updates.Add(1)
	return nil
}

// dropExec removes e from g; it is destroyed once no launch of it is in
// flight.
func (q *queue) dropExec(g *graphKey, e *graphExec) {
	g.execs = slices.DeleteFunc(g.execs, func(x *graphExec) bool { return x == e })
	q.graphs.execs--
	q.graphs.dead = append(q.graphs.dead, e)
}

// evictExec drops the least recently used exec other than keep.
func (q *queue) evictExec(keep *graphExec) {
	var lru *graphExec
	var lruKey *graphKey
	for _, g := range q.graphs.keys {
		for _, e := range g.execs {
			if e != keep && (lru == nil || e.used < lru.used) {
				lru, lruKey = e, g
			}
		}
	}
	if lru != nil {
		q.dropExec(lruKey, lru)
		q.dev.graphStats.evictions.Add(1)
	}
}

// evictKey forgets the least recently used structure, and drops its execs.
func (q *queue) evictKey() {
	var lru string
	var lruKey *graphKey
	for k, g := range q.graphs.keys {
		if lruKey == nil || g.used < lruKey.used {
			lru, lruKey = k, g
		}
	}
	for len(lruKey.execs) > 0 {
		q.dropExec(lruKey, lruKey.execs[0])
		q.dev.graphStats.evictions.Add(1)
	}
	delete(q.graphs.keys, lru)
}

// reapGraphs destroys the dropped execs that no launch in flight uses.
func (q *queue) reapGraphs() {
	c := &q.graphs
	c.dead = slices.DeleteFunc(c.dead, func(e *graphExec) bool {
		if e.inflight > 0 {
			return false
		}
		q.destroyExec(e)
		return true
	})
}

// destroyGraphs destroys every exec, once the queue's work has completed.
func (q *queue) destroyGraphs() {
	for _, g := range q.graphs.keys {
		for _, e := range g.execs {
			q.destroyExec(e)
		}
	}
	for _, r := range q.graphs.replays {
		if r.exec != nil {
			q.destroyExec(r.exec)
		}
	}
	for _, e := range q.graphs.dead {
		q.destroyExec(e)
	}
	q.graphs = graphCache{}
}

// destroyExec destroys e's exec and graph and gives its status block back.
func (q *queue) destroyExec(e *graphExec) {
	d := q.dev
	if e.exec != 0 {
		d.drv.call(d.drv.graphExecDestroy, e.exec)
	}
	if e.graph != 0 {
		d.drv.call(d.drv.graphDestroy, e.graph)
	}
	if e.staging != nil {
		d.drv.call(d.drv.memFreeHost, uintptr(e.staging))
	}
	q.blocks = append(q.blocks, e.status)
}

package cuda

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"reflect"
	"slices"
	"time"
	"unsafe"

	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// Replayed lists. The runtime's replays submit the same lists again and
// again (runtime.CommandList.Replay): the same commands, but for the
// uploads' bytes and the buffers of the arguments the list names in
// Rebound. Such a list gets a graph exec of its own when it is first
// submitted, and every later submission launches it without computing the
// list's structure or comparing its argument values: the uploads' bytes
// are staged, the kernel nodes of rebound arguments whose buffer changed
// are updated, and the exec is launched. The runtime submits such a list
// again only once the host has seen the previous submission complete; one
// that comes while its exec is still in flight (or breaks the contract in
// a way the device sees: other commands, a rebound argument outside the
// list) is issued like any other list, through the structure cache.
//
// The uploads (at the head of the list: a replay binds its inputs first)
// are nodes of the graph too: copy_bytes kernels reading the bytes from
// pinned host memory of the exec's (its staging), where each submission
// copies them on the host. A kernel reads pinned host memory through the
// same pointer as the host on a device with unified addressing (every
// 64-bit process on a GPU of compute capability 2.0 or later); without
// it, the uploads are copies on the stream before the launch. The staging
// is rewritten only while no launch of the exec is in flight. For the same
// reason the exec's graph ends with a copy_bytes node that copies its
// status records to the host side of its status block, where the command
// buffer reads them when it retires: no copy on the stream either.

// maxReplayExecs bounds the identified lists a queue keeps an exec for: a
// list per list set of a plan (4 at most), for the plans in use.
const maxReplayExecs = 64

// replayList is the exec of one identified list.
type replayList struct {
	exec     *graphExec // nil once failed
	launches []launch   // as first submitted; shared, read-only, by the command buffers issued with the exec
	// staged[i] is where upload i's bytes go in exec.staging; nil if the
	// uploads are copies on the stream.
	staged []int
	// early is the union of the weights' buffers of the launches whose
	// bulk GEMV copies early (bulkearly_linux.go), which no rebound
	// argument the list writes may be bound to.
	early addrRanges
	used  uint64
}

// replayOf returns the entry of l if it is an identified list that can be
// launched as its exec now, building the exec when l is first seen. Inside
// do, with q.mu held.
func (q *queue) replayOf(l *runtime.CommandList) *replayList {
	d, c := q.dev, &q.graphs
	if l.Replay == 0 || !d.replays || !d.graphs.Load() || d.prof != nil {
		return nil // a kernel profile times each launch: launch by launch
	}
	r := c.replays[l.Replay]
	if r == nil {
		r = q.newReplay(l)
		if c.replays == nil {
			c.replays = map[uint64]*replayList{}
		}
		c.replays[l.Replay] = r
		if len(c.replays) > maxReplayExecs {
			q.evictReplay(r)
		}
	}
	if r.exec == nil || r.exec.inflight > 0 {
		return nil
	}
	return r
}

// newReplay builds the exec of an identified list, or returns an entry
// without one if the list cannot be a graph (an upload after a dispatch, a
// dispatch the device rejects, a rebound argument outside the list) or
// the build fails.
func (q *queue) newReplay(l *runtime.CommandList) *replayList {
	d, c := q.dev, &q.graphs
	r := &replayList{launches: d.launchesOf(l)}
	ls := r.launches
	r.early = earlyWeights(ls)
	head := 0
	for head < len(ls) && ls[head].k == nil {
		head++
	}
	if len(ls) == head || slices.ContainsFunc(ls[head:], func(l launch) bool { return l.k == nil }) {
		return r
	}
	dispatches := len(ls) - head
	for _, rb := range l.Rebound {
		if rb.Dispatch < 0 || rb.Dispatch >= dispatches || rb.Arg < 0 || rb.Arg >= len(ls[head+rb.Dispatch].args) {
			return r
		}
	}
	nodes, staging, err := q.stage(r, head)
	if err != nil {
		d.graphStats.failures.Add(1)
		return r
	}
	vals, offs := c.vals[:0], c.offs[:0]
	for i := range nodes {
		offs = append(offs, len(vals))
		if nodes[i].k == nil {
			continue // an upload on the stream
		}
		if vals, _, err = q.values(&nodes[i], vals); err != nil {
			break // launch by launch reports it
		}
	}
	offs = append(offs, len(vals))
	c.vals, c.offs = vals, offs
	var e *graphExec
	if err == nil {
		e, err = q.buildGraph(nodes, vals, offs, d.unified && d.kernels[primitives.CopyKernel] != nil)
		if err != nil {
			d.graphStats.failures.Add(1)
		}
	}
	if err != nil {
		r.staged = nil
		if staging != nil {
			d.drv.call(d.drv.memFreeHost, uintptr(staging))
		}
		return r
	}
	d.graphStats.captures.Add(1)
	e.staging, r.exec = staging, e
	return r
}

// stage lays out the staging of r's head uploads and returns the launches
// to build the graph from: r's, with each upload a copy_bytes dispatch
// from the staging (unless the device lacks unified addressing or the
// copy kernel: then the uploads stay copies on the stream, and the
// staging nil).
func (q *queue) stage(r *replayList, head int) ([]launch, unsafe.Pointer, error) {
	d := q.dev
	copyK := d.kernels[primitives.CopyKernel]
	if head == 0 || !d.unified || copyK == nil {
		return r.launches, nil, nil
	}
	at, size, err := stagingLayout(r.launches[:head])
	if err != nil {
		return nil, nil, err
	}
	var staging unsafe.Pointer
	if err := d.drv.call(d.drv.memAllocHost, uintptr(unsafe.Pointer(&staging)), uintptr(max(size, 16))); err != nil {
		return nil, nil, err
	}
	nodes := slices.Clone(r.launches)
	for i := range head {
		dst := r.launches[i].args[0]
		nodes[i] = copyLaunch(copyK, hostBuffer(d, uintptr(staging)+uintptr(at[i]), dst.Size), dst.Buffer.(*buffer), dst.Offset, dst.Size)
	}
	r.staged = at
	return nodes, staging, nil
}

// hostBuffer is n bytes of pinned host memory at p as a buffer that
// kernels may read and write (unified addressing).
func hostBuffer(d *Device, p uintptr, n int64) *buffer {
	return &buffer{dev: d, ptr: uint64(p), n: n}
}

// copyLaunch is a launch of k, copy_bytes, copying n bytes from the start
// of src to dst at offset off.
func copyLaunch(k *kernel, src, dst *buffer, off, n int64) launch {
	cp := primitives.CopyDispatch(primitives.Ref{}, primitives.Ref{}, n)
	return launch{k: k, grid: cp.Grid, group: cp.Group, params: cp.Params,
		args: []runtime.BufferArg{{Buffer: src, Size: n, Access: primitives.Read, Name: "src"}, {Buffer: dst, Offset: off, Size: n, Access: primitives.Write, Name: "dst"}}}
}

// addStatusCopy adds to the graph of ch's exec e, after its last node, a
// copy_bytes node copying the status records to the host side of e's
// status block (pinned host memory, written through the host's pointer):
// a command buffer launched as e then needs no copy on the stream, and
// reads the records there when it retires. Only for an exec never launched
// while a launch of it is in flight (a replayed list's), whose records the
// next launch would otherwise overwrite.
func (q *queue) addStatusCopy(ch *chainer) error {
	d, e := q.dev, ch.e
	st := e.status
	n := int64(len(e.nodes) * statusWords * 4)
	l := copyLaunch(d.kernels[primitives.CopyKernel], &buffer{dev: d, ptr: st.dev, n: n}, hostBuffer(d, uintptr(st.host), n), 0, n)
	vals, _, err := q.values(&l, nil)
	if err != nil {
		return err
	}
	q.put(l.k, vals, st.dev) // copy_bytes reports nothing: any record will do
	p := q.nodeParams(&l)
	var node uintptr
	if err := ch.add(&node, l.k, &p); err != nil {
		return err
	}
	e.copies = true
	return nil
}

// stagingLayout places the bytes of uploads in an exec's staging: upload
// i at byte at[i], of size bytes in all.
func stagingLayout(uploads []launch) (at []int, size int, err error) {
	at = make([]int, len(uploads))
	for i := range uploads {
		u := &uploads[i]
		if _, ok := u.args[0].Buffer.(*buffer); !ok || u.args[0].Size != int64(len(u.data)) {
			return nil, 0, fmt.Errorf("cuda: an upload of %d bytes into %d bytes of a %T", len(u.data), u.args[0].Size, u.args[0].Buffer)
		}
		at[i] = size
		size += (len(u.data) + 15) &^ 15 // 16-byte aligned: copy_bytes moves 16 bytes a thread
	}
	return at, size, nil
}

// rebind is a rebound argument's new value: the device pointer at byte
// off of the exec's values of launch i.
type rebind struct {
	i, off int
	ptr    uint64
}

// launchReplay issues l, an identified list, as r's exec: its uploads, the
// updates of the nodes whose rebound arguments changed, and the launch. It
// returns the exec, or nil if l is to be issued like any other list (it
// does not match r, or an update or the launch failed: then the list's
// identity is issued that way from now on).
func (q *queue) launchReplay(r *replayList, l *runtime.CommandList) *graphExec {
	d, c, e := q.dev, &q.graphs, r.exec
	q.reapGraphs()
	c.clock++
	ups, binds, ok := r.walk(l, c.ups[:0], c.binds[:0])
	defer func() { clear(ups); c.ups, c.binds = ups[:0], binds[:0] }()
	if !ok {
		return nil
	}
	t := time.Now()
	if r.staged != nil {
		r.stageUploads(ups)
	} else {
		for _, u := range ups {
			if err := q.upload(&launch{args: u.Args, data: u.Data}); err != nil {
				return nil // launch by launch reports it
			}
		}
	}
	d.since(hostStage, t)
	fail := func() *graphExec {
		d.graphStats.failures.Add(1)
		c.dead = append(c.dead, e)
		r.exec = nil
		return nil
	}
	t = time.Now()
	for i, b := range binds {
		binary.LittleEndian.PutUint64(e.vals[b.off:], b.ptr)
		if i+1 < len(binds) && binds[i+1].i == b.i {
			continue // the launch's next argument first
		}
		if err := q.updateNode(e, &r.launches[b.i], b.i); err != nil {
			return fail()
		}
	}
	d.since(hostUpdate, t)
	t = time.Now()
	err := d.drv.call(d.drv.graphLaunch, e.exec, q.stream)
	d.since(hostLaunch, t)
	if err != nil {
		return fail()
	}
	d.graphStats.launches.Add(1)
	d.graphStats.replays.Add(1)
	r.used = c.clock
	return e
}

// stageUploads copies the bytes of ups, the uploads walk found, into the
// exec's staging, where its copy_bytes nodes read them.
func (r *replayList) stageUploads(ups []*runtime.Command) {
	for i, u := range ups {
		copy(unsafe.Slice((*byte)(unsafe.Add(r.exec.staging, r.staged[i])), len(u.Data)), u.Data)
	}
}

// walk goes once over l, an identified list, and appends its uploads to
// ups and the rebound arguments whose values differ from the exec's to
// binds, in launch order. It reports false if l does not match r (other
// kernels, grids, groups, shared bytes, params or upload sizes; the
// arguments outside Rebound are the contract's) or a rebound argument is
// not a valid span of a buffer of this device: then l is issued like any
// other list, which reports what is wrong. So is l where a rebound argument
// it writes is bound into the weights' buffer of a launch that copies them
// early (r.early): its launches are derived again, that one late.
func (r *replayList) walk(l *runtime.CommandList, ups []*runtime.Command, binds []rebind) ([]*runtime.Command, []rebind, bool) {
	e := r.exec
	li, di, k := 0, 0, 0
	for p := range l.Passes {
		cmds := l.Passes[p].Commands
		for j := range cmds {
			cmd := &cmds[j]
			switch cmd.Kind {
			case runtime.CmdUpload:
				if li >= len(r.launches) || r.launches[li].k != nil || len(cmd.Data) != len(r.launches[li].data) {
					return ups, binds, false
				}
				ups = append(ups, cmd)
			case runtime.CmdDispatch:
				if li >= len(r.launches) {
					return ups, binds, false
				}
				if x := &r.launches[li]; x.k != cmd.Kernel || x.grid != cmd.Grid || x.group != cmd.Group || x.shared != cmd.Shared || !sameParams(x.k, x.params, cmd.Params) {
					return ups, binds, false
				}
				for ; k < len(l.Rebound) && l.Rebound[k].Dispatch == di; k++ {
					arg := l.Rebound[k].Arg
					if arg < 0 || arg >= len(cmd.Args) {
						return ups, binds, false
					}
					a := cmd.Args[arg]
					b, ok := a.Buffer.(*buffer)
					if !ok || b.span(a.Offset, a.Size) != nil {
						return ups, binds, false
					}
					if rg, _ := bufferRange(b); a.Access.Writes() && r.early.overlaps(rg) {
						return ups, binds, false
					}
					if e.nodes[li] == 0 {
						continue // a dispatch without work
					}
					off := e.offs[li] + 8*arg
					if ptr := b.ptr + uint64(a.Offset); ptr != binary.LittleEndian.Uint64(e.vals[off:]) {
						binds = append(binds, rebind{li, off, ptr})
					}
				}
				di++
			default:
				continue
			}
			li++
		}
	}
	return ups, binds, li == len(r.launches) && k == len(l.Rebound)
}

// sameParams reports whether params a and b of kernel k hold the same
// bytes: the same object (as a replay passes them), or equal copies (as a
// caller that builds its list anew each time does).
func sameParams(k *kernel, a, b any) bool {
	if a == b {
		return true
	}
	if k.params == nil || a == nil || b == nil {
		return false
	}
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if va.Type() != k.paramsPtr || vb.Type() != k.paramsPtr || va.IsNil() || vb.IsNil() {
		return false
	}
	n := int(k.params.Size())
	return bytes.Equal(unsafe.Slice((*byte)(va.UnsafePointer()), n), unsafe.Slice((*byte)(vb.UnsafePointer()), n))
}

// evictReplay forgets the least recently used identified list other than
// keep; its exec is destroyed once no launch of it is in flight.
func (q *queue) evictReplay(keep *replayList) {
	c := &q.graphs
	var lru uint64
	var lruR *replayList
	for id, r := range c.replays {
		if r != keep && (lruR == nil || r.used < lruR.used) {
			lru, lruR = id, r
		}
	}
	if lruR == nil {
		return
	}
	if lruR.exec != nil {
		c.dead = append(c.dead, lruR.exec)
		q.dev.graphStats.evictions.Add(1)
	}
	delete(c.replays, lru)
}

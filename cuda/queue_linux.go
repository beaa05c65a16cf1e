package cuda

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"
	"unsafe"

	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// queue is one CUDA stream. Command buffers are issued to it in commit
// order and so complete in commit order.
type queue struct {
	dev    *Device
	stream uintptr

	mu       sync.Mutex
	inflight []*commandBuffer // committed and not yet seen complete, in commit order
	events   []uintptr        // idle CUevents
	blocks   []*statusBlock   // idle status blocks
	closed   bool
	graphs   graphCache // graph execs by command-buffer structure
	vals     []byte     // launch's scratch for argument values
	ltWork   uint64     // cuBLASLt's workspace on this stream, 0 until first used (cublaslt_linux.go)
}

// NewQueue creates a stream that does not synchronise with the legacy
// default stream.
func (d *Device) NewQueue() (runtime.Queue, error) {
	q := &queue{dev: d}
	err := d.do(func() error {
		return d.drv.call(d.drv.streamCreate, uintptr(unsafe.Pointer(&q.stream)), streamNonBlocking)
	})
	if err != nil {
		return nil, err
	}
	return q, nil
}

// NewFence returns a fence. Stream order already orders every pass after
// every earlier one, so fences carry nothing.
func (q *queue) NewFence() runtime.Fence { return new(fence) }

type fence struct{ _ byte }

func (q *queue) NewEvent() runtime.Event {
	e := &event{q: q}
	e.cond.L = &e.mu
	return e
}

// Close waits for the work committed so far, then destroys the stream and
// the queue's graph execs, idle events and status blocks.
func (q *queue) Close() {
	d := q.dev
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	q.mu.Unlock()
	d.do(func() error {
		err := d.drv.call(d.drv.streamSynchronize, q.stream)
		q.mu.Lock()
		defer q.mu.Unlock()
		q.retire(len(q.inflight), err)
		q.destroyGraphs()
		for _, ev := range q.events {
			d.drv.call(d.drv.eventDestroy, ev)
		}
		for _, b := range q.blocks {
			d.drv.call(d.drv.memFree, uintptr(b.dev))
			d.drv.call(d.drv.memFreeHost, uintptr(b.host))
		}
		q.events, q.blocks = nil, nil
		if q.ltWork != 0 {
			d.drv.call(d.drv.memFree, uintptr(q.ltWork))
			q.ltWork = 0
		}
		return d.drv.call(d.drv.streamDestroy, q.stream)
	})
}

// statusBlock holds the status records of one command buffer's dispatches:
// on the device, where kernels write them, and in pinned host memory, where
// they are copied after the last launch.
type statusBlock struct {
	dev  uint64
	host unsafe.Pointer
	cap  int // records
}

func (b *statusBlock) words() []uint32 {
	return unsafe.Slice((*uint32)(b.host), b.cap*statusWords)
}

// statusBlock returns an idle block of at least n records. Inside do,
// with q.mu held.
func (q *queue) statusBlock(n int) (*statusBlock, error) {
	for i, b := range q.blocks {
		if b.cap >= n {
			q.blocks = append(q.blocks[:i], q.blocks[i+1:]...)
			return b, nil
		}
	}
	b := &statusBlock{cap: 64}
	for b.cap < n {
		b.cap *= 2
	}
	size := uintptr(b.cap * statusWords * 4)
	d := q.dev
	if err := d.drv.call(d.drv.memAlloc, uintptr(unsafe.Pointer(&b.dev)), size); err != nil {
		return nil, err
	}
	if err := d.drv.call(d.drv.memAllocHost, uintptr(unsafe.Pointer(&b.host)), size); err != nil {
		d.drv.call(d.drv.memFree, uintptr(b.dev))
		return nil, err
	}
	return b, nil
}

// cuEvent returns an idle CUevent. Inside do, with q.mu held.
func (q *queue) cuEvent() (uintptr, error) {
	if n := len(q.events); n > 0 {
		ev := q.events[n-1]
		q.events = q.events[:n-1]
		return ev, nil
	}
	var ev uintptr
	d := q.dev
	err := d.drv.call(d.drv.eventCreate, uintptr(unsafe.Pointer(&ev)), eventDisableTiming)
	return ev, err
}

// launch is one dispatch of a command buffer, or an upload (k nil: a copy
// of data into args[0], in stream order).
type launch struct {
	k           *kernel
	grid, group primitives.Dim3
	args        []runtime.BufferArg
	params      any
	shared      int
	data        []byte
	lt          *ltPlan // where cuBLASLt runs the dispatch's product instead of k (cublaslt_linux.go)
	early       bool    // its bulk GEMV copies weights before grid_dependency_wait (bulkearly_linux.go)
}

// name names the launch's work in a kernel profile: the kernel, with
// "+mma" for its tensor-core variant, "+bulk" and "+bulk-early" for its
// bulk variants, and "+cublaslt" where cuBLASLt runs it.
func (l *launch) name() string {
	switch f := l.function(); {
	case l.lt != nil:
		return l.k.name + "+cublaslt"
	case f == l.k.bulkEarly && f != 0:
		return l.k.name + "+bulk-early"
	case f == l.k.bulk:
		return l.k.name + "+bulk"
	case f != l.k.fn:
		return l.k.name + "+mma"
	}
	return l.k.name
}

// function is the CUfunction to launch: the kernel's tensor-core variant
// where the lowering asked for it (the MMA of primitives.MatMulParams,
// MatMulSiLUMulParams or AddRMSNormLinearParams, with Caps.TensorCores;
// of the bulk variants the early one where the launch may copy early),
// else the catalog kernel. The variants take the same
// parameters, and the lowering sets MMA only for products whose kernel has
// one (float16, bfloat16).
func (l *launch) function() uintptr {
	mma, ring, bulk := false, false, false
	switch p := l.params.(type) {
	case *primitives.MatMulParams:
		mma, ring, bulk = p.MMA == 1, p.Ring == 1, p.Bulk > 0
	case *primitives.MatMulSiLUMulParams:
		mma, ring, bulk = p.MMA == 1, p.Ring == 1, p.Bulk > 0
	case *primitives.AddRMSNormLinearParams:
		mma, bulk = p.MMA == 1, p.Bulk > 0
	}
	if ring && l.k.ring != 0 {
		return l.k.ring
	}
	if bulk && l.k.bulk != 0 {
		if l.early && l.k.bulkEarly != 0 {
			return l.k.bulkEarly
		}
		return l.k.bulk
	}
	if mma && l.k.mma != 0 {
		return l.k.mma
	}
	return l.k.fn
}

type signal struct {
	ev    *event
	value uint64
}

type commandBuffer struct {
	q        *queue
	launches []launch
	signals  []signal

	// Set when issued, with q.mu held:
	done   uintptr // CUevent recorded after the launches
	status *statusBlock
	exec   *graphExec // the graph exec launched instead of the launches, if any
	// execStatus: status is the exec's, whose graph copies the records to
	// its host side itself (replay_linux.go), not one of the queue's.
	execStatus bool

	mu  sync.Mutex
	err error
}

func (cb *commandBuffer) fail(err error) {
	cb.mu.Lock()
	if cb.err == nil {
		cb.err = err
	}
	cb.mu.Unlock()
}

func (cb *commandBuffer) Err() error {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	return cb.err
}

// Submit takes the list's dispatches and uploads as the command buffer's
// launches and issues them (see Device.do), followed by the copy of the
// status records to the host and the completion event. Barriers and fences
// are left out: the stream runs every launch after the previous one has
// completed, which is what each of them asks for at most.
func (q *queue) Submit(l *runtime.CommandList) runtime.Submission {
	cb := &commandBuffer{q: q, signals: make([]signal, 0, len(l.Signals))}
	for _, s := range l.Signals {
		cb.signals = append(cb.signals, signal{s.Event.(*event), s.Value})
	}
	d := q.dev
	defer d.since(hostSubmit, time.Now())
	err := d.do(func() error {
		q.mu.Lock()
		defer q.mu.Unlock()
		if q.closed {
			return fmt.Errorf("cuda: commit to a closed queue: %w", runtime.ErrClosed)
		}
		return q.issue(cb, l)
	})
	if err != nil {
		// Nothing was recorded that the host could wait for: the command
		// buffer is complete, with its error.
		cb.fail(err)
		cb.signal()
	}
	return cb
}

// launchesOf returns l's dispatches and uploads as launches, with the
// products cuBLASLt takes marked (Device.ltPlanOf), and the bulk GEMVs
// that copy their weights early (Device.markBulkEarly). Inside do.
func (d *Device) launchesOf(l *runtime.CommandList) []launch {
	n := 0
	for _, p := range l.Passes {
		n += len(p.Commands)
	}
	ls := make([]launch, 0, n)
	for _, p := range l.Passes {
		for i := range p.Commands {
			switch c := &p.Commands[i]; c.Kind {
			case runtime.CmdDispatch:
				k := c.Kernel.(*kernel)
				ls = append(ls, launch{k: k, grid: c.Grid, group: c.Group, args: c.Args, params: c.Params, shared: c.Shared, lt: d.ltPlanOf(k, c.Params, c.Args)})
			case runtime.CmdUpload:
				ls = append(ls, launch{args: c.Args, data: c.Data})
			}
		}
	}
	d.markBulkEarly(ls, l.Rebound)
	return ls
}

// signal sets cb's events: the host has seen it complete.
func (cb *commandBuffer) signal() {
	for _, s := range cb.signals {
		s.ev.set(s.value)
	}
}

// issue issues l's dispatches and uploads in order as cb's launches: as
// one launch of the list's own graph exec when l is a list replays submit
// again (replay_linux.go), or of a graph exec of its structure when cb
// repeats a structure seen before (graph_linux.go), else launch by launch.
// A dispatch that cannot be launched fails the command buffer and the ones
// after it are skipped; the status copy and the completion event are still
// recorded. Inside do, with q.mu held.
func (q *queue) issue(cb *commandBuffer, l *runtime.CommandList) error {
	d := q.dev
	r := q.replayOf(l)
	if r != nil {
		cb.launches = r.launches // read-only: retire reads the kernels and params
	} else {
		cb.launches = d.launchesOf(l)
	}
	var err error
	cb.status, err = q.statusBlock(max(len(cb.launches), 1))
	if err != nil {
		return err
	}
	n := uintptr(len(cb.launches) * statusWords)
	records := cb.status.dev // where the kernels write their status records
	var e *graphExec
	if r != nil {
		if e = q.launchReplay(r, l); e == nil {
			cb.launches = d.launchesOf(l) // with this submission's uploads
		}
	}
	if e == nil {
		e = q.launchGraph(cb)
	}
	if e != nil {
		cb.exec, records = e, e.status.dev
		e.inflight++
		if e.copies {
			q.blocks = append(q.blocks, cb.status)
			cb.status, cb.execStatus = e.status, true
		}
	} else {
		if n > 0 {
			if err := d.drv.call(d.drv.memsetD32Async, uintptr(cb.status.dev), 0, n, q.stream); err != nil {
				q.blocks = append(q.blocks, cb.status)
				return err
			}
		}
		for i := range cb.launches {
			if err := q.launch(&cb.launches[i], cb.status.dev+uint64(i*statusWords*4)); err != nil {
				cb.fail(err)
				break
			}
		}
		if d.prof != nil {
			d.prof.release()
		}
	}
	if n > 0 && !cb.execStatus {
		if err := d.drv.call(d.drv.memcpyDtoHAsync, uintptr(cb.status.host), uintptr(records), 4*n, q.stream); err != nil {
			cb.fail(err)
		}
	}
	if cb.done, err = q.cuEvent(); err == nil {
		t := time.Now()
		err = d.drv.call(d.drv.eventRecord, cb.done, q.stream)
		d.since(hostRecord, t)
	}
	if err != nil {
		// Without an event, wait here so that the command buffer is known
		// complete.
		if serr := d.drv.call(d.drv.streamSynchronize, q.stream); serr != nil {
			err = errors.Join(err, serr)
		}
		if cb.done != 0 {
			q.events = append(q.events, cb.done)
			cb.done = 0
		}
		if cb.exec != nil {
			cb.exec.inflight--
			cb.exec = nil
		}
		if !cb.execStatus {
			q.blocks = append(q.blocks, cb.status)
		}
		return err
	}
	q.inflight = append(q.inflight, cb)
	for _, s := range cb.signals {
		s.ev.add(s.value, cb)
	}
	return nil
}

// launch checks one dispatch, lays out its kernel parameters in the arena
// and calls cuLaunchKernel.
func (q *queue) launch(l *launch, status uint64) error {
	d := q.dev
	if l.k == nil {
		if d.prof != nil {
			d.prof.release()
		}
		return q.upload(l)
	}
	vals, skip, err := q.values(l, q.vals[:0])
	q.vals = vals
	if err != nil || skip {
		return err
	}
	var start uintptr
	if d.prof != nil {
		d.prof.hold(d, q.stream)
		start = d.prof.event(d, q.stream)
	}
	t := time.Now()
	if l.lt != nil {
		if err = q.ltLaunch(l, vals); err != nil {
			// Loom's kernel runs it instead, under its own name.
			d.ltFailed(err)
			l.lt = nil
		}
	}
	if l.lt == nil {
		q.put(l.k, vals, status)
		err = d.drv.call(d.drv.launchKernel, l.function(),
			uintptr(l.grid.X), uintptr(l.grid.Y), uintptr(l.grid.Z),
			uintptr(l.group.X), uintptr(l.group.Y), uintptr(l.group.Z),
			uintptr(l.shared), q.stream, uintptr(d.arena), 0)
	}
	d.since(hostLaunch, t)
	if d.prof != nil {
		if err == nil {
			d.prof.add(d, l, start, d.prof.event(d, q.stream))
		} else if start != 0 {
			d.prof.free = append(d.prof.free, start)
		}
	}
	if err != nil {
		return launchError(l.k, "grid %v, group %v, %d shared bytes: %v", l.grid, l.group, l.shared, err)
	}
	return nil
}

// upload copies an upload's bytes into its buffer in stream order. From
// pageable memory the driver stages the bytes before it returns, so the
// slice may change afterwards.
func (q *queue) upload(l *launch) error {
	a := l.args[0]
	b := a.Buffer.(*buffer)
	if err := b.span(a.Offset, int64(len(l.data))); err != nil {
		return fmt.Errorf("cuda: upload: %v", err)
	}
	if len(l.data) == 0 {
		return nil
	}
	d := q.dev
	return d.drv.call(d.drv.memcpyHtoDAsync, uintptr(b.ptr)+uintptr(a.Offset), uintptr(unsafe.Pointer(&l.data[0])), uintptr(len(l.data)), q.stream)
}

// launchError is the error of a dispatch of k that cannot be launched.
func launchError(k *kernel, format string, args ...any) error {
	return fmt.Errorf("cuda: kernel %s: %s", k.name, fmt.Sprintf(format, args...))
}

// values checks a dispatch against its kernel and the device's limits and
// appends its argument values to vals: a device pointer per buffer
// argument, then the params struct's bytes. skip reports a dispatch with
// no work, which launches nothing.
func (q *queue) values(l *launch, vals []byte) (_ []byte, skip bool, _ error) {
	d, k := q.dev, l.k
	if len(l.args) != len(k.args) {
		return vals, false, launchError(k, "%d buffer arguments, the catalog has %d", len(l.args), len(k.args))
	}
	if l.grid.Count() == 0 {
		return vals, true, nil
	}
	if l.group.Count() <= 0 || l.group.Count() > d.caps.MaxThreadsPerGroup {
		return vals, false, launchError(k, "threads per group %v outside [1, %d]", l.group, d.caps.MaxThreadsPerGroup)
	}
	if l.grid.X < 0 || l.grid.Y < 0 || l.grid.Z < 0 || l.grid.X > d.maxGrid[0] || l.grid.Y > d.maxGrid[1] || l.grid.Z > d.maxGrid[2] {
		return vals, false, launchError(k, "grid %v outside the device's limits %v", l.grid, d.maxGrid)
	}
	var pbytes []byte
	switch {
	case k.params == nil && l.params != nil:
		return vals, false, launchError(k, "params %T given to a kernel that takes none", l.params)
	case k.params != nil:
		v := reflect.ValueOf(l.params)
		if !v.IsValid() || v.Type() != k.paramsPtr || v.IsNil() {
			return vals, false, launchError(k, "params %T, want *%v", l.params, k.params)
		}
		pbytes = unsafe.Slice((*byte)(v.UnsafePointer()), k.params.Size())
	}
	for _, a := range l.args {
		b := a.Buffer.(*buffer)
		if err := b.span(a.Offset, a.Size); err != nil {
			return vals, false, launchError(k, "argument %s: %v", a.Name, err)
		}
		vals = binary.LittleEndian.AppendUint64(vals, b.ptr+uint64(a.Offset))
	}
	return append(vals, pbytes...), false, nil
}

// put lays out the kernel parameters of a dispatch of k in the arena: the
// array of parameter pointers, then the values from q.values (a device
// pointer per buffer argument, the params struct) and the pointer to the
// dispatch's status record. The driver copies them when it is called.
func (q *queue) put(k *kernel, vals []byte, status uint64) {
	d := q.dev
	arena := unsafe.Slice((*byte)(d.arena), arenaBytes)
	words := unsafe.Slice((*uint64)(d.arena), arenaBytes/8)
	base := uint64(uintptr(d.arena))
	copy(arena[k.valuesOff:], vals)
	p := len(k.args)
	for i := range p {
		words[i] = base + uint64(k.valuesOff+8*i)
	}
	if k.params != nil {
		words[p] = base + uint64(k.paramsOff)
		p++
	}
	words[k.statusOff/8] = status
	words[p] = base + uint64(k.statusOff)
}

// poll retires the command buffers that have completed, without blocking.
// Inside do.
func (q *queue) poll() {
	d := q.dev
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.inflight) > 0 {
		switch r := d.drv.eventQuery.raw(q.inflight[0].done); r {
		case cudaSuccess:
			q.retire(1, nil)
		case cudaNotReady:
			return
		default:
			q.retire(1, d.drv.check(d.drv.eventQuery, r))
		}
	}
}

// waitFor blocks until cb has completed and retires it with the command
// buffers before it.
func (q *queue) waitFor(cb *commandBuffer) {
	// cb.done belongs to q.mu: poll may retire cb, and give its event back
	// for reuse, at any time.
	q.mu.Lock()
	ev := cb.done
	q.mu.Unlock()
	if ev == 0 { // retired already
		return
	}
	d := q.dev
	start := time.Now()
	defer d.since(hostWait, start)
	// The CUevent may have been retired and reused meanwhile (by poll);
	// then this waits for later work, which only delays the return.
	err := d.current(func() error {
		t := time.Now()
		defer d.since(hostSync, t)
		return d.drv.call(d.drv.eventSynchronize, ev)
	})
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, x := range q.inflight {
		if x == cb {
			q.retire(i+1, err)
			break
		}
	}
}

// retire marks the first n in-flight command buffers complete: each takes
// the first bad index its kernels reported as its error (or err), gives its
// event and status block back, and signals its events. With q.mu held.
func (q *queue) retire(n int, err error) {
	for _, cb := range q.inflight[:n] {
		if err != nil {
			cb.fail(err)
		}
		if cb.status != nil {
			w := cb.status.words()
			index := 0 // of the list's dispatch, uploads not counted
			for i := range cb.launches {
				l := &cb.launches[i]
				if l.k == nil {
					continue // an upload has no status record
				}
				if err := statusError(l.k.name, l.k.args, l.params, w[i*statusWords:(i+1)*statusWords]); err != nil {
					cb.fail(&runtime.DispatchError{Index: index, Err: err})
					break
				}
				index++
			}
			if !cb.execStatus {
				q.blocks = append(q.blocks, cb.status)
			}
			cb.status = nil
		}
		if cb.exec != nil {
			cb.exec.inflight--
			cb.exec = nil
		}
		if cb.done != 0 {
			q.events = append(q.events, cb.done)
			cb.done = 0
		}
		cb.signal()
	}
	q.inflight = q.inflight[n:]
}

// event is a counter that command buffers set as they complete. Its value
// is a completion frontier because the runtime signals it only from command
// buffers of the queue that created it, which complete in commit order.
type event struct {
	q *queue

	mu      sync.Mutex
	cond    sync.Cond // broadcast when a signal is added or the value grows
	value   uint64
	pending []pendingSignal // issued signals not yet reached, in commit order
}

type pendingSignal struct {
	value uint64
	cb    *commandBuffer
}

// add records that cb, just issued, will set the event to value. With q.mu
// held, so that retiring cb cannot come first.
func (e *event) add(value uint64, cb *commandBuffer) {
	e.mu.Lock()
	e.pending = append(e.pending, pendingSignal{value, cb})
	e.mu.Unlock()
	e.cond.Broadcast()
}

// set raises the value to v.
func (e *event) set(v uint64) {
	e.mu.Lock()
	if v > e.value {
		e.value = v
		k := 0
		for k < len(e.pending) && e.pending[k].value <= v {
			k++
		}
		e.pending = e.pending[k:]
	}
	e.mu.Unlock()
	e.cond.Broadcast()
}

// Wait blocks until the value is at least v: it waits for the first
// command buffer that signals a value of at least v, once one is committed.
func (e *event) Wait(v uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for e.value < v {
		var cb *commandBuffer
		for _, p := range e.pending {
			if p.value >= v {
				cb = p.cb
				break
			}
		}
		if cb == nil {
			e.cond.Wait()
			continue
		}
		e.mu.Unlock()
		cb.q.waitFor(cb)
		e.mu.Lock()
	}
}

// Value retires the command buffers that have completed and returns the
// value.
func (e *event) Value() uint64 {
	q := e.q
	start := time.Now()
	q.dev.do(func() error {
		q.poll()
		return nil
	})
	q.dev.since(hostPoll, start)
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.value
}

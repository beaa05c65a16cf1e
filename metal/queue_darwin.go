//go:build darwin

package metal

import (
	"errors"
	"fmt"
	"reflect"
	goruntime "runtime"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego/objc"

	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// queue is an MTLCommandQueue.
//
// A command buffer is recorded in Go while the runtime encodes it and turned
// into Metal calls in Commit, in one go: one autorelease pool on one locked
// OS thread per command buffer, whichever goroutine the runtime encodes on.
type queue struct {
	dev *Device
	obj objc.ID

	inflight sync.WaitGroup // committed command buffers not yet completed

	mu         sync.Mutex
	statusFree []*buffer // status buffers of completed command buffers
	closed     bool
}

// Close waits for the committed command buffers to complete and releases
// the queue and its status buffers.
// Closing twice does nothing; command buffers committed afterwards fail
// with runtime.ErrClosed.
func (q *queue) Close() {
	q.mu.Lock()
	closed := q.closed
	q.closed = true
	q.mu.Unlock()
	if closed {
		return
	}
	q.inflight.Wait()
	q.mu.Lock()
	for _, b := range q.statusFree {
		b.Release()
	}
	q.statusFree = nil
	q.mu.Unlock()
	msgVoid(q.obj, selRelease)
}

func (q *queue) NewCommandBuffer() runtime.CommandBuffer {
	return &commandBuffer{q: q, done: make(chan struct{})}
}

// fence is an MTLFence.
type fence struct{ obj objc.ID }

func (q *queue) NewFence() runtime.Fence {
	f := &fence{}
	withPool(func() { f.obj = msgID(q.dev.obj, selNewFence) })
	if f.obj == 0 {
		// The Queue interface has no error here, and encoding without the
		// fence would silently drop an ordering.
		panic("metal: the device could not create an MTLFence")
	}
	// A fence in use is referenced by the recorded command buffer until it
	// completes, so it cannot be collected while the GPU uses it.
	goruntime.AddCleanup(f, func(obj objc.ID) { msgVoid(obj, selRelease) }, f.obj)
	return f
}

func (q *queue) NewEvent() runtime.Event {
	e := &event{failed: map[uint64]bool{}}
	e.cond.L = &e.mu
	withPool(func() { e.obj = msgID(q.dev.obj, selNewSharedEvent) })
	if e.obj == 0 {
		// Without the event no evaluation could ever be seen to complete.
		panic("metal: the device could not create an MTLSharedEvent")
	}
	return e
}

// statusBuffer returns a zeroed status buffer for n dispatches.
func (q *queue) statusBuffer(n int) (*buffer, error) {
	size := int64(max(n, 1) * statusWords * 4)
	q.mu.Lock()
	for i, b := range q.statusFree {
		if b.Len() >= size {
			q.statusFree = append(q.statusFree[:i], q.statusFree[i+1:]...)
			q.mu.Unlock()
			clear(b.data[:size])
			return b, nil
		}
	}
	q.mu.Unlock()
	b, err := q.dev.NewBuffer(max(size, 4096))
	if err != nil {
		return nil, err
	}
	buf := b.(*buffer)
	clear(buf.data)
	return buf, nil
}

func (q *queue) putStatus(b *buffer) {
	q.mu.Lock()
	q.statusFree = append(q.statusFree, b)
	q.mu.Unlock()
}

// event is an MTLSharedEvent. Command buffer k waits on the GPU for value
// k−1 before it signals k, so the value is a completion frontier. The host
// waits on a condition that every completion handler broadcasts.
type event struct {
	obj    objc.ID
	mu     sync.Mutex
	cond   sync.Cond
	failed map[uint64]bool // values of failed command buffers, not yet reached
}

// Value returns the event's signalled value.
func (e *event) Value() uint64 { return msgU64(e.obj, selSignaledValue) }

// Wait blocks until the value is at least v.
func (e *event) Wait(v uint64) {
	e.mu.Lock()
	for e.Value() < v {
		e.cond.Wait()
	}
	e.mu.Unlock()
}

// complete runs when a command buffer that signals v has completed. A failed
// command buffer may never have run its signal; the host signals for it once
// the frontier reaches v−1, so that neither the host nor later command
// buffers (which wait for v on the GPU) wait forever.
func (e *event) complete(v uint64, failed bool) {
	e.mu.Lock()
	if failed {
		e.failed[v] = true
	}
	cur := e.Value()
	for e.failed[cur+1] {
		cur++
		msgVoidU64(e.obj, selSetSignaledValue, cur)
	}
	for x := range e.failed {
		if x <= cur {
			delete(e.failed, x)
		}
	}
	e.mu.Unlock()
	e.cond.Broadcast()
}

type opKind uint8

const (
	opDispatch opKind = iota
	opBarrier
	opWait
	opUpdate
)

// op is one recorded command of a pass.
type op struct {
	kind   opKind
	k      *kernel
	grid   primitives.Dim3
	group  primitives.Dim3
	args   []runtime.BufferArg
	params any
	shared int
	fence  *fence
}

type signal struct {
	ev    *event
	value uint64
}

type commandBuffer struct {
	q       *queue
	passes  [][]op
	signals []signal

	// Set by Commit, read by the completion handler.
	obj        objc.ID
	status     *buffer
	dispatches []*op // in status-record order

	err  error         // the first encoding or execution error
	done chan struct{} // closed once the command buffer has completed
}

func (cb *commandBuffer) NewPass() runtime.Encoder {
	cb.passes = append(cb.passes, nil)
	return &encoder{cb: cb, pass: len(cb.passes) - 1}
}

func (cb *commandBuffer) Signal(ev runtime.Event, value uint64) {
	cb.signals = append(cb.signals, signal{ev.(*event), value})
}

// Err waits for the completion handler, which is at most a moment behind the
// event that showed the command buffer complete.
func (cb *commandBuffer) Err() error {
	<-cb.done
	return cb.err
}

// Commit encodes the recorded passes into a Metal command buffer and
// commits it.
func (cb *commandBuffer) Commit() {
	cb.q.inflight.Add(1)
	cb.q.mu.Lock()
	closed := cb.q.closed
	cb.q.mu.Unlock()
	if closed {
		cb.finish(fmt.Errorf("metal: commit after Close: %w", runtime.ErrClosed), true)
		return
	}
	withPool(func() {
		if err := cb.encode(); err != nil {
			cb.finish(err, true)
		}
	})
}

func (cb *commandBuffer) encode() error {
	q, d := cb.q, cb.q.dev
	for i := range cb.passes {
		for j := range cb.passes[i] {
			if o := &cb.passes[i][j]; o.kind == opDispatch {
				cb.dispatches = append(cb.dispatches, o)
			}
		}
	}
	status, err := q.statusBuffer(len(cb.dispatches))
	if err != nil {
		return err
	}
	cb.status = status
	obj := msgID(q.obj, selCommandBufferUnretained)
	if obj == 0 {
		return errors.New("metal: the queue gave no command buffer")
	}
	// The command buffer is autoreleased; keep it until its completion
	// handler has run.
	cb.obj = msgID(obj, selRetain)
	n := 0
	for _, pass := range cb.passes {
		enc := msgIDU64(obj, selComputeEncoderWithType, dispatchTypeConcurrent)
		if enc == 0 {
			msgVoid(obj, selRelease)
			return errors.New("metal: the command buffer gave no compute encoder")
		}
		for i := range pass {
			o := &pass[i]
			switch o.kind {
			case opDispatch:
				if err := cb.encodeDispatch(enc, o, n); err != nil && cb.err == nil {
					// The dispatch is left out; the evaluation fails with err.
					cb.err = err
				}
				n++
			case opBarrier:
				msgVoidU64(enc, selMemoryBarrierWithScope, barrierScopeBuffers)
			case opWait:
				msgVoidID(enc, selWaitForFence, o.fence.obj)
			case opUpdate:
				msgVoidID(enc, selUpdateFence, o.fence.obj)
			}
		}
		msgVoid(enc, selEndEncoding)
	}
	for _, s := range cb.signals {
		if s.value > 0 {
			msgVoidIDU64(obj, selEncodeWaitForEvent, s.ev.obj, s.value-1)
		}
		msgVoidIDU64(obj, selEncodeSignalEvent, s.ev.obj, s.value)
	}
	d.inflight.Store(cb.obj, cb)
	msgVoidID(obj, selAddCompletedHandler, objc.ID(d.handler))
	msgVoid(obj, selCommit)
	return nil
}

// encodeDispatch binds a dispatch's pipeline, buffers, params and status
// record, and dispatches its threadgroups. Arguments the GPU cannot be
// trusted with are an error, and nothing is encoded.
func (cb *commandBuffer) encodeDispatch(enc objc.ID, o *op, index int) error {
	d, k := cb.q.dev, o.k
	fail := func(format string, args ...any) error {
		return fmt.Errorf("metal kernel %s: %s", k.name, fmt.Sprintf(format, args...))
	}
	if n := o.group.Count(); n <= 0 || n > k.maxThreads {
		return fail("%d threads per threadgroup, the pipeline allows 1 to %d", n, k.maxThreads)
	}
	if o.grid.X <= 0 || o.grid.Y <= 0 || o.grid.Z <= 0 {
		return fail("grid %+v is empty", o.grid)
	}
	shared := (o.shared + 15) &^ 15 // Metal wants multiples of 16 bytes
	if o.shared < 0 || shared > d.caps.MaxSharedBytes {
		return fail("%d bytes of threadgroup memory, the device has %d", o.shared, d.caps.MaxSharedBytes)
	}
	if len(o.args) != k.args {
		return fail("%d buffer arguments, the catalog has %d", len(o.args), k.args)
	}
	var params unsafe.Pointer
	var size uintptr
	switch v := reflect.ValueOf(o.params); {
	case k.params == nil && o.params != nil:
		return fail("params %T given to a kernel that takes none", o.params)
	case k.params != nil && (!v.IsValid() || v.Type() != k.params || v.IsNil()):
		return fail("params %T, want %v", o.params, k.params)
	case k.params != nil:
		params, size = v.UnsafePointer(), v.Elem().Type().Size()
		if size > 4096 {
			return fail("params %T are %d bytes; setBytes takes at most 4096", o.params, size)
		}
	}
	for _, a := range o.args {
		b, ok := a.Buffer.(*buffer)
		if !ok || b.dev != d {
			return fail("argument %s is not a buffer of this device", a.Name)
		}
		if err := b.span(a.Offset, int(a.Size)); err != nil {
			return fail("argument %s: %v", a.Name, err)
		}
	}
	msgVoidID(enc, selSetPipelineState, k.pso)
	for i, a := range o.args {
		msgSetBuffer(enc, selSetBuffer, a.Buffer.(*buffer).obj, uint64(a.Offset), uint64(i))
	}
	if params != nil {
		msgSetBytes(enc, selSetBytes, params, uint64(size), uint64(len(o.args)))
	}
	msgSetBuffer(enc, selSetBuffer, cb.status.obj, uint64(index*statusWords*4), statusIndex)
	if shared > 0 {
		msgVoidU64U64(enc, selSetThreadgroupMemory, uint64(shared), 0)
	}
	msgDispatch(enc, selDispatchThreadgroups,
		mtlSize{uint64(o.grid.X), uint64(o.grid.Y), uint64(o.grid.Z)},
		mtlSize{uint64(o.group.X), uint64(o.group.Y), uint64(o.group.Z)})
	return nil
}

// completed is the completion handler of every command buffer.
func (d *Device) completed(obj objc.ID) {
	v, ok := d.inflight.LoadAndDelete(obj)
	if !ok {
		return
	}
	cb := v.(*commandBuffer)
	var err error
	failed := msgU64(obj, selStatus) == commandBufferStatusError
	if failed {
		err = fmt.Errorf("metal: command buffer failed: %v", nsError(msgID(obj, selError)))
	} else {
		err = cb.kernelError()
	}
	msgVoid(obj, selRelease)
	cb.finish(err, failed)
}

// kernelError reports the first dispatch whose kernel found a bad index.
func (cb *commandBuffer) kernelError() error {
	words := unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(cb.status.data))), len(cb.dispatches)*statusWords)
	for i, o := range cb.dispatches {
		if err := statusError(o.k.name, o.args, words[i*statusWords:(i+1)*statusWords]); err != nil {
			return &runtime.DispatchError{Index: i, Err: err}
		}
	}
	return nil
}

// finish records the outcome, recycles the status buffer, advances the
// events and releases the recorded passes (and with them the arguments,
// params and fences the unretained command buffer relied on).
func (cb *commandBuffer) finish(err error, failed bool) {
	if cb.err == nil {
		cb.err = err
	}
	if cb.status != nil {
		cb.q.putStatus(cb.status)
		cb.status = nil
	}
	cb.passes, cb.dispatches = nil, nil
	for _, s := range cb.signals {
		s.ev.complete(s.value, failed)
	}
	close(cb.done)
	cb.q.inflight.Done()
}

type encoder struct {
	cb   *commandBuffer
	pass int
}

func (e *encoder) add(o op) { e.cb.passes[e.pass] = append(e.cb.passes[e.pass], o) }

func (e *encoder) Dispatch(k runtime.Kernel, grid, group primitives.Dim3, args []runtime.BufferArg, params any, shared int) {
	e.add(op{kind: opDispatch, k: k.(*kernel), grid: grid, group: group, args: args, params: params, shared: shared})
}
func (e *encoder) Barrier()                    { e.add(op{kind: opBarrier}) }
func (e *encoder) WaitFence(f runtime.Fence)   { e.add(op{kind: opWait, fence: f.(*fence)}) }
func (e *encoder) UpdateFence(f runtime.Fence) { e.add(op{kind: opUpdate, fence: f.(*fence)}) }
func (e *encoder) End()                        {}

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
// A submitted command list is turned into Metal calls in Submit, in one go:
// one autorelease pool on one locked OS thread per command buffer, whichever
// goroutine the runtime encodes on.
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

type commandBuffer struct {
	q    *queue
	list *runtime.CommandList

	// Set by Submit, read by the completion handler.
	obj        objc.ID
	status     *buffer
	dispatches []*runtime.Command // in status-record order
	staged     []bool             // per dispatch: the copy of an upload
	staging    []*buffer          // the bytes of the list's uploads

	err  error         // the first encoding or execution error
	done chan struct{} // closed once the command buffer has completed
}

// Err waits for the completion handler, which is at most a moment behind the
// event that showed the command buffer complete.
func (cb *commandBuffer) Err() error {
	<-cb.done
	return cb.err
}

// Submit encodes the list into a Metal command buffer and commits it.
func (q *queue) Submit(l *runtime.CommandList) runtime.Submission {
	cb := &commandBuffer{q: q, list: l, done: make(chan struct{})}
	q.inflight.Add(1)
	q.mu.Lock()
	closed := q.closed
	q.mu.Unlock()
	if closed {
		cb.finish(fmt.Errorf("metal: commit after Close: %w", runtime.ErrClosed), true)
		return cb
	}
	withPool(func() {
		if err := cb.encode(); err != nil {
			cb.finish(err, true)
		}
	})
	return cb
}

func (cb *commandBuffer) encode() error {
	q, d := cb.q, cb.q.dev
	// An upload becomes a copy from a staging buffer that no GPU work uses
	// into its destination, dispatched where the upload stands, so that it
	// is ordered exactly like the dispatch that writes the range.
	var uploads []runtime.Command
	for _, p := range cb.list.Passes {
		for i := range p.Commands {
			if p.Commands[i].Kind == runtime.CmdUpload && len(p.Commands[i].Data) > 0 {
				c, err := cb.stage(&p.Commands[i])
				if err != nil {
					return err
				}
				uploads = append(uploads, c)
			}
		}
	}
	u := 0
	for _, p := range cb.list.Passes {
		for i := range p.Commands {
			switch c := &p.Commands[i]; c.Kind {
			case runtime.CmdDispatch:
				cb.dispatches = append(cb.dispatches, c)
				cb.staged = append(cb.staged, false)
			case runtime.CmdUpload:
				if len(c.Data) > 0 { // an empty upload writes nothing
					cb.dispatches = append(cb.dispatches, &uploads[u])
					cb.staged = append(cb.staged, true)
					u++
				}
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
	for _, pass := range cb.list.Passes {
		enc := msgIDU64(obj, selComputeEncoderWithType, dispatchTypeConcurrent)
		if enc == 0 {
			msgVoid(obj, selRelease)
			return errors.New("metal: the command buffer gave no compute encoder")
		}
		for i := range pass.Commands {
			switch o := &pass.Commands[i]; o.Kind {
			case runtime.CmdDispatch, runtime.CmdUpload:
				if o.Kind == runtime.CmdUpload && len(o.Data) == 0 {
					continue
				}
				if err := cb.encodeDispatch(enc, cb.dispatches[n], n); err != nil && cb.err == nil {
					// The dispatch is left out; the evaluation fails with err.
					cb.err = err
				}
				n++
			case runtime.CmdBarrier:
				msgVoidU64(enc, selMemoryBarrierWithScope, barrierScopeBuffers)
			case runtime.CmdWaitFence:
				msgVoidID(enc, selWaitForFence, o.Fence.(*fence).obj)
			case runtime.CmdUpdateFence:
				msgVoidID(enc, selUpdateFence, o.Fence.(*fence).obj)
			}
		}
		msgVoid(enc, selEndEncoding)
	}
	for _, s := range cb.list.Signals {
		ev := s.Event.(*event)
		if s.Value > 0 {
			msgVoidIDU64(obj, selEncodeWaitForEvent, ev.obj, s.Value-1)
		}
		msgVoidIDU64(obj, selEncodeSignalEvent, ev.obj, s.Value)
	}
	d.inflight.Store(cb.obj, cb)
	msgVoidID(obj, selAddCompletedHandler, objc.ID(d.handler))
	msgVoid(obj, selCommit)
	return nil
}

// stage copies an upload's bytes into a new shared buffer and returns the
// copy_bytes dispatch that moves them into the upload's destination.
func (cb *commandBuffer) stage(up *runtime.Command) (runtime.Command, error) {
	d := cb.q.dev
	n := int64(len(up.Data))
	k, err := d.Kernel("copy_bytes")
	if err != nil {
		return runtime.Command{}, err
	}
	b, err := d.NewBuffer(max(n, 16))
	if err != nil {
		return runtime.Command{}, err
	}
	src := b.(*buffer)
	copy(src.data, up.Data)
	cb.staging = append(cb.staging, src)
	cp := primitives.CopyDispatch(primitives.In(0), primitives.Out(0), n)
	dst := up.Args[0]
	return runtime.Command{Kind: runtime.CmdDispatch, Kernel: k, Grid: cp.Grid, Group: cp.Group, Params: cp.Params,
		Args: []runtime.BufferArg{
			{Buffer: src, Size: n, Access: primitives.Read, Name: cp.Args[0].Name},
			{Buffer: dst.Buffer, Offset: dst.Offset, Size: n, Access: primitives.Write, Name: cp.Args[1].Name},
		}}, nil
}

// encodeDispatch binds a dispatch's pipeline, buffers, params and status
// record, and dispatches its threadgroups. Arguments the GPU cannot be
// trusted with are an error, and nothing is encoded.
func (cb *commandBuffer) encodeDispatch(enc objc.ID, o *runtime.Command, index int) error {
	d, k := cb.q.dev, o.Kernel.(*kernel)
	fail := func(format string, args ...any) error {
		return fmt.Errorf("metal kernel %s: %s", k.name, fmt.Sprintf(format, args...))
	}
	if n := o.Group.Count(); n <= 0 || n > k.maxThreads {
		return fail("%d threads per threadgroup, the pipeline allows 1 to %d", n, k.maxThreads)
	}
	if o.Grid.X <= 0 || o.Grid.Y <= 0 || o.Grid.Z <= 0 {
		return fail("grid %+v is empty", o.Grid)
	}
	shared := (o.Shared + 15) &^ 15 // Metal wants multiples of 16 bytes
	if o.Shared < 0 || shared > d.caps.MaxSharedBytes {
		return fail("%d bytes of threadgroup memory, the device has %d", o.Shared, d.caps.MaxSharedBytes)
	}
	if len(o.Args) != k.args {
		return fail("%d buffer arguments, the catalog has %d", len(o.Args), k.args)
	}
	var params unsafe.Pointer
	var size uintptr
	switch v := reflect.ValueOf(o.Params); {
	case k.params == nil && o.Params != nil:
		return fail("params %T given to a kernel that takes none", o.Params)
	case k.params != nil && (!v.IsValid() || v.Type() != k.params || v.IsNil()):
		return fail("params %T, want %v", o.Params, k.params)
	case k.params != nil:
		params, size = v.UnsafePointer(), v.Elem().Type().Size()
		if size > 4096 {
			return fail("params %T are %d bytes; setBytes takes at most 4096", o.Params, size)
		}
	}
	for _, a := range o.Args {
		b, ok := a.Buffer.(*buffer)
		if !ok || b.dev != d {
			return fail("argument %s is not a buffer of this device", a.Name)
		}
		if err := b.span(a.Offset, int(a.Size)); err != nil {
			return fail("argument %s: %v", a.Name, err)
		}
	}
	msgVoidID(enc, selSetPipelineState, k.pso)
	for i, a := range o.Args {
		msgSetBuffer(enc, selSetBuffer, a.Buffer.(*buffer).obj, uint64(a.Offset), uint64(i))
	}
	if params != nil {
		msgSetBytes(enc, selSetBytes, params, uint64(size), uint64(len(o.Args)))
	}
	msgSetBuffer(enc, selSetBuffer, cb.status.obj, uint64(index*statusWords*4), statusIndex)
	if shared > 0 {
		msgVoidU64U64(enc, selSetThreadgroupMemory, uint64(shared), 0)
	}
	msgDispatch(enc, selDispatchThreadgroups,
		mtlSize{uint64(o.Grid.X), uint64(o.Grid.Y), uint64(o.Grid.Z)},
		mtlSize{uint64(o.Group.X), uint64(o.Group.Y), uint64(o.Group.Z)})
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
// Its index counts the list's dispatches, not the copies of its uploads.
func (cb *commandBuffer) kernelError() error {
	words := unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(cb.status.data))), len(cb.dispatches)*statusWords)
	index := 0
	for i, o := range cb.dispatches {
		if err := statusError(o.Kernel.Name(), o.Args, words[i*statusWords:(i+1)*statusWords]); err != nil {
			if cb.staged[i] {
				return err
			}
			return &runtime.DispatchError{Index: index, Err: err}
		}
		if !cb.staged[i] {
			index++
		}
	}
	return nil
}

// finish records the outcome, recycles the status buffer, releases the
// staging buffers, advances the events and drops the list (and with it the
// arguments, params and fences the unretained command buffer relied on).
func (cb *commandBuffer) finish(err error, failed bool) {
	if cb.err == nil {
		cb.err = err
	}
	if cb.status != nil {
		cb.q.putStatus(cb.status)
		cb.status = nil
	}
	for _, b := range cb.staging {
		b.Release()
	}
	signals := cb.list.Signals
	cb.list, cb.dispatches, cb.staged, cb.staging = nil, nil, nil, nil
	for _, s := range signals {
		s.Event.(*event).complete(s.Value, failed)
	}
	close(cb.done)
	cb.q.inflight.Done()
}

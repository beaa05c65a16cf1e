package metal

import (
	"fmt"
	"reflect"
	goruntime "runtime"
	"sync"
	"unsafe"

	"github.com/loomrt/loom/metal/mtl"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// queue is an MTLCommandQueue.
//
// A submitted command list is turned into Metal calls in Submit, in one go,
// inside one autorelease pool, whichever goroutine the runtime encodes on.
type queue struct {
	dev *Device
	obj mtl.CommandQueue

	inflight sync.WaitGroup // committed command buffers not yet completed

	mu     sync.Mutex
	spare  []*buffer // status and staging buffers of completed command buffers
	closed bool
}

// Close waits for the committed command buffers to complete and releases
// the queue and its spare buffers.
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
	for _, b := range q.spare {
		b.Release()
	}
	q.spare = nil
	q.mu.Unlock()
	q.obj.Release()
}

// fence is an MTLFence.
type fence struct{ obj mtl.Fence }

func (q *queue) NewFence() runtime.Fence {
	var obj mtl.Fence
	var err error
	q.dev.mtl.AutoreleasePool(func() { obj, err = q.dev.mtl.NewFence() })
	if err != nil {
		// The Queue interface has no error here, and encoding without the
		// fence would silently drop an ordering.
		panic(err)
	}
	f := &fence{obj}
	// A fence in use is referenced by the recorded command buffer until it
	// completes, so it cannot be collected while the GPU uses it.
	goruntime.AddCleanup(f, func(obj mtl.Fence) { obj.Release() }, obj)
	return f
}

func (q *queue) NewEvent() runtime.Event {
	var obj mtl.SharedEvent
	var err error
	q.dev.mtl.AutoreleasePool(func() { obj, err = q.dev.mtl.NewSharedEvent() })
	if err != nil {
		// Without the event no evaluation could ever be seen to complete.
		panic(err)
	}
	e := &event{obj: obj, completed: map[uint64]bool{}}
	e.cond.L = &e.mu
	goruntime.AddCleanup(e, func(obj mtl.SharedEvent) { obj.Release() }, obj)
	return e
}

// spareBuffer returns a buffer of at least n bytes for a status record or
// an upload's bytes: one a completed command buffer gave back, or a new
// one. The host fills it through its contents; no GPU work uses it until
// the command buffer that takes it is committed.
func (q *queue) spareBuffer(n int64) (*buffer, error) {
	q.mu.Lock()
	for i, b := range q.spare {
		if b.n >= n {
			q.spare = append(q.spare[:i], q.spare[i+1:]...)
			q.mu.Unlock()
			return b, nil
		}
	}
	q.mu.Unlock()
	b, err := q.dev.NewBuffer(max(n, 4096))
	if err != nil {
		return nil, err
	}
	return b.(*buffer), nil
}

func (q *queue) putSpare(bs ...*buffer) {
	q.mu.Lock()
	q.spare = append(q.spare, bs...)
	q.mu.Unlock()
}

// event is an MTLSharedEvent. Command buffer k waits on the GPU for value
// k−1 before it signals k, so the value is a completion frontier. The host
// sees a value only once its command buffer's completion handler has run
// (handled), not when the GPU signals it: the handler still reads the
// command list (its dispatches for the status records, its signals), and
// a runtime that saw the value could already be rewriting that list for
// the next replay. The host waits on a condition that every completion
// handler broadcasts.
type event struct {
	obj       mtl.SharedEvent
	mu        sync.Mutex
	cond      sync.Cond
	handled   uint64          // every value up to here has had its completion handled
	completed map[uint64]bool // handled values beyond it → whether their command buffer failed
}

// Value returns the last value whose completion, and every one before it,
// has been handled. That is never past the event's signalled value, which
// is read too: the host's reading of the event is what orders its reads
// of the results after the GPU's writes (and what the checking device
// sees).
func (e *event) Value() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return min(e.handled, e.obj.SignaledValue())
}

// Wait blocks until the value is at least v.
func (e *event) Wait(v uint64) {
	e.mu.Lock()
	for min(e.handled, e.obj.SignaledValue()) < v {
		e.cond.Wait()
	}
	e.mu.Unlock()
}

// complete runs once the command buffer that signals v has completed. A
// failed command buffer may never have run its signal; the host signals for
// it once every value before it has completed, so that neither the host nor
// later command buffers (which wait for v on the GPU) wait forever. Values
// are tracked here, not read from the event, except for a failed command
// buffer's: a later one may already have signalled past it, and the value
// must not go back.
func (e *event) complete(v uint64, failed bool) {
	e.mu.Lock()
	e.completed[v] = failed
	for {
		failed, ok := e.completed[e.handled+1]
		if !ok {
			break
		}
		e.handled++
		delete(e.completed, e.handled)
		if failed && e.obj.SignaledValue() < e.handled {
			e.obj.SetSignaledValue(e.handled)
		}
	}
	e.mu.Unlock()
	e.cond.Broadcast()
}

type commandBuffer struct {
	q    *queue
	list *runtime.CommandList

	// Set by Submit, read by the completion handler.
	obj        mtl.CommandBuffer
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
	q.dev.mtl.AutoreleasePool(func() {
		if err := cb.encode(); err != nil {
			cb.finish(err, true)
		}
	})
	return cb
}

// encode turns the list into a command buffer and commits it. An error
// means nothing was committed.
func (cb *commandBuffer) encode() error {
	q := cb.q
	// An upload becomes a copy from a staging buffer that no GPU work uses
	// into its destination, dispatched where the upload stands, so that it
	// is ordered exactly like the dispatch that writes the range.
	for _, p := range cb.list.Passes {
		for i := range p.Commands {
			switch c := &p.Commands[i]; {
			case c.Kind == runtime.CmdDispatch:
				cb.dispatches = append(cb.dispatches, c)
				cb.staged = append(cb.staged, false)
			case c.Kind == runtime.CmdUpload && len(c.Data) > 0: // an empty upload writes nothing
				cp, err := cb.stage(c)
				if err != nil {
					return err
				}
				cb.dispatches = append(cb.dispatches, cp)
				cb.staged = append(cb.staged, true)
			}
		}
	}
	status, err := q.spareBuffer(int64(max(len(cb.dispatches), 1) * statusWords * 4))
	if err != nil {
		return err
	}
	cb.status = status
	clear(status.obj.Contents()[:len(cb.dispatches)*statusWords*4])
	obj, err := q.obj.CommandBuffer()
	if err != nil {
		return err
	}
	cb.obj = obj
	n, listIndex := 0, 0 // dispatches encoded, of them the list's own
	for _, pass := range cb.list.Passes {
		enc, err := obj.ComputeCommandEncoder()
		if err != nil {
			return err
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
					if !cb.staged[n] {
						cb.err = &runtime.DispatchError{Index: listIndex, Err: err}
					}
				}
				if !cb.staged[n] {
					listIndex++
				}
				n++
			case runtime.CmdBarrier:
				enc.MemoryBarrierWithScopeBuffers()
			case runtime.CmdWaitFence:
				enc.WaitForFence(o.Fence.(*fence).obj)
			case runtime.CmdUpdateFence:
				enc.UpdateFence(o.Fence.(*fence).obj)
			}
		}
		enc.EndEncoding()
	}
	for _, s := range cb.list.Signals {
		ev := s.Event.(*event)
		if s.Value > 0 {
			obj.EncodeWaitForEvent(ev.obj, s.Value-1)
		}
		obj.EncodeSignalEvent(ev.obj, s.Value)
	}
	obj.AddCompletedHandler(cb.completed)
	obj.Commit()
	return nil
}

// stage copies an upload's bytes into a spare buffer and returns the
// copy_bytes dispatch that moves them into the upload's destination.
func (cb *commandBuffer) stage(up *runtime.Command) (*runtime.Command, error) {
	n := int64(len(up.Data))
	k, err := cb.q.dev.Kernel("copy_bytes")
	if err != nil {
		return nil, err
	}
	src, err := cb.q.spareBuffer(n)
	if err != nil {
		return nil, err
	}
	cb.staging = append(cb.staging, src)
	copy(src.obj.Contents(), up.Data)
	cp := primitives.CopyDispatch(primitives.In(0), primitives.Out(0), n)
	dst := up.Args[0]
	return &runtime.Command{Kind: runtime.CmdDispatch, Kernel: k, Grid: cp.Grid, Group: cp.Group, Params: cp.Params,
		Args: []runtime.BufferArg{
			{Buffer: src, Size: n, Access: primitives.Read, Name: cp.Args[0].Name},
			{Buffer: dst.Buffer, Offset: dst.Offset, Size: n, Access: primitives.Write, Name: cp.Args[1].Name},
		}}, nil
}

// encodeDispatch binds a dispatch's pipeline, buffers, params and status
// record, and dispatches its threadgroups. Arguments the GPU cannot be
// trusted with are an error, and nothing is encoded.
func (cb *commandBuffer) encodeDispatch(enc mtl.ComputeCommandEncoder, o *runtime.Command, index int) error {
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
	var params []byte
	switch v := reflect.ValueOf(o.Params); {
	case k.params == nil && o.Params != nil:
		return fail("params %T given to a kernel that takes none", o.Params)
	case k.params != nil && (!v.IsValid() || v.Type() != k.params || v.IsNil()):
		return fail("params %T, want %v", o.Params, k.params)
	case k.params != nil:
		size := v.Elem().Type().Size()
		if size > 4096 {
			return fail("params %T are %d bytes; setBytes takes at most 4096", o.Params, size)
		}
		params = unsafe.Slice((*byte)(v.UnsafePointer()), size)
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
	enc.SetComputePipelineState(k.pso)
	for i, a := range o.Args {
		enc.SetBuffer(a.Buffer.(*buffer).obj, int(a.Offset), int(a.Size), i)
	}
	if params != nil {
		enc.SetBytes(params, len(o.Args))
	}
	enc.SetBuffer(cb.status.obj, index*statusWords*4, statusWords*4, statusIndex)
	if shared > 0 {
		enc.SetThreadgroupMemoryLength(shared, 0)
	}
	enc.DispatchThreadgroups(
		mtl.Size{Width: o.Grid.X, Height: o.Grid.Y, Depth: o.Grid.Z},
		mtl.Size{Width: o.Group.X, Height: o.Group.Y, Depth: o.Group.Z})
	return nil
}

// completed is the command buffer's completion handler.
func (cb *commandBuffer) completed() {
	if err := cb.obj.Error(); err != nil {
		cb.finish(fmt.Errorf("metal: command buffer failed: %w", err), true)
		return
	}
	cb.finish(cb.kernelError(), false)
}

// kernelError reports the first dispatch whose kernel found a bad index.
// Its index counts the list's dispatches, not the copies of its uploads.
func (cb *commandBuffer) kernelError() error {
	data := cb.status.obj.Contents()
	words := unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(data))), len(cb.dispatches)*statusWords)
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

// finish records the outcome, gives the status and staging buffers back,
// advances the events and drops the list (and with it the arguments,
// params and fences the unretained command buffer relied on).
func (cb *commandBuffer) finish(err error, failed bool) {
	if cb.err == nil {
		cb.err = err
	}
	if cb.status != nil {
		cb.q.putSpare(cb.status)
	}
	cb.q.putSpare(cb.staging...)
	signals := cb.list.Signals
	cb.list, cb.dispatches, cb.staged, cb.staging, cb.status = nil, nil, nil, nil, nil
	for _, s := range signals {
		s.Event.(*event).complete(s.Value, failed)
	}
	close(cb.done)
	cb.q.inflight.Done()
}

// Package cpu is Loom's pure-Go device: buffers in host memory, command
// buffers executed asynchronously on worker goroutines, and a kernel per
// built-in dispatch. It runs everywhere and is the default device.
//
// In checking mode (Options.Check) the device runs command buffers, passes
// and dispatches concurrently wherever the encoded ordering allows, and
// reports every pair of conflicting accesses that the ordering leaves
// unordered. See check.go.
package cpu

import (
	"fmt"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// Options configure a CPU device.
type Options struct {
	// Workers is the number of goroutines a kernel spreads its work over;
	// 0 means GOMAXPROCS.
	Workers int
	// Check turns on checking mode: maximal concurrency and hazard reports.
	Check bool
	// Seed, in checking mode, replaces concurrent execution by a seeded
	// adversarial scheduler: one dispatch at a time, in a random order
	// consistent with the encoded ordering, so that a race shows up as wrong
	// numbers too. 0 means concurrent execution.
	Seed uint64
	// Lazy, in checking mode, holds committed work back until the host
	// blocks on an event: the host then never sees work complete early, the
	// schedule that leaves the most accesses unordered by host observation.
	Lazy bool
}

// Device is the CPU device.
type Device struct {
	opts    Options
	workers int
	check   *checker // nil unless checking
	nextBuf atomic.Int64
	closed  atomic.Bool
}

// New returns a CPU device.
func New(opts Options) *Device {
	d := &Device{opts: opts, workers: opts.Workers}
	if d.workers <= 0 {
		d.workers = goruntime.GOMAXPROCS(0)
	}
	if opts.Check {
		d.check = newChecker(opts.Seed, opts.Lazy)
	}
	return d
}

// Caps describes the CPU to primitives.
func (d *Device) Caps() primitives.Caps {
	return primitives.Caps{
		Device:             "cpu",
		SIMDWidth:          8,
		MaxThreadsPerGroup: 1024,
		MaxSharedBytes:     32 << 10,
		Cores:              d.workers,
		// Measured on a 2-core EPYC (docs/BENCHMARKS.md, the split gate):
		// splitting wins below 4 query tokens per core. The kernels keep a
		// token's KV heads together, so a group is a token.
		SplitKV:     primitives.SplitKVGate{GroupsPerCore: 4},
		GEMVMaxRows: primitives.MatMulSmallM,
		// The gated kernel computes its dot products on the GEMV kernel's
		// paths, so it takes the rows that kernel takes.
		GatedGEMVMaxRows: primitives.MatMulSmallM,
		// The quantized gated kernel runs the quantized GEMV kernel's
		// paths too (one row of x, or blocks of qdotXRows).
		QuantGatedMaxRows: primitives.MatMulSmallM,
	}
}

// Hazards returns the hazards checking mode has found so far.
func (d *Device) Hazards() []Hazard {
	if d.check == nil {
		return nil
	}
	return d.check.hazardList()
}

// Close stops the device's scheduler goroutine (checking mode). Work already
// committed still completes; command buffers committed afterwards fail with
// runtime.ErrClosed. Closing twice is harmless.
func (d *Device) Close() {
	d.closed.Store(true)
	if d.check != nil {
		d.check.close()
	}
}

// Workers is the number of goroutines kernels use.
func (d *Device) Workers() int { return d.workers }

// buffer is host memory. Its bytes are 64-byte aligned so kernels can view
// them as any element type.
type buffer struct {
	id       int64
	data     []byte
	dev      *Device
	released atomic.Bool
}

// NewBuffer allocates n bytes.
func (d *Device) NewBuffer(n int64) (runtime.Buffer, error) {
	if n < 0 {
		return nil, fmt.Errorf("cpu: negative buffer size %d", n)
	}
	raw := make([]byte, n+64)
	off := (64 - int(uintptr(unsafe.Pointer(unsafe.SliceData(raw)))&63)) & 63
	return &buffer{id: d.nextBuf.Add(1), data: raw[off : off+int(n) : off+int(n)], dev: d}, nil
}

func (b *buffer) Len() int64 { return int64(len(b.data)) }

func (b *buffer) String() string { return fmt.Sprintf("buffer#%d(%d B)", b.id, len(b.data)) }

// span checks that bytes [off, off+n) may be used. In checking mode a
// released buffer stays usable: the checker reports the use instead.
func (b *buffer) span(off int64, n int) error {
	if b.released.Load() && b.dev.check == nil {
		return fmt.Errorf("cpu: %v used after release", b)
	}
	if off < 0 || off+int64(n) > int64(len(b.data)) {
		return fmt.Errorf("cpu: bytes [%d,+%d) outside %v", off, n, b)
	}
	return nil
}

func (b *buffer) Write(off int64, src []byte) error {
	if err := b.span(off, len(src)); err != nil {
		return err
	}
	if c := b.dev.check; c != nil {
		c.hostAccess(b, off, int64(len(src)), primitives.Write, "host write")
	}
	copy(b.data[off:], src)
	return nil
}

func (b *buffer) Read(off int64, dst []byte) error {
	if err := b.span(off, len(dst)); err != nil {
		return err
	}
	if c := b.dev.check; c != nil {
		c.hostAccess(b, off, int64(len(dst)), primitives.Read, "host read")
	}
	copy(dst, b.data[off:])
	return nil
}

func (b *buffer) Release() {
	if b.released.Swap(true) {
		return
	}
	if c := b.dev.check; c != nil {
		// The bytes stay allocated so that a dispatch racing with the release
		// reads stale memory, not freed memory; the checker reports the race.
		c.hostAccess(b, 0, int64(len(b.data)), releaseAccess, "release")
		return
	}
	b.data = nil
}

// kernel is a registered CPU kernel.
type kernel struct {
	name string
	fn   Kernel
}

func (k *kernel) Name() string { return k.name }

// Kernel returns the kernel registered under name.
func (d *Device) Kernel(name string) (runtime.Kernel, error) {
	fn, ok := Lookup(name)
	if !ok {
		return nil, fmt.Errorf("%w: kernel %q is not implemented by the CPU device", runtime.ErrUnsupportedKernel, name)
	}
	return &kernel{name, fn}, nil
}

// NewQueue returns a queue whose command buffers run on worker goroutines.
func (d *Device) NewQueue() (runtime.Queue, error) {
	q := &queue{dev: d}
	if d.check == nil {
		q.work = make(chan *submission, 1024)
		go q.run()
	}
	return q, nil
}

type queue struct {
	dev    *Device
	fences int
	work   chan *submission // normal mode: submitted lists, in order

	mu     sync.Mutex // orders Submit and Close
	closed bool
}

// Submit runs the list on the worker goroutine (normal mode) or hands it to
// the checker.
func (q *queue) Submit(l *runtime.CommandList) runtime.Submission {
	sub := &submission{q: q, list: l}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.dev.closed.Load() {
		// Nothing will run it: it completes, with the error, once the
		// signals before its own have been reached.
		sub.fail(fmt.Errorf("cpu: commit after Close: %w", runtime.ErrClosed))
		for _, s := range l.Signals {
			ev := s.Event.(*event)
			ev.Wait(s.Value - 1)
			ev.set(s.Value)
		}
		return sub
	}
	if c := q.dev.check; c != nil {
		c.commit(sub)
		return sub
	}
	q.work <- sub
	return sub
}

// Close ends the queue's worker once the work committed so far is done.
// Command buffers committed afterwards fail with runtime.ErrClosed.
func (q *queue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed && q.work != nil {
		close(q.work)
	}
	q.closed = true
}
func (q *queue) NewFence() runtime.Fence { return &fence{} }
func (q *queue) NewEvent() runtime.Event {
	e := &event{dev: q.dev}
	e.cond.L = &e.mu
	return e
}

// run executes submitted lists one after another in submission order.
// Running them in encoding order satisfies every ordering the encoder can
// express.
func (q *queue) run() {
	for sub := range q.work {
		var err error
		index := 0 // of the next dispatch
		for _, p := range sub.list.Passes {
			for i := range p.Commands {
				c := &p.Commands[i]
				if (c.Kind == runtime.CmdDispatch || c.Kind == runtime.CmdUpload) && err == nil {
					err = q.dev.execute(c, index)
				}
				if c.Kind == runtime.CmdDispatch {
					index++
				}
			}
		}
		if err != nil {
			sub.fail(err)
		}
		for _, s := range sub.list.Signals {
			s.Event.(*event).set(s.Value)
		}
		if len(sub.list.Signals) > 0 {
			// A host goroutine woken by the signals waits for a thread
			// while this one and the workers' run the next list, up to
			// the scheduler's 10 ms preemption: on 2 cores a decode step's
			// tokens reached the host one step late as often as not.
			goruntime.Gosched()
		}
	}
}

// fence carries an id: pointers to zero-size values need not be distinct,
// and the checker keys fences by pointer.
type fence struct{ id int }

type event struct {
	dev   *Device
	mu    sync.Mutex
	cond  sync.Cond
	value uint64
}

// Wait blocks until the event reaches v.
func (e *event) Wait(v uint64) {
	if c := e.dev.check; c != nil {
		c.hostBlocks(+1)
		defer c.hostBlocks(-1)
	}
	e.mu.Lock()
	for e.value < v {
		e.cond.Wait()
	}
	seen := e.value
	e.mu.Unlock()
	if c := e.dev.check; c != nil {
		c.hostObserve(e, seen)
	}
}

// Value returns the event's value.
func (e *event) Value() uint64 {
	v := e.current()
	if c := e.dev.check; c != nil && v > 0 {
		c.hostObserve(e, v)
	}
	return v
}

func (e *event) set(v uint64) {
	e.mu.Lock()
	if v > e.value {
		e.value = v
	}
	e.mu.Unlock()
	e.cond.Broadcast()
}

func (e *event) current() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.value
}

// submission is a submitted command list.
type submission struct {
	q     *queue
	list  *runtime.CommandList
	errMu sync.Mutex // checking mode runs dispatches of one list concurrently
	err   error
}

func (sub *submission) fail(err error) {
	sub.errMu.Lock()
	if sub.err == nil {
		sub.err = err
	}
	sub.errMu.Unlock()
}

func (sub *submission) Err() error {
	sub.errMu.Lock()
	defer sub.errMu.Unlock()
	return sub.err
}

// execute runs one dispatch or upload, turning a kernel panic into an error
// so that a kernel bug fails the evaluation instead of the process. A
// dispatch's errors are runtime.DispatchErrors carrying index, its position
// among its list's dispatches, so that the runtime can name the op.
func (d *Device) execute(c *runtime.Command, index int) (err error) {
	if c.Kind == runtime.CmdUpload {
		a := c.Args[0]
		b := a.Buffer.(*buffer)
		if e := b.span(a.Offset, len(c.Data)); e != nil {
			return fmt.Errorf("upload: %v", e)
		}
		copy(b.data[a.Offset:], c.Data)
		return nil
	}
	defer func() {
		if err != nil {
			err = &runtime.DispatchError{Index: index, Err: err}
		}
	}()
	k := c.Kernel.(*kernel)
	call := Call{Grid: c.Grid, Group: c.Group, Params: c.Params, workers: d.workers}
	call.Args = make([]Arg, len(c.Args))
	for i, a := range c.Args {
		b := a.Buffer.(*buffer)
		if e := b.span(a.Offset, int(a.Size)); e != nil {
			return fmt.Errorf("%s argument %s: %v", k.name, a.Name, e)
		}
		call.Args[i] = Arg{Bytes: b.data[a.Offset : a.Offset+a.Size : a.Offset+a.Size], Access: a.Access, Name: a.Name}
	}
	defer func() {
		if r := recover(); r != nil {
			err = panicError("cpu kernel "+k.name, r)
		}
	}()
	if err := k.fn(&call); err != nil {
		return fmt.Errorf("cpu kernel %s: %w", k.name, err)
	}
	return nil
}

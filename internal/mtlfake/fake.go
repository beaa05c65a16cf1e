// Package mtlfake is a recording fake of package mtl, the Objective-C layer
// of Loom's Metal device, so that the device's own Go (package metal) runs
// and is checked on any platform.
//
// The fake records every call of a command buffer (encoders begun and
// ended, buffers and bytes bound at their indices, dispatches, barriers,
// fence updates and waits, event signals and waits, the completed handler,
// the commit) and at the commit turns them into the checking device's
// happens-before model (cpu.Trace) under Metal's rules and nothing more:
//
//   - command buffers of the queue start in commit order, and are otherwise
//     unordered: they may overlap and complete in any order;
//   - dispatches of a pass are ordered only by barriers between them;
//   - a fence update covers the pass's commands before it, a fence wait
//     holds back the pass's commands after it until the latest update of
//     that fence committed before;
//   - an event wait holds back the command buffer's later commands until
//     the event reaches the value, by the GPU's signal or the host's;
//     a signal follows every command encoded before it;
//   - the completed handler runs, at a time of the scheduler's choosing,
//     after the command buffer's last command.
//
// Every access of a dispatch (its buffers by the MSL kernel's parameter
// types: const is a read, anything else a read-write) and of the host
// (Buffer's CopyToContents, CopyFromContents, Release) is checked against
// the earlier conflicting ones: Hazards reports the pairs nothing orders.
// The work runs on the Trace's seeded adversarial scheduler, one dispatch
// at a time in a random order the rules allow, each with the CPU device's
// kernel of the same name, so that results can be checked too. Violations
// reports what the rules forbid outright: an event signalled beyond its
// frontier or set back, calls on an ended encoder or a committed command
// buffer, a dispatch with an unbound argument.
//
// A CPU kernel reports a bad index as an error, not in the Metal kernel's
// status record, so the fake fails the command buffer with it. Tests of
// status records write them through Options.Report.
package mtlfake

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/metal/mslcheck"
	"github.com/loomrt/loom/metal/mtl"
	"github.com/loomrt/loom/primitives"
)

// Options configure a fake device.
type Options struct {
	// Seed seeds the scheduler and the fake's own choices; 0 means 1.
	Seed uint64
	// SIMDWidth is every pipeline's thread execution width; 0 means 32.
	SIMDWidth int
	// Cores is the GPU core count the device reports; 0 reports none.
	Cores int
	// Unsupported makes the device lack the Apple7 GPU family.
	Unsupported bool
	// Fail, if set, is asked at each commit (n counts the device's
	// commits from 0) whether the command buffer fails: its dispatches do
	// no work and it completes with an error. Whether its event signals
	// still run is the fake's seeded choice, as Metal does not say.
	Fail func(n int) bool
	// Report, if set, is asked after each dispatch of a kernel that ran
	// whether it met a bad entry: a non-nil record is written where the
	// dispatch bound StatusIndex, as the MSL kernel would.
	Report      func(kernel string) []uint32
	StatusIndex int
	// Log keeps every call as a line of text (Calls).
	Log bool
}

// Device is a fake id<MTLDevice>.
type Device struct {
	opts  Options
	trace *cpu.Trace
	ids   atomic.Int64
	// inflight counts committed command buffers not yet completed.
	inflight atomic.Int64

	mu         sync.Mutex
	rng        *rand.Rand
	commits    int
	lastStart  int32 // the previous command buffer's start node, -1 if none
	calls      []string
	violations []string
}

var _ mtl.Device = (*Device)(nil)

// New returns a fake device. Close stops its scheduler.
func New(opts Options) *Device {
	seed := max(opts.Seed, 1)
	return &Device{opts: opts, trace: cpu.NewTrace(seed), lastStart: -1,
		rng: rand.New(rand.NewPCG(seed, 0x6d746c))}
}

// Close stops the scheduler once the work it has is done.
func (d *Device) Close() { d.trace.Close() }

// Hold holds back the work committed while on and lets it run, all
// together, when turned off: a GPU that has not started yet.
func (d *Device) Hold(on bool) { d.trace.Hold(on) }

// Hazards returns the pairs of conflicting accesses nothing ordered.
func (d *Device) Hazards() []cpu.Hazard { return d.trace.Hazards() }

// Violations returns the calls Metal's rules forbid, as found so far.
func (d *Device) Violations() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.violations...)
}

// Calls returns every call made so far, one per line (with Options.Log).
func (d *Device) Calls() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.calls...)
}

func (d *Device) violate(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.violations = append(d.violations, fmt.Sprintf(format, args...))
}

func (d *Device) log(format string, args ...any) {
	if !d.opts.Log {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, fmt.Sprintf(format, args...))
}

func (d *Device) Name() string { return "Fake Metal GPU" }

func (d *Device) SupportsFamily(f int) bool {
	return f == mtl.GPUFamilyApple7 && !d.opts.Unsupported
}

func (d *Device) MaxThreadsPerThreadgroup() mtl.Size {
	return mtl.Size{Width: 1024, Height: 1024, Depth: 64}
}
func (d *Device) MaxThreadgroupMemoryLength() int            { return 32 << 10 }
func (d *Device) GPUCoreCount() int                          { return d.opts.Cores }
func (d *Device) AutoreleasePool(fn func())                  { fn() }
func (d *Device) NewCommandQueue() (mtl.CommandQueue, error) { return &queue{d}, nil }

func (d *Device) NewFence() (mtl.Fence, error) {
	f := &fence{d, d.ids.Add(1)}
	d.log("newFence %v", f)
	return f, nil
}

func (d *Device) NewSharedEvent() (mtl.SharedEvent, error) {
	return &Event{dev: d, id: d.ids.Add(1), reached: map[uint64]int32{}, signaller: map[uint64]*CommandBuffer{}}, nil
}

// library is the parsed MSL: each kernel's buffer parameters.
type library struct {
	dev     *Device
	kernels map[string]mslcheck.Kernel
}

// NewLibraryWithSource reads the kernels of src (preprocessed with g++ as
// the Metal compiler would): a pipeline needs its MSL function, whose
// parameter types say which buffers it writes.
func (d *Device) NewLibraryWithSource(src string) (mtl.Library, error) {
	v, _ := parsed.LoadOrStore(src, sync.OnceValues(func() (map[string]mslcheck.Kernel, error) {
		pp, err := mslcheck.Preprocess(src)
		if err != nil {
			return nil, fmt.Errorf("fake metal: %w", err)
		}
		kernels, _, err := mslcheck.ParseKernels(pp)
		if err != nil {
			return nil, fmt.Errorf("fake metal: %w", err)
		}
		return kernels, nil
	}))
	kernels, err := v.(func() (map[string]mslcheck.Kernel, error))()
	if err != nil {
		return nil, err
	}
	return &library{d, kernels}, nil
}

// parsed holds each library source's kernels, read once per process: the
// op tests make a fake device per case, and g++ takes tens of milliseconds.
var parsed sync.Map // source → func() (map[string]mslcheck.Kernel, error)

// pipeline is a kernel's pipeline: its catalog arguments with the access
// the MSL declares, its params type and the CPU kernel that runs it.
type pipeline struct {
	dev    *Device
	name   string
	args   []primitives.Access // by buffer index
	names  []string
	params reflect.Type // *XParams, nil if none
	run    cpu.Kernel
}

func (l *library) NewComputePipeline(name string) (mtl.Pipeline, error) {
	k, ok := l.kernels[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, mtl.ErrNoFunction)
	}
	spec, ok := primitives.LookupKernel(name)
	if !ok {
		return nil, fmt.Errorf("fake metal: kernel %s is not in the primitives catalog", name)
	}
	run, ok := cpu.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("fake metal: kernel %s has no CPU kernel to run in its place", name)
	}
	p := &pipeline{dev: l.dev, name: name, run: run}
	if spec.Params != nil {
		p.params = reflect.TypeOf(spec.Params)
	}
	for i, arg := range spec.Args {
		mode := primitives.Access(0)
		for _, b := range k.Buffers() {
			if b.Index == i && b.Name == arg.Name {
				mode = primitives.ReadWrite
				if strings.Contains(" "+b.Type+" ", " const ") {
					mode = primitives.Read
				}
			}
		}
		if mode == 0 {
			return nil, fmt.Errorf("fake metal: kernel %s has no buffer parameter %s at index %d", name, arg.Name, i)
		}
		p.args, p.names = append(p.args, mode), append(p.names, arg.Name)
	}
	return p, nil
}

func (p *pipeline) ThreadExecutionWidth() int          { return cmp.Or(p.dev.opts.SIMDWidth, 32) }
func (p *pipeline) MaxTotalThreadsPerThreadgroup() int { return 1024 }

// Buffer is a fake shared-storage MTLBuffer. Its bytes are 64-byte aligned
// so that the CPU kernels can view them as any element type; they stay
// allocated after Release, so that a dispatch racing with the release reads
// stale memory, not freed memory, while the Trace reports the race.
type Buffer struct {
	dev      *Device
	id       int64
	data     []byte
	released atomic.Bool
}

func (d *Device) NewBuffer(n int) (mtl.Buffer, error) {
	if n < 0 {
		return nil, fmt.Errorf("fake metal: negative length %d", n)
	}
	raw := make([]byte, n+64)
	off := (64 - int(uintptr(unsafe.Pointer(unsafe.SliceData(raw)))&63)) & 63
	b := &Buffer{dev: d, id: d.ids.Add(1), data: raw[off : off+n : off+n]}
	d.log("newBuffer %v", b)
	return b, nil
}

func (b *Buffer) String() string { return fmt.Sprintf("mtlbuffer#%d(%d B)", b.id, len(b.data)) }

// Contents is the buffer's memory. What the host does through it is not
// traced: the Metal device fills status and staging buffers that no GPU
// work uses yet.
func (b *Buffer) Contents() []byte { return b.data }

func (b *Buffer) CopyToContents(off int, src []byte) {
	b.dev.trace.HostAccess(b, int64(off), int64(len(src)), primitives.Write, "host write")
	copy(b.data[off:], src)
}

func (b *Buffer) CopyFromContents(off int, dst []byte) {
	b.dev.trace.HostAccess(b, int64(off), int64(len(dst)), primitives.Read, "host read")
	copy(dst, b.data[off:])
}

func (b *Buffer) Release() {
	if b.released.Swap(true) {
		b.dev.violate("%v released twice", b)
		return
	}
	b.dev.log("release %v", b)
	b.dev.trace.HostRelease(b, int64(len(b.data)))
}

type fence struct {
	dev *Device
	id  int64
}

func (f *fence) String() string { return fmt.Sprintf("fence#%d", f.id) }
func (f *fence) Release()       { f.dev.log("release %v", f) }

type queue struct{ dev *Device }

func (q *queue) Release() {
	q.dev.log("release queue")
	if n := q.dev.inflight.Load(); n > 0 {
		q.dev.violate("queue released with %d command buffers in flight", n)
	}
}

func (q *queue) CommandBuffer() (mtl.CommandBuffer, error) {
	cb := &CommandBuffer{dev: q.dev, id: q.dev.ids.Add(1)}
	q.dev.log("commandBuffer %v", cb)
	return cb, nil
}

// op is what a recorded call does.
type op uint8

const (
	opBegin op = iota
	opEnd
	opDispatch
	opBarrier
	opUpdateFence
	opWaitFence
	opWaitEvent
	opSignalEvent
)

// call is a recorded call of a command buffer that orders or runs work.
type call struct {
	op    op
	disp  *dispatch
	fence *fence
	event *Event
	value uint64
}

// binding is a buffer bound at an index.
type binding struct {
	buf         *Buffer
	off, length int
}

// dispatch is a dispatch with the encoder's state when it was encoded.
type dispatch struct {
	pso    *pipeline
	args   []binding
	params any
	status binding
	grid   mtl.Size
	group  mtl.Size
}

// CommandBuffer is a fake id<MTLCommandBuffer>.
type CommandBuffer struct {
	dev     *Device
	id      int64
	calls   []call
	enc     *encoder // the open encoder, if any
	handler func()
	state   int // 0 encoding, 1 committed

	failed  bool  // chosen at commit: its work is lost
	last    int32 // the node of its completion, once built
	errMu   sync.Mutex
	err     error
	doneSet atomic.Bool
}

func (cb *CommandBuffer) String() string { return fmt.Sprintf("commandbuffer#%d", cb.id) }

func (cb *CommandBuffer) check(what string) bool {
	if cb.state != 0 {
		cb.dev.violate("%s on %v after its commit", what, cb)
		return false
	}
	return true
}

func (cb *CommandBuffer) ComputeCommandEncoder() (mtl.ComputeCommandEncoder, error) {
	if !cb.check("computeCommandEncoder") {
		return nil, errors.New("fake metal: command buffer already committed")
	}
	if cb.enc != nil {
		cb.dev.violate("%v: a compute encoder begun while another is open", cb)
	}
	cb.enc = &encoder{cb: cb, bytes: map[int][]byte{}}
	cb.calls = append(cb.calls, call{op: opBegin})
	cb.dev.log("%v computeCommandEncoderWithDispatchType:concurrent", cb)
	return cb.enc, nil
}

func (cb *CommandBuffer) EncodeWaitForEvent(e mtl.SharedEvent, v uint64) {
	cb.event("encodeWaitForEvent", opWaitEvent, e, v)
}

func (cb *CommandBuffer) EncodeSignalEvent(e mtl.SharedEvent, v uint64) {
	cb.event("encodeSignalEvent", opSignalEvent, e, v)
}

func (cb *CommandBuffer) event(what string, o op, e mtl.SharedEvent, v uint64) {
	if !cb.check(what) {
		return
	}
	if cb.enc != nil {
		cb.dev.violate("%v: %s while a compute encoder is open", cb, what)
	}
	cb.calls = append(cb.calls, call{op: o, event: e.(*Event), value: v})
	cb.dev.log("%v %s %v value %d", cb, what, e, v)
}

func (cb *CommandBuffer) AddCompletedHandler(fn func()) {
	if !cb.check("addCompletedHandler") {
		return
	}
	prev := cb.handler
	cb.handler = func() {
		if prev != nil {
			prev()
		}
		fn()
	}
	cb.dev.log("%v addCompletedHandler", cb)
}

// Error is the command buffer's error once it has completed.
func (cb *CommandBuffer) Error() error {
	if !cb.doneSet.Load() {
		cb.dev.violate("%v: error read before completion", cb)
	}
	cb.errMu.Lock()
	defer cb.errMu.Unlock()
	return cb.err
}

func (cb *CommandBuffer) fail(err error) {
	cb.errMu.Lock()
	defer cb.errMu.Unlock()
	if cb.err == nil {
		cb.err = err
	}
}

// encoder is a fake id<MTLComputeCommandEncoder>.
type encoder struct {
	cb       *CommandBuffer
	ended    bool
	pso      *pipeline
	bindings [32]binding
	bytes    map[int][]byte
}

func (e *encoder) use(what string) bool {
	if e.ended {
		e.cb.dev.violate("%v: %s on an ended encoder", e.cb, what)
		return false
	}
	return e.cb.check(what)
}

func (e *encoder) SetComputePipelineState(p mtl.Pipeline) {
	if e.use("setComputePipelineState") {
		e.pso = p.(*pipeline)
		e.cb.dev.log("%v setComputePipelineState %s", e.cb, e.pso.name)
	}
}

func (e *encoder) SetBuffer(b mtl.Buffer, off, length, index int) {
	if !e.use("setBuffer") {
		return
	}
	buf := b.(*Buffer)
	if index < 0 || index >= len(e.bindings) || off < 0 || length < 0 || off+length > len(buf.data) {
		e.cb.dev.violate("%v: setBuffer %v offset %d length %d at index %d", e.cb, buf, off, length, index)
		return
	}
	e.bindings[index] = binding{buf, off, length}
	e.cb.dev.log("%v setBuffer %v offset %d length %d index %d", e.cb, buf, off, length, index)
}

// SetBytes copies b, as Metal does.
func (e *encoder) SetBytes(b []byte, index int) {
	if e.use("setBytes") {
		e.bytes[index] = append([]byte(nil), b...)
		e.cb.dev.log("%v setBytes %d bytes index %d", e.cb, len(b), index)
	}
}

func (e *encoder) SetThreadgroupMemoryLength(n, index int) {
	if e.use("setThreadgroupMemoryLength") {
		e.cb.dev.log("%v setThreadgroupMemoryLength %d index %d", e.cb, n, index)
	}
}

func (e *encoder) DispatchThreadgroups(grid, group mtl.Size) {
	if !e.use("dispatchThreadgroups") {
		return
	}
	cb := e.cb
	if e.pso == nil {
		cb.dev.violate("%v: dispatch without a pipeline", cb)
		return
	}
	x := &dispatch{pso: e.pso, grid: grid, group: group}
	for i, name := range e.pso.names {
		if e.bindings[i].buf == nil {
			cb.dev.violate("%v: dispatch of %s with argument %s unbound", cb, e.pso.name, name)
			return
		}
		x.args = append(x.args, e.bindings[i])
	}
	if e.pso.params != nil {
		b, ok := e.bytes[len(e.pso.names)]
		if size := int(e.pso.params.Elem().Size()); !ok || len(b) != size {
			cb.dev.violate("%v: dispatch of %s with %d bytes of params at index %d, want %d", cb, e.pso.name, len(b), len(e.pso.names), size)
			return
		}
		p := reflect.New(e.pso.params.Elem())
		copy(unsafe.Slice((*byte)(p.UnsafePointer()), len(b)), b)
		x.params = p.Interface()
	}
	if si := cb.dev.opts.StatusIndex; si > 0 {
		x.status = e.bindings[si]
	}
	cb.calls = append(cb.calls, call{op: opDispatch, disp: x})
	cb.dev.log("%v dispatchThreadgroups %s grid %v group %v", cb, e.pso.name, grid, group)
}

func (e *encoder) MemoryBarrierWithScopeBuffers() {
	if e.use("memoryBarrierWithScope") {
		e.cb.calls = append(e.cb.calls, call{op: opBarrier})
		e.cb.dev.log("%v memoryBarrierWithScope:buffers", e.cb)
	}
}

func (e *encoder) UpdateFence(f mtl.Fence) {
	if e.use("updateFence") {
		e.cb.calls = append(e.cb.calls, call{op: opUpdateFence, fence: f.(*fence)})
		e.cb.dev.log("%v updateFence %v", e.cb, f)
	}
}

func (e *encoder) WaitForFence(f mtl.Fence) {
	if e.use("waitForFence") {
		e.cb.calls = append(e.cb.calls, call{op: opWaitFence, fence: f.(*fence)})
		e.cb.dev.log("%v waitForFence %v", e.cb, f)
	}
}

func (e *encoder) EndEncoding() {
	if e.use("endEncoding") {
		e.ended = true
		e.cb.enc = nil
		e.cb.calls = append(e.cb.calls, call{op: opEnd})
		e.cb.dev.log("%v endEncoding", e.cb)
	}
}

// Commit turns the recorded calls into the Trace's nodes and schedules
// them.
func (cb *CommandBuffer) Commit() {
	d := cb.dev
	if !cb.check("commit") {
		return
	}
	if cb.enc != nil {
		d.violate("%v: committed with an encoder open", cb)
	}
	cb.state = 1
	d.inflight.Add(1)
	d.log("%v commit", cb)
	d.mu.Lock()
	n := d.commits
	d.commits++
	d.mu.Unlock()
	if d.opts.Fail != nil && d.opts.Fail(n) {
		cb.failed = true
		cb.fail(fmt.Errorf("fake metal: %v failed (injected)", cb))
	}
	// The host commits one command buffer at a time (the runtime encodes
	// under its lock), so lastStart needs no lock held across the Trace's
	// calls, whose lock is taken before d.mu in the scheduler.
	preds := []int32{d.trace.Host(fmt.Sprintf("commit of %v", cb))}
	d.mu.Lock()
	if d.lastStart >= 0 {
		preds = append(preds, d.lastStart) // command buffers start in order
	}
	skip := cb.failed && d.rng.IntN(2) == 0 // a failed command buffer's signals may not run
	d.mu.Unlock()
	start := d.trace.Join(preds...)
	d.mu.Lock()
	d.lastStart = start
	d.mu.Unlock()
	b := &builder{cb: cb, gate: start, skipSignals: skip}
	b.build()
	d.trace.Schedule()
}

// builder turns a command buffer's calls into nodes. An event wait for a
// value that nothing has signalled yet (a failed command buffer's, until
// the host signals it) stops it; the event resumes it when the value is
// reached.
type builder struct {
	cb          *CommandBuffer
	next        int     // the next call
	gate        int32   // what the next command waits for
	ends        []int32 // passes and signals so far
	pass        *cpu.TracePass
	skipSignals bool
}

func (b *builder) build() {
	d, cb := b.cb.dev, b.cb
	for ; b.next < len(cb.calls); b.next++ {
		c := cb.calls[b.next]
		switch c.op {
		case opBegin:
			b.pass = d.trace.Pass(b.gate)
		case opEnd:
			b.ends = append(b.ends, b.pass.End())
			b.pass = nil
		case opDispatch:
			x := c.disp
			args := make([]cpu.TraceArg, len(x.args))
			for i, a := range x.args {
				args[i] = cpu.TraceArg{Buffer: a.buf, Offset: int64(a.off), Size: int64(a.length), Access: x.pso.args[i], Name: x.pso.names[i]}
			}
			b.pass.Dispatch(x.pso.name, args, func() { d.run(cb, x) })
		case opBarrier:
			b.pass.Barrier()
		case opUpdateFence:
			b.pass.UpdateFence(c.fence)
		case opWaitFence:
			b.pass.WaitFence(c.fence)
		case opWaitEvent:
			node, ok := c.event.await(c.value, b)
			if !ok {
				return // resumed by the event
			}
			if node >= 0 {
				b.gate = d.trace.Join(b.gate, node)
			}
		case opSignalEvent:
			c.event.addSignaller(c.value, cb)
			if b.skipSignals {
				continue
			}
			s := d.trace.Join(append([]int32{b.gate}, b.ends...)...)
			c.event.signalNode(c.value, s)
			ev, v := c.event, c.value
			d.trace.At(s, func() { ev.gpuSignal(v) })
			b.ends = append(b.ends, s)
		}
	}
	if b.pass != nil {
		b.ends = append(b.ends, b.pass.End())
	}
	done := d.trace.Join(append([]int32{b.gate}, b.ends...)...)
	cb.last = done
	d.trace.Then(done, cb.complete)
}

// complete runs the completed handlers.
func (cb *CommandBuffer) complete() {
	cb.doneSet.Store(true)
	cb.dev.inflight.Add(-1)
	cb.dev.log("%v completed", cb)
	if cb.handler != nil {
		cb.handler()
	}
}

// run executes a dispatch with the CPU kernel of its name.
func (d *Device) run(cb *CommandBuffer, x *dispatch) {
	if cb.failed {
		return
	}
	c := cpu.Call{Grid: primitives.Dim3{X: x.grid.Width, Y: x.grid.Height, Z: x.grid.Depth},
		Group: primitives.Dim3{X: x.group.Width, Y: x.group.Height, Z: x.group.Depth}, Params: x.params}
	for i, a := range x.args {
		c.Args = append(c.Args, cpu.Arg{Bytes: a.buf.data[a.off : a.off+a.length : a.off+a.length], Access: x.pso.args[i], Name: x.pso.names[i]})
	}
	if err := runKernel(x.pso, &c); err != nil {
		cb.fail(err)
		return
	}
	if d.opts.Report == nil || x.status.buf == nil {
		return
	}
	if w := d.opts.Report(x.pso.name); w != nil {
		out := x.status.buf.data[x.status.off : x.status.off+x.status.length]
		copy(unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(out))), len(out)/4), w)
	}
}

// runKernel runs the CPU kernel, turning a panic into an error.
func runKernel(p *pipeline, c *cpu.Call) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("fake metal: kernel %s panicked: %v", p.name, r)
		}
	}()
	if err := p.run(c); err != nil {
		return fmt.Errorf("fake metal: kernel %s: %w", p.name, err)
	}
	return nil
}

// Event is a fake id<MTLSharedEvent>. reached holds, per value, the node
// once which the value is reached: a GPU signal, or for a value the host
// set, a node after the command buffer that was to signal it.
type Event struct {
	dev *Device
	id  int64

	mu        sync.Mutex
	value     uint64
	reached   map[uint64]int32
	signaller map[uint64]*CommandBuffer // the command buffer that signals each value
	waiting   map[uint64][]*builder     // stopped at a wait for the value
}

func (e *Event) String() string { return fmt.Sprintf("event#%d", e.id) }
func (e *Event) Release()       { e.dev.log("release %v", e) }

// SignaledValue is a host observation: the host is ordered after the
// signal that set the value.
func (e *Event) SignaledValue() uint64 {
	e.mu.Lock()
	v := e.value
	node, ok := e.reached[v]
	e.mu.Unlock()
	if ok {
		e.dev.trace.Host(fmt.Sprintf("observe %v at %d", e, v), node)
	} else {
		e.dev.trace.Host(fmt.Sprintf("observe %v at %d", e, v))
	}
	return v
}

// SetSignaledValue is the host signalling a value; the Metal device does so
// for failed command buffers, once every earlier value has been reached.
func (e *Event) SetSignaledValue(v uint64) {
	e.dev.log("%v setSignaledValue %d", e, v)
	e.mu.Lock()
	if v < e.value {
		e.mu.Unlock()
		e.dev.violate("%v set back from %d to %d", e, e.value, v)
		return
	}
	if v > e.value+1 {
		e.dev.violate("%v set to %d by the host while at %d: the values between have not been reached", e, v, e.value)
	}
	// The scheduler takes e.mu under the Trace's lock (gpuSignal), so the
	// Trace is called with e.mu released. Only completion handlers, which
	// run one at a time, set values.
	from := e.value + 1
	prev, hasPrev := e.reached[from-1]
	e.mu.Unlock()
	var resume []*builder
	for w := from; w <= v; w++ {
		e.mu.Lock()
		n, ok := e.reached[w]
		cb := e.signaller[w]
		e.mu.Unlock()
		if !ok {
			// The host signals a value after the command buffer that was
			// to signal it has completed (in its completed handler).
			var preds []int32
			if hasPrev {
				preds = append(preds, prev)
			}
			if cb != nil && cb.doneSet.Load() {
				preds = append(preds, cb.last)
			}
			n = e.dev.trace.Join(preds...)
		}
		e.mu.Lock()
		e.reached[w] = n
		resume = append(resume, e.waiting[w]...)
		delete(e.waiting, w)
		e.mu.Unlock()
		prev, hasPrev = n, true
	}
	e.mu.Lock()
	e.value = max(e.value, v)
	e.mu.Unlock()
	node := prev
	for _, b := range resume {
		b.resume(node)
	}
	e.dev.trace.Schedule()
}

// resume goes on past the wait that stopped b, the value reached at node.
func (b *builder) resume(node int32) {
	b.next++
	b.gate = b.cb.dev.trace.Join(b.gate, node)
	b.build()
}

// await returns the node at which value v is reached (-1: at the start),
// or stops b until it is.
func (e *Event) await(v uint64, b *builder) (int32, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if v == 0 {
		return -1, true
	}
	if n, ok := e.reached[v]; ok {
		return n, true
	}
	if e.waiting == nil {
		e.waiting = map[uint64][]*builder{}
	}
	e.waiting[v] = append(e.waiting[v], b)
	return 0, false
}

func (e *Event) addSignaller(v uint64, cb *CommandBuffer) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if prev, ok := e.signaller[v]; ok && prev != cb {
		e.dev.violate("%v: value %d signalled by %v and %v", e, v, prev, cb)
	}
	e.signaller[v] = cb
}

// signalNode records that v is reached at node, a GPU signal, and resumes
// the command buffers that wait for it.
func (e *Event) signalNode(v uint64, node int32) {
	e.mu.Lock()
	e.reached[v] = node
	resume := e.waiting[v]
	delete(e.waiting, v)
	e.mu.Unlock()
	for _, b := range resume {
		b.resume(node)
	}
}

// gpuSignal sets the value when a signal runs: the value must not go back,
// and, as every command buffer waits for the value before its own, must
// not skip one.
func (e *Event) gpuSignal(v uint64) {
	e.mu.Lock()
	old := e.value
	if v > old {
		e.value = v
	}
	e.mu.Unlock()
	switch {
	case v < old:
		e.dev.violate("%v signalled %d on the GPU while at %d", e, v, old)
	case v > old+1:
		e.dev.violate("%v signalled %d on the GPU while at %d: the frontier skipped a value", e, v, old)
	}
}

//go:build darwin

package mtl

import (
	"errors"
	"fmt"
	goruntime "runtime"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego/objc"
)

// Default returns the system's default Metal device.
func Default() (Device, error) {
	if err := bind(); err != nil {
		return nil, err
	}
	var obj objc.ID
	withPool(func() { obj = createSystemDefaultDevice() })
	if obj == 0 {
		return nil, errors.New("metal: this Mac has no Metal device")
	}
	d := &device{obj: obj}
	// One block, made once, is every command buffer's completed handler:
	// purego's callback slots are never freed.
	d.handler = objc.NewBlock(func(_ objc.Block, cb objc.ID) {
		if fn, ok := d.handlers.LoadAndDelete(cb); ok {
			fn.(func())()
		}
		msgVoid(cb, selRelease)
	})
	return d, nil
}

type device struct {
	obj      objc.ID
	handler  objc.Block
	handlers sync.Map // id<MTLCommandBuffer> → its handler, until it runs
}

func (d *device) Name() string {
	var s string
	withPool(func() { s = goString(msgID(d.obj, selName)) })
	return s
}

func (d *device) SupportsFamily(f int) bool { return msgBoolU64(d.obj, selSupportsFamily, uint64(f)) }

func (d *device) MaxThreadsPerThreadgroup() Size {
	s := msgSize(d.obj, selMaxThreadsPerGroup)
	return Size{int(s.Width), int(s.Height), int(s.Depth)}
}

func (d *device) MaxThreadgroupMemoryLength() int { return int(msgU64(d.obj, selMaxThreadgroupMemory)) }

func (d *device) GPUCoreCount() int { return gpuCoreCount() }

func (d *device) AutoreleasePool(fn func()) { withPool(fn) }

func (d *device) NewLibraryWithSource(src string) (Library, error) {
	opts := msgID(msgID(objc.ID(classMTLCompileOptions), selAlloc), selInit)
	if opts == 0 {
		return nil, errors.New("metal: cannot create MTLCompileOptions")
	}
	defer msgVoid(opts, selRelease)
	msgVoidU64(opts, selSetLanguageVersion, languageVersion3_1)
	// Fast math may drop NaN and infinity handling that the ops document
	// (Maximum lets NaN win, softmax of -inf masks).
	msgVoidBool(opts, selSetFastMathEnabled, false)
	var errObj objc.ID
	lib := msgIDIDIDErr(d.obj, selNewLibrary, nsString(src), opts, &errObj)
	if lib == 0 {
		// errObj may also be set with warnings when the library compiled;
		// only a missing library is a failure.
		if err := nsError(errObj); err != nil {
			return nil, err
		}
		return nil, errors.New("the Metal compiler gave no library and no message")
	}
	return &library{obj: lib, dev: d}, nil
}

type library struct {
	obj objc.ID
	dev *device
}

func (l *library) NewComputePipeline(name string) (Pipeline, error) {
	fn := msgIDID(l.obj, selNewFunction, nsString(name))
	if fn == 0 {
		return nil, fmt.Errorf("%s: %w", name, ErrNoFunction)
	}
	defer msgVoid(fn, selRelease)
	var errObj objc.ID
	pso := msgIDIDErr(l.dev.obj, selNewPipeline, fn, &errObj)
	if pso == 0 {
		return nil, fmt.Errorf("metal: kernel %s: creating its pipeline: %v", name, nsError(errObj))
	}
	return pipeline(pso), nil
}

type pipeline objc.ID

func (p pipeline) ThreadExecutionWidth() int {
	return int(msgU64(objc.ID(p), selThreadExecutionWidth))
}

func (p pipeline) MaxTotalThreadsPerThreadgroup() int {
	return int(msgU64(objc.ID(p), selMaxTotalThreads))
}

type buffer struct {
	obj  objc.ID
	data []byte
}

func (d *device) NewBuffer(n int) (Buffer, error) {
	// Metal refuses zero-length buffers; an empty array still needs one.
	obj := msgIDU64U64(d.obj, selNewBuffer, uint64(max(n, 16)), resourceStorageModeShared|resourceHazardTrackingUntracked)
	if obj == 0 {
		return nil, fmt.Errorf("metal: cannot allocate %d bytes", n)
	}
	p := msgPtr(obj, selContents)
	if p == nil {
		msgVoid(obj, selRelease)
		return nil, fmt.Errorf("metal: a buffer of %d bytes has no contents", n)
	}
	return &buffer{obj: obj, data: unsafe.Slice((*byte)(p), n)}, nil
}

func (b *buffer) Contents() []byte                     { return b.data }
func (b *buffer) CopyToContents(off int, src []byte)   { copy(b.data[off:], src) }
func (b *buffer) CopyFromContents(off int, dst []byte) { copy(dst, b.data[off:]) }
func (b *buffer) Release()                             { msgVoid(b.obj, selRelease) }

type queue struct {
	obj objc.ID
	dev *device
}

func (d *device) NewCommandQueue() (CommandQueue, error) {
	obj := msgID(d.obj, selNewCommandQueue)
	if obj == 0 {
		return nil, errors.New("metal: cannot create a command queue")
	}
	return &queue{obj, d}, nil
}

func (q *queue) Release() { msgVoid(q.obj, selRelease) }

// CommandBuffer's command buffer is autoreleased; AddCompletedHandler
// retains it until the handler has run.
func (q *queue) CommandBuffer() (CommandBuffer, error) {
	obj := msgID(q.obj, selCommandBufferUnretained)
	if obj == 0 {
		return nil, errors.New("metal: the queue gave no command buffer")
	}
	return &commandBuffer{obj, q.dev}, nil
}

type commandBuffer struct {
	obj objc.ID
	dev *device
}

func (cb *commandBuffer) ComputeCommandEncoder() (ComputeCommandEncoder, error) {
	enc := msgIDU64(cb.obj, selComputeEncoderWithType, dispatchTypeConcurrent)
	if enc == 0 {
		return nil, errors.New("metal: the command buffer gave no compute encoder")
	}
	return encoder(enc), nil
}

func (cb *commandBuffer) EncodeWaitForEvent(e SharedEvent, v uint64) {
	msgVoidIDU64(cb.obj, selEncodeWaitForEvent, e.(*event).obj, v)
}

func (cb *commandBuffer) EncodeSignalEvent(e SharedEvent, v uint64) {
	msgVoidIDU64(cb.obj, selEncodeSignalEvent, e.(*event).obj, v)
}

func (cb *commandBuffer) AddCompletedHandler(fn func()) {
	msgVoid(cb.obj, selRetain)
	cb.dev.handlers.Store(cb.obj, fn)
	msgVoidID(cb.obj, selAddCompletedHandler, objc.ID(cb.dev.handler))
}

func (cb *commandBuffer) Commit() { msgVoid(cb.obj, selCommit) }

func (cb *commandBuffer) Error() error {
	if msgU64(cb.obj, selStatus) != commandBufferStatusError {
		return nil
	}
	var err error
	withPool(func() { err = nsError(msgID(cb.obj, selError)) })
	if err == nil {
		err = errors.New("metal: the command buffer failed without an error")
	}
	return err
}

type encoder objc.ID

func (e encoder) SetComputePipelineState(p Pipeline) {
	msgVoidID(objc.ID(e), selSetPipelineState, objc.ID(p.(pipeline)))
}

func (e encoder) SetBuffer(b Buffer, off, _, index int) {
	msgSetBuffer(objc.ID(e), selSetBuffer, b.(*buffer).obj, uint64(off), uint64(index))
}

func (e encoder) SetBytes(b []byte, index int) {
	msgSetBytes(objc.ID(e), selSetBytes, unsafe.Pointer(unsafe.SliceData(b)), uint64(len(b)), uint64(index))
	goruntime.KeepAlive(b)
}

func (e encoder) SetThreadgroupMemoryLength(n, index int) {
	msgVoidU64U64(objc.ID(e), selSetThreadgroupMemory, uint64(n), uint64(index))
}

func (e encoder) DispatchThreadgroups(grid, group Size) {
	msgDispatch(objc.ID(e), selDispatchThreadgroups,
		mtlSize{uint64(grid.Width), uint64(grid.Height), uint64(grid.Depth)},
		mtlSize{uint64(group.Width), uint64(group.Height), uint64(group.Depth)})
}

func (e encoder) MemoryBarrierWithScopeBuffers() {
	msgVoidU64(objc.ID(e), selMemoryBarrierWithScope, barrierScopeBuffers)
}

func (e encoder) UpdateFence(f Fence)  { msgVoidID(objc.ID(e), selUpdateFence, f.(fence).obj) }
func (e encoder) WaitForFence(f Fence) { msgVoidID(objc.ID(e), selWaitForFence, f.(fence).obj) }
func (e encoder) EndEncoding()         { msgVoid(objc.ID(e), selEndEncoding) }

type fence struct{ obj objc.ID }

func (d *device) NewFence() (Fence, error) {
	obj := msgID(d.obj, selNewFence)
	if obj == 0 {
		return nil, errors.New("metal: cannot create an MTLFence")
	}
	return fence{obj}, nil
}

func (f fence) Release() { msgVoid(f.obj, selRelease) }

type event struct{ obj objc.ID }

func (d *device) NewSharedEvent() (SharedEvent, error) {
	obj := msgID(d.obj, selNewSharedEvent)
	if obj == 0 {
		return nil, errors.New("metal: cannot create an MTLSharedEvent")
	}
	return &event{obj}, nil
}

func (e *event) SignaledValue() uint64     { return msgU64(e.obj, selSignaledValue) }
func (e *event) SetSignaledValue(v uint64) { msgVoidU64(e.obj, selSetSignaledValue, v) }
func (e *event) Release()                  { msgVoid(e.obj, selRelease) }

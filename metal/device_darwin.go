//go:build darwin

package metal

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/ebitengine/purego/objc"

	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// Device is the system's default Metal device with Loom's kernel library.
type Device struct {
	obj     objc.ID // id<MTLDevice>
	name    string
	library objc.ID // id<MTLLibrary>
	caps    primitives.Caps
	// handler is the completion handler of every command buffer: one block,
	// made once, because purego's callback slots are never freed.
	handler  objc.Block
	inflight sync.Map // id<MTLCommandBuffer> → *commandBuffer, until completion

	mu        sync.Mutex
	pipelines map[string]*kernel
	// failed keeps why a kernel registered with its own MSL has no
	// pipeline, so that each Eval reports it without compiling again;
	// userLibraries are those kernels' libraries, by source.
	failed        map[string]error
	userLibraries map[string]objc.ID
}

var (
	openOnce sync.Once
	openDev  *Device
	openErr  error
)

// Open returns the system's default Metal device. The kernel library is
// compiled on the first call (this takes a few seconds) and the device is
// shared by later calls; each runtime makes its own queue on it.
func Open() (runtime.Device, error) {
	openOnce.Do(func() {
		if openErr = bind(); openErr != nil {
			return
		}
		withPool(func() { openDev, openErr = newDevice() })
	})
	if openErr != nil {
		return nil, openErr
	}
	return openDev, nil
}

func newDevice() (*Device, error) {
	obj := createSystemDefaultDevice()
	if obj == 0 {
		return nil, errors.New("metal: this Mac has no Metal device")
	}
	d := &Device{obj: obj, name: goString(msgID(obj, selName)), pipelines: map[string]*kernel{}}
	if !msgBoolU64(obj, selSupportsFamily, gpuFamilyApple7) {
		return nil, fmt.Errorf("metal: %s is unsupported: Loom's kernels need the Apple7 GPU family (M1 or later) for SIMD-group matrices", d.name)
	}
	src, err := librarySource()
	if err != nil {
		return nil, err
	}
	if d.library, err = d.compile(src); err != nil {
		return nil, fmt.Errorf("metal: compiling the kernel library: %w", err)
	}
	copyKernel, err := d.newPipeline("copy_bytes")
	if err != nil {
		return nil, err
	}
	d.pipelines[copyKernel.name] = copyKernel
	// The kernels compute lane positions for 32-wide SIMD groups (see
	// kernels/attention.metal), which every Apple GPU has.
	simd := int(msgU64(copyKernel.pso, selThreadExecutionWidth))
	if simd != 32 {
		return nil, fmt.Errorf("metal: %s is unsupported: its SIMD groups have %d threads, and Loom's kernels assume 32", d.name, simd)
	}
	d.caps = primitives.Caps{
		Device:             "metal",
		SIMDWidth:          simd,
		MaxThreadsPerGroup: int(msgSize(obj, selMaxThreadsPerGroup).Width),
		MaxSharedBytes:     int(msgU64(obj, selMaxThreadgroupMemory)),
		Cores:              gpuCoreCount(),
		// Not measured on Apple hardware: the reference Metal plugin's rule,
		// split while the grid is under 8 groups per GPU core.
		SplitKV: primitives.SplitKVGate{GroupsPerCore: 8, PerHead: true},
		// The gated GEMV for one row (its weights are read once per row
		// of x); checked in the emulation, not run on Apple hardware.
		GatedGEMVMaxRows: 1,
		// Rows of x the GEMV kernel takes (the small-M path on SIMD-group
		// matrices, one weight read per 64 rows); checked in the
		// emulation, not run on Apple hardware.
		GEMVMaxRows: primitives.MatMulSIMDGroupRows,
	}
	d.handler = objc.NewBlock(func(_ objc.Block, cb objc.ID) { d.completed(cb) })
	return d, nil
}

// Name is the GPU's name, such as "Apple M2 Max".
func (d *Device) Name() string { return d.name }

// Caps describes the GPU to primitives: the SIMD-group width (a pipeline's
// thread execution width), the threadgroup limits, and the GPU core count
// from the IORegistry (or defaultGPUCores).
func (d *Device) Caps() primitives.Caps { return d.caps }

// kernel is a compiled compute pipeline.
type kernel struct {
	name       string
	pso        objc.ID      // id<MTLComputePipelineState>
	maxThreads int          // threads per threadgroup this pipeline allows
	args       int          // the catalog's buffer arguments
	params     reflect.Type // the catalog's *params type, nil if none
}

func (k *kernel) Name() string { return k.name }

// Kernel returns the pipeline of the named library function, compiling it on
// first use. Catalog names carry their specialisations (dtype, head size,
// block size), so the name is the whole cache key.
func (d *Device) Kernel(name string) (runtime.Kernel, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if k, ok := d.pipelines[name]; ok {
		return k, nil
	}
	var k *kernel
	var err error
	withPool(func() { k, err = d.newPipeline(name) })
	if err != nil {
		return nil, err
	}
	d.pipelines[name] = k
	return k, nil
}

// compile compiles an MSL library source: language version 3.1, fast
// math off (it may drop NaN and infinity handling that the ops document:
// Maximum lets NaN win, softmax of -inf masks).
func (d *Device) compile(src string) (objc.ID, error) {
	opts := msgID(msgID(objc.ID(classMTLCompileOptions), selAlloc), selInit)
	if opts == 0 {
		return 0, errors.New("metal: cannot create MTLCompileOptions")
	}
	defer msgVoid(opts, selRelease)
	msgVoidU64(opts, selSetLanguageVersion, languageVersion3_1)
	msgVoidBool(opts, selSetFastMathEnabled, false)
	var errObj objc.ID
	lib := msgIDIDIDErr(d.obj, selNewLibrary, nsString(src), opts, &errObj)
	if lib == 0 {
		// errObj may also be set with warnings when the library compiled;
		// only a missing library is a failure.
		if err := nsError(errObj); err != nil {
			return 0, err
		}
		return 0, errors.New("the Metal compiler gave no library and no message")
	}
	return lib, nil
}

// userLibrary returns the library of a kernel registered with its own MSL
// (primitives.KernelSpec.MSL), compiled on first use after its declaration
// has been held to its spec (CheckUserKernel). Kernels registered with the
// same source share it.
func (d *Device) userLibrary(spec primitives.KernelSpec) (objc.ID, error) {
	if err := CheckUserKernel(spec); err != nil {
		return 0, err
	}
	src, err := UserSource(spec)
	if err != nil {
		return 0, err
	}
	if lib, ok := d.userLibraries[src]; ok {
		return lib, nil
	}
	lib, err := d.compile(src)
	if err != nil {
		return 0, fmt.Errorf("metal: kernel %s: compiling %s: %w", spec.Name, spec.MSL.File, err)
	}
	if d.userLibraries == nil {
		d.userLibraries = map[string]objc.ID{}
	}
	d.userLibraries[src] = lib
	return lib, nil
}

func (d *Device) newPipeline(name string) (*kernel, error) {
	spec, ok := primitives.LookupKernel(name)
	if !ok {
		return nil, fmt.Errorf("%w: kernel %q is not in the primitives catalog", runtime.ErrUnsupportedKernel, name)
	}
	if len(spec.Args)+1 > statusIndex {
		return nil, fmt.Errorf("metal: kernel %s: %d arguments and params reach the status index %d", name, len(spec.Args)+1, statusIndex)
	}
	lib := d.library
	if spec.MSL.Text != "" {
		if err := d.failed[name]; err != nil {
			return nil, err
		}
		var err error
		if lib, err = d.userLibrary(spec); err != nil {
			if d.failed == nil {
				d.failed = map[string]error{}
			}
			d.failed[name] = err
			return nil, err
		}
	}
	fn := msgIDID(lib, selNewFunction, nsString(name))
	if fn == 0 {
		return nil, fmt.Errorf("%w: kernel %q is not implemented by the Metal device", runtime.ErrUnsupportedKernel, name)
	}
	defer msgVoid(fn, selRelease)
	var errObj objc.ID
	pso := msgIDIDErr(d.obj, selNewPipeline, fn, &errObj)
	if pso == 0 {
		return nil, fmt.Errorf("metal: kernel %s: creating its pipeline: %v", name, nsError(errObj))
	}
	k := &kernel{name: name, pso: pso, maxThreads: int(msgU64(pso, selMaxTotalThreads)), args: len(spec.Args)}
	if spec.Params != nil {
		k.params = reflect.TypeOf(spec.Params)
	}
	return k, nil
}

// buffer is a shared-storage MTLBuffer without hazard tracking: the runtime's
// encoder orders every access.
type buffer struct {
	obj      objc.ID
	data     []byte // the buffer's contents, mapped into this process
	dev      *Device
	released atomic.Bool
}

// NewBuffer allocates n bytes of shared memory.
func (d *Device) NewBuffer(n int64) (runtime.Buffer, error) {
	if n < 0 {
		return nil, fmt.Errorf("metal: negative buffer size %d", n)
	}
	var obj objc.ID
	var p unsafe.Pointer
	withPool(func() {
		// Metal refuses zero-length buffers; an empty array still needs one.
		obj = msgIDU64U64(d.obj, selNewBuffer, uint64(max(n, 16)), resourceStorageModeShared|resourceHazardTrackingUntracked)
		if obj != 0 {
			p = msgPtr(obj, selContents)
		}
	})
	if obj == 0 || p == nil {
		return nil, fmt.Errorf("metal: %s cannot allocate %d bytes", d.name, n)
	}
	return &buffer{obj: obj, data: unsafe.Slice((*byte)(p), n), dev: d}, nil
}

func (b *buffer) Len() int64 { return int64(len(b.data)) }

func (b *buffer) span(off int64, n int) error {
	if b.released.Load() {
		return errors.New("metal: buffer used after release")
	}
	if off < 0 || off+int64(n) > int64(len(b.data)) {
		return fmt.Errorf("metal: bytes [%d,+%d) outside a %d-byte buffer", off, n, len(b.data))
	}
	return nil
}

func (b *buffer) Write(off int64, src []byte) error {
	if err := b.span(off, len(src)); err != nil {
		return err
	}
	copy(b.data[off:], src)
	return nil
}

func (b *buffer) Read(off int64, dst []byte) error {
	if err := b.span(off, len(dst)); err != nil {
		return err
	}
	copy(dst, b.data[off:])
	return nil
}

func (b *buffer) Release() {
	if b.released.Swap(true) {
		return
	}
	b.data = nil
	msgVoid(b.obj, selRelease)
}

// NewQueue returns a new command queue.
func (d *Device) NewQueue() (runtime.Queue, error) {
	var obj objc.ID
	withPool(func() { obj = msgID(d.obj, selNewCommandQueue) })
	if obj == 0 {
		return nil, fmt.Errorf("metal: %s cannot create a command queue", d.name)
	}
	return &queue{dev: d, obj: obj}, nil
}

package metal

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/loomrt/loom/metal/mtl"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// Device is a Metal device with Loom's kernel library.
type Device struct {
	mtl     mtl.Device
	name    string
	library mtl.Library
	caps    primitives.Caps

	mu        sync.Mutex
	pipelines map[string]*kernel
	// failed keeps why a kernel registered with its own MSL has no
	// pipeline, so that each Eval reports it without compiling again;
	// userLibraries are those kernels' libraries, by source.
	failed        map[string]error
	userLibraries map[string]mtl.Library
}

// defaultGPUCores is the core count assumed when the IORegistry does not
// report one: the smallest Apple-silicon GPU (M1, 7 cores) rounded up. It
// only steers occupancy heuristics such as the split-KV decision.
const defaultGPUCores = 8

// New returns Loom's device on the Metal device dev (mtl.Default's on a
// Mac; a test's fake elsewhere), compiling the kernel library from the
// embedded MSL.
func New(dev mtl.Device) (*Device, error) {
	var d *Device
	var err error
	dev.AutoreleasePool(func() { d, err = newDevice(dev) })
	return d, err
}

func newDevice(dev mtl.Device) (*Device, error) {
	d := &Device{mtl: dev, name: dev.Name(), pipelines: map[string]*kernel{}}
	if !dev.SupportsFamily(mtl.GPUFamilyApple7) {
		return nil, fmt.Errorf("metal: %s is unsupported: Loom's kernels need the Apple7 GPU family (M1 or later) for SIMD-group matrices", d.name)
	}
	src, err := librarySource()
	if err != nil {
		return nil, err
	}
	if d.library, err = dev.NewLibraryWithSource(src); err != nil {
		return nil, fmt.Errorf("metal: compiling the kernel library: %w", err)
	}
	copyKernel, err := d.newPipeline("copy_bytes")
	if err != nil {
		return nil, err
	}
	d.pipelines[copyKernel.name] = copyKernel
	// The kernels compute lane positions for 32-wide SIMD groups (see
	// kernels/attention.metal), which every Apple GPU has.
	simd := copyKernel.pso.ThreadExecutionWidth()
	if simd != 32 {
		return nil, fmt.Errorf("metal: %s is unsupported: its SIMD groups have %d threads, and Loom's kernels assume 32", d.name, simd)
	}
	cores := dev.GPUCoreCount()
	if cores <= 0 {
		cores = defaultGPUCores
	}
	d.caps = primitives.Caps{
		Device:             "metal",
		SIMDWidth:          simd,
		MaxThreadsPerGroup: dev.MaxThreadsPerThreadgroup().Width,
		MaxSharedBytes:     dev.MaxThreadgroupMemoryLength(),
		Cores:              cores,
		// Not measured on Apple hardware: the reference Metal plugin's rule,
		// split while the grid is under 8 groups per GPU core.
		SplitKV: primitives.SplitKVGate{GroupsPerCore: 8, PerHead: true},
		// The gated GEMV for one row (its weights are read once per row
		// of x); checked in the emulation, not run on Apple hardware.
		GatedGEMVMaxRows: 1,
		// The quantized gated GEMV likewise; checked in the emulation.
		QuantGatedMaxRows: 1,
		// Rows of x the GEMV kernel takes (the small-M path on SIMD-group
		// matrices, one weight read per 64 rows); checked in the
		// emulation, not run on Apple hardware.
		GEMVMaxRows: primitives.MatMulSIMDGroupRows,
	}
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
	pso        mtl.Pipeline
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
	d.mtl.AutoreleasePool(func() { k, err = d.newPipeline(name) })
	if err != nil {
		return nil, err
	}
	d.pipelines[name] = k
	return k, nil
}

// userLibrary returns the library of a kernel registered with its own MSL
// (primitives.KernelSpec.MSL), compiled on first use after its declaration
// has been held to its spec (CheckUserKernel). Kernels registered with the
// same source share it.
func (d *Device) userLibrary(spec primitives.KernelSpec) (mtl.Library, error) {
	if err := CheckUserKernel(spec); err != nil {
		return nil, err
	}
	src, err := UserSource(spec)
	if err != nil {
		return nil, err
	}
	if lib, ok := d.userLibraries[src]; ok {
		return lib, nil
	}
	lib, err := d.mtl.NewLibraryWithSource(src)
	if err != nil {
		return nil, fmt.Errorf("metal: kernel %s: compiling %s: %w", spec.Name, spec.MSL.File, err)
	}
	if d.userLibraries == nil {
		d.userLibraries = map[string]mtl.Library{}
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
	pso, err := lib.NewComputePipeline(name)
	if errors.Is(err, mtl.ErrNoFunction) {
		return nil, fmt.Errorf("%w: kernel %q is not implemented by the Metal device", runtime.ErrUnsupportedKernel, name)
	}
	if err != nil {
		return nil, err
	}
	k := &kernel{name: name, pso: pso, maxThreads: pso.MaxTotalThreadsPerThreadgroup(), args: len(spec.Args)}
	if spec.Params != nil {
		k.params = reflect.TypeOf(spec.Params)
	}
	return k, nil
}

// buffer is a shared-storage MTLBuffer without hazard tracking: the runtime's
// encoder orders every access.
type buffer struct {
	obj      mtl.Buffer
	n        int64
	dev      *Device
	released atomic.Bool
}

// NewBuffer allocates n bytes of shared memory.
func (d *Device) NewBuffer(n int64) (runtime.Buffer, error) {
	if n < 0 {
		return nil, fmt.Errorf("metal: negative buffer size %d", n)
	}
	var obj mtl.Buffer
	var err error
	d.mtl.AutoreleasePool(func() { obj, err = d.mtl.NewBuffer(int(n)) })
	if err != nil {
		return nil, fmt.Errorf("metal: %s cannot allocate %d bytes: %w", d.name, n, err)
	}
	return &buffer{obj: obj, n: n, dev: d}, nil
}

func (b *buffer) Len() int64 { return b.n }

func (b *buffer) span(off int64, n int) error {
	if b.released.Load() {
		return errors.New("metal: buffer used after release")
	}
	if off < 0 || n < 0 || off+int64(n) > b.n {
		return fmt.Errorf("metal: bytes [%d,+%d) outside a %d-byte buffer", off, n, b.n)
	}
	return nil
}

func (b *buffer) Write(off int64, src []byte) error {
	if err := b.span(off, len(src)); err != nil {
		return err
	}
	b.obj.CopyToContents(int(off), src)
	return nil
}

func (b *buffer) Read(off int64, dst []byte) error {
	if err := b.span(off, len(dst)); err != nil {
		return err
	}
	b.obj.CopyFromContents(int(off), dst)
	return nil
}

func (b *buffer) Release() {
	if b.released.Swap(true) {
		return
	}
	b.obj.Release()
}

// NewQueue returns a new command queue.
func (d *Device) NewQueue() (runtime.Queue, error) {
	var obj mtl.CommandQueue
	var err error
	d.mtl.AutoreleasePool(func() { obj, err = d.mtl.NewCommandQueue() })
	if err != nil {
		return nil, fmt.Errorf("metal: %s: %w", d.name, err)
	}
	return &queue{dev: d, obj: obj}, nil
}

//go:build linux && amd64

package metal_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/loomrt/loom/metal"
	"github.com/loomrt/loom/metal/mslcheck"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// The emulation runs the MSL kernels on Linux through mslcheck.Emulate.
// emuDevice wraps an emulated library as a runtime.Device, so graphs built
// with ops evaluate through the same lowering, params bytes and buffer
// bindings as on a Mac, and their results can be compared with the CPU
// device's. It checks the kernels' logic, not Metal itself.

var (
	emuMu   sync.Mutex
	emuLibs = map[string]*mslcheck.Library{}
)

// emuLibrary builds and loads, once per test binary, an emulated library of
// the named kernels (compiling all of them would take minutes).
func emuLibrary(t testing.TB, names ...string) *mslcheck.Library {
	t.Helper()
	metal.NeedCompiler(t)
	slices.Sort(names)
	key := strings.Join(names, ",")
	emuMu.Lock()
	defer emuMu.Unlock()
	if lib, ok := emuLibs[key]; ok {
		return lib
	}
	src, err := metal.LibrarySource()
	if err != nil {
		t.Fatal(err)
	}
	lib, err := mslcheck.Emulate("loom.metal", src, names...)
	if err != nil {
		t.Fatal(err)
	}
	emuLibs[key] = lib
	return lib
}

// emuDevice is a runtime.Device that runs dispatches through the emulated
// library, one at a time in commit order (which honours every ordering the
// encoder can ask for).
type emuDevice struct{ lib *mslcheck.Library }

func (emuDevice) Caps() primitives.Caps {
	return primitives.Caps{Device: "metal", SIMDWidth: 32, MaxThreadsPerGroup: 1024, MaxSharedBytes: 32 << 10, Cores: 8, SplitKV: primitives.SplitKVGate{GroupsPerCore: 8, PerHead: true},
		// Above the device's 1, so that the gated GEMV's rows of x are
		// exercised too.
		GatedGEMVMaxRows: 4, QuantGatedMaxRows: 4,
		// The device keeps partitions of 512 keys; these, as the CUDA
		// device's but bounded lower, exercise rows whose partitions grow
		// (primitives.AttentionPartitionKeys).
		Partitions: primitives.AttentionPartitioning{Keys: 64, MaxPartitions: 4},
		// The device's.
		GEMVMaxRows: primitives.MatMulSIMDGroupRows}
}

type emuBuffer struct{ data []byte }

func (emuDevice) NewBuffer(n int64) (runtime.Buffer, error) {
	// 16 spare bytes keep a zero-length buffer's pointer valid.
	return &emuBuffer{make([]byte, n, n+16)}, nil
}
func (b *emuBuffer) Len() int64 { return int64(len(b.data)) }
func (b *emuBuffer) Write(off int64, src []byte) error {
	if off < 0 || off+int64(len(src)) > int64(len(b.data)) {
		return errors.New("emu: write outside the buffer")
	}
	copy(b.data[off:], src)
	return nil
}
func (b *emuBuffer) Read(off int64, dst []byte) error {
	if off < 0 || off+int64(len(dst)) > int64(len(b.data)) {
		return errors.New("emu: read outside the buffer")
	}
	copy(dst, b.data[off:])
	return nil
}
func (b *emuBuffer) Release() {}

type emuKernel string

func (k emuKernel) Name() string { return string(k) }

func (emuDevice) Kernel(name string) (runtime.Kernel, error) {
	if _, ok := primitives.LookupKernel(name); !ok {
		return nil, fmt.Errorf("kernel %q is not in the catalog", name)
	}
	return emuKernel(name), nil
}

func (d emuDevice) NewQueue() (runtime.Queue, error) { return &emuQueue{d.lib}, nil }

type emuQueue struct{ lib *mslcheck.Library }

func (*emuQueue) NewFence() runtime.Fence { return nil }
func (*emuQueue) NewEvent() runtime.Event { return &emuEvent{} }
func (*emuQueue) Close()                  {}

type emuEvent struct {
	mu sync.Mutex
	v  uint64
}

func (e *emuEvent) Wait(v uint64) {
	if e.Value() < v {
		panic("emu: waiting for a value no committed command buffer signals")
	}
}
func (e *emuEvent) Value() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.v
}

type emuSubmission struct{ err error }

func (s *emuSubmission) Err() error { return s.err }

// Submit runs the list's dispatches and uploads now, in order.
func (q *emuQueue) Submit(l *runtime.CommandList) runtime.Submission {
	sub := &emuSubmission{}
	for _, p := range l.Passes {
		for i := range p.Commands {
			var err error
			switch c := &p.Commands[i]; c.Kind {
			case runtime.CmdDispatch:
				err = emuRun(q.lib, c)
			case runtime.CmdUpload:
				b := c.Args[0].Buffer.(*emuBuffer)
				copy(b.data[c.Args[0].Offset:], c.Data)
			}
			if err != nil && sub.err == nil {
				sub.err = err
			}
		}
	}
	for _, s := range l.Signals {
		ev := s.Event.(*emuEvent)
		ev.mu.Lock()
		ev.v = max(ev.v, s.Value)
		ev.mu.Unlock()
	}
	return sub
}

// run binds the arguments as the Metal device does (buffer i at index i,
// params as bytes at index len(args), the status record at statusIndex) and
// reports a bad index the kernel recorded.
func emuRun(lib *mslcheck.Library, op *runtime.Command) error {
	var bufs [metal.StatusIndex + 1]unsafe.Pointer
	for i, a := range op.Args {
		b := a.Buffer.(*emuBuffer)
		bufs[i] = unsafe.Add(unsafe.Pointer(unsafe.SliceData(b.data[:cap(b.data)])), a.Offset)
	}
	if op.Params != nil {
		bufs[len(op.Args)] = reflect.ValueOf(op.Params).UnsafePointer()
	}
	status := make([]uint32, metal.StatusWords)
	bufs[metal.StatusIndex] = unsafe.Pointer(&status[0])
	grid := [3]uint32{uint32(op.Grid.X), uint32(op.Grid.Y), uint32(op.Grid.Z)}
	group := [3]uint32{uint32(op.Group.X), uint32(op.Group.Y), uint32(op.Group.Z)}
	if err := lib.Dispatch(op.Kernel.Name(), bufs[:], grid, group); err != nil {
		return fmt.Errorf("emu: %v", err)
	}
	return metal.StatusError(op.Kernel.Name(), op.Args, status)
}

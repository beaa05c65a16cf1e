//go:build linux && amd64

package metal

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// The emulation runs the MSL kernels on Linux: the library source, compiled
// by g++ against the shim in LOOM_EMULATE mode (threads are fibers on one
// OS thread, SIMD groups of 32 meet at barriers, half and bfloat hold their
// real 16 bits), plus a generated dispatcher that calls each kernel by its
// catalog name with the thread positions its attributes ask for. emuDevice wraps it as a
// runtime.Device, so graphs built with ops evaluate through the same
// lowering, params bytes and buffer bindings as on a Mac, and their results
// can be compared with the CPU device's. It checks the kernels' logic, not
// Metal itself: the compiler, the memory model and the real SIMD hardware
// are not involved.

// emuLib is an emulated library of some kernels.
type emuLib struct {
	dispatch func(name string, bufs *unsafe.Pointer, params unsafe.Pointer, grid, group *uint32) int32
}

var (
	emuMu   sync.Mutex
	emuLibs = map[string]*emuLib{}
)

// emuLibrary builds and loads, once per test binary, an emulated library of
// the named kernels (compiling all of them would take minutes).
func emuLibrary(t testing.TB, names ...string) *emuLib {
	t.Helper()
	slices.Sort(names)
	key := strings.Join(names, ",")
	emuMu.Lock()
	defer emuMu.Unlock()
	if lib, ok := emuLibs[key]; ok {
		return lib
	}
	lib, err := buildEmulation(t, names)
	if err != nil {
		t.Fatal(err)
	}
	emuLibs[key] = lib
	return lib
}

func buildEmulation(t testing.TB, names []string) (*emuLib, error) {
	src, err := librarySource()
	if err != nil {
		return nil, err
	}
	all, _, err := parseKernels(preprocessMSL(t, src))
	if err != nil {
		return nil, err
	}
	kernels := map[string]mslKernel{}
	for _, n := range names {
		k, ok := all[n]
		if !ok {
			return nil, fmt.Errorf("no MSL kernel %s", n)
		}
		kernels[n] = k
	}
	harness, err := emuHarness(kernels)
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	file, so := filepath.Join(dir, "emu.cpp"), filepath.Join(dir, "emu.so")
	if err := os.WriteFile(file, []byte(src+harness), 0o644); err != nil {
		return nil, err
	}
	out, err := exec.Command(cxx(t), "-std=c++20", "-O0", "-shared", "-fPIC", "-w", "-DLOOM_EMULATE",
		"-I", shimDir(t), "-x", "c++", file, "-o", so).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("building the emulation: %v\n%s", err, out)
	}
	h, err := purego.Dlopen(so, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, err
	}
	lib := &emuLib{}
	purego.RegisterLibFunc(&lib.dispatch, h, "loom_dispatch")
	return lib, nil
}

// emuArgs maps thread-position attributes to the emulator's values.
var emuArgs = map[string]string{
	"thread_position_in_grid":        "t.grid_pos",
	"threadgroup_position_in_grid":   "t.group_pos",
	"thread_position_in_threadgroup": "t.local_pos",
	"thread_index_in_threadgroup":    "t.local_index",
	"threads_per_threadgroup":        "t.group_size",
	"threadgroups_per_grid":          "t.grid_size",
	"simdgroup_index_in_threadgroup": "t.simd_index",
	"simdgroups_per_threadgroup":     "t.simd_groups",
	"thread_index_in_simdgroup":      "t.lane",
	"threads_per_simdgroup":          "t.simd_width",
}

// emuHarness generates loom_dispatch, which runs the named kernel over a
// grid, and the thread machinery it needs.
func emuHarness(kernels map[string]mslKernel) (string, error) {
	var sb strings.Builder
	sb.WriteString(emuRuntime)
	sb.WriteString("extern \"C\" int loom_dispatch(const char* name, void** bufs, void* params, const unsigned* grid, const unsigned* group) {\n")
	sb.WriteString("  loom_emu::Env env{bufs, params};\n")
	for name, k := range kernels {
		var args []string
		for _, p := range k.params {
			switch {
			case p.index >= 0 && strings.HasSuffix(p.typ, "&"):
				args = append(args, "loom_emu::Ref{e.params}")
			case p.index >= 0:
				args = append(args, fmt.Sprintf("loom_emu::Ptr{e.bufs[%d]}", p.index))
			case emuArgs[p.attr] != "":
				args = append(args, emuArgs[p.attr])
			default:
				return "", fmt.Errorf("kernel %s: the emulation has no value for [[%s]]", name, p.attr)
			}
		}
		fn := k.fn
		if k.targs != "" {
			fn += "<" + k.targs + ">"
		}
		fmt.Fprintf(&sb, "  if (!__builtin_strcmp(name, %q)) { loom_emu::run(grid, group, [](const loom_emu::Thread& t, const loom_emu::Env& e) { %s(%s); }, env); return 0; }\n",
			name, fn, strings.Join(args, ", "))
	}
	sb.WriteString("  return -1;\n}\n")
	return sb.String(), nil
}

// emuRuntime runs a grid: threadgroups one after another, the threads of a
// group as fibers with a group barrier and one barrier per SIMD group of 32.
// A thread that returns drops out of both barriers.
const emuRuntime = `
#undef thread
#undef device
#undef constant
namespace loom_emu {
struct Ptr {
  void* p;
  template <typename U> operator U*() const { return (U*)p; }
};
struct Ref {
  void* p;
  template <typename U> operator U&() const { return *(U*)p; }
};
struct Pos {
  unsigned x, y, z;
  operator unsigned() const { return x; }
  operator unsigned short() const { return (unsigned short)x; }
  operator uint2() const { return uint2(x, y); }
  operator uint3() const { return uint3(x, y, z); }
};
struct Thread {
  Pos grid_pos, group_pos, local_pos, group_size, grid_size;
  Pos local_index, simd_index, simd_groups, lane, simd_width;
};
// Env is what a kernel call needs besides its thread's positions.
struct Env {
  void** bufs;
  void* params;
};
typedef void (*Body)(const Thread&, const Env&);

// Fiber is one thread of the running threadgroup.
struct Fiber {
  ucontext_t uc;
  Context ctx;
  Thread t;
  bool done;
};
inline ucontext_t scheduler;
inline Fiber* current;
inline Body running_body;
inline const Env* running_env;

void yield() { swapcontext(&current->uc, &scheduler); }

inline void fiber_main() {
  Fiber* f = current;
  running_body(f->t, *running_env);
  f->ctx.simd->bar->arrive_and_drop();
  f->ctx.group->arrive_and_drop();
  f->done = true;
  progress++;
}

// run runs body over the grid, one threadgroup at a time, its threads as
// fibers resumed round-robin until all have returned.
inline void run(const unsigned* grid, const unsigned* group, Body body, const Env& env) {
  constexpr size_t stack_size = 128 << 10;
  unsigned n = group[0] * group[1] * group[2], nsimd = (n + 31) / 32;
  std::vector<Fiber> fibers(n);
  // The stacks are kept across calls, uninitialised: zeroing them per
  // dispatch would cost more than running most kernels.
  static char* stacks = nullptr;
  static unsigned stacks_for = 0;
  if (stacks_for < n) {
    delete[] stacks;
    stacks = new char[size_t(n) * stack_size];
    stacks_for = n;
  }
  running_body = body;
  running_env = &env;
  for (unsigned gz = 0; gz < grid[2]; gz++)
  for (unsigned gy = 0; gy < grid[1]; gy++)
  for (unsigned gx = 0; gx < grid[0]; gx++) {
    Barrier gbar(n);
    std::vector<SimdGroup> simds(nsimd);
    std::vector<Barrier> sbars;
    sbars.reserve(nsimd);
    for (unsigned k = 0; k < nsimd; k++) {
      sbars.emplace_back(n - 32 * k < 32 ? n - 32 * k : 32);
      simds[k].bar = &sbars[k];
      for (int j = 0; j < 32; j++) simds[k].written[j] = false;
    }
    for (unsigned i = 0; i < n; i++) {
      Fiber& f = fibers[i];
      f.done = false;
      f.ctx = Context{&gbar, &simds[i / 32], int(i % 32)};
      unsigned lx = i % group[0], ly = (i / group[0]) % group[1], lz = i / (group[0] * group[1]);
      f.t.group_pos = Pos{gx, gy, gz};
      f.t.local_pos = Pos{lx, ly, lz};
      f.t.grid_pos = Pos{gx * group[0] + lx, gy * group[1] + ly, gz * group[2] + lz};
      f.t.group_size = Pos{group[0], group[1], group[2]};
      f.t.grid_size = Pos{grid[0], grid[1], grid[2]};
      f.t.local_index = Pos{i, 0, 0};
      f.t.simd_index = Pos{i / 32, 0, 0};
      f.t.simd_groups = Pos{nsimd, 0, 0};
      f.t.lane = Pos{i % 32, 0, 0};
      f.t.simd_width = Pos{32, 0, 0};
      getcontext(&f.uc);
      f.uc.uc_stack.ss_sp = &stacks[size_t(i) * stack_size];
      f.uc.uc_stack.ss_size = stack_size;
      f.uc.uc_link = &scheduler;
      makecontext(&f.uc, fiber_main, 0);
    }
    for (unsigned left = n; left > 0;) {
      unsigned long before = progress;
      left = 0;
      for (auto& f : fibers) {
        if (f.done) continue;
        current = &f;
        ctx = f.ctx;
        swapcontext(&scheduler, &f.uc);
        left += f.done ? 0 : 1;
      }
      if (left > 0 && progress == before) {
        std::fprintf(stderr, "emulation: threads wait at a barrier that can never complete (a barrier in divergent code?)\n");
        std::abort();
      }
    }
  }
}
}  // namespace loom_emu
`

// emuDevice is a runtime.Device that runs dispatches through the emulated
// library, one at a time in commit order (which honours every ordering the
// encoder can ask for).
type emuDevice struct{ lib *emuLib }

func (emuDevice) Caps() primitives.Caps {
	return primitives.Caps{Device: "metal", SIMDWidth: 32, MaxThreadsPerGroup: 1024, MaxSharedBytes: 32 << 10, Cores: 8, SplitKV: primitives.SplitKVGate{GroupsPerCore: 8, PerHead: true},
		// Above the device's 1, so that the gated GEMV's rows of x are
		// exercised too.
		GatedGEMVMaxRows: 4}
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

type emuQueue struct{ lib *emuLib }

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
func emuRun(lib *emuLib, op *runtime.Command) error {
	var bufs [statusIndex + 1]unsafe.Pointer
	for i, a := range op.Args {
		b := a.Buffer.(*emuBuffer)
		bufs[i] = unsafe.Add(unsafe.Pointer(unsafe.SliceData(b.data[:cap(b.data)])), a.Offset)
	}
	var params unsafe.Pointer
	if op.Params != nil {
		params = reflect.ValueOf(op.Params).UnsafePointer()
	}
	status := make([]uint32, statusWords)
	bufs[statusIndex] = unsafe.Pointer(&status[0])
	grid := [3]uint32{uint32(op.Grid.X), uint32(op.Grid.Y), uint32(op.Grid.Z)}
	group := [3]uint32{uint32(op.Group.X), uint32(op.Group.Y), uint32(op.Group.Z)}
	if lib.dispatch(op.Kernel.Name()+"\x00", &bufs[0], params, &grid[0], &group[0]) != 0 {
		return fmt.Errorf("emu: kernel %s is not in the library", op.Kernel.Name())
	}
	return statusError(op.Kernel.Name(), op.Args, status)
}

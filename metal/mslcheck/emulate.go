//go:build linux && amd64

package mslcheck

import (
	"fmt"
	"github.com/loomrt/loom/internal/fiberswitch"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"unsafe"

	"github.com/ebitengine/purego"
)

// Library is an emulated library of some kernels: their MSL compiled by g++
// against the shim in emulation mode (threads are fibers on one OS thread,
// SIMD groups of 32 meet at barriers, half and bfloat hold their real 16
// bits), plus a generated dispatcher that calls each kernel by name with
// the buffers and thread positions its parameters ask for. A Library is not
// safe for concurrent use.
type Library struct {
	dispatch func(name string, bufs *unsafe.Pointer, grid, group *uint32) int32
	kernels  map[string]Kernel
}

// MaxBuffers is the number of buffer indices a dispatch can bind.
const MaxBuffers = 31

// Emulate compiles the named kernels of src (their host names; a plain
// kernel's is its function name) into an emulated library. It takes a few
// seconds per kernel family: name only the kernels a test runs. name names
// src in compiler messages.
func Emulate(name, src string, kernels ...string) (*Library, error) {
	pre, err := Preprocess(src)
	if err != nil {
		return nil, err
	}
	all, _, err := ParseKernels(pre)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	chosen := map[string]Kernel{}
	for _, n := range kernels {
		k, ok := all[n]
		if !ok {
			return nil, fmt.Errorf("%s: no MSL kernel %s", name, n)
		}
		chosen[n] = k
	}
	harness, err := emuHarness(chosen)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	dir, err := os.MkdirTemp("", "mslemu")
	if err != nil {
		return nil, err
	}
	// The loaded library stays mapped after its file is removed.
	defer os.RemoveAll(dir)
	so := filepath.Join(dir, "emu.so")
	err = compile(name, sharedArrays(src)+"\n#line 1 \"<emulation>\"\n"+harness,
		"-std=c++20", "-O0", "-shared", "-fPIC", "-w", "-DLOOM_EMULATE", "-o", so)
	if err != nil {
		return nil, fmt.Errorf("building the emulation: %w", err)
	}
	h, err := purego.Dlopen(so, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, err
	}
	lib := &Library{kernels: chosen}
	purego.RegisterLibFunc(&lib.dispatch, h, "loom_dispatch")
	return lib, nil
}

// threadgroupArrayRE matches a threadgroup array declared in a function
// body (threadgroup pointers, parameters, are not arrays).
var threadgroupArrayRE = regexp.MustCompile(`\bthreadgroup(\s+[\w:<>, ]+?\s+\w+\s*\[)`)

// sharedArrays makes the threadgroup arrays of src function-static: in
// the emulation threadgroups run one at a time, so one array serves the
// threads of the running group, as threadgroup memory does.
func sharedArrays(src string) string {
	return threadgroupArrayRE.ReplaceAllString(src, "static$1")
}

// emuArgs maps thread-position attributes to the emulator's values.
var emuArgs = map[string]string{
	"thread_position_in_grid":        "t.grid_pos",
	"threadgroup_position_in_grid":   "t.group_pos",
	"thread_position_in_threadgroup": "t.local_pos",
	"thread_index_in_threadgroup":    "t.local_index",
	"threads_per_threadgroup":        "t.group_size",
	"threadgroups_per_grid":          "t.grid_size",
	"threads_per_grid":               "t.threads",
	"simdgroup_index_in_threadgroup": "t.simd_index",
	"simdgroups_per_threadgroup":     "t.simd_groups",
	"thread_index_in_simdgroup":      "t.lane",
	"threads_per_simdgroup":          "t.simd_width",
}

// emuHarness generates loom_dispatch, which runs the named kernel over a
// grid, and the thread machinery it needs.
func emuHarness(kernels map[string]Kernel) (string, error) {
	var sb strings.Builder
	sb.WriteString(fiberswitch.Source)
	sb.WriteString(emuRuntime)
	sb.WriteString("extern \"C\" int loom_dispatch(const char* name, void** bufs, const unsigned* grid, const unsigned* group) {\n")
	names := make([]string, 0, len(kernels))
	for n := range kernels {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		k := kernels[name]
		var args []string
		for _, p := range k.Params {
			switch {
			case p.Index >= MaxBuffers:
				return "", fmt.Errorf("kernel %s: [[buffer(%d)]] is beyond the %d buffers a dispatch binds", name, p.Index, MaxBuffers)
			case p.Index >= 0 && strings.HasSuffix(p.Type, "&"):
				args = append(args, fmt.Sprintf("loom_emu::Ref{bufs[%d]}", p.Index))
			case p.Index >= 0:
				args = append(args, fmt.Sprintf("loom_emu::Ptr{bufs[%d]}", p.Index))
			case emuArgs[p.Attr] != "":
				args = append(args, emuArgs[p.Attr])
			default:
				return "", fmt.Errorf("kernel %s: the emulation has no value for [[%s]] (unsupported)", name, p.Attr)
			}
		}
		fn := k.Func
		if k.TemplateArgs != "" {
			fn += "<" + k.TemplateArgs + ">"
		}
		fmt.Fprintf(&sb, "  if (!__builtin_strcmp(name, %q)) { loom_emu::run(grid, group, [](const loom_emu::Thread& t, void** bufs) { %s(%s); }, bufs); return 0; }\n",
			name, fn, strings.Join(args, ", "))
	}
	sb.WriteString("  return -1;\n}\n")
	return sb.String(), nil
}

// Dispatch runs kernel name over grid threadgroups of group threads each
// (Metal's dispatchThreadgroups), with bufs[i] bound at [[buffer(i)]].
// The pointers must stay valid, and hold what the kernel reads and writes,
// for the call.
func (l *Library) Dispatch(name string, bufs []unsafe.Pointer, grid, group [3]uint32) error {
	if len(bufs) > MaxBuffers {
		return fmt.Errorf("mslcheck: %d buffers, at most %d", len(bufs), MaxBuffers)
	}
	k, ok := l.kernels[name]
	if !ok {
		return fmt.Errorf("mslcheck: kernel %s is not in the emulated library", name)
	}
	for _, p := range k.Buffers() {
		if p.Index >= len(bufs) || bufs[p.Index] == nil {
			return fmt.Errorf("mslcheck: kernel %s: nothing bound at [[buffer(%d)]] (%s)", name, p.Index, p.Name)
		}
	}
	for i := range 3 {
		if grid[i] == 0 || group[i] == 0 {
			return fmt.Errorf("mslcheck: kernel %s: empty grid %v or group %v", name, grid, group)
		}
	}
	if n := group[0] * group[1] * group[2]; n > 1024 {
		return fmt.Errorf("mslcheck: kernel %s: %d threads per group, Metal allows at most 1024", name, n)
	}
	var all [MaxBuffers]unsafe.Pointer
	copy(all[:], bufs)
	if l.dispatch(name+"\x00", &all[0], &grid[0], &group[0]) != 0 {
		return fmt.Errorf("mslcheck: kernel %s is not in the emulated library", name)
	}
	return nil
}

// Run is Dispatch for Go values: args[i], bound at [[buffer(i)]], is a
// non-empty slice (a device buffer, read and written in place) or a
// pointer (a constant struct or scalar, laid out as the MSL declares it);
// nil leaves an index unbound.
func (l *Library) Run(name string, grid, group [3]uint32, args ...any) error {
	bufs := make([]unsafe.Pointer, len(args))
	for i, a := range args {
		if a == nil {
			continue
		}
		v := reflect.ValueOf(a)
		switch {
		case v.Kind() == reflect.Slice && v.Len() > 0:
			bufs[i] = v.UnsafePointer()
		case v.Kind() == reflect.Pointer && !v.IsNil():
			bufs[i] = v.UnsafePointer()
		default:
			return fmt.Errorf("mslcheck: kernel %s: argument %d is a %T, want a non-empty slice or a non-nil pointer", name, i, a)
		}
	}
	err := l.Dispatch(name, bufs, grid, group)
	runtime.KeepAlive(args)
	return err
}

// emuRuntime runs a grid: threadgroups one after another, the threads of a
// group as fibers with a group barrier and one barrier per SIMD group of 32.
// A thread that returns drops out of both barriers.
const emuRuntime = `
#undef thread
#undef device
#undef constant
#undef threadgroup
#undef kernel
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
  operator ushort2() const { return ushort2(ushort(x), ushort(y)); }
  operator ushort3() const { return ushort3(ushort(x), ushort(y), ushort(z)); }
};
struct Thread {
  Pos grid_pos, group_pos, local_pos, group_size, grid_size, threads;
  Pos local_index, simd_index, simd_groups, lane, simd_width;
};
typedef void (*Body)(const Thread&, void**);

// Fiber is one thread of the running threadgroup.
struct Fiber {
  void* sp;
  Context ctx;
  Thread t;
  bool done;
};
inline void* scheduler;
inline Fiber* current;
inline Body running_body;
inline void** running_bufs;

void yield() { loom_emu_switch(&current->sp, scheduler); }

inline void fiber_main() {
  Fiber* f = current;
  running_body(f->t, running_bufs);
  f->ctx.simd->bar->arrive_and_drop();
  f->ctx.group->arrive_and_drop();
  f->done = true;
  progress++;
  loom_emu_switch(&f->sp, scheduler);
  std::abort();  // a finished fiber is never resumed
}

// run runs body over the grid, one threadgroup at a time, its threads as
// fibers resumed round-robin until all have returned.
inline void run(const unsigned* grid, const unsigned* group, Body body, void** bufs) {
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
  running_bufs = bufs;
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
      f.t.threads = Pos{grid[0] * group[0], grid[1] * group[1], grid[2] * group[2]};
      f.t.local_index = Pos{i, 0, 0};
      f.t.simd_index = Pos{i / 32, 0, 0};
      f.t.simd_groups = Pos{nsimd, 0, 0};
      f.t.lane = Pos{i % 32, 0, 0};
      f.t.simd_width = Pos{32, 0, 0};
      // The first switch to the fiber pops six zeroed registers and
      // returns into fiber_main with the stack aligned as after a call.
      void** top = (void**)&stacks[size_t(i + 1) * stack_size];
      *--top = nullptr;
      *--top = (void*)fiber_main;
      for (int r = 0; r < 6; r++) *--top = nullptr;
      f.sp = top;
    }
    for (unsigned left = n; left > 0;) {
      unsigned long before = progress;
      left = 0;
      for (auto& f : fibers) {
        if (f.done) continue;
        current = &f;
        ctx = f.ctx;
        loom_emu_switch(&scheduler, f.sp);
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

// Package metal is Loom's Metal device (macOS on Apple silicon), reached
// through purego without cgo, and its MSL kernels.
//
// The device executes what the runtime's encoder recorded and nothing more:
// buffers are allocated without hazard tracking, command buffers hold
// unretained references, passes are concurrent, barriers are
// memoryBarrierWithScope:, fences are MTLFences and the host waits on an
// MTLSharedEvent. The kernel library is compiled at start-up from the MSL
// sources embedded in this package (kernels/*.metal), one kernel function
// per catalog kernel name.
//
// A kernel registered from outside Loom with its own MSL
// (primitives.KernelSpec.MSL) is compiled into a library of its own
// (UserSource) when a dispatch first needs it, after its declaration has
// been held to the spec (CheckUserKernel); a compile error fails the Eval
// with the compiler's message.
//
// The device's Go is platform-independent: it makes its Objective-C calls
// through package mtl's interfaces, which Open binds to Metal on macOS and
// New to any implementation, such as the recording fake (internal/mtlfake)
// the tests run it on. Off macOS, Open returns an error. The MSL sources are
// still checked there:
// the package's tests compile them as C++ through package mslcheck's shim and
// hold their kernel names, argument indices and names to the primitives
// catalog.
package metal

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"strings"

	"github.com/loomrt/loom/metal/mslcheck"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

//go:embed kernels/*.metal
var kernelFiles embed.FS

// commonFile is the MSL file every other one builds on; it comes first.
const commonFile = "common.metal"

// statusIndex is the buffer index at which every dispatch gets its status
// record: six uint32 (error count, argument index + 1, entry, value, code,
// second entry) that a kernel fills when it meets a bad data-dependent
// index (a token id, a slot, a block-table entry) or a KV slot written
// twice, so that the device can report the entry instead of reading or
// writing outside a buffer. Catalog arguments and params must stay below
// it.
const statusIndex = 30

// statusWords is the size of one dispatch's status record in uint32s.
const statusWords = 6

// The codes of a status record (LOOM_REPORT_* in common.metal).
const (
	reportRange = 0 // the entry's value is out of range
	reportDup   = 1 // the entry's value is also the second entry's
)

// statusError turns a dispatch's status record into an error naming the
// kernel, the argument and the bad entry; nil if the kernel reported none.
func statusError(kernel string, args []runtime.BufferArg, w []uint32) error {
	if w[0] == 0 {
		return nil
	}
	if j := int(w[1]) - 1; w[4] == reportDup && w[5] < w[2] && j >= 0 && j < len(args) && int64(w[2]) < args[j].Size/4 {
		// The CPU device's words: the check itself, on the two entries.
		slots := make([]int64, w[2]+1)
		for i := range slots {
			slots[i] = -1
		}
		slots[w[5]], slots[w[2]] = int64(int32(w[3])), int64(int32(w[3]))
		return fmt.Errorf("metal kernel %s: %w (%d reports)", kernel, primitives.CheckSlots(slots, math.MaxInt), w[0])
	}
	arg := fmt.Sprintf("argument %d", w[1]-1)
	if j := int(w[1]) - 1; j >= 0 && j < len(args) {
		arg = args[j].Name
	}
	return fmt.Errorf("metal kernel %s: %s entry %d is %d, out of range (%d bad entries)", kernel, arg, w[2], int32(w[3]), w[0])
}

// librarySource returns the MSL source of the kernel library: common.metal,
// then the params structs generated from the Go types in the primitives
// catalog (so their layout cannot drift from Go's) and its launch-geometry
// constants (primitives.CConstants), then every other
// kernels/*.metal file in name order. #line directives keep compiler
// messages pointing at the right file and line.
func librarySource() (string, error) {
	names, err := fs.Glob(kernelFiles, "kernels/*.metal")
	if err != nil {
		return "", err
	}
	slices.SortFunc(names, func(a, b string) int {
		switch {
		case a == "kernels/"+commonFile:
			return -1
		case b == "kernels/"+commonFile:
			return 1
		}
		return strings.Compare(a, b)
	})
	if len(names) == 0 || names[0] != "kernels/"+commonFile {
		return "", fmt.Errorf("metal: kernels/%s is missing", commonFile)
	}
	var sb strings.Builder
	if err := writePrelude(&sb, nil); err != nil {
		return "", err
	}
	for _, name := range names[1:] {
		src, err := kernelFiles.ReadFile(name)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&sb, "#line 1 %q\n%s\n", strings.TrimPrefix(name, "kernels/"), src)
	}
	return sb.String(), nil
}

// writePrelude writes what every library source starts with: common.metal,
// then the params structs generated from the primitives catalog (and from
// user's params, for a user kernel) and its launch-geometry constants.
func writePrelude(sb *strings.Builder, user *primitives.KernelSpec) error {
	common, err := kernelFiles.ReadFile("kernels/" + commonFile)
	if err != nil {
		return err
	}
	specs := primitives.Catalog()
	if user != nil {
		specs = append(specs, *user)
	}
	structs, err := primitives.CParamsDecls(specs, "uint")
	if err != nil {
		return err
	}
	fmt.Fprintf(sb, "#line 1 %q\n%s\n#line 1 \"params (generated from the primitives catalog)\"\n%s%s", commonFile, common, structs, primitives.CConstants())
	return nil
}

// UserSource returns the MSL library source the Metal device compiles, on
// first use, for a kernel registered with its own MSL
// (primitives.KernelSpec.MSL): common.metal (LOOM_STATUS, report_bad_index
// and the other helpers of Loom's kernels), the params structs generated
// from the catalog and from the kernel's own params type, then the
// kernel's file. A #line directive keeps compiler messages pointing at
// that file. Tests check it on any machine with package mslcheck: Check
// compiles it, Emulate runs its kernels.
func UserSource(spec primitives.KernelSpec) (string, error) {
	if spec.MSL.Text == "" {
		return "", fmt.Errorf("metal: kernel %s was registered without MSL source (primitives.KernelSpec.MSL)", spec.Name)
	}
	var sb strings.Builder
	if err := writePrelude(&sb, &spec); err != nil {
		return "", err
	}
	fmt.Fprintf(&sb, "#line 1 %q\n%s\n", spec.MSL.File, spec.MSL.Text)
	return sb.String(), nil
}

// CheckUserKernel holds the declaration of a user kernel in its MSL
// source (primitives.KernelSpec.MSL) to its spec, as the built-ins' are
// held to theirs: the spec's buffer arguments at [[buffer(0)]] to
// [[buffer(n-1)]] under their names, in the device address space; the
// params struct by constant reference at [[buffer(n)]]; nothing else but,
// optionally, the status record at [[buffer(30)]]. The declaration is read
// from the source as written: a [[kernel]] or kernel function of the
// kernel's name, or a template instantiated under it with
// [[host_name]], written out rather than made by a macro. The Metal device
// checks this before it compiles the source.
func CheckUserKernel(spec primitives.KernelSpec) error {
	kernels, _, err := mslcheck.ParseKernels(spec.MSL.Text)
	if err != nil {
		return fmt.Errorf("metal: kernel %s: %s: %v", spec.Name, spec.MSL.File, err)
	}
	k, ok := kernels[spec.Name]
	if !ok {
		return fmt.Errorf("metal: kernel %s: %s declares no kernel %s: write its declaration out ([[kernel]] void %s(...)), not through a macro",
			spec.Name, spec.MSL.File, spec.Name, spec.Name)
	}
	return errors.Join(checkSignature(spec, k)...)
}

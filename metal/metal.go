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
// Off macOS, Open returns an error. The MSL sources are still checked there:
// the package's tests compile them as C++ through package mslcheck's shim and
// hold their kernel names, argument indices and names to the primitives
// catalog.
package metal

import (
	"embed"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"strings"

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
	for i, name := range names {
		src, err := kernelFiles.ReadFile(name)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&sb, "#line 1 %q\n%s\n", strings.TrimPrefix(name, "kernels/"), src)
		if i == 0 {
			structs, err := primitives.CParamsDecls(primitives.Catalog(), "uint")
			if err != nil {
				return "", err
			}
			sb.WriteString("#line 1 \"params (generated from the primitives catalog)\"\n")
			sb.WriteString(structs)
			sb.WriteString(primitives.CConstants())
		}
	}
	return sb.String(), nil
}

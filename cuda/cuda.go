// Package cuda is Loom's CUDA device, reached through purego without cgo:
// the driver API from libcuda.so.1 and runtime compilation from NVRTC.
//
// The device executes what the runtime's encoder recorded. Each queue is one
// CUDA stream; a command buffer records its launches and issues them, in
// encoding order, when it is committed. Stream order is stronger than any
// ordering the encoder can ask for (barriers inside a pass, fences between
// passes and command buffers), so Barrier, WaitFence and UpdateFence have
// nothing left to do. The host learns of completion through one CUDA event
// recorded after each command buffer's launches. A command buffer that
// repeats the structure of an earlier one (the same kernels, grids and
// groups) is launched as a CUDA graph exec instead, when graphs are on
// (graph_linux.go).
//
// The kernels are CUDA C (kernels/*.cu), embedded in the package and
// compiled by NVRTC when the device opens, for the device's compute
// capability, one module per file; but the variants of a file (paged
// attention's, by dtype and head size: variants.go) are compiled each as
// its own module when a dispatch first needs one of its kernels. Every catalog kernel is an extern "C"
// __global__ function named exactly like the catalog entry, with the
// catalog's buffer arguments in order, then the params struct by value (if
// the kernel has one) and last a pointer to the dispatch's status record.
// The params structs are generated from the Go types (primitives.CParamsDecls), so
// their layout cannot drift from Go's.
//
// A kernel registered from outside Loom with its own CUDA C
// (primitives.KernelSpec.CUDA) follows the same convention. Its source is
// compiled by NVRTC when a dispatch first needs it, after the source's
// declaration of the kernel has been held to the spec (names, pointers,
// params by value, the status record); the generated params structs,
// including the kernel's own, and common.cuh come first. A compile error
// fails the Eval with NVRTC's message, file(line) of the user's file.
//
// On machines without libcuda.so.1 or without a CUDA device, Open returns an
// error for which IsUnavailable reports true.
package cuda

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/loomrt/loom/primitives"
)

//go:embed kernels/*.cu kernels/common.cuh
var kernelFiles embed.FS

// commonFile is included at the top of every kernel file, after the
// generated params structs.
const commonFile = "kernels/common.cuh"

// notImplemented lists the catalog kernels the CUDA device has no kernel
// for. Kernel returns an error that says so for each of them; the tests hold
// every other catalog kernel to the CUDA sources.
var notImplemented = []string{}

// Bandwidth is a CUDA device's measured memory bandwidth, in GB/s (1e9
// bytes per second): copies count bytes read plus bytes written.
type Bandwidth struct {
	Driver float64 // device-to-device copies by the driver (cuMemcpyDtoDAsync)
	Kernel float64 // the copy_bytes kernel, 16 bytes per thread
	Read   float64 // bytes read by the sum_f32 kernel summing rows
}

// IsUnavailable reports whether err from Open means that this machine has
// no CUDA driver or no CUDA device (rather than a device that failed).
func IsUnavailable(err error) bool { return errors.Is(err, errNoDriver) }

// sourceFiles returns every kernel file's complete source, by file name
// (such as "elementwise.cu"): see assemble.
func sourceFiles() (map[string]string, error) {
	names, err := fs.Glob(kernelFiles, "kernels/*.cu")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, name := range names {
		base := strings.TrimPrefix(name, "kernels/")
		if out[base], err = sourceFile(base); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// sourceFile returns the complete source of one kernel file, such as
// "attention.cu".
func sourceFile(name string) (string, error) {
	src, err := kernelFiles.ReadFile("kernels/" + name)
	if err != nil {
		return "", err
	}
	return assemble(nil, name, string(src))
}

// userSource returns the complete source of a kernel registered with its
// own CUDA C (primitives.KernelSpec.CUDA): see assemble.
func userSource(spec primitives.KernelSpec) (string, error) {
	return assemble(&spec, spec.CUDA.File, spec.CUDA.Text)
}

// assemble returns the complete source of a kernel file: the params
// structs generated from the primitives catalog (and from user's params,
// for a user kernel), its launch-geometry constants and the status codes,
// then common.cuh, then the file. #line directives keep compiler messages
// pointing at the right file and line.
func assemble(user *primitives.KernelSpec, file, src string) (string, error) {
	common, err := kernelFiles.ReadFile(commonFile)
	if err != nil {
		return "", err
	}
	specs := primitives.Catalog()
	if user != nil {
		specs = append(specs, *user)
	}
	structs, err := primitives.CParamsDecls(specs, "unsigned int")
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("#line 1 \"params and status codes (generated)\"\n%s%s%s#line 1 \"common.cuh\"\n%s\n#line 1 %q\n%s\n",
		structs, primitives.CConstants(), statusDefines(), common, file, src), nil
}

// KernelTime is the GPU time of one kernel's launches in a profile.
type KernelTime struct {
	Name     string        // the catalog kernel; "+mma" marks its tensor-core variant, "+bulk" the bulk GEMV
	Launches int64         // launches profiled
	Time     time.Duration // summed over the launches
	// Bytes sums the sizes of the launches' buffer arguments: the bytes
	// they would move reading and writing each argument once (a kernel
	// that reads part of an argument moves fewer).
	Bytes int64
}

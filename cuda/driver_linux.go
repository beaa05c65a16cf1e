package cuda

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"github.com/ebitengine/purego"
)

// This file binds the parts of the CUDA driver API (libcuda.so.1) and of
// NVRTC (libnvrtc.so*) that the device uses. Every call goes through
// purego.SyscallN; each result is checked and turned into an error that
// names the call.

// cfunc is a C function of a loaded library.
type cfunc struct {
	name string
	ptr  uintptr
}

// CUresult codes the device tells apart.
const (
	cudaSuccess  = 0
	cudaNoDevice = 100
	cudaNotFound = 500
	cudaNotReady = 600
	nvrtcSuccess = 0
)

// Device attributes (CUdevice_attribute).
const (
	attrMaxThreadsPerBlock   = 1
	attrMaxGridDimX          = 5
	attrMaxGridDimY          = 6
	attrMaxGridDimZ          = 7
	attrMaxSharedPerBlock    = 8
	attrWarpSize             = 10
	attrMultiprocessorCount  = 16
	attrUnifiedAddressing    = 41
	attrComputeCapabilityMaj = 75
	attrComputeCapabilityMin = 76
)

// Function attributes: CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES (a kernel's
// static shared memory) and CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES.
const (
	funcAttrStaticShared     = 1
	funcAttrMaxDynamicShared = 8
)

// Graph edges (CUgraphEdgeData's fields): a programmatic edge leaves a
// kernel node through its programmatic port.
const (
	graphPortProgrammatic = 1 // CU_GRAPH_KERNEL_NODE_PORT_PROGRAMMATIC
	graphEdgeProgrammatic = 1 // CU_GRAPH_DEPENDENCY_TYPE_PROGRAMMATIC
)

// Flags.
const (
	captureModeRelaxed = 2   // CU_STREAM_CAPTURE_MODE_RELAXED: a capture that holds off no other thread's calls
	streamNonBlocking  = 0x1 // CU_STREAM_NON_BLOCKING: no implicit order with the legacy stream
	eventDisableTiming = 0x2 // CU_EVENT_DISABLE_TIMING: the cheapest event
)

// driver holds libcuda's functions.
type driver struct {
	getErrorName cfunc

	init                                                   cfunc
	deviceGetCount, deviceGet, deviceGetName               cfunc
	deviceGetAttribute                                     cfunc
	primaryCtxRetain, primaryCtxRelease, ctxSetCurrent     cfunc
	memAlloc, memFree, memAllocHost, memFreeHost           cfunc
	memcpyHtoDAsync, memcpyDtoHAsync, memcpyDtoDAsync      cfunc
	memsetD32Async                                         cfunc
	streamCreate, streamDestroy, streamSynchronize         cfunc
	eventCreate, eventRecord, eventQuery, eventSynchronize cfunc
	eventDestroy, eventElapsed                             cfunc
	moduleLoadData, moduleUnload, moduleGetFunction        cfunc
	launchKernel, funcSetAttribute, funcGetAttribute       cfunc

	// CUDA graphs (graph_linux.go). The unversioned symbols take the
	// first (CUDA 11) forms of the node-parameter structs, which every
	// later driver keeps exporting. graphErr is why they are unusable, if
	// the driver lacks one.
	graphCreate, graphDestroy, graphAddKernelNode, graphAddMemsetNode   cfunc
	graphInstantiate, graphLaunch, graphExecSetKernel, graphExecDestroy cfunc
	// Child graphs captured from a stream: cuBLASLt's calls in a graph
	// (cublaslt_linux.go).
	streamBeginCapture, streamEndCapture, graphAddChildNode, graphExecSetChild cfunc
	graphErr                                                                   error

	// graphAddDependencies (cuGraphAddDependencies_v2, CUDA 12.3) adds
	// edges with edge data: the programmatic edges of programmatic
	// dependent launch (graph_linux.go). Zero where the driver lacks it.
	graphAddDependencies cfunc

	// primaryCtxSetFlags (cuDevicePrimaryCtxSetFlags_v2, CUDA 11) sets the
	// primary context's flags before it is retained (LOOM_CUDA_SCHED).
	// Zero where the driver lacks it.
	primaryCtxSetFlags cfunc

	// streamWaitValue32 (cuStreamWaitValue32_v2, CUDA 12) holds a stream
	// until a word of memory reaches a value: the kernel profile's gate.
	// Zero where the driver lacks it.
	streamWaitValue32 cfunc
}

// nvrtc holds libnvrtc's functions.
type nvrtc struct {
	path                                       string
	version                                    cfunc
	createProgram, compileProgram, destroyProg cfunc
	getProgramLogSize, getProgramLog           cfunc
	getCUBINSize, getCUBIN                     cfunc
}

// errNoDriver marks the errors that mean this machine has no usable CUDA
// device, as opposed to a CUDA device that failed.
var errNoDriver = errors.New("no CUDA driver or device")

// bind resolves the named symbols of lib into the cfunc fields pointed to.
func bind(lib uintptr, libName string, fns map[*cfunc]string) error {
	for f, name := range fns {
		p, err := purego.Dlsym(lib, name)
		if err != nil {
			return fmt.Errorf("cuda: %s has no %s: %v", libName, name, err)
		}
		*f = cfunc{name, p}
	}
	return nil
}

// loadDriver opens libcuda.so.1. Its absence means no CUDA on this machine.
func loadDriver() (*driver, error) {
	lib, err := purego.Dlopen("libcuda.so.1", purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, fmt.Errorf("cuda: loading libcuda.so.1: %v: %w", err, errNoDriver)
	}
	d := &driver{}
	err = bind(lib, "libcuda.so.1", map[*cfunc]string{
		&d.getErrorName:       "cuGetErrorName",
		&d.init:               "cuInit",
		&d.deviceGetCount:     "cuDeviceGetCount",
		&d.deviceGet:          "cuDeviceGet",
		&d.deviceGetName:      "cuDeviceGetName",
		&d.deviceGetAttribute: "cuDeviceGetAttribute",
		&d.primaryCtxRetain:   "cuDevicePrimaryCtxRetain",
		&d.primaryCtxRelease:  "cuDevicePrimaryCtxRelease_v2",
		&d.ctxSetCurrent:      "cuCtxSetCurrent",
		&d.memAlloc:           "cuMemAlloc_v2",
		&d.memFree:            "cuMemFree_v2",
		&d.memAllocHost:       "cuMemAllocHost_v2",
		&d.memFreeHost:        "cuMemFreeHost",
		&d.memcpyHtoDAsync:    "cuMemcpyHtoDAsync_v2",
		&d.memcpyDtoHAsync:    "cuMemcpyDtoHAsync_v2",
		&d.memcpyDtoDAsync:    "cuMemcpyDtoDAsync_v2",
		&d.memsetD32Async:     "cuMemsetD32Async",
		&d.streamCreate:       "cuStreamCreate",
		&d.streamDestroy:      "cuStreamDestroy_v2",
		&d.streamSynchronize:  "cuStreamSynchronize",
		&d.eventCreate:        "cuEventCreate",
		&d.eventRecord:        "cuEventRecord",
		&d.eventQuery:         "cuEventQuery",
		&d.eventSynchronize:   "cuEventSynchronize",
		&d.eventDestroy:       "cuEventDestroy_v2",
		&d.eventElapsed:       "cuEventElapsedTime",
		&d.moduleLoadData:     "cuModuleLoadData",
		&d.moduleUnload:       "cuModuleUnload",
		&d.moduleGetFunction:  "cuModuleGetFunction",
		&d.launchKernel:       "cuLaunchKernel",
		&d.funcSetAttribute:   "cuFuncSetAttribute",
		&d.funcGetAttribute:   "cuFuncGetAttribute",
	})
	if err != nil {
		return nil, err
	}
	d.graphErr = bind(lib, "libcuda.so.1", map[*cfunc]string{
		&d.graphCreate:        "cuGraphCreate",
		&d.graphDestroy:       "cuGraphDestroy",
		&d.graphAddKernelNode: "cuGraphAddKernelNode",
		&d.graphAddMemsetNode: "cuGraphAddMemsetNode",
		&d.graphInstantiate:   "cuGraphInstantiateWithFlags",
		&d.graphLaunch:        "cuGraphLaunch",
		&d.graphExecSetKernel: "cuGraphExecKernelNodeSetParams",
		&d.graphExecDestroy:   "cuGraphExecDestroy",
		&d.streamBeginCapture: "cuStreamBeginCapture_v2",
		&d.streamEndCapture:   "cuStreamEndCapture",
		&d.graphAddChildNode:  "cuGraphAddChildGraphNode",
		&d.graphExecSetChild:  "cuGraphExecChildGraphNodeSetParams",
	})
	if bind(lib, "libcuda.so.1", map[*cfunc]string{&d.streamWaitValue32: "cuStreamWaitValue32_v2"}) != nil {
		d.streamWaitValue32 = cfunc{}
	}
	if bind(lib, "libcuda.so.1", map[*cfunc]string{&d.primaryCtxSetFlags: "cuDevicePrimaryCtxSetFlags_v2"}) != nil {
		d.primaryCtxSetFlags = cfunc{}
	}
	if bind(lib, "libcuda.so.1", map[*cfunc]string{&d.graphAddDependencies: "cuGraphAddDependencies_v2"}) != nil {
		d.graphAddDependencies = cfunc{}
	}
	return d, nil
}

// nvrtcNames are the file names NVRTC is looked up under, newest first;
// LOOM_NVRTC, if set, names the library file to use instead.
var nvrtcNames = []string{"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2"}

// libraryDirs are searched when the dynamic loader's path does not hold a
// CUDA toolkit library (the toolkit installs NVRTC and cuBLASLt outside the
// default path).
var libraryDirs = []string{"/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/local/cuda-*/lib64"}

// openLibrary opens the library what (such as NVRTC) names: the file
// path where it is not "" (the value of the environment variable env),
// else the first of names on the loader's path or in libraryDirs. It
// returns the library's handle and file.
func openLibrary(what, env, path string, names []string) (uintptr, string, error) {
	var candidates []string
	if path != "" {
		candidates = []string{path}
	} else {
		candidates = append(candidates, names...)
		for _, dir := range libraryDirs {
			for _, name := range names {
				m, _ := filepath.Glob(filepath.Join(dir, name))
				candidates = append(candidates, m...)
			}
		}
	}
	var firstErr error
	for _, path := range candidates {
		lib, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err == nil {
			return lib, path, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return 0, "", fmt.Errorf("cuda: %s not found (tried %v; set %s to the library file): %v", what, candidates, env, firstErr)
}

// loadNVRTC opens the NVRTC library.
func loadNVRTC() (*nvrtc, error) {
	lib, path, err := openLibrary("NVRTC", "LOOM_NVRTC", os.Getenv("LOOM_NVRTC"), nvrtcNames)
	if err != nil {
		return nil, err
	}
	n := &nvrtc{path: path}
	err = bind(lib, path, map[*cfunc]string{
		&n.version:           "nvrtcVersion",
		&n.createProgram:     "nvrtcCreateProgram",
		&n.compileProgram:    "nvrtcCompileProgram",
		&n.destroyProg:       "nvrtcDestroyProgram",
		&n.getProgramLogSize: "nvrtcGetProgramLogSize",
		&n.getProgramLog:     "nvrtcGetProgramLog",
		&n.getCUBINSize:      "nvrtcGetCUBINSize",
		&n.getCUBIN:          "nvrtcGetCUBIN",
	})
	if err != nil {
		return nil, err
	}
	return n, nil
}

// raw calls f and returns its result code.
//
//go:uintptrescapes
func (f cfunc) raw(args ...uintptr) uintptr {
	r, _, _ := purego.SyscallN(f.ptr, args...)
	return uintptr(uint32(r))
}

// call calls a driver function and turns a failure into an error naming it.
//
//go:uintptrescapes
func (d *driver) call(f cfunc, args ...uintptr) error {
	r, _, _ := purego.SyscallN(f.ptr, args...)
	return d.check(f, uintptr(uint32(r)))
}

// check turns driver result r of call f into an error.
func (d *driver) check(f cfunc, r uintptr) error {
	if r == cudaSuccess {
		return nil
	}
	return &Error{Call: f.name, Code: int(r), Name: d.errorName(r)}
}

// errorName is cuGetErrorName's name for code r.
func (d *driver) errorName(r uintptr) string {
	var s unsafe.Pointer
	if rr, _, _ := purego.SyscallN(d.getErrorName.ptr, r, uintptr(unsafe.Pointer(&s))); uint32(rr) != cudaSuccess || s == nil {
		return "unknown CUresult"
	}
	return goString(s)
}

// Error is a failed CUDA driver call.
type Error struct {
	Call string // the driver function, such as cuLaunchKernel
	Code int    // its CUresult
	Name string // cuGetErrorName's name for Code
}

func (e *Error) Error() string { return fmt.Sprintf("cuda: %s: %s (%d)", e.Call, e.Name, e.Code) }

// Is lets errors.Is(err, errNoDriver) hold for "no device".
func (e *Error) Is(target error) bool { return target == errNoDriver && e.Code == cudaNoDevice }

// call calls an NVRTC function and turns a failure into an error naming it.
//
//go:uintptrescapes
func (n *nvrtc) call(f cfunc, args ...uintptr) error {
	r, _, _ := purego.SyscallN(f.ptr, args...)
	if code := uint32(r); code != nvrtcSuccess {
		return fmt.Errorf("cuda: %s failed with nvrtcResult %d", f.name, code)
	}
	return nil
}

// goString copies the NUL-terminated C string at p.
func goString(p unsafe.Pointer) string {
	n := 0
	for *(*byte)(unsafe.Add(p, n)) != 0 {
		n++
	}
	return string(unsafe.Slice((*byte)(p), n))
}

// cString returns s as a NUL-terminated byte slice.
func cString(s string) []byte { return append([]byte(s), 0) }

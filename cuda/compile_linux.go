package cuda

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/loomrt/loom/primitives"
)

// compileOptions are the NVRTC options for a device of the given compute
// capability (such as "90"). Fast-math is off: kernels compute in IEEE
// float32 like the CPU reference, with fused multiply-adds allowed.
func compileOptions(arch string) []string {
	return []string{"--gpu-architecture=sm_" + arch, "--std=c++17"}
}

// options are a variant's NVRTC options for sm_<arch>.
func (v variant) options(arch string) []string { return append(compileOptions(arch), v.defines...) }

// versionNumber is NVRTC's version, major*1000 + minor*10 (CUDA's own encoding).
func (n *nvrtc) versionNumber() (int, error) {
	var major, minor int32
	if err := n.call(n.version, uintptr(unsafe.Pointer(&major)), uintptr(unsafe.Pointer(&minor))); err != nil {
		return 0, err
	}
	return int(major)*1000 + int(minor)*10, nil
}

// compileAll compiles every kernel file for sm_<arch>, concurrently, and
// returns the cubins by file name (without their variants, which are
// compiled at first use: variants.go). Compiled cubins are kept in the
// user's cache directory, keyed by NVRTC's version, the options and the
// source, so that a second Open on the same machine (the next test binary)
// loads them instead of compiling again.
func compileAll(n *nvrtc, arch string) (map[string][]byte, error) {
	files, err := sourceFiles()
	if err != nil {
		return nil, err
	}
	ver, err := n.versionNumber()
	if err != nil {
		return nil, err
	}
	opts := compileOptions(arch)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	cubins := make([][]byte, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		o := opts
		if name == "quantized.cu" {
			// For measurement: NVRTC options (-D…) that tune the quantized
			// kernels (quantized.cu's LOOM_QUANT_WARP_ROWS).
			o = append(slices.Clone(opts), strings.Fields(os.Getenv("LOOM_CUDA_QUANT_DEFS"))...)
		}
		wg.Go(func() { cubins[i], errs[i] = n.compileCached(ver, name, files[name], o) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(names))
	for i, name := range names {
		out[name] = cubins[i]
	}
	return out, nil
}

// compileCached returns the cubin of a source file compiled with opts by
// NVRTC of version ver: from the cache, or compiled (and then cached).
func (n *nvrtc) compileCached(ver int, name, src string, opts []string) ([]byte, error) {
	key := cacheKey(ver, opts, src)
	if cubin := readCache(key); cubin != nil {
		return cubin, nil
	}
	cubin, err := n.compile(name, src, opts)
	if err == nil {
		writeCache(key, cubin)
	}
	return cubin, err
}

// compile compiles one source file to a cubin, returning NVRTC's log in
// the error when compilation fails.
func (n *nvrtc) compile(name, src string, opts []string) ([]byte, error) {
	csrc, cname := cString(src), cString(name)
	var prog uintptr
	if err := n.call(n.createProgram, uintptr(unsafe.Pointer(&prog)), uintptr(unsafe.Pointer(&csrc[0])),
		uintptr(unsafe.Pointer(&cname[0])), 0, 0, 0); err != nil {
		return nil, err
	}
	defer n.call(n.destroyProg, uintptr(unsafe.Pointer(&prog)))

	// NVRTC reads the options through an array of C string pointers; the
	// strings are pinned so that the array may hold their addresses.
	var pin goruntime.Pinner
	defer pin.Unpin()
	ptrs := make([]uintptr, len(opts))
	for i, o := range opts {
		c := cString(o)
		pin.Pin(&c[0])
		ptrs[i] = uintptr(unsafe.Pointer(&c[0]))
	}
	r := n.compileProgram.raw(prog, uintptr(len(ptrs)), uintptr(unsafe.Pointer(&ptrs[0])))
	if r != nvrtcSuccess {
		return nil, fmt.Errorf("cuda: NVRTC (%s) failed to compile %s (nvrtcResult %d):\n%s", n.path, name, r, n.log(prog))
	}
	var size uintptr
	if err := n.call(n.getCUBINSize, prog, uintptr(unsafe.Pointer(&size))); err != nil {
		return nil, err
	}
	cubin := make([]byte, size)
	if err := n.call(n.getCUBIN, prog, uintptr(unsafe.Pointer(&cubin[0]))); err != nil {
		return nil, err
	}
	return cubin, nil
}

// log returns the program's compilation log.
func (n *nvrtc) log(prog uintptr) string {
	var size uintptr
	if err := n.call(n.getProgramLogSize, prog, uintptr(unsafe.Pointer(&size))); err != nil || size == 0 {
		return "(no log)"
	}
	buf := make([]byte, size)
	if err := n.call(n.getProgramLog, prog, uintptr(unsafe.Pointer(&buf[0]))); err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return strings.TrimRight(string(buf), "\x00\n")
}

// cacheDir is where compiled cubins are kept; "" when there is none.
func cacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "loom", "cuda")
}

func cacheKey(nvrtcVersion int, opts []string, src string) string {
	h := sha256.New()
	fmt.Fprintf(h, "nvrtc %d\n%s\n", nvrtcVersion, strings.Join(opts, " "))
	h.Write([]byte(src))
	return hex.EncodeToString(h.Sum(nil))
}

// readCache returns the cached cubin for key, or nil.
func readCache(key string) []byte {
	dir := cacheDir()
	if dir == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(dir, key+".cubin"))
	if err != nil || len(b) == 0 {
		return nil
	}
	return b
}

// writeCache stores a cubin; failing to is harmless (the next Open compiles
// again), so errors are dropped. The rename makes the write atomic for
// concurrent test binaries.
func writeCache(key string, cubin []byte) {
	dir := cacheDir()
	if dir == "" || os.MkdirAll(dir, 0o755) != nil {
		return
	}
	f, err := os.CreateTemp(dir, key+".tmp*")
	if err != nil {
		return
	}
	_, err = f.Write(cubin)
	if cerr := f.Close(); err == nil && cerr == nil {
		if os.Rename(f.Name(), filepath.Join(dir, key+".cubin")) == nil {
			return
		}
	}
	os.Remove(f.Name())
}

// CheckUserKernel checks a kernel registered with its own CUDA source
// (primitives.KernelSpec.CUDA) as the device does on first use, without a
// GPU: its declaration is held to the spec, and its source, with the
// generated params structs and common.cuh, is compiled with NVRTC for
// sm_<arch> (such as "90"). Only NVRTC is needed (found as Open finds it,
// or named by LOOM_NVRTC); where it cannot be loaded the error satisfies
// IsUnavailable. A source that does not compile gives NVRTC's messages,
// file(line) of the user's file.
func CheckUserKernel(spec primitives.KernelSpec, arch string) error {
	if err := checkUserSource(spec); err != nil {
		return fmt.Errorf("cuda: kernel %s: %w", spec.Name, err)
	}
	n, err := loadNVRTC()
	if err != nil {
		return fmt.Errorf("%v: %w", err, errNoDriver)
	}
	src, err := userSource(spec)
	if err != nil {
		return err
	}
	if _, err := n.compile(spec.CUDA.File, src, compileOptions(arch)); err != nil {
		return fmt.Errorf("cuda: kernel %s: %w", spec.Name, err)
	}
	return nil
}

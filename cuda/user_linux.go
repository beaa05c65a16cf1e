package cuda

import (
	"fmt"
	"unsafe"

	"github.com/loomrt/loom/primitives"
)

// userKernel is the outcome of compiling a kernel registered with its own
// CUDA source: the kernel, or why there is none. A failure is kept, so
// that every Eval that needs the kernel reports it without compiling again.
type userKernel struct {
	k   *kernel
	err error
}

// userKernel returns the kernel of spec, registered with its own CUDA
// source, compiling that source with NVRTC on first use. Before compiling,
// the source's declaration of the kernel is held to the spec as the
// built-ins' are in the tests: the spec's buffer arguments by name, as
// pointers, its params struct by value, and Status* status.
func (d *Device) userKernel(spec primitives.KernelSpec) (*kernel, error) {
	d.userMu.Lock()
	defer d.userMu.Unlock()
	if u, ok := d.user[spec.Name]; ok {
		return u.k, u.err
	}
	k, err := d.loadUserKernel(spec)
	if err != nil {
		err = fmt.Errorf("cuda: kernel %s: %w", spec.Name, err)
	}
	if d.user == nil {
		d.user = map[string]userKernel{}
	}
	d.user[spec.Name] = userKernel{k, err}
	return k, err
}

func (d *Device) loadUserKernel(spec primitives.KernelSpec) (*kernel, error) {
	if err := checkUserSource(spec); err != nil {
		return nil, err
	}
	src, err := userSource(spec)
	if err != nil {
		return nil, err
	}
	ver, err := d.nvrtc.versionNumber()
	if err != nil {
		return nil, err
	}
	opts := compileOptions(d.arch)
	key := cacheKey(ver, opts, src)
	mod, ok := d.userModules[key]
	if !ok {
		cubin := readCache(key)
		if cubin == nil {
			if cubin, err = d.nvrtc.compile(spec.CUDA.File, src, opts); err != nil {
				return nil, err
			}
			writeCache(key, cubin)
		}
		err := d.do(func() error {
			if err := d.drv.call(d.drv.moduleLoadData, uintptr(unsafe.Pointer(&mod)), uintptr(unsafe.Pointer(&cubin[0]))); err != nil {
				return fmt.Errorf("loading the module of %s: %w", spec.CUDA.File, err)
			}
			d.modules = append(d.modules, mod)
			return nil
		})
		if err != nil {
			return nil, err
		}
		if d.userModules == nil {
			d.userModules = map[string]uintptr{}
		}
		d.userModules[key] = mod
	}
	var fn uintptr
	cname := cString(spec.Name)
	err = d.do(func() error {
		return d.drv.call(d.drv.moduleGetFunction, uintptr(unsafe.Pointer(&fn)), mod, uintptr(unsafe.Pointer(&cname[0])))
	})
	if err != nil {
		return nil, fmt.Errorf("%s compiled, but its module has no kernel %s: %w", spec.CUDA.File, spec.Name, err)
	}
	k, err := newKernel(spec, fn)
	if err != nil {
		return nil, err
	}
	k.user = true
	return k, nil
}

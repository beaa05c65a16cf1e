package cuda

import (
	"fmt"
	"unsafe"

	"github.com/loomrt/loom/primitives"
)

// lazyKernel is the outcome of compiling a kernel at first use: the
// kernel, or why there is none. A failure is kept, so that every Eval that
// needs the kernel reports it without compiling again.
type lazyKernel struct {
	k   *kernel
	err error
}

// lazyModule is the outcome of compiling a module at first use, kept for
// the module's other kernels.
type lazyModule struct {
	mod uintptr
	err error
}

// lazyKernel returns a kernel compiled with NVRTC when a dispatch first
// needs it: a built-in kernel of a variant (variants.go), compiled with the
// rest of its variant as one module, or a kernel registered with its own
// CUDA source (primitives.KernelSpec.CUDA). Before compiling a registered
// source, its declaration of the kernel is held to the spec as the
// built-ins' are in the tests: the spec's buffer arguments by name, as
// pointers, its params struct by value, and Status* status. The lock is
// held while NVRTC compiles, so that a kernel is compiled once however many
// Evals need it at once.
func (d *Device) lazyKernel(spec primitives.KernelSpec) (*kernel, error) {
	d.lazyMu.Lock()
	defer d.lazyMu.Unlock()
	if u, ok := d.lazy[spec.Name]; ok {
		return u.k, u.err
	}
	k, err := d.loadLazyKernel(spec)
	if err != nil {
		err = fmt.Errorf("cuda: kernel %s: %w", spec.Name, err)
	}
	if d.lazy == nil {
		d.lazy = map[string]lazyKernel{}
	}
	d.lazy[spec.Name] = lazyKernel{k, err}
	return k, err
}

func (d *Device) loadLazyKernel(spec primitives.KernelSpec) (*kernel, error) {
	v, builtin := variantOf(spec.Name)
	var file, what, src string
	var opts []string
	var err error
	if builtin {
		file, what, opts = v.file, v.String(), v.options(d.arch)
		src, err = sourceFile(v.file)
	} else {
		if err := checkUserSource(spec); err != nil {
			return nil, err
		}
		file, what, opts = spec.CUDA.File, spec.CUDA.File, compileOptions(d.arch)
		src, err = userSource(spec)
	}
	if err != nil {
		return nil, err
	}
	mod, err := d.lazyModule(file, src, opts)
	if err != nil {
		return nil, fmt.Errorf("compiling %s: %w", what, err)
	}
	function := spec.Name
	if builtin {
		function = v.kernels[spec.Name]
	}
	var fn, mma uintptr
	err = d.do(func() error {
		var err error
		if fn, err = d.moduleFunction(mod, function); err != nil || fn == 0 || !builtin {
			return err
		}
		// A built-in kernel's tensor-core variant, as Open looks them up.
		mma, err = d.moduleFunction(mod, function+"_mma")
		return err
	})
	switch {
	case err != nil:
		return nil, err
	case fn == 0:
		return nil, fmt.Errorf("%s compiled, but its module has no kernel %s", what, function)
	}
	k, err := newKernel(spec, fn)
	if err != nil {
		return nil, err
	}
	k.mma = mma
	return k, nil
}

// lazyModule returns the loaded module of a source compiled with opts,
// from the cache or compiled, once per device; d.lazyMu is held.
func (d *Device) lazyModule(file, src string, opts []string) (uintptr, error) {
	ver, err := d.nvrtc.versionNumber()
	if err != nil {
		return 0, err
	}
	key := cacheKey(ver, opts, src)
	if m, ok := d.lazyModules[key]; ok {
		return m.mod, m.err
	}
	var mod uintptr
	cubin, err := d.nvrtc.compileCached(ver, file, src, opts)
	if err == nil {
		err = d.do(func() error {
			if err := d.drv.call(d.drv.moduleLoadData, uintptr(unsafe.Pointer(&mod)), uintptr(unsafe.Pointer(&cubin[0]))); err != nil {
				return fmt.Errorf("loading the module of %s: %w", file, err)
			}
			d.modules = append(d.modules, mod)
			return nil
		})
	}
	if d.lazyModules == nil {
		d.lazyModules = map[string]lazyModule{}
	}
	d.lazyModules[key] = lazyModule{mod, err}
	return mod, err
}

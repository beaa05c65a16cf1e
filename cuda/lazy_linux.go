package cuda

import (
	"fmt"
	"sync"
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
// needs it: a built-in kernel of a variant (variants.go), one module, with
// the other variants of its group compiled alongside; or a kernel
// registered with its own CUDA source (primitives.KernelSpec.CUDA). Before
// compiling a registered source, its declaration of the kernel is held to
// the spec as the built-ins' are in the tests: the spec's buffer arguments
// by name, as pointers, its params struct by value, and Status* status.
// The lock is held while NVRTC compiles, so that a kernel is compiled once
// however many Evals need it at once.
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
	// progs[0] holds the kernel; the others, its variant's group, are
	// compiled alongside it.
	var progs []program
	v, builtin := variantOf(spec.Name)
	if builtin {
		src, err := sourceFile(v.file)
		if err != nil {
			return nil, err
		}
		progs = []program{{v.file, v.String(), src, v.options(d.arch)}}
		for _, w := range v.group() {
			if w.function != v.function {
				progs = append(progs, program{w.file, w.String(), src, w.options(d.arch)})
			}
		}
	} else {
		if err := checkUserSource(spec); err != nil {
			return nil, err
		}
		src, err := userSource(spec)
		if err != nil {
			return nil, err
		}
		progs = []program{{spec.CUDA.File, spec.CUDA.File, src, compileOptions(d.arch)}}
	}
	ms, err := d.compileModules(progs)
	if err != nil {
		return nil, err
	}
	mod, what := ms[0], progs[0].what
	if mod.err != nil {
		return nil, fmt.Errorf("compiling %s: %w", what, mod.err)
	}
	function := spec.Name
	if builtin {
		function = v.function
	}
	var fn, mma, ring, bulk, bulkEarly uintptr
	err = d.do(func() error {
		var err error
		if fn, err = d.moduleFunction(mod.mod, function); err != nil || fn == 0 || !builtin {
			return err
		}
		// A built-in kernel's tensor-core variants, as Open looks them up.
		if mma, err = d.moduleFunction(mod.mod, function+"_mma"); err != nil {
			return err
		}
		if ring, err = d.sharedFunction(mod.mod, function+"_mma_ring"); err != nil {
			return err
		}
		if bulk, err = d.sharedFunction(mod.mod, function+"_mma_bulk"); err != nil || bulk == 0 {
			return err
		}
		bulkEarly, err = d.sharedFunction(mod.mod, function+"_mma_bulk_early")
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
	k.mma, k.ring, k.bulk, k.bulkEarly = mma, ring, bulk, bulkEarly
	// A user kernel does not wait on its predecessors (griddepcontrol),
	// so it must never be a programmatic dependent.
	k.user = !builtin
	return k, nil
}

// program is a source compiled at first use: a variant's or a user
// kernel's.
type program struct {
	file string // for NVRTC's messages
	what string // for the device's: the file and the variant's macros
	src  string
	opts []string
}

// compileModules returns the loaded module, or the failure, of each program,
// compiling those the device has not, concurrently (from the cache or with
// NVRTC), once per device; d.lazyMu is held. The error is the NVRTC
// version's, which fails them all.
func (d *Device) compileModules(progs []program) ([]lazyModule, error) {
	ver, err := d.nvrtc.versionNumber()
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(progs))
	cubins := make([][]byte, len(progs))
	errs := make([]error, len(progs))
	var wg sync.WaitGroup
	for i, p := range progs {
		keys[i] = cacheKey(ver, p.opts, p.src)
		if _, ok := d.lazyModules[keys[i]]; !ok {
			wg.Go(func() { cubins[i], errs[i] = d.nvrtc.compileCached(ver, p.file, p.src, p.opts) })
		}
	}
	wg.Wait()
	if d.lazyModules == nil {
		d.lazyModules = map[string]lazyModule{}
	}
	out := make([]lazyModule, len(progs))
	for i, p := range progs {
		if m, ok := d.lazyModules[keys[i]]; ok {
			out[i] = m
			continue
		}
		var mod uintptr
		err := errs[i]
		if err == nil {
			err = d.do(func() error {
				if err := d.drv.call(d.drv.moduleLoadData, uintptr(unsafe.Pointer(&mod)), uintptr(unsafe.Pointer(&cubins[i][0]))); err != nil {
					return fmt.Errorf("loading the module of %s: %w", p.file, err)
				}
				d.modules = append(d.modules, mod)
				return nil
			})
		}
		out[i] = lazyModule{mod, err}
		d.lazyModules[keys[i]] = out[i]
	}
	return out, nil
}

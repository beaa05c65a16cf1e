package primitives

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/loomrt/loom/graph"
)

// The kernel catalog is the one place that says what a kernel is called and
// what it takes: its name, its buffer arguments (name and access mode, in
// binding order) and its params struct. Lowerings bind buffers to a
// catalog kernel's arguments by position (Lowering.Dispatch), so the names
// and access modes come from the catalog; the runtime checks every
// dispatch against it before any launch (CheckDispatch); the backends'
// tests hold their kernels' signatures to it. Built-in kernels and the
// kernels of primitives defined outside Loom are registered the same way.

// ArgSpec is one buffer argument of a kernel: the name of its parameter in
// the MSL and CUDA C sources, and how the kernel uses the buffer.
type ArgSpec struct {
	Name   string
	Access Access
}

// R is an argument the kernel reads.
func R(name string) ArgSpec { return ArgSpec{name, Read} }

// W is an argument the kernel writes (every byte of its range, or the
// bytes its data say: the encoder treats the range as written).
func W(name string) ArgSpec { return ArgSpec{name, Write} }

// RW is an argument the kernel reads and writes (an in-place update).
func RW(name string) ArgSpec { return ArgSpec{name, ReadWrite} }

// Source is a GPU kernel's source text and the file name compiler messages
// give it (file(line) in CUDA's, file:line in Metal's).
type Source struct {
	File string
	Text string
}

// KernelSpec describes a kernel: its name, its buffer arguments in binding
// order and the type of its params struct (a nil pointer of that type, or
// nil for none).
//
// A built-in kernel's GPU sources live in its backends (cuda/kernels,
// metal/kernels), which implement every built-in kernel. A kernel
// registered from outside Loom (Register) may carry its own: CUDA, CUDA C
// that the CUDA device compiles with NVRTC on first use, and MSL, which the
// Metal device compiles on first use; a device given neither runs the
// kernel's dispatches only if it has the kernel some other way (the CPU
// device: cpu.Register).
type KernelSpec struct {
	Name   string
	Args   []ArgSpec
	Params any
	CUDA   Source
	MSL    Source
}

// ArgNames returns the names of the buffer arguments, in binding order.
func (s KernelSpec) ArgNames() []string {
	out := make([]string, len(s.Args))
	for i, a := range s.Args {
		out[i] = a.Name
	}
	return out
}

// ParamsType is the params struct type (not the pointer), nil if none.
func (s KernelSpec) ParamsType() reflect.Type {
	if s.Params == nil {
		return nil
	}
	return reflect.TypeOf(s.Params).Elem()
}

// catalogEntry is a registered kernel; builtin for Loom's own.
type catalogEntry struct {
	spec    KernelSpec
	builtin bool
}

var (
	catalogMu sync.RWMutex
	catalog   = map[string]catalogEntry{}
)

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Register adds the kernels of a primitive defined outside Loom to the
// catalog, usually from an init function. It checks each spec as the
// built-ins' are checked: the name and argument names are C identifiers
// (they name the kernel and its parameters in the MSL and CUDA C sources),
// argument names are distinct, access modes are Read, Write or ReadWrite,
// the params are a pointer to a struct of 4-byte fields whose type name no
// other registered params type has (the GPU sources declare it by that
// name), and no kernel of that name is registered yet.
func Register(specs ...KernelSpec) error { return add(false, specs) }

// register adds built-in kernels; each primitive family calls it from an
// init function for every name it can emit. An error is a bug in this
// package.
func register(specs ...KernelSpec) {
	if err := add(true, specs); err != nil {
		panic(err)
	}
}

func add(builtin bool, specs []KernelSpec) error {
	catalogMu.Lock()
	defer catalogMu.Unlock()
	for _, s := range specs {
		if err := checkSpec(s); err != nil {
			return err
		}
		if _, dup := catalog[s.Name]; dup {
			return fmt.Errorf("primitives: kernel %s is registered twice", s.Name)
		}
		catalog[s.Name] = catalogEntry{s, builtin}
	}
	return nil
}

// checkSpec checks a spec before it enters the catalog (catalogMu held).
func checkSpec(s KernelSpec) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("primitives: kernel %q: %s", s.Name, fmt.Sprintf(format, args...))
	}
	if !identRE.MatchString(s.Name) {
		return fail("the name must be a C identifier (letters, digits, _)")
	}
	for i, a := range s.Args {
		switch {
		case !identRE.MatchString(a.Name):
			return fail("argument %d's name %q is not a C identifier", i, a.Name)
		case a.Access != Read && a.Access != Write && a.Access != ReadWrite:
			return fail("argument %s has access %v; want Read, Write or ReadWrite", a.Name, a.Access)
		}
		for _, b := range s.Args[:i] {
			if b.Name == a.Name {
				return fail("two arguments are named %s", a.Name)
			}
		}
	}
	for _, src := range []struct {
		lang string
		s    Source
	}{{"CUDA", s.CUDA}, {"MSL", s.MSL}} {
		if src.s.Text != "" && src.s.File == "" {
			return fail("its %s source has no file name (Source.File) for compiler messages to name", src.lang)
		}
	}
	if s.Params == nil {
		return nil
	}
	t := reflect.TypeOf(s.Params)
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return fail("params %v is not a pointer to a struct", t)
	}
	if _, err := CParamsDecl(t.Elem(), "uint"); err != nil {
		return fail("%v", err)
	}
	for _, e := range catalog {
		if o := e.spec.ParamsType(); o != nil && o.Name() == t.Elem().Name() && o != t.Elem() {
			return fail("params type %v has the name of %v (kernel %s); the GPU sources declare params structs by name", t.Elem(), o, e.spec.Name)
		}
	}
	return nil
}

// Catalog returns every built-in kernel, sorted by name: the kernels every
// backend implements.
func Catalog() []KernelSpec {
	catalogMu.RLock()
	defer catalogMu.RUnlock()
	out := make([]KernelSpec, 0, len(catalog))
	for _, e := range catalog {
		if e.builtin {
			out = append(out, e.spec)
		}
	}
	slices.SortFunc(out, func(a, b KernelSpec) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// LookupKernel returns the catalog entry of a kernel, built in or
// registered.
func LookupKernel(name string) (KernelSpec, bool) {
	catalogMu.RLock()
	defer catalogMu.RUnlock()
	e, ok := catalog[name]
	return e.spec, ok
}

// Dispatch appends a dispatch of the named catalog kernel over grid
// threadgroups of group threads, with refs bound to the kernel's arguments
// in order (their names and access modes are the catalog's) and params
// bound after them. It returns the dispatch so that the caller may set
// argument ranges or threadgroup memory. A kernel missing from the catalog,
// or refs that do not match its arguments, fail the Eval when the runtime
// checks the dispatch (CheckDispatch).
func (l *Lowering) Dispatch(kernel string, grid, group Dim3, params any, refs ...Ref) *Dispatch {
	l.Dispatches = append(l.Dispatches, bind(kernel, grid, group, params, refs))
	return &l.Dispatches[len(l.Dispatches)-1]
}

// bind is a dispatch of the named kernel with refs bound to its catalog
// arguments in order.
func bind(kernel string, grid, group Dim3, params any, refs []Ref) Dispatch {
	spec, _ := LookupKernel(kernel)
	args := make([]Arg, len(refs))
	for i, r := range refs {
		args[i].Ref = r
		if i < len(spec.Args) {
			args[i].Name, args[i].Access = spec.Args[i].Name, spec.Args[i].Access
		}
	}
	return Dispatch{Kernel: kernel, Grid: grid, Group: group, Args: args, Params: params}
}

// KernelName is the name of a kernel specialised on dtypes: op, then each
// dtype's short name, joined by underscores ("add_f32", "cast_f32_bf16").
// Every family names its kernels through it, in one function per family
// (BinaryKernel, RMSNormKernel, ...) that its lowering, its catalog entries
// and the CPU device's kernels share.
func KernelName(op string, dts ...graph.DType) string {
	var sb strings.Builder
	sb.WriteString(op)
	for _, dt := range dts {
		sb.WriteByte('_')
		sb.WriteString(dt.Short())
	}
	return sb.String()
}

// ErrNotInCatalog is wrapped by CheckDispatch's error for a kernel that no
// one registered.
var ErrNotInCatalog = errors.New("kernel not in the catalog")

// CheckDispatch checks a dispatch against its kernel's catalog entry: the
// kernel is registered, and the dispatch binds as many buffers as it has
// arguments, each under the argument's name and access mode, and params of
// the kernel's type (or none).
func CheckDispatch(d *Dispatch) error {
	spec, ok := LookupKernel(d.Kernel)
	if !ok {
		return fmt.Errorf("%w: kernel %q is not registered (primitives.Register)", ErrNotInCatalog, d.Kernel)
	}
	if len(d.Args) != len(spec.Args) {
		return fmt.Errorf("kernel %s takes %d buffer arguments (%s), the dispatch binds %d", d.Kernel, len(spec.Args), strings.Join(spec.ArgNames(), ", "), len(d.Args))
	}
	for i, a := range d.Args {
		if w := spec.Args[i]; a.Name != w.Name || a.Access != w.Access {
			return fmt.Errorf("kernel %s argument %d is %s (%v), the dispatch binds %s (%v)", d.Kernel, i, w.Name, w.Access, a.Name, a.Access)
		}
	}
	want := reflect.TypeOf(spec.Params)
	switch got := reflect.TypeOf(d.Params); {
	case want == nil && got != nil:
		return fmt.Errorf("kernel %s takes no params, the dispatch gives %v", d.Kernel, got)
	case want != nil && got != want:
		return fmt.Errorf("kernel %s takes params %v, the dispatch gives %v", d.Kernel, want, got)
	case want != nil && reflect.ValueOf(d.Params).IsNil():
		return fmt.Errorf("kernel %s: the dispatch's params are a nil %v", d.Kernel, want)
	}
	return nil
}

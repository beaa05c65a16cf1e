package metal

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/loomrt/loom/primitives"
)

// The MSL check: on machines without Apple's Metal compiler, the kernel
// library is compiled as C++17 by g++ against the shim header in shim/, and
// its kernels' signatures are read back and held to the primitives catalog.

// cxx returns the C++ compiler for the MSL check.
func cxx(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("g++")
	if err != nil {
		if goruntime.GOOS == "darwin" {
			t.Skip("g++ is not installed; on macOS the Metal compiler checks the library when the device opens")
		}
		t.Fatal("g++ is not installed: run scripts/install-msl-check.sh (make test does)")
	}
	return path
}

// compileMSL compiles src as C++ through the shim with every warning an
// error, except the attributes Metal needs (g++ ignores them). It returns
// the compiler's messages when compilation fails.
func compileMSL(t testing.TB, src string) error {
	t.Helper()
	file := filepath.Join(t.TempDir(), "loom.metal")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	shim := shimDir(t)
	cmd := exec.Command(cxx(t), "-std=c++17", "-fsyntax-only", "-x", "c++", "-I", shim,
		"-Wall", "-Wextra", "-Werror", "-Wno-attributes", "-fmax-errors=20", file)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	return nil
}

// shimDir returns the shim's directory. It reads the header so that go
// test's cache knows the results depend on it (g++ reads it, not the test).
func shimDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("shim")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadFile(filepath.Join(dir, "metal_stdlib")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// preprocessMSL expands the macros of src (LOOM_KERNEL and friends) the way
// the Metal compiler does, against an empty <metal_stdlib>, so that the
// kernel declarations can be read.
func preprocessMSL(t testing.TB, src string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "metal_stdlib"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "loom.metal")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(cxx(t), "-E", "-P", "-x", "c++", "-std=c++17", "-I", dir, file).CombinedOutput()
	if err != nil {
		t.Fatalf("preprocessing the MSL: %v\n%s", err, out)
	}
	return string(out)
}

// mslParam is a kernel parameter: bound to a buffer index, or given by
// the attribute attr (a thread position).
type mslParam struct {
	index int // -1 for an attribute parameter
	attr  string
	name  string
	typ   string // the declared type, qualifiers included
}

// mslKernel is a library function: a catalog name, the template function
// and its arguments (empty for a plain kernel), and its parameters.
type mslKernel struct {
	name   string
	fn     string
	targs  string
	params []mslParam
}

// buffers returns the buffer-bound parameters.
func (k mslKernel) buffers() []mslParam {
	var out []mslParam
	for _, p := range k.params {
		if p.index >= 0 {
			out = append(out, p)
		}
	}
	return out
}

var (
	instantiationRE = regexp.MustCompile(`template\s*\[\[\s*host_name\s*\(\s*((?:"[^"]*"\s*)+)\)\s*\]\]\s*\[\[\s*kernel\s*\]\]\s*decltype\s*\(\s*(\w+)\s*<`)
	definitionRE    = regexp.MustCompile(`\[\[\s*kernel\s*\]\]\s*void\s+(\w+)\s*\(`)
	bufferRE        = regexp.MustCompile(`^(.*?)\b(\w+)\s*\[\[\s*buffer\s*\(\s*(\d+)\s*\)\s*\]\]\s*$`)
	attrRE          = regexp.MustCompile(`^(.*?)\b(\w+)\s*\[\[\s*(\w+)\s*\]\]\s*$`)
	stringLitRE     = regexp.MustCompile(`"([^"]*)"`)
)

// parseKernels reads the kernels of preprocessed MSL: [[kernel]] function
// definitions (templates or not) and LOOM_KERNEL instantiations of the
// templates. A non-template kernel is a library function under its own
// name. It also returns the template kernels that nothing instantiates.
func parseKernels(src string) (kernels map[string]mslKernel, unused []string, err error) {
	type def struct {
		params   []mslParam
		template bool
	}
	defs := map[string]def{}
	for _, m := range definitionRE.FindAllStringSubmatchIndex(src, -1) {
		fn := src[m[2]:m[3]]
		if _, dup := defs[fn]; dup {
			return nil, nil, fmt.Errorf("kernel function %s is defined twice", fn)
		}
		params, err := parseParams(src, m[1]-1)
		if err != nil {
			return nil, nil, fmt.Errorf("kernel function %s: %v", fn, err)
		}
		before := strings.TrimSpace(src[:m[0]])
		defs[fn] = def{params, strings.HasSuffix(before, ">")}
	}
	kernels = map[string]mslKernel{}
	add := func(k mslKernel) error {
		if _, dup := kernels[k.name]; dup {
			return fmt.Errorf("kernel %s is defined twice", k.name)
		}
		kernels[k.name] = k
		return nil
	}
	used := map[string]bool{}
	for _, idx := range instantiationRE.FindAllStringSubmatchIndex(src, -1) {
		lits, fn := src[idx[2]:idx[3]], src[idx[4]:idx[5]]
		var name strings.Builder
		for _, lit := range stringLitRE.FindAllStringSubmatch(lits, -1) {
			name.WriteString(lit[1])
		}
		d, ok := defs[fn]
		if !ok || !d.template {
			return nil, nil, fmt.Errorf("kernel %s instantiates %s, which is not a [[kernel]] template", name.String(), fn)
		}
		depth, end := 1, idx[1]
		for ; end < len(src) && depth > 0; end++ {
			switch src[end] {
			case '<':
				depth++
			case '>':
				depth--
			}
		}
		used[fn] = true
		if err := add(mslKernel{name.String(), fn, strings.TrimSpace(src[idx[1] : end-1]), d.params}); err != nil {
			return nil, nil, err
		}
	}
	for fn, d := range defs {
		switch {
		case !d.template:
			if err := add(mslKernel{fn, fn, "", d.params}); err != nil {
				return nil, nil, err
			}
		case !used[fn]:
			unused = append(unused, fn)
		}
	}
	slices.Sort(unused)
	return kernels, unused, nil
}

// parseParams reads the parameter list whose '(' is at src[open].
func parseParams(src string, open int) ([]mslParam, error) {
	depth, start := 0, open+1
	var parts []string
	for i := open; i < len(src); i++ {
		switch src[i] {
		case '(', '[', '<':
			depth++
		case ')', ']', '>':
			depth--
		case ',':
			if depth == 1 {
				parts = append(parts, src[start:i])
				start = i + 1
			}
		}
		if depth == 0 {
			parts = append(parts, src[start:i])
			break
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced parameter list")
	}
	var params []mslParam
	for _, p := range parts {
		p = strings.Join(strings.Fields(p), " ")
		if m := bufferRE.FindStringSubmatch(p); m != nil {
			idx, _ := strconv.Atoi(m[3])
			params = append(params, mslParam{index: idx, name: m[2], typ: strings.TrimSpace(m[1])})
			continue
		}
		m := attrRE.FindStringSubmatch(p)
		if m == nil {
			return nil, fmt.Errorf("parameter %q has neither [[buffer(i)]] nor a thread-position attribute", p)
		}
		params = append(params, mslParam{index: -1, attr: m[3], name: m[2], typ: strings.TrimSpace(m[1])})
	}
	return params, nil
}

// paramsTypeName is the struct a params parameter's type names.
var paramsTypeRE = regexp.MustCompile(`^constant\s+(\w+)\s*&$`)

// checkKernels holds the MSL kernels to the catalog: the same set of names,
// and for each the catalog's arguments at buffer indices 0..n-1 with their
// names, the params struct (by the Go type's name, passed by constant
// reference) at index n, and nothing else but the status record at
// statusIndex.
func checkKernels(kernels map[string]mslKernel, unused []string, catalog []primitives.KernelSpec) []error {
	var errs []error
	for _, fn := range unused {
		errs = append(errs, fmt.Errorf("kernel template %s is never instantiated", fn))
	}
	inCatalog := map[string]bool{}
	for _, spec := range catalog {
		inCatalog[spec.Name] = true
		k, ok := kernels[spec.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("catalog kernel %s has no MSL kernel", spec.Name))
			continue
		}
		errs = append(errs, checkSignature(spec, k)...)
	}
	names := make([]string, 0, len(kernels))
	for n := range kernels {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if !inCatalog[n] {
			errs = append(errs, fmt.Errorf("MSL kernel %s (function %s) is not in the primitives catalog: no primitive can reach it", n, kernels[n].fn))
		}
	}
	return errs
}

func checkSignature(spec primitives.KernelSpec, k mslKernel) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("kernel %s (function %s): %s", spec.Name, k.fn, fmt.Sprintf(format, args...)))
	}
	byIndex := map[int]mslParam{}
	for _, p := range k.buffers() {
		if old, dup := byIndex[p.index]; dup {
			fail("parameters %s and %s are both at buffer(%d)", old.name, p.name, p.index)
		}
		byIndex[p.index] = p
	}
	n := len(spec.Args)
	if n+1 >= statusIndex {
		fail("%d arguments and params reach the status index %d", n+1, statusIndex)
	}
	for i, want := range spec.Args {
		p, ok := byIndex[i]
		switch {
		case !ok:
			fail("argument %d (%s) has no [[buffer(%d)]] parameter", i, want, i)
		case p.name != want:
			fail("[[buffer(%d)]] is named %s, the catalog's argument %d is %s", i, p.name, i, want)
		case !strings.HasPrefix(p.typ, "device "):
			fail("argument %s is not in the device address space (%s)", want, p.typ)
		}
	}
	p, ok := byIndex[n]
	switch {
	case spec.Params == nil && ok:
		fail("[[buffer(%d)]] %s is bound, but the catalog gives no params", n, p.name)
	case spec.Params != nil && !ok:
		fail("the params %T have no [[buffer(%d)]] parameter", spec.Params, n)
	case spec.Params != nil:
		want := strings.TrimPrefix(fmt.Sprintf("%T", spec.Params), "*primitives.")
		m := paramsTypeRE.FindStringSubmatch(p.typ)
		if m == nil || m[1] != want {
			fail("[[buffer(%d)]] %s has type %q, want constant %s&", n, p.name, p.typ, want)
		}
	}
	for _, p := range k.buffers() {
		switch {
		case p.index < n || (p.index == n && spec.Params != nil):
		case p.index == statusIndex:
			if p.name != "status" || p.typ != "device atomic_uint*" {
				fail("[[buffer(%d)]] must be the status record (LOOM_STATUS), got %s %s", statusIndex, p.typ, p.name)
			}
		default:
			fail("[[buffer(%d)]] %s is not a catalog argument", p.index, p.name)
		}
	}
	return errs
}

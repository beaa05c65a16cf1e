package metal

import (
	"fmt"
	"regexp"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"

	"github.com/loomrt/loom/metal/mslcheck"
	"github.com/loomrt/loom/primitives"
)

// The MSL check: on machines without Apple's Metal compiler, the kernel
// library is compiled as C++17 by g++ through package mslcheck's shim, and
// its kernels' signatures are read back and held to the primitives catalog.

// needCompiler stops the test when g++, which the check needs, is missing.
func needCompiler(t testing.TB) {
	t.Helper()
	if _, err := mslcheck.Compiler(); err != nil {
		if goruntime.GOOS == "darwin" {
			t.Skip("g++ is not installed; on macOS the Metal compiler checks the library when the device opens")
		}
		t.Fatal(err)
	}
}

// compileMSL compiles src through the shim (mslcheck.Check).
func compileMSL(t testing.TB, src string) error {
	t.Helper()
	needCompiler(t)
	return mslcheck.Check("loom.metal", src)
}

// preprocessMSL expands the macros of src (LOOM_KERNEL and friends).
func preprocessMSL(t testing.TB, src string) string {
	t.Helper()
	needCompiler(t)
	out, err := mslcheck.Preprocess(src)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// paramsTypeName is the struct a params parameter's type names.
var paramsTypeRE = regexp.MustCompile(`^constant\s+(\w+)\s*&$`)

// checkKernels holds the MSL kernels to the catalog: the same set of names,
// and for each the catalog's arguments at buffer indices 0..n-1 with their
// names, the params struct (by the Go type's name, passed by constant
// reference) at index n, and nothing else but the status record at
// statusIndex.
func checkKernels(kernels map[string]mslcheck.Kernel, unused []string, catalog []primitives.KernelSpec) []error {
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
			errs = append(errs, fmt.Errorf("MSL kernel %s (function %s) is not in the primitives catalog: no primitive can reach it", n, kernels[n].Func))
		}
	}
	return errs
}

func checkSignature(spec primitives.KernelSpec, k mslcheck.Kernel) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("kernel %s (function %s): %s", spec.Name, k.Func, fmt.Sprintf(format, args...)))
	}
	byIndex := map[int]mslcheck.Param{}
	for _, p := range k.Buffers() {
		if old, dup := byIndex[p.Index]; dup {
			fail("parameters %s and %s are both at buffer(%d)", old.Name, p.Name, p.Index)
		}
		byIndex[p.Index] = p
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
		case p.Name != want:
			fail("[[buffer(%d)]] is named %s, the catalog's argument %d is %s", i, p.Name, i, want)
		case !strings.HasPrefix(p.Type, "device "):
			fail("argument %s is not in the device address space (%s)", want, p.Type)
		}
	}
	p, ok := byIndex[n]
	switch {
	case spec.Params == nil && ok:
		fail("[[buffer(%d)]] %s is bound, but the catalog gives no params", n, p.Name)
	case spec.Params != nil && !ok:
		fail("the params %T have no [[buffer(%d)]] parameter", spec.Params, n)
	case spec.Params != nil:
		want := strings.TrimPrefix(fmt.Sprintf("%T", spec.Params), "*primitives.")
		m := paramsTypeRE.FindStringSubmatch(p.Type)
		if m == nil || m[1] != want {
			fail("[[buffer(%d)]] %s has type %q, want constant %s&", n, p.Name, p.Type, want)
		}
	}
	for _, p := range k.Buffers() {
		switch {
		case p.Index < n || (p.Index == n && spec.Params != nil):
		case p.Index == statusIndex:
			if p.Name != "status" || p.Type != "device atomic_uint*" {
				fail("[[buffer(%d)]] must be the status record (LOOM_STATUS), got %s %s", statusIndex, p.Type, p.Name)
			}
		default:
			fail("[[buffer(%d)]] %s is not a catalog argument", p.Index, p.Name)
		}
	}
	return errs
}

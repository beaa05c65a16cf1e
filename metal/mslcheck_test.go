package metal

import (
	"fmt"
	goruntime "runtime"
	"slices"
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

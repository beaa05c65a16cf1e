package cuda

import (
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// preprocess expands the macros of src (the kernel-defining macros of each
// family) with the C preprocessor, with the given -D options, so that every
// kernel's declaration can be read.
func preprocess(t testing.TB, src string, defines ...string) string {
	t.Helper()
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skipf("no gcc to preprocess the CUDA sources with: %v", err)
	}
	cmd := exec.Command(cc, append(append([]string{"-E", "-P", "-x", "c++"}, defines...), "-")...)
	cmd.Stdin = strings.NewReader(src)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("preprocessing: %v\n%s", err, out)
	}
	return string(out)
}

// checkKernels holds the CUDA kernels to the catalog: every catalog kernel
// is defined or listed in missing (not both), every defined kernel is in the
// catalog or is a catalog kernel's tensor-core variant <name>_mma, cluster
// variant <name>_mma_ring or bulk variants <name>_mma_bulk and
// <name>_mma_bulk_early with the same
// parameters (launched in its
// place, see launch.function), and each
// has the catalog's buffer arguments by name, as pointers, then its params
// struct by value, then the status record, and begins with
// grid_dependency_wait (checkWaits).
func checkKernels(kernels map[string]cudaKernel, catalog []primitives.KernelSpec, missing []string) []error {
	var errs []error
	inCatalog := map[string]bool{}
	for _, spec := range catalog {
		inCatalog[spec.Name] = true
		k, ok := kernels[spec.Name]
		listed := slices.Contains(missing, spec.Name)
		switch {
		case !ok && !listed:
			errs = append(errs, fmt.Errorf("catalog kernel %s has no CUDA kernel and is not listed as not implemented", spec.Name))
			continue
		case ok && listed:
			errs = append(errs, fmt.Errorf("kernel %s is listed as not implemented but %s defines it", spec.Name, k.file))
		case !ok:
			continue
		}
		errs = append(errs, checkSignature(spec, k)...)
	}
	errs = append(errs, checkWaits(kernels)...)
	for name, k := range kernels {
		base, ok := strings.CutSuffix(name, "_mma")
		for _, suffix := range []string{"_mma_ring", "_mma_bulk", "_mma_bulk_early"} {
			if !ok {
				base, ok = strings.CutSuffix(name, suffix)
			}
		}
		if ok && inCatalog[base] {
			if b, ok := kernels[base]; !ok || !slices.Equal(k.params, b.params) {
				errs = append(errs, fmt.Errorf("kernel %s (%s) is a tensor-core variant of %s but its parameters %v are not %s's %v", name, k.file, base, k.params, base, b.params))
			}
			continue
		}
		if !inCatalog[name] {
			errs = append(errs, fmt.Errorf("kernel %s (%s) is not in the primitives catalog", name, k.file))
		}
	}
	for _, name := range missing {
		if !inCatalog[name] {
			errs = append(errs, fmt.Errorf("%s is listed as not implemented but is not in the primitives catalog", name))
		}
	}
	return errs
}

// checkWaits holds every kernel to beginning with grid_dependency_wait
// (common.cuh): a graph node of a catalog kernel may depend on the node
// before programmatically (graph_linux.go, programmatic), and then no
// global memory access may come before the wait. Its arguments, L2
// prefetches of the weights (matmul.cu), are computed from the params
// and the block's index alone.
func checkWaits(kernels map[string]cudaKernel) []error {
	var errs []error
	for name, k := range kernels {
		if !strings.HasPrefix(k.first, "grid_dependency_wait(") {
			errs = append(errs, fmt.Errorf("kernel %s (%s) begins with %q, not grid_dependency_wait(…): it may run while the kernel before it does (programmatic dependent launch)", name, k.file, k.first))
		}
	}
	return errs
}

// TestKernelsMatchCatalog holds the CUDA sources, the files as Open
// compiles them and their variants (variants.go), to the primitives
// catalog, and each variant to the function that the device looks for in
// it: no kernel is defined twice, a variant defines its function (and its
// tensor-core variant) and no other, and the function is held to every
// catalog kernel it serves.
func TestKernelsMatchCatalog(t *testing.T) {
	files, err := sourceFiles()
	if err != nil {
		t.Fatal(err)
	}
	kernels := map[string]cudaKernel{}
	for name, src := range files {
		if err := parseKernels(name, preprocess(t, src), kernels); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range variants() {
		// The matmul variants with the bulk GEMV's kernels, which the
		// device compiles only where it is on (LOOM_CUDA_GEMV_BULK).
		if v.file == "matmul.cu" && !slices.Contains(v.defines, "-DLOOM_MATMUL_BULK") {
			v.defines = append(slices.Clone(v.defines), "-DLOOM_MATMUL_BULK")
		}
		if err := parseKernels(v.String(), preprocess(t, files[v.file], v.defines...), kernels); err != nil {
			t.Fatal(err)
		}
		var defined []string
		for name, k := range kernels {
			// The function's tensor-core variant is checked with the
			// others (checkKernels).
			if k.file == v.String() && !slices.Contains([]string{v.function + "_mma", v.function + "_mma_ring", v.function + "_mma_bulk", v.function + "_mma_bulk_early"}, name) {
				defined = append(defined, name)
			}
		}
		if len(defined) != 1 || defined[0] != v.function {
			t.Errorf("%s defines the kernels %v, want %s", v, defined, v.function)
		}
		// Each catalog kernel is held to the function that serves it.
		for _, name := range v.kernels {
			if name == v.function {
				continue
			}
			if old, dup := kernels[name]; dup {
				t.Errorf("kernel %s is defined in %s and served by %s of %s", name, old.file, v.function, v)
			}
			k := kernels[v.function]
			k.file = fmt.Sprintf("%s, function %s", v, v.function)
			kernels[name] = k
		}
		if !slices.Contains(v.kernels, v.function) {
			delete(kernels, v.function)
		}
	}
	// The lowering asks for the tensor-core kernels of float16 and
	// bfloat16 products (primitives.MatMulParams.MMA): without one, the
	// device would launch the plain kernel with the tensor-core grid.
	for _, dt := range primitives.MatMulDTypes {
		for _, name := range []string{primitives.MatMulGEMVKernel(dt), primitives.MatMulSiLUMulKernel(dt), primitives.MatMulTiledKernel(dt)} {
			if _, ok := kernels[name+"_mma"]; !ok && dt != graph.Float32 {
				t.Errorf("no tensor-core kernel %s_mma", name)
			}
		}
	}
	catalog := primitives.Catalog()
	if len(kernels) == 0 || len(catalog) == 0 {
		t.Fatalf("%d CUDA kernels, %d catalog kernels", len(kernels), len(catalog))
	}
	for _, err := range checkKernels(kernels, catalog, notImplemented) {
		t.Error(err)
	}
	t.Logf("%d of %d catalog kernels have a CUDA kernel; not implemented: %v", len(kernels), len(catalog), notImplemented)
}

// TestCatalogCheckCatchesMismatches shows that the catalog check can fail:
// each source below disagrees with the catalog in one way.
func TestCatalogCheckCatchesMismatches(t *testing.T) {
	catalog := []primitives.KernelSpec{
		{Name: "k_f32", Args: []primitives.ArgSpec{primitives.R("src"), primitives.W("dst")}, Params: (*primitives.CopyParams)(nil)},
		{Name: "k_f16", Args: []primitives.ArgSpec{primitives.R("src"), primitives.W("dst")}, Params: (*primitives.CopyParams)(nil)},
		{Name: "plain", Args: []primitives.ArgSpec{primitives.RW("x")}},
	}
	good := map[string]string{
		"k_f32": "const float* src, float* dst, const CopyParams p, Status* status",
		"k_f16": "const half_t* src, half_t* dst, const CopyParams p, Status* status",
		"plain": "float* x, Status* status",
	}
	source := func(params map[string]string, extra string) string {
		var sb strings.Builder
		sb.WriteString("#define DEF(NAME, ARGS) extern \"C\" __global__ void NAME(ARGS) { grid_dependency_wait(); }\n")
		for _, name := range []string{"k_f32", "k_f16", "plain"} {
			if p, ok := params[name]; ok {
				fmt.Fprintf(&sb, "extern \"C\" __global__ void %s(%s) {\n  grid_dependency_wait(span(src, p));\n  dst[0] = src[0];\n}\n", name, p)
			}
		}
		return sb.String() + extra
	}
	with := func(name, params string) map[string]string {
		m := map[string]string{}
		for k, v := range good {
			m[k] = v
		}
		if params == "" {
			delete(m, name)
		} else {
			m[name] = params
		}
		return m
	}
	cases := []struct {
		name, src string
		missing   []string
		want      string
	}{
		{"good", source(good, ""), nil, ""},
		{"good, with one listed as missing", source(with("plain", ""), ""), []string{"plain"}, ""},
		{"kernel from a macro", source(with("plain", ""), "#define COMMA ,\nDEF(plain, float* x COMMA Status* status)\n"), nil, ""},
		{"swapped names", source(with("k_f32", "const float* dst, float* src, const CopyParams p, Status* status"), ""), nil, "parameter 0 is const float * dst, want a pointer named src"},
		{"missing argument", source(with("k_f32", "float* dst, const CopyParams p, Status* status"), ""), nil, "has 3 parameters, want 4"},
		{"params by pointer", source(with("k_f16", "const half_t* src, half_t* dst, const CopyParams* p, Status* status"), ""), nil, "want const CopyParams (by value)"},
		{"wrong params type", source(with("k_f16", "const half_t* src, half_t* dst, const ElementwiseParams p, Status* status"), ""), nil, "want const CopyParams"},
		{"no status", source(with("plain", "float* x, float* status"), ""), nil, "want Status* status"},
		{"missing kernel", source(with("k_f16", ""), ""), nil, "catalog kernel k_f16 has no CUDA kernel"},
		{"stale missing list", source(good, ""), []string{"plain"}, "listed as not implemented but"},
		{"unknown missing entry", source(good, ""), []string{"nothing"}, "nothing is listed as not implemented but is not in the primitives catalog"},
		{"kernel outside the catalog", source(good, "extern \"C\" __global__ void extra(float* x, Status* status) {}\n"), nil, "kernel extra (f.cu) is not in the primitives catalog"},
		{"tensor-core variant", source(good, "extern \"C\" __global__ void k_f16_mma(const half_t* src, half_t* dst, const CopyParams p, Status* status) { grid_dependency_wait(); }\n"), nil, ""},
		{"no wait", source(with("plain", ""), "extern \"C\" __global__ void plain(float* x, Status* status) { x[0] = 1; }\n"), nil, `kernel plain (f.cu) begins with "x[0] = 1", not grid_dependency_wait`},
		{"access before the wait", source(with("plain", ""), "extern \"C\" __global__ void plain(float* x, Status* status) {\n  float v = x[0];\n  grid_dependency_wait();\n}\n"), nil, "begins with \"float v = x[0]\""},
		{"empty body", source(with("plain", ""), "extern \"C\" __global__ void plain(float* x, Status* status) {}\n"), nil, "kernel plain (f.cu) begins with"},
		{"variant without the wait", source(good, "extern \"C\" __global__ void k_f16_mma(const half_t* src, half_t* dst, const CopyParams p, Status* status) { dst[0] = src[0]; }\n"), nil, "kernel k_f16_mma (f.cu) begins with"},
		{"tensor-core variant of another type", source(good, "extern \"C\" __global__ void k_f16_mma(const float* src, float* dst, const CopyParams p, Status* status) {}\n"), nil, "k_f16_mma (f.cu) is a tensor-core variant of k_f16 but"},
		{"tensor-core variant of nothing", source(good, "extern \"C\" __global__ void k_f64_mma(const half_t* src, half_t* dst, const CopyParams p, Status* status) {}\n"), nil, "kernel k_f64_mma (f.cu) is not in the primitives catalog"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			kernels := map[string]cudaKernel{}
			if err := parseKernels("f.cu", preprocess(t, c.src), kernels); err != nil {
				t.Fatal(err)
			}
			errs := errors.Join(checkKernels(kernels, catalog, c.missing)...)
			switch {
			case c.want == "" && errs != nil:
				t.Fatalf("unexpected errors:\n%v", errs)
			case c.want != "" && errs == nil:
				t.Fatalf("no error, want one mentioning %q", c.want)
			case c.want != "" && !strings.Contains(errs.Error(), c.want):
				t.Fatalf("errors do not mention %q:\n%v", c.want, errs)
			}
		})
	}
}

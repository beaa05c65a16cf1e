package metal

import (
	"errors"
	"strings"
	"testing"

	"github.com/loomrt/loom/metal/mslcheck"
	"github.com/loomrt/loom/primitives"
)

func library(t *testing.T) string {
	t.Helper()
	src, err := librarySource()
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// TestMSLCompiles compiles the whole kernel library, as the Metal device
// does at start-up, as C++ through the shim.
func TestMSLCompiles(t *testing.T) {
	if err := compileMSL(t, library(t)); err != nil {
		t.Fatalf("the kernel library does not compile:\n%v", err)
	}
}

// TestMSLCheckCatchesBrokenKernels shows that the compile check can fail:
// each deliberately broken kernel, added to the library, must be rejected
// with a message that points at it.
func TestMSLCheckCatchesBrokenKernels(t *testing.T) {
	src := library(t)
	cases := []struct {
		name, kernel, want string
	}{
		{"undeclared name", `
template <typename T>
[[kernel]] void broken(device T* out [[buffer(0)]], uint gid [[thread_position_in_grid]]) {
  out[gid] = T(undeclared_value);
}
LOOM_KERNEL("broken_f32", broken, float)`, "undeclared_value"},
		{"implicit float to half", `
template <typename T>
[[kernel]] void broken(device T* out [[buffer(0)]], uint gid [[thread_position_in_grid]]) {
  float v = 1.0f;
  out[gid] = v;
}
LOOM_FLOAT_KERNELS("broken", broken)`, "broken.metal:4"},
		{"double on the GPU", `
[[kernel]] void broken(device float* out [[buffer(0)]], uint gid [[thread_position_in_grid]]) {
  double v = 1;
  out[gid] = float(v);
}`, "double"},
		{"function Metal lacks", `
[[kernel]] void broken(device float* out [[buffer(0)]], uint gid [[thread_position_in_grid]]) {
  out[gid] = erf(out[gid]);
}`, "erf"},
		{"unused variable", `
[[kernel]] void broken(device float* out [[buffer(0)]], uint gid [[thread_position_in_grid]]) {
  int unused_count = 0;
  out[gid] = 1.0f;
}`, "unused_count"},
		{"sign comparison", `
[[kernel]] void broken(device float* out [[buffer(0)]], constant CopyParams& p [[buffer(1)]], uint gid [[thread_position_in_grid]]) {
  int i = int(gid);
  if (i < p.Bytes) out[gid] = 1.0f;
}`, "broken.metal:3"},
		{"wrong params field", `
[[kernel]] void broken(device float* out [[buffer(0)]], constant CopyParams& p [[buffer(1)]], uint gid [[thread_position_in_grid]]) {
  out[gid] = float(p.Count);
}`, "Count"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := compileMSL(t, src+"#line 1 \"broken.metal\""+c.kernel+"\n")
			if err == nil {
				t.Fatal("the broken kernel compiled")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("the error does not mention %q:\n%v", c.want, err)
			}
		})
	}
}

// TestKernelsMatchCatalog holds the MSL library to the primitives catalog:
// every kernel a primitive can emit exists, every MSL kernel is reachable,
// and argument indices, names and params types agree.
func TestKernelsMatchCatalog(t *testing.T) {
	kernels, unused, err := mslcheck.ParseKernels(preprocessMSL(t, library(t)))
	if err != nil {
		t.Fatal(err)
	}
	catalog := primitives.Catalog()
	if len(kernels) == 0 || len(catalog) == 0 {
		t.Fatalf("%d MSL kernels, %d catalog kernels", len(kernels), len(catalog))
	}
	for _, err := range checkKernels(kernels, unused, catalog) {
		t.Error(err)
	}
}

// TestCatalogCheckCatchesMismatches shows that the catalog check can fail:
// each kernel below disagrees with its catalog entry in one way.
func TestCatalogCheckCatchesMismatches(t *testing.T) {
	catalog := []primitives.KernelSpec{
		{Name: "k_f32", Args: []primitives.ArgSpec{primitives.R("src"), primitives.W("dst")}, Params: (*primitives.CopyParams)(nil)},
		{Name: "k_f16", Args: []primitives.ArgSpec{primitives.R("src"), primitives.W("dst")}, Params: (*primitives.CopyParams)(nil)},
	}
	kernel := func(params string) string {
		return "#include <metal_stdlib>\n#include \"common\"\ntemplate <typename T>\n[[kernel]] void k(" + params +
			", uint gid [[thread_position_in_grid]]) {}\nLOOM_KERNEL(\"k_f32\", k, float)\nLOOM_KERNEL(\"k_f16\", k, half)\n"
	}
	good := "device const T* src [[buffer(0)]], device T* dst [[buffer(1)]], constant CopyParams& p [[buffer(2)]], LOOM_STATUS"
	cases := []struct {
		name, src, want string
	}{
		{"good", kernel(good), ""},
		{"swapped names", kernel("device const T* dst [[buffer(0)]], device T* src [[buffer(1)]], constant CopyParams& p [[buffer(2)]]"), "[[buffer(0)]] is named dst"},
		{"missing argument", kernel("device T* dst [[buffer(1)]], constant CopyParams& p [[buffer(2)]]"), "argument 0 (src) has no [[buffer(0)]]"},
		{"params at the wrong index", kernel("device const T* src [[buffer(0)]], device T* dst [[buffer(1)]], constant CopyParams& p [[buffer(3)]]"), "have no [[buffer(2)]]"},
		{"wrong params type", kernel("device const T* src [[buffer(0)]], device T* dst [[buffer(1)]], constant ElementwiseParams& p [[buffer(2)]]"), "want constant CopyParams&"},
		{"params by value", kernel("device const T* src [[buffer(0)]], device T* dst [[buffer(1)]], CopyParams p [[buffer(2)]]"), "want constant CopyParams&"},
		{"extra buffer", kernel(good + ", device T* extra [[buffer(5)]]"), "[[buffer(5)]] extra is not a catalog argument"},
		{"duplicate index", kernel("device const T* src [[buffer(0)]], device T* dst [[buffer(0)]], constant CopyParams& p [[buffer(2)]]"), "both at buffer(0)"},
		{"missing kernel", strings.Replace(kernel(good), "LOOM_KERNEL(\"k_f16\", k, half)", "", 1), "catalog kernel k_f16 has no MSL kernel"},
		{"unreachable kernel", kernel(good) + "LOOM_KERNEL(\"k_bf16\", k, bfloat)\n", "k_bf16 (function k) is not in the primitives catalog"},
		{"template never instantiated", kernel(good) + "template <typename T>\n[[kernel]] void orphan(device T* x [[buffer(0)]]) {}\n", "kernel template orphan is never instantiated"},
	}
	common := library(t)
	common = common[:strings.Index(common, "#line 1 \"params")]
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := strings.Replace(c.src, "#include \"common\"", common, 1)
			kernels, unused, err := mslcheck.ParseKernels(preprocessMSL(t, src))
			if err != nil {
				t.Fatal(err)
			}
			errs := errors.Join(checkKernels(kernels, unused, catalog)...)
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

// TestParamsLayoutChecked shows that the generated static_assert catches a
// struct whose MSL layout differs from Go's.
func TestParamsLayoutChecked(t *testing.T) {
	src := library(t)
	decl := "uint Strides[3][8];"
	if !strings.Contains(src, decl) {
		t.Fatalf("the library does not declare %q", decl)
	}
	err := compileMSL(t, strings.Replace(src, decl, "uint Strides[3][8]; uint Extra;", 1))
	if err == nil || !strings.Contains(err.Error(), "layout differs from Go") {
		t.Fatalf("a params struct with an extra field: got %v", err)
	}
}

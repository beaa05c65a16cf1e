package mslcheck_test

import (
	"errors"
	goruntime "runtime"
	"strings"
	"testing"

	"github.com/loomrt/loom/metal/mslcheck"
)

func needCompiler(t *testing.T) {
	t.Helper()
	if _, err := mslcheck.Compiler(); err != nil {
		if goruntime.GOOS == "darwin" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
}

// TestUserKernelsCompile checks kernels written as Apple's documentation
// and MLX write them.
func TestUserKernelsCompile(t *testing.T) {
	needCompiler(t)
	if err := mslcheck.CheckFiles("testdata/add_arrays.metal", "testdata/softmax.metal", "testdata/simd.metal", "testdata/simdgroup_matrix.metal"); err != nil {
		t.Fatal(err)
	}
}

// TestBrokenKernelsFail shows that the check rejects what Metal would, and
// that its messages name the file and line of the mistake.
func TestBrokenKernelsFail(t *testing.T) {
	needCompiler(t)
	const head = "#include <metal_stdlib>\nusing namespace metal;\n\n"
	cases := []struct {
		name, body, want string
	}{
		{"undeclared name", `kernel void f(device float* out [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  out[i] = scale * 2.0f;
}`, "broken.metal:5:12: error: 'scale' was not declared"},
		{"implicit float to half", `kernel void f(device half* out [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  float v = 1.0f;
  out[i] = v;
}`, "broken.metal:6:"},
		{"double", `kernel void f(device float* out [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  double v = 2;
  out[i] = float(v);
}`, "broken.metal:5:"},
		{"function Metal lacks", `kernel void f(device float* out [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  out[i] = erf(out[i]);
}`, "broken.metal:5:"},
		{"unused variable", `kernel void f(device float* out [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  int unused = 0;
  out[i] = 1.0f;
}`, "broken.metal:5:7: error: unused variable 'unused'"},
		{"SIMD function on a wrong operand", `kernel void f(device float* out [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  float4 v = simd_sum(out[i]);
  out[i] = v.x;
}`, "broken.metal:5:"},
		{"swizzle of a missing component", `kernel void f(device float2* out [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  out[i] = out[i].xz;
}`, "broken.metal:5:"},
		{"missing semicolon", `struct P { uint n; }
kernel void f(device float* out [[buffer(0)]], constant P& p [[buffer(1)]], uint i [[thread_position_in_grid]]) {
  if (i < p.n) out[i] = 1.0f;
}`, "broken.metal:4:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := mslcheck.Check("broken.metal", head+c.body+"\n")
			var cerr *mslcheck.Error
			if !errors.As(err, &cerr) {
				t.Fatalf("got %v, want a compile error", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("the error does not mention %q:\n%v", c.want, err)
			}
			if strings.Contains(err.Error(), "src.metal") || strings.Contains(err.Error(), "mslcheck") {
				t.Fatalf("the error names the scratch file:\n%v", err)
			}
		})
	}
}

// TestParseUserKernels reads the kernels of both styles.
func TestParseUserKernels(t *testing.T) {
	needCompiler(t)
	for file, want := range map[string][]string{
		"testdata/add_arrays.metal": {"add_arrays", "blend_colors", "scale_half"},
		"testdata/softmax.metal":    {"scaled_softmax_float", "scaled_softmax_half"},
	} {
		kernels := parse(t, file)
		if len(kernels) != len(want) {
			t.Errorf("%s: %d kernels, want %v", file, len(kernels), want)
		}
		for _, n := range want {
			if _, ok := kernels[n]; !ok {
				t.Errorf("%s: no kernel %s", file, n)
			}
		}
	}
	k := parse(t, "testdata/add_arrays.metal")["blend_colors"]
	want := []mslcheck.Param{
		{Index: 0, Name: "src", Type: "device const float4*"},
		{Index: 1, Name: "dst", Type: "device float4*"},
		{Index: 2, Name: "blend", Type: "constant Blend&"},
		{Index: -1, Attr: "thread_position_in_grid", Name: "pos", Type: "uint2"},
		{Index: -1, Attr: "threads_per_grid", Name: "size", Type: "uint2"},
	}
	if len(k.Params) != len(want) {
		t.Fatalf("blend_colors: params %+v", k.Params)
	}
	for i := range want {
		if k.Params[i] != want[i] {
			t.Errorf("blend_colors param %d: %+v, want %+v", i, k.Params[i], want[i])
		}
	}
}

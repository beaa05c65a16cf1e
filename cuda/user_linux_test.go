package cuda

import (
	"strings"
	"testing"

	"github.com/loomrt/loom/primitives"
)

// userScaleParams are the params of the user kernel below.
type userScaleParams struct {
	N     uint32
	Scale float32
}

// userScale is a kernel as a package outside Loom would register it:
// out = a·Scale, in its own CUDA source.
var userScale = primitives.KernelSpec{
	Name:   "user_scale_f32",
	Args:   []primitives.ArgSpec{primitives.R("a"), primitives.W("out")},
	Params: (*userScaleParams)(nil),
	CUDA: primitives.Source{File: "scale.cu", Text: `
extern "C" __global__ void user_scale_f32(const float* a, float* out, const userScaleParams p, Status* status) {
  u32 i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < p.N) out[i] = a[i] * p.Scale;
}
`},
}

// TestUserSourceChecked: a user kernel's CUDA declaration is held to its
// spec before it is compiled, and each disagreement is named.
func TestUserSourceChecked(t *testing.T) {
	with := func(src string) primitives.KernelSpec {
		s := userScale
		s.CUDA.Text = src
		return s
	}
	cases := []struct {
		name string
		spec primitives.KernelSpec
		want string
	}{
		{"good", userScale, ""},
		{"through a macro", with("#define K(N) extern \"C\" __global__ void N(const float* a, float* out, const userScaleParams p, Status* status) {}\nK(user_scale_f32)\n"),
			`scale.cu declares no kernel user_scale_f32: write its declaration out`},
		{"other name", with(`extern "C" __global__ void user_scale(const float* a, float* out, const userScaleParams p, Status* status) {}`),
			"declares no kernel user_scale_f32"},
		{"swapped arguments", with(`extern "C" __global__ void user_scale_f32(float* out, const float* a, const userScaleParams p, Status* status) {}`),
			"parameter 0 is float * out, want a pointer named a"},
		{"params by pointer", with(`extern "C" __global__ void user_scale_f32(const float* a, float* out, const userScaleParams* p, Status* status) {}`),
			"want const userScaleParams (by value)"},
		{"no status", with(`extern "C" __global__ void user_scale_f32(const float* a, float* out, const userScaleParams p) {}`),
			"has 3 parameters, want 4"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := checkUserSource(c.spec)
			switch {
			case c.want == "" && err != nil:
				t.Fatal(err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got %v, want an error mentioning %q", err, c.want)
			}
		})
	}
}

// TestUserSourceCompiles compiles a user kernel's source as the device does
// on first use (the generated params structs, common.cuh, then the user's
// file), and shows that a compile error names the user's file and line.
func TestUserSourceCompiles(t *testing.T) {
	n := nvrtcOrSkip(t)
	src, err := userSource(userScale)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.compile(userScale.CUDA.File, src, compileOptions("90")); err != nil {
		t.Fatal(err)
	}
	broken := userScale
	broken.CUDA.Text = strings.Replace(userScale.CUDA.Text, "p.Scale", "p.scale", 1)
	if src, err = userSource(broken); err != nil {
		t.Fatal(err)
	}
	_, err = n.compile(broken.CUDA.File, src, compileOptions("90"))
	if err == nil || !strings.Contains(err.Error(), "scale.cu(4)") || !strings.Contains(err.Error(), `"scale"`) {
		t.Fatalf("a misspelt field: %v, want NVRTC's message at scale.cu(4)", err)
	}
}

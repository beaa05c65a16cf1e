package metal

import (
	"strings"
	"testing"

	"github.com/loomrt/loom/metal/mslcheck"
	"github.com/loomrt/loom/primitives"
)

type userScaleParams struct {
	N     uint32
	Scale float32
}

// userScale is a kernel as a package outside Loom would register it:
// out = a·Scale, in its own MSL.
var userScale = primitives.KernelSpec{
	Name:   "user_scale_f32",
	Args:   []primitives.ArgSpec{primitives.R("a"), primitives.W("out")},
	Params: (*userScaleParams)(nil),
	MSL: primitives.Source{File: "scale.metal", Text: `
[[kernel]] void user_scale_f32(device const float* a [[buffer(0)]], device float* out [[buffer(1)]],
                               constant userScaleParams& p [[buffer(2)]], uint i [[thread_position_in_grid]]) {
  if (i < p.N) out[i] = a[i] * p.Scale;
}
`},
}

// TestUserKernelChecked: a user kernel's MSL declaration is held to its
// spec, each disagreement named, and its library source (UserSource)
// compiles through the shim, its compile errors pointing at the user's
// file and line.
func TestUserKernelChecked(t *testing.T) {
	with := func(src string) primitives.KernelSpec {
		s := userScale
		s.MSL.Text = src
		return s
	}
	const tail = ", uint i [[thread_position_in_grid]]) {}"
	cases := []struct {
		name string
		spec primitives.KernelSpec
		want string
	}{
		{"good", userScale, ""},
		{"kernel keyword, status", with("kernel void user_scale_f32(device const float* a [[buffer(0)]], device float* out [[buffer(1)]], constant userScaleParams& p [[buffer(2)]], device atomic_uint* status [[buffer(30)]]" + tail), ""},
		{"other name", with("[[kernel]] void scale(device const float* a [[buffer(0)]], device float* out [[buffer(1)]], constant userScaleParams& p [[buffer(2)]]" + tail),
			"scale.metal declares no kernel user_scale_f32"},
		{"swapped", with("[[kernel]] void user_scale_f32(device float* out [[buffer(0)]], device const float* a [[buffer(1)]], constant userScaleParams& p [[buffer(2)]]" + tail),
			"[[buffer(0)]] is named out, the catalog's argument 0 is a"},
		{"constant argument", with("[[kernel]] void user_scale_f32(constant float* a [[buffer(0)]], device float* out [[buffer(1)]], constant userScaleParams& p [[buffer(2)]]" + tail),
			"argument a is not in the device address space"},
		{"params type", with("[[kernel]] void user_scale_f32(device const float* a [[buffer(0)]], device float* out [[buffer(1)]], constant uint& n [[buffer(2)]]" + tail),
			`want constant userScaleParams&`},
		{"extra buffer", with("[[kernel]] void user_scale_f32(device const float* a [[buffer(0)]], device float* out [[buffer(1)]], constant userScaleParams& p [[buffer(2)]], device float* b [[buffer(3)]]" + tail),
			"[[buffer(3)]] b is not a catalog argument"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckUserKernel(c.spec)
			switch {
			case c.want == "" && err != nil:
				t.Fatal(err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got %v, want an error mentioning %q", err, c.want)
			}
		})
	}
	needCompiler(t)
	src, err := UserSource(userScale)
	if err != nil {
		t.Fatal(err)
	}
	if err := mslcheck.Check("scale.metal", src); err != nil {
		t.Fatal(err)
	}
	broken := with(strings.Replace(userScale.MSL.Text, "p.Scale", "p.scale", 1))
	if src, err = UserSource(broken); err != nil {
		t.Fatal(err)
	}
	if err := mslcheck.Check("scale.metal", src); err == nil || !strings.Contains(err.Error(), "scale.metal:4:") {
		t.Fatalf("a misspelt field: %v, want a message at scale.metal:4", err)
	}
	if _, err := UserSource(primitives.KernelSpec{Name: "no_msl"}); err == nil || !strings.Contains(err.Error(), "registered without MSL source") {
		t.Fatalf("a kernel without MSL: %v", err)
	}
}

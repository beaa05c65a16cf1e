package primitives_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

type userParams struct {
	N   uint32
	Eps float32
}

// RMSNormParams has a built-in params type's name, which the GPU sources
// would declare twice.
type RMSNormParams struct{ N uint32 }

// TestRegisterChecksSpecs: a kernel registered from outside Loom is checked
// as the built-ins are, and every bad spec is refused with a message that
// names what is wrong.
func TestRegisterChecksSpecs(t *testing.T) {
	type bad struct {
		N    uint32
		Flag bool
	}
	cases := []struct {
		name string
		spec primitives.KernelSpec
		want string
	}{
		{"name not an identifier", primitives.KernelSpec{Name: "user-kernel", Args: []primitives.ArgSpec{primitives.R("a")}}, "must be a C identifier"},
		{"empty name", primitives.KernelSpec{Args: []primitives.ArgSpec{primitives.R("a")}}, "must be a C identifier"},
		{"argument name", primitives.KernelSpec{Name: "user_k1", Args: []primitives.ArgSpec{primitives.R("a b")}}, `argument 0's name "a b" is not a C identifier`},
		{"no access", primitives.KernelSpec{Name: "user_k2", Args: []primitives.ArgSpec{{Name: "a"}}}, "argument a has access Access(0)"},
		{"duplicate argument", primitives.KernelSpec{Name: "user_k3", Args: []primitives.ArgSpec{primitives.R("a"), primitives.W("a")}}, "two arguments are named a"},
		{"params by value", primitives.KernelSpec{Name: "user_k4", Params: userParams{}}, "is not a pointer to a struct"},
		{"params field", primitives.KernelSpec{Name: "user_k5", Params: (*bad)(nil)}, "field Flag"},
		{"params type name taken", primitives.KernelSpec{Name: "user_k6", Params: (*RMSNormParams)(nil)}, "has the name of primitives.RMSNormParams"},
		{"source without a file name", primitives.KernelSpec{Name: "user_k7", CUDA: primitives.Source{Text: "extern \"C\" __global__ void user_k7(Status* status) {}"}}, "its CUDA source has no file name"},
		{"built-in name", primitives.KernelSpec{Name: "add_f32", Args: []primitives.ArgSpec{primitives.R("a"), primitives.R("b"), primitives.W("out")}}, "kernel add_f32 is registered twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := primitives.Register(c.spec)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Register: %v, want an error mentioning %q", err, c.want)
			}
			if c.spec.Name != "add_f32" {
				if _, ok := primitives.LookupKernel(c.spec.Name); ok {
					t.Fatalf("the refused kernel %q is in the catalog", c.spec.Name)
				}
			}
		})
	}
}

// TestDispatchBindsTheCatalog: a lowering names a registered kernel's
// arguments from its spec, CheckDispatch accepts that dispatch and refuses
// every disagreement with the spec, and Catalog lists built-ins only.
func TestDispatchBindsTheCatalog(t *testing.T) {
	spec := primitives.KernelSpec{Name: "user_scale_f32", Args: []primitives.ArgSpec{primitives.R("x"), primitives.RW("acc"), primitives.W("out")}, Params: (*userParams)(nil)}
	if err := primitives.Register(spec); err != nil {
		t.Fatal(err)
	}
	if err := primitives.Register(spec); err == nil || !strings.Contains(err.Error(), "registered twice") {
		t.Fatalf("registering twice: %v", err)
	}
	for _, s := range primitives.Catalog() {
		if s.Name == spec.Name {
			t.Fatal("Catalog lists a kernel registered from outside Loom")
		}
	}
	l := primitives.NewLowering(nil, nil, primitives.Caps{})
	one := primitives.Dim3{X: 1, Y: 1, Z: 1}
	d := l.Dispatch(spec.Name, one, one, &userParams{N: 3}, primitives.In(0), primitives.Out(1), primitives.Out(0))
	want := []primitives.Arg{
		{Name: "x", Ref: primitives.In(0), Access: primitives.Read},
		{Name: "acc", Ref: primitives.Out(1), Access: primitives.ReadWrite},
		{Name: "out", Ref: primitives.Out(0), Access: primitives.Write},
	}
	for i, a := range want {
		if d.Args[i] != a {
			t.Errorf("argument %d is %+v, want %+v", i, d.Args[i], a)
		}
	}
	if err := primitives.CheckDispatch(d); err != nil {
		t.Fatal(err)
	}
	good := *d
	cases := []struct {
		name   string
		change func(d *primitives.Dispatch)
		want   string
	}{
		{"unknown kernel", func(d *primitives.Dispatch) { d.Kernel = "user_nothing" }, `kernel "user_nothing" is not registered`},
		{"too few buffers", func(d *primitives.Dispatch) { d.Args = d.Args[:2] }, "takes 3 buffer arguments (x, acc, out), the dispatch binds 2"},
		{"renamed", func(d *primitives.Dispatch) { d.Args[1].Name = "acc2" }, "argument 1 is acc (read-write), the dispatch binds acc2 (read-write)"},
		{"access", func(d *primitives.Dispatch) { d.Args[1].Access = primitives.Read }, "argument 1 is acc (read-write), the dispatch binds acc (read)"},
		{"params type", func(d *primitives.Dispatch) { d.Params = &primitives.CopyParams{} }, "takes params *primitives_test.userParams, the dispatch gives *primitives.CopyParams"},
		{"no params", func(d *primitives.Dispatch) { d.Params = nil }, "takes params *primitives_test.userParams, the dispatch gives <nil>"},
		{"nil params", func(d *primitives.Dispatch) { d.Params = (*userParams)(nil) }, "the dispatch's params are a nil"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := good
			d.Args = append([]primitives.Arg(nil), good.Args...)
			c.change(&d)
			err := primitives.CheckDispatch(&d)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("CheckDispatch: %v, want an error mentioning %q", err, c.want)
			}
		})
	}
	d.Kernel = "user_nothing"
	if err := primitives.CheckDispatch(d); !errors.Is(err, primitives.ErrNotInCatalog) {
		t.Errorf("an unknown kernel's error %v is not ErrNotInCatalog", err)
	}
	noParams := primitives.KernelSpec{Name: "user_plain", Args: []primitives.ArgSpec{primitives.W("out")}}
	if err := primitives.Register(noParams); err != nil {
		t.Fatal(err)
	}
	if err := primitives.CheckDispatch(l.Dispatch(noParams.Name, one, one, &userParams{}, primitives.Out(0))); err == nil || !strings.Contains(err.Error(), "takes no params") {
		t.Errorf("params for a kernel without: %v", err)
	}
}

// TestKernelName is the naming rule of specialised kernels.
func TestKernelName(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{primitives.BinaryKernel(primitives.Add, graph.Float32), "add_f32"},
		{primitives.CastKernel(graph.Float32, graph.BFloat16), "cast_f32_bf16"},
		{primitives.KVWriteKernel(graph.Float16, graph.Int64), "kv_write_f16_i64"},
		{primitives.MatMulGEMVKernel(graph.BFloat16), "matmul_bf16_gemv"},
	} {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
}

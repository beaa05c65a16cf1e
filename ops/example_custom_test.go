package ops_test

import (
	"fmt"
	"math"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// siluMul is a custom primitive, fused silu(a)·b, as a package outside Loom
// would define it: a name, a shape rule, a lowering to a kernel by name, the
// kernel's catalog entry and a CPU kernel registered under that name.
type siluMul struct{}

func (siluMul) Name() string { return "silu_mul" }

func (siluMul) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 2 || in[0].DType != graph.Float32 || in[1].DType != graph.Float32 {
		return nil, fmt.Errorf("needs two float32 inputs")
	}
	if fmt.Sprint(in[0].Shape) != fmt.Sprint(in[1].Shape) {
		return nil, fmt.Errorf("shapes %v and %v differ", in[0].Shape, in[1].Shape)
	}
	return []graph.Spec{in[0]}, nil
}

func (siluMul) Lower(l *primitives.Lowering) error {
	n := l.Outputs[0].Size()
	l.Dispatch("example_silu_mul_f32", primitives.Dim3{X: primitives.Groups(n, 256), Y: 1, Z: 1}, primitives.Dim3{X: 256, Y: 1, Z: 1}, nil,
		primitives.In(0), primitives.In(1), primitives.Out(0))
	return nil
}

func init() {
	// The access modes are the whole contract with the runtime: it orders
	// a dispatch of this kernel after the writers of a and b and before
	// the readers of out.
	err := primitives.Register(primitives.KernelSpec{Name: "example_silu_mul_f32",
		Args: []primitives.ArgSpec{primitives.R("a"), primitives.R("b"), primitives.W("out")}})
	if err != nil {
		panic(err)
	}
	err = cpu.Register("example_silu_mul_f32", func(c *cpu.Call) error {
		a, b, out := c.F32(0), c.F32(1), c.F32(2)
		c.Parallel(len(out), 1<<14, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				x := float64(a[i])
				out[i] = float32(x / (1 + math.Exp(-x)) * float64(b[i]))
			}
		})
		return nil
	})
	if err != nil {
		panic(err)
	}
}

// A primitive defined outside Loom enters a graph through ops.Apply and is
// evaluated like any other, by the kernel it registered.
func Example_customPrimitive() {
	rt, _ := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
	gate := graph.FromFloat32s([]float32{-2, -1, 0, 1, 2, 3})
	up := graph.FromFloat32s([]float32{1, 1, 1, 1, 1, 2})
	out := ops.Apply(siluMul{}, gate, up)[0]
	if err := rt.Eval(out); err != nil {
		panic(err)
	}
	v, _ := out.Float32s()
	fmt.Printf("%.4f\n", v)
	// Output:
	// [-0.2384 -0.2689 0.0000 0.7311 1.7616 5.7154]
}

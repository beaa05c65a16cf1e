//go:build linux && amd64

package customkernel_test

import (
	"fmt"
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/examples/customkernel"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/metal"
	"github.com/loomrt/loom/metal/mslcheck"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// TestMSL checks the MSL kernel without a Mac: its declaration against the
// spec (as the Metal device does before compiling it), the library source
// the device compiles through the shim with every warning an error, and a
// run in the emulation of the dispatch the lowering emits, against the
// CPU device's result and the float64 reference.
func TestMSL(t *testing.T) {
	if _, err := mslcheck.Compiler(); err != nil {
		t.Fatal(err)
	}
	if err := metal.CheckUserKernel(customkernel.Spec); err != nil {
		t.Fatal(err)
	}
	src, err := metal.UserSource(customkernel.Spec)
	if err != nil {
		t.Fatal(err)
	}
	file := customkernel.Spec.MSL.File
	if err := mslcheck.Check(file, src); err != nil {
		t.Fatal(err)
	}
	lib, err := mslcheck.Emulate(file, src, customkernel.Kernel)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	const eps = 1e-6
	atol, rtol := loomtest.Tolerance(graph.Float32)
	caps := primitives.Caps{Device: "metal", SIMDWidth: 32, MaxThreadsPerGroup: 1024, MaxSharedBytes: 32 << 10, Cores: 8}
	for _, shape := range shapes {
		if graph.NumElements(shape) == 0 {
			continue // an empty grid: nothing runs
		}
		t.Run(fmt.Sprint(shape), func(t *testing.T) {
			x, res, w := inputs(loomtest.Rand(7), shape)
			d := shape[len(shape)-1]
			prim := customkernel.ResidualRMSNorm{Eps: eps}
			in := []graph.Spec{{DType: graph.Float32, Shape: shape}, {DType: graph.Float32, Shape: shape}, {DType: graph.Float32, Shape: []int{d}}}
			outs, err := prim.Outputs(in)
			if err != nil {
				t.Fatal(err)
			}
			l := primitives.NewLowering(in, outs, caps)
			if err := prim.Lower(l); err != nil {
				t.Fatal(err)
			}
			disp := l.Dispatches[0]
			if err := primitives.CheckDispatch(&disp); err != nil {
				t.Fatal(err)
			}
			sum, out := make([]float32, len(x)), make([]float32, len(x))
			grid := [3]uint32{uint32(disp.Grid.X), uint32(disp.Grid.Y), uint32(disp.Grid.Z)}
			group := [3]uint32{uint32(disp.Group.X), uint32(disp.Group.Y), uint32(disp.Group.Z)}
			if err := lib.Run(customkernel.Kernel, grid, group, x, res, w, sum, out, disp.Params); err != nil {
				t.Fatal(err)
			}
			wantSum, wantOut := reference(x, res, w, d, eps)
			loomtest.Close(t, "msl sum", float64s(sum), wantSum, atol, rtol)
			loomtest.Close(t, "msl out", float64s(out), wantOut, atol, rtol)

			cs, co := customkernel.Apply(graph.FromFloat32s(x, shape...), graph.FromFloat32s(res, shape...), graph.FromFloat32s(w, d), eps)
			if err := rt.Eval(cs, co); err != nil {
				t.Fatal(err)
			}
			cpuOut, err := co.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			loomtest.Close(t, "msl out against the CPU device's", float64s(out), float64s(cpuOut), atol, rtol)
		})
	}
}

//go:build linux && amd64

package metal_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// emuRuntimes returns a runtime on an emulated Metal library of the given
// kernels and one on the CPU device, the reference.
func emuRuntimes(t *testing.T, kernels ...string) (emu, ref *runtime.Runtime) {
	t.Helper()
	lib := emuLibrary(t, kernels...)
	var err error
	if emu, err = runtime.New(emuDevice{lib}, runtime.Options{DispatchesPerCommandBuffer: 3}); err != nil {
		t.Fatal(err)
	}
	if ref, err = runtime.New(cpu.New(cpu.Options{}), runtime.Options{}); err != nil {
		t.Fatal(err)
	}
	return emu, ref
}

// sameOnBoth evaluates the graph build makes (called once per runtime, so
// each gets its own constants) on the emulated library and on the CPU, and
// fails unless the outputs have the same bytes or, with a tolerance, the
// same values within it.
func sameOnBoth(t *testing.T, emu, ref *runtime.Runtime, what string, build func() *graph.Array, atol, rtol float64) {
	t.Helper()
	got, want := build(), build()
	if err := emu.Eval(got); err != nil {
		t.Fatalf("%s: emulated Metal: %v", what, err)
	}
	if err := ref.Eval(want); err != nil {
		t.Fatalf("%s: cpu: %v", what, err)
	}
	gb, err := got.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	wb, err := want.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if atol == 0 && rtol == 0 || !got.DType().IsFloat() {
		if !bytes.Equal(gb, wb) {
			t.Fatalf("%s: the emulated Metal kernel's bytes differ from the CPU's\n got %v\nwant %v", what, head(gb), head(wb))
		}
		return
	}
	dt := got.DType()
	loomtest.Close(t, what, graph.DecodeFloat64s(dt, gb), graph.DecodeFloat64s(dt, wb), atol, rtol)
}

func head(b []byte) []byte { return b[:min(len(b), 48)] }

// randomArray returns n values of dtype dt: floats in [-3, 3) with a NaN,
// integers spanning the type with zeros and extremes (for division and
// wrap-around).
func randomArray(r *rand.Rand, dt graph.DType, shape ...int) *graph.Array {
	n := graph.NumElements(shape)
	switch dt {
	case graph.Float32, graph.Float16, graph.BFloat16:
		v := loomtest.Float32s(r, n, -3, 3)
		if n > 4 {
			v[n/2] = float32(math.NaN())
		}
		return graph.FromFloat32sAs(dt, v, shape...)
	case graph.Int32:
		v := make([]int32, n)
		for i := range v {
			v[i] = []int32{0, -1, 1, math.MinInt32, math.MaxInt32, int32(r.Uint32()), int32(r.IntN(7) - 3)}[r.IntN(7)]
		}
		return graph.FromInt32s(v, shape...)
	case graph.Int64:
		v := make([]int64, n)
		for i := range v {
			v[i] = []int64{0, -1, 1, math.MinInt64, math.MaxInt64, int64(r.Uint64()), int64(r.IntN(7) - 3)}[r.IntN(7)]
		}
		return graph.FromInt64s(v, shape...)
	case graph.Uint32:
		v := make([]uint32, n)
		for i := range v {
			v[i] = []uint32{0, 1, math.MaxUint32, r.Uint32(), uint32(r.IntN(7))}[r.IntN(5)]
		}
		return graph.FromUint32s(v, shape...)
	default:
		v := make([]bool, n)
		for i := range v {
			v[i] = r.IntN(2) == 1
		}
		return graph.FromBools(v, shape...)
	}
}

// TestEmulatedBinary runs every binary kernel, contiguous and broadcast, on
// awkward shapes. Elementwise results must match the CPU's bit for bit,
// but for float powers (Metal's pow is float, the CPU's double).
func TestEmulatedBinary(t *testing.T) {
	var names []string
	for _, op := range primitives.BinaryOps {
		for _, dt := range primitives.BinaryDTypes {
			names = append(names, op.String()+"_"+dt.Short())
		}
	}
	emu, ref := emuRuntimes(t, names...)
	shapes := [][2][]int{
		{{1}, {1}},
		{{257}, {257}},      // more than one threadgroup, not a multiple of 8
		{{3, 1, 5}, {4, 5}}, // broadcast on both sides
		{{2, 3, 1}, {1}},    // scalar-like
		{{0, 3}, {3}},       // empty
	}
	for _, op := range primitives.BinaryOps {
		for _, dt := range primitives.BinaryDTypes {
			for si, sh := range shapes {
				seed := uint64(si)*100 + uint64(op)*10 + uint64(dt)
				build := func() *graph.Array {
					r := loomtest.Rand(seed)
					a, b := randomArray(r, dt, sh[0]...), randomArray(r, dt, sh[1]...)
					return ops.Apply(primitives.Binary{Op: op}, a, b)[0]
				}
				var atol, rtol float64
				if op == primitives.Power && dt.IsFloat() {
					atol, rtol = tol(dt, 4)
				}
				sameOnBoth(t, emu, ref, fmt.Sprintf("%s %s %v", op, dt, sh), build, atol, rtol)
			}
		}
	}
}

package ops_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/runtime"
)

// evalOnTargets builds a graph with build once per target (constants belong
// to the runtime that uploads them), evaluates its result and returns the
// plain CPU's spec and bytes. Besides loomtest.Targets it runs on plain CPU
// devices of 1 and 3 workers. It fails the test on an error, a hazard, or
// CPU results that differ in a single bit: kernels must not depend on the
// schedule or the number of workers. A GPU target's result must match the
// CPU's exactly for integers and bools, and for floats within the dtype's
// tolerance, NaN for NaN (its kernels round differently and NaN payloads
// may differ).
func evalOnTargets(t *testing.T, build func() *graph.Array) (graph.Spec, []byte) {
	t.Helper()
	var spec graph.Spec
	var first []byte
	check := func(name string, i int, exact bool, out *graph.Array) {
		t.Helper()
		b, err := out.Bytes()
		if err != nil {
			t.Fatalf("%s: reading the result: %v", name, err)
		}
		switch {
		case i == 0:
			spec, first = out.Spec(), b
		case !exact:
			if err := agree(spec, b, first); err != nil {
				t.Fatalf("%s: result differs from the plain CPU's: %v", name, err)
			}
		case !bytes.Equal(b, first):
			t.Fatalf("%s: result differs from the plain CPU's bit for bit", name)
		}
	}
	ts := loomtest.Targets(t)
	for i, tg := range ts {
		out := build()
		tg.Eval(t, out)
		check(tg.Name, i, tg.Exact, out)
	}
	for _, workers := range []int{1, 3} {
		rt, err := runtime.New(cpu.New(cpu.Options{Workers: workers}), runtime.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(rt.Close)
		out := build()
		if err := rt.Eval(out); err != nil {
			t.Fatalf("cpu with %d workers: eval: %v", workers, err)
		}
		check(fmt.Sprintf("cpu with %d workers", workers), len(ts), true, out)
	}
	return spec, first
}

// agree reports whether result b of a GPU target matches the CPU's result
// cpu of the given spec: bit for bit for integers and bools, within
// loomtest.Tolerance for floats (NaN where the CPU has NaN).
func agree(spec graph.Spec, b, cpu []byte) error {
	if !spec.DType.IsFloat() {
		if !bytes.Equal(b, cpu) {
			return fmt.Errorf("%s values differ", spec.DType)
		}
		return nil
	}
	atol, rtol := loomtest.Tolerance(spec.DType)
	return loomtest.CloseErr(graph.DecodeFloat64s(spec.DType, b), graph.DecodeFloat64s(spec.DType, cpu), atol, rtol)
}

// evalFloat64s is evalOnTargets with the result decoded to float64.
func evalFloat64s(t *testing.T, build func() *graph.Array) (graph.Spec, []float64) {
	t.Helper()
	spec, b := evalOnTargets(t, build)
	return spec, graph.DecodeFloat64s(spec.DType, b)
}

// checkShape fails the test unless spec is dt with the given shape.
func checkShape(t *testing.T, spec graph.Spec, dt graph.DType, shape ...int) {
	t.Helper()
	if spec.DType != dt || !slices.Equal(spec.Shape, shape) {
		t.Fatalf("result is %s, want %s", spec, graph.Spec{DType: dt, Shape: shape})
	}
}

// inDType returns exact float64 reference values as the nearest values of
// float dtype dt (through float32), so that overflow to ±Inf in the
// result's dtype is expected too.
func inDType(dt graph.DType, v []float64) []float64 {
	f := make([]float32, len(v))
	for i, x := range v {
		f[i] = float32(x)
	}
	return loomtest.Round(dt, f)
}

// wantErr fails the test unless a is in an error state whose message
// contains every one of parts.
func wantErr(t *testing.T, a *graph.Array, parts ...string) {
	t.Helper()
	if a.Err() == nil {
		t.Fatalf("no error, want one mentioning %q", parts)
	}
	msg := a.Err().Error()
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Fatalf("error %q does not mention %q", msg, p)
		}
	}
}

// randFloats returns n seeded values in [lo, hi) and the same values as the
// float dtype dt holds them, in float64.
func randFloats(seed uint64, dt graph.DType, n int, lo, hi float32) ([]float32, []float64) {
	v := loomtest.Float32s(loomtest.Rand(seed), n, lo, hi)
	return v, loomtest.Round(dt, v)
}

var floatDTypes = []graph.DType{graph.Float32, graph.Float16, graph.BFloat16}

// floats returns a constant of float dtype dt holding v (rounded) with the
// given shape; no shape means a scalar.
func floats(dt graph.DType, v []float32, shape ...int) *graph.Array {
	b := make([]byte, len(v)*dt.Size())
	graph.PutFloat32s(dt, b, v)
	return graph.FromBytes(dt, b, shape...)
}

func boolBytes(v []bool) []byte {
	b := make([]byte, len(v))
	for i, x := range v {
		if x {
			b[i] = 1
		}
	}
	return b
}

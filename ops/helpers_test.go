package ops_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
)

// evalOnTargets builds a graph with build once per target (constants belong
// to the runtime that uploads them), evaluates its result and returns the
// result's spec and bytes. It fails the test on an error, a hazard, or
// targets whose results differ in a single bit: kernels must not depend on
// the schedule.
func evalOnTargets(t *testing.T, build func() *graph.Array) (graph.Spec, []byte) {
	t.Helper()
	var spec graph.Spec
	var first []byte
	for i, tg := range loomtest.Targets(t) {
		out := build()
		tg.Eval(t, out)
		b, err := out.Bytes()
		if err != nil {
			t.Fatalf("%s: reading the result: %v", tg.Name, err)
		}
		if i == 0 {
			spec, first = out.Spec(), b
			continue
		}
		if !bytes.Equal(b, first) {
			t.Fatalf("%s: result differs from the plain CPU's bit for bit", tg.Name)
		}
	}
	return spec, first
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

package graph_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

func newRuntime(t *testing.T) *runtime.Runtime {
	t.Helper()
	rt, err := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func TestDTypes(t *testing.T) {
	want := []struct {
		name, short  string
		size         int
		float, integ bool
	}{
		{"float32", "f32", 4, true, false}, {"float16", "f16", 2, true, false}, {"bfloat16", "bf16", 2, true, false},
		{"int32", "i32", 4, false, true}, {"int64", "i64", 8, false, true}, {"uint32", "u32", 4, false, true},
		{"bool", "b8", 1, false, false},
	}
	if len(graph.DTypes) != len(want) {
		t.Fatalf("%d dtypes, want %d", len(graph.DTypes), len(want))
	}
	for i, dt := range graph.DTypes {
		w := want[i]
		if dt.String() != w.name || dt.Short() != w.short || dt.Size() != w.size || dt.IsFloat() != w.float || dt.IsInteger() != w.integ {
			t.Errorf("%v: got %s %s %d float=%v int=%v, want %+v", dt, dt, dt.Short(), dt.Size(), dt.IsFloat(), dt.IsInteger(), w)
		}
		for _, s := range []string{w.name, w.short} {
			if p, err := graph.ParseDType(s); p != dt || err != nil {
				t.Errorf("ParseDType(%q) = %v, %v", s, p, err)
			}
		}
	}
	if _, err := graph.ParseDType("float8"); err == nil || !strings.Contains(err.Error(), `"float8"`) {
		t.Errorf("ParseDType(float8): error %v", err)
	}
	if bad := graph.DType(42); bad.Size() != 0 || bad.String() != "DType(42)" {
		t.Errorf("an invalid dtype: size %d, name %s", bad.Size(), bad)
	}
}

// TestConstants builds a constant of every dtype with each constructor and
// reads it back before and after evaluation.
func TestConstants(t *testing.T) {
	type constCase struct {
		name  string
		a     *graph.Array
		dt    graph.DType
		shape []int
		want  []float64
	}
	fs := []float32{1.5, -2.25, 0, 65504, 1e-3, float32(math.Inf(-1))}
	var cases []constCase
	for _, dt := range []graph.DType{graph.Float32, graph.Float16, graph.BFloat16} {
		want := make([]float64, len(fs))
		for i, v := range fs {
			switch dt {
			case graph.Float16:
				want[i] = float64(graph.F16ToF32(graph.F32ToF16(v)))
			case graph.BFloat16:
				want[i] = float64(graph.BF16ToF32(graph.F32ToBF16(v)))
			default:
				want[i] = float64(v)
			}
		}
		cases = append(cases, constCase{"FromFloat32sAs " + dt.String(), graph.FromFloat32sAs(dt, fs, 2, 3), dt, []int{2, 3}, want})
	}
	cases = append(cases,
		constCase{"FromFloat32s", graph.FromFloat32s(fs), graph.Float32, []int{6}, []float64{1.5, -2.25, 0, 65504, float64(float32(1e-3)), math.Inf(-1)}},
		constCase{"FromInt32s", graph.FromInt32s([]int32{math.MinInt32, -1, 0, math.MaxInt32}, 4, 1), graph.Int32, []int{4, 1}, []float64{math.MinInt32, -1, 0, math.MaxInt32}},
		constCase{"FromInt64s", graph.FromInt64s([]int64{math.MinInt64, -1, 1 << 40}), graph.Int64, []int{3}, []float64{math.MinInt64, -1, 1 << 40}},
		constCase{"FromUint32s", graph.FromUint32s([]uint32{0, 7, math.MaxUint32}), graph.Uint32, []int{3}, []float64{0, 7, math.MaxUint32}},
		constCase{"FromBools", graph.FromBools([]bool{true, false, true}), graph.Bool, []int{3}, []float64{1, 0, 1}},
		constCase{"FromBytes", graph.FromBytes(graph.Int32, []byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, 2), graph.Int32, []int{2}, []float64{1, -1}},
		constCase{"empty", graph.FromFloat32s(nil, 0, 3), graph.Float32, []int{0, 3}, []float64{}},
	)
	for _, dt := range graph.DTypes {
		v := map[graph.DType]float64{graph.Float32: -2.5, graph.Float16: -2.5, graph.BFloat16: -2.5, graph.Int32: -7, graph.Int64: -7, graph.Uint32: 7, graph.Bool: 1}[dt]
		cases = append(cases,
			constCase{"Scalar " + dt.String(), graph.Scalar(dt, v), dt, []int{}, []float64{v}},
			constCase{"Full " + dt.String(), graph.Full(dt, v, 3, 5), dt, []int{3, 5}, slices.Repeat([]float64{v}, 15)},
		)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.a.Err() != nil {
				t.Fatal(c.a.Err())
			}
			if c.a.DType() != c.dt || !slices.Equal(c.a.Shape(), c.shape) {
				t.Fatalf("spec %s, want %s%v", c.a.Spec(), c.dt, c.shape)
			}
			check := func(when string) {
				got, err := c.a.Float64s()
				if err != nil {
					t.Fatalf("%s: %v", when, err)
				}
				if !slices.Equal(got, c.want) {
					t.Fatalf("%s: got %v, want %v", when, got, c.want)
				}
				checkTyped(t, when, c.a, c.want)
			}
			check("before evaluation")
			if err := newRuntime(t).Eval(c.a); err != nil {
				t.Fatal(err)
			}
			if !c.a.Evaluated() || c.a.HostBytes() != nil {
				t.Fatalf("after evaluation: evaluated %v, host bytes kept %v", c.a.Evaluated(), c.a.HostBytes() != nil)
			}
			check("after evaluation")
		})
	}
}

// checkTyped reads a through the accessor of its dtype and checks that the
// others refuse it.
func checkTyped(t *testing.T, when string, a *graph.Array, want []float64) {
	t.Helper()
	check := func(method string, got []float64, err error, ok bool) {
		t.Helper()
		switch {
		case ok && err != nil:
			t.Fatalf("%s: %s: %v", when, method, err)
		case ok && !slices.Equal(got, want):
			t.Fatalf("%s: %s: got %v, want %v", when, method, got, want)
		case !ok && (err == nil || !strings.Contains(err.Error(), method+" needs")):
			t.Fatalf("%s: %s of a %s array: error %v, want a refusal", when, method, a.DType(), err)
		}
	}
	f32, err := a.Float32s()
	check("Float32s", conv(f32), err, a.DType().IsFloat())
	i32, err := a.Int32s()
	check("Int32s", conv(i32), err, a.DType() == graph.Int32)
	i64, err := a.Int64s()
	check("Int64s", conv(i64), err, a.DType() == graph.Int64)
	bs, err := a.Bools()
	b := make([]float64, len(bs))
	for i, v := range bs {
		if v {
			b[i] = 1
		}
	}
	check("Bools", b, err, a.DType() == graph.Bool)
}

func conv[T float32 | int32 | int64](v []T) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func TestConstantErrors(t *testing.T) {
	cases := []struct {
		a    *graph.Array
		want string
	}{
		{graph.FromFloat32s([]float32{1, 2, 3}, 2, 2), "3 values for shape [2 2] (4 elements)"},
		{graph.FromInt32s([]int32{1}, 2), "1 values for shape [2]"},
		{graph.FromBools([]bool{true}, 1, -1), "1 values for shape [1 -1]"},
		{graph.FromBytes(graph.Float32, make([]byte, 4), -1, -1), "dimension 0 of shape [-1 -1] is negative"},
		{graph.FromBytes(graph.Float32, make([]byte, 7), 2), "7 bytes of data for shape [2] of float32 (8 bytes)"},
		{graph.FromBytes(graph.DType(0), nil), "invalid dtype DType(0)"},
		{graph.FromFloat32sAs(graph.Int32, []float32{1}), "FromFloat32sAs needs a float dtype, got int32"},
		{graph.Scalar(graph.DType(99), 1), "invalid dtype DType(99)"},
		{graph.Full(graph.DType(99), 1, 2), "invalid dtype DType(99)"},
	}
	for _, c := range cases {
		if c.a.Err() == nil || !strings.Contains(c.a.Err().Error(), c.want) || !strings.Contains(c.a.Err().Error(), "host_test.go:") {
			t.Errorf("error %v, want one containing %q and the call site", c.a.Err(), c.want)
		}
		if _, err := c.a.Bytes(); err != c.a.Err() {
			t.Errorf("reading an array in an error state: %v, want its error", err)
		}
	}
}

func TestReadUnevaluated(t *testing.T) {
	a := ops.Neg(graph.FromFloat32s([]float32{1}))
	if _, err := a.Float64s(); err == nil || !strings.Contains(err.Error(), "has not been evaluated") {
		t.Fatalf("reading an unevaluated node: error %v", err)
	}
	if err := newRuntime(t).Eval(a); err != nil {
		t.Fatal(err)
	}
	if v, err := a.Float32s(); err != nil || v[0] != -1 {
		t.Fatalf("after evaluation: %v, %v", v, err)
	}
}

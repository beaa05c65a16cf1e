package primitives_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

type lowerCase struct {
	prim primitives.Primitive
	in   []graph.Spec
}

func spec(dt graph.DType, shape ...int) graph.Spec { return graph.Spec{DType: dt, Shape: shape} }

// coreCases lowers every primitive of the core op families on every dtype
// it supports.
func coreCases() []lowerCase {
	var cs []lowerCase
	add := func(p primitives.Primitive, in ...graph.Spec) { cs = append(cs, lowerCase{p, in}) }
	for _, op := range primitives.UnaryOps {
		for _, dt := range op.DTypes() {
			add(primitives.Unary{Op: op}, spec(dt, 3, 5))
		}
	}
	for _, op := range primitives.BinaryOps {
		for _, dt := range primitives.BinaryDTypes {
			add(primitives.Binary{Op: op}, spec(dt, 3, 5), spec(dt, 5))
		}
	}
	for _, dt := range graph.DTypes {
		add(primitives.Where{}, spec(graph.Bool, 3, 1), spec(dt, 5), spec(dt, 3, 5))
		for _, to := range graph.DTypes {
			add(primitives.Cast{To: to}, spec(dt, 4))
		}
		add(primitives.Transpose{Perm: dims(1, 0)}, spec(dt, 3, 5))
		add(primitives.Slice{Starts: dims(1, 0), Ends: dims(2, 5)}, spec(dt, 3, 5))
		add(primitives.Concatenate{Axis: 1}, spec(dt, 3, 5), spec(dt, 3, 2))
		add(primitives.BroadcastTo{Shape: dims(2, 3, 5)}, spec(dt, 3, 1))
		add(primitives.SliceStrided{Starts: dims(2, 4), Counts: dims(2, 3), Steps: dims(-1, -2)}, spec(dt, 3, 5))
		add(primitives.Pad{Low: dims(1, 0), High: dims(0, 2)}, spec(dt, 3, 5), spec(dt))
		for _, idx := range primitives.IndexDTypes {
			add(primitives.GatherRows{}, spec(dt, 10, 4), spec(idx, 2, 3))
			add(primitives.ScatterRows{}, spec(dt, 10, 4), spec(idx, 3), spec(dt, 3, 4))
			add(primitives.TakeAlongAxis{Axis: 1}, spec(dt, 3, 5), spec(idx, 3, 7))
		}
	}
	for _, dt := range primitives.BinaryDTypes {
		add(primitives.Cumsum{Axis: 0}, spec(dt, 3, 5))
		add(primitives.Sort{Axis: -1, Descending: true}, spec(dt, 3, 5))
		for _, idx := range primitives.IndexDTypes {
			add(primitives.ScatterAddRows{}, spec(dt, 10, 4), spec(idx, 3), spec(dt, 3, 4))
		}
	}
	for _, d := range []primitives.RandomDist{primitives.RandomBits, primitives.RandomUniform, primitives.RandomNormal} {
		for _, dt := range d.DTypes() {
			add(primitives.Random{Dist: d, DType: dt, Shape: dims(3, 5), Scale: 1}, spec(graph.Uint32, 2))
		}
	}
	for _, op := range primitives.ReduceOps {
		for _, dt := range op.DTypes() {
			add(primitives.Reduce{Op: op, Axis: -1}, spec(dt, 3, 5))
		}
	}
	for _, dt := range primitives.FloatDTypes {
		add(primitives.Softmax{Axis: 0}, spec(dt, 3, 5))
		add(primitives.RMSNorm{Eps: 1e-6}, spec(dt, 3, 8), spec(dt, 8))
		add(primitives.LayerNorm{Eps: 1e-6}, spec(dt, 3, 8), spec(dt, 8), spec(dt, 8))
		add(primitives.RoPE{Theta: 1e4}, spec(dt, 3, 2, 8), spec(graph.Int32, 3))
		add(primitives.Sample{}, spec(dt, 3, 7), spec(graph.Float32, 3, primitives.SampleSettings), spec(graph.Uint32, 3, primitives.SampleKeys),
			spec(graph.Int32, 3), spec(graph.Int32, 3, 2))
		add(primitives.Sample{Logprobs: true, Top: 5}, spec(dt, 3, 7), spec(graph.Float32, 3, primitives.SampleSettings), spec(graph.Uint32, 3, primitives.SampleKeys),
			spec(graph.Int32, 3), spec(graph.Int32, 3, 2), spec(dt, 3, 7))
		add(primitives.AddRMSNorm{Eps: 1e-6}, spec(dt, 3, 8), spec(dt, 3, 8), spec(dt, 8))
		add(primitives.SiLUMul{}, spec(dt, 3, 10))
		for _, bits := range primitives.QuantBits {
			add(primitives.QuantizedMatMul{Bits: bits, GroupSize: 32}, spec(dt, 3, 64), spec(graph.Uint32, 5, 64*bits/32), spec(dt, 5, 2), spec(dt, 5, 2))
			add(primitives.Dequantize{Bits: bits, GroupSize: 32}, spec(graph.Uint32, 5, 64*bits/32), spec(dt, 5, 2), spec(dt, 5, 2))
			for _, m := range []int{1, 3} { // the gated kernel, and the matmul and silu_mul
				add(primitives.QuantizedMatMulSiLUMul{Bits: bits, GroupSize: 32}, spec(dt, m, 64), spec(graph.Uint32, 6, 64*bits/32), spec(dt, 6, 2), spec(dt, 6, 2))
			}
		}
	}
	for _, dt := range primitives.MatMulDTypes {
		for _, gated := range []bool{false, true} {
			for _, rows := range []int{1, 3} { // one dispatch, then the chain's
				add(primitives.AddRMSNormLinear{Eps: 1e-6, Gated: gated}, spec(dt, rows, 8), spec(dt, rows, 8), spec(dt, 8), spec(dt, 6, 8))
			}
		}
	}
	for _, dt := range primitives.AttentionDTypes {
		for _, idx := range primitives.IndexDTypes {
			add(primitives.QKNormRoPEKVWrite{Heads: 2, Eps: 1e-6, Theta: 1e4}, spec(dt, 3, 4*8), spec(dt, 8), spec(dt, 8),
				spec(graph.Int32, 3), spec(dt, 4, 2, 1, 8), spec(dt, 4, 2, 1, 8), spec(idx, 3))
		}
	}
	return cs
}

func dims(v ...int) primitives.Dims {
	d, err := primitives.NewDims(v)
	if err != nil {
		panic(err)
	}
	return d
}

func lower(t *testing.T, c lowerCase) *primitives.Lowering {
	t.Helper()
	outs, err := c.prim.Outputs(c.in)
	if err != nil {
		t.Fatalf("%s %v: %v", c.prim.Name(), c.in, err)
	}
	l := primitives.NewLowering(c.in, outs, primitives.Caps{Device: "test", SIMDWidth: 32, MaxThreadsPerGroup: 1024, Cores: 8, QuantGatedMaxRows: 1})
	if err := c.prim.Lower(l); err != nil {
		t.Fatalf("%s %v: lowering: %v", c.prim.Name(), c.in, err)
	}
	return l
}

// TestLoweringsMatchCatalog holds every dispatch of the core primitives to
// its catalog entry: the kernel exists, its arguments have the catalog's
// names in the catalog's order, its params the catalog's type, and every
// argument's range lies inside its buffer. It also checks that every
// catalog kernel of these families is emitted by some lowering.
func TestLoweringsMatchCatalog(t *testing.T) {
	emitted := map[string]bool{}
	for _, c := range coreCases() {
		l := lower(t, c)
		checkCatalog(t, l)
		for _, d := range l.Dispatches {
			emitted[d.Kernel] = true
			for _, a := range d.Args {
				var size int64
				if a.Ref.Kind == primitives.ScratchRef {
					size = l.Scratch[a.Ref.Index]
				} else {
					size = map[primitives.RefKind][]graph.Spec{primitives.InputRef: l.Inputs, primitives.OutputRef: l.Outputs}[a.Ref.Kind][a.Ref.Index].Bytes()
				}
				if a.Offset < 0 || a.Size < 0 || a.Offset+a.Size > size {
					t.Errorf("%s argument %s: bytes [%d,+%d) outside its %d-byte buffer", d.Kernel, a.Name, a.Offset, a.Size, size)
				}
				if a.Ref.Kind == primitives.OutputRef && !a.Access.Writes() {
					t.Errorf("%s argument %s: an output that is not written", d.Kernel, a.Name)
				}
			}
		}
	}
	others := []string{"matmul_", "paged_attention", "kv_write", "copy_bytes"}
	for _, ks := range primitives.Catalog() {
		if !emitted[ks.Name] && !slices.ContainsFunc(others, func(p string) bool { return strings.HasPrefix(ks.Name, p) }) {
			t.Errorf("catalog kernel %s is emitted by no core lowering", ks.Name)
		}
	}
}

// TestParamsLayout checks the rule that lets Go, MSL and CUDA C share params
// structs: every field is 4 bytes (int32, uint32, float32) or an array of
// them.
func TestParamsLayout(t *testing.T) {
	four := func(k reflect.Kind) bool { return k == reflect.Int32 || k == reflect.Uint32 || k == reflect.Float32 }
	for _, ks := range primitives.Catalog() {
		if ks.Params == nil {
			continue
		}
		pt := reflect.TypeOf(ks.Params)
		if pt.Kind() != reflect.Pointer || pt.Elem().Kind() != reflect.Struct {
			t.Errorf("%s: params %v is not a pointer to a struct", ks.Name, pt)
			continue
		}
		for f := range pt.Elem().Fields() {
			ft := f.Type
			for ft.Kind() == reflect.Array {
				ft = ft.Elem()
			}
			if !four(ft.Kind()) {
				t.Errorf("%s: params field %s.%s has type %v", ks.Name, pt.Elem().Name(), f.Name, f.Type)
			}
		}
	}
}

// TestCopyRanges checks the exact byte ranges and the index spaces of the
// strided copies behind Transpose, Slice and Concatenate.
func TestCopyRanges(t *testing.T) {
	type arg struct{ off, size int64 }
	type want struct {
		src, dst          arg
		shape, srcS, dstS []uint32
	}
	cases := []struct {
		name string
		c    lowerCase
		want []want
	}{
		{"concatenate axis 0: exact disjoint parts", lowerCase{primitives.Concatenate{Axis: 0}, []graph.Spec{spec(graph.Float32, 2, 3), spec(graph.Float32, 4, 3)}},
			[]want{{arg{0, 24}, arg{0, 24}, []uint32{6}, []uint32{1}, []uint32{1}}, {arg{0, 48}, arg{24, 48}, []uint32{12}, []uint32{1}, []uint32{1}}}},
		{"concatenate axis 1: first to last element", lowerCase{primitives.Concatenate{Axis: 1}, []graph.Spec{spec(graph.Float32, 2, 3), spec(graph.Float32, 2, 1)}},
			[]want{{arg{0, 24}, arg{0, 28}, []uint32{2, 3}, []uint32{3, 1}, []uint32{4, 1}}, {arg{0, 8}, arg{12, 20}, []uint32{2}, []uint32{1}, []uint32{4}}}},
		{"concatenate axis 1 of one row: exact", lowerCase{primitives.Concatenate{Axis: 1}, []graph.Spec{spec(graph.BFloat16, 1, 3), spec(graph.BFloat16, 1, 5)}},
			[]want{{arg{0, 6}, arg{0, 6}, []uint32{3}, []uint32{1}, []uint32{1}}, {arg{0, 10}, arg{6, 10}, []uint32{5}, []uint32{1}, []uint32{1}}}},
		{"slice of whole rows: one contiguous copy", lowerCase{primitives.Slice{Starts: dims(1, 0, 0), Ends: dims(3, 7, 9)}, []graph.Spec{spec(graph.Float32, 5, 7, 9)}},
			[]want{{arg{63 * 4, 126 * 4}, arg{0, 126 * 4}, []uint32{126}, []uint32{1}, []uint32{1}}}},
		{"slice of a column block", lowerCase{primitives.Slice{Starts: dims(1, 2), Ends: dims(3, 5)}, []graph.Spec{spec(graph.Int64, 4, 6)}},
			[]want{{arg{8 * 8, 9 * 8}, arg{0, 6 * 8}, []uint32{2, 3}, []uint32{6, 1}, []uint32{3, 1}}}},
		{"transpose", lowerCase{primitives.Transpose{Perm: dims(1, 0)}, []graph.Spec{spec(graph.Float16, 2, 3)}},
			[]want{{arg{0, 12}, arg{0, 12}, []uint32{3, 2}, []uint32{1, 3}, []uint32{2, 1}}}},
		{"transpose of heads keeps rows whole", lowerCase{primitives.Transpose{Perm: dims(1, 0, 2)}, []graph.Spec{spec(graph.Float32, 4, 2, 8)}},
			[]want{{arg{0, 256}, arg{0, 256}, []uint32{2, 4, 8}, []uint32{8, 16, 1}, []uint32{32, 8, 1}}}},
		{"empty: no dispatch", lowerCase{primitives.Slice{Starts: dims(1, 0), Ends: dims(1, 6)}, []graph.Spec{spec(graph.Float32, 4, 6)}}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := lower(t, c.c)
			if len(l.Dispatches) != len(c.want) {
				t.Fatalf("%d dispatches, want %d", len(l.Dispatches), len(c.want))
			}
			for i, d := range l.Dispatches {
				w := c.want[i]
				p := d.Params.(*primitives.StridedCopyParams)
				r := int(p.Rank)
				got := fmt.Sprint(arg{d.Args[0].Offset, d.Args[0].Size}, arg{d.Args[1].Offset, d.Args[1].Size}, p.Shape[:r], p.Src[:r], p.Dst[:r])
				if exp := fmt.Sprint(w.src, w.dst, w.shape, w.srcS, w.dstS); got != exp {
					t.Errorf("dispatch %d: src, dst, shape, strides %s; want %s", i, got, exp)
				}
			}
		})
	}
}

func TestAliases(t *testing.T) {
	if got := (primitives.Reshape{}).Aliases(); !slices.Equal(got, []graph.Alias{{Output: 0, Input: 0, Donate: false}}) {
		t.Errorf("Reshape aliases %v, want a view of input 0", got)
	}
	if got := (primitives.ScatterRows{}).Aliases(); !slices.Equal(got, []graph.Alias{{Output: 0, Input: 0, Donate: true}}) {
		t.Errorf("ScatterRows aliases %v, want input 0 donated", got)
	}
	l := lower(t, lowerCase{primitives.Reshape{Shape: dims(-1)}, []graph.Spec{spec(graph.Float32, 2, 3)}})
	if len(l.Dispatches) != 0 || !slices.Equal(l.Outputs[0].Shape, []int{6}) {
		t.Errorf("Reshape: %d dispatches and shape %v, want none and [6]", len(l.Dispatches), l.Outputs[0].Shape)
	}
	l = lower(t, lowerCase{primitives.ScatterRows{}, []graph.Spec{spec(graph.Float32, 4, 2), spec(graph.Int32, 1), spec(graph.Float32, 1, 2)}})
	if a := l.Dispatches[0].Args[0]; a.Ref != primitives.Out(0) || a.Access != primitives.ReadWrite {
		t.Errorf("ScatterRows dst argument %+v, want read-write output 0", a)
	}
}

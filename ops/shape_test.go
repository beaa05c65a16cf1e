package ops_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
)

// randBytes returns the bytes of n seeded random elements of dtype dt: any
// bit pattern, or 0/1 for bool.
func randBytes(seed uint64, dt graph.DType, n int) []byte {
	r := loomtest.Rand(seed)
	b := make([]byte, n*dt.Size())
	for i := range b {
		b[i] = byte(r.Uint32())
		if dt == graph.Bool {
			b[i] &= 1
		}
	}
	return b
}

// checkMoved fails the test unless element j of got is element src(j) of
// in, bit for bit, for all n elements of got.
func checkMoved(t *testing.T, dt graph.DType, got, in []byte, n int, src func(j int) int) {
	t.Helper()
	es := dt.Size()
	if len(got) != n*es {
		t.Fatalf("got %d bytes, want %d", len(got), n*es)
	}
	for j := range n {
		i := src(j)
		if !bytes.Equal(got[j*es:(j+1)*es], in[i*es:(i+1)*es]) {
			t.Fatalf("element %d: got %x, want element %d of the input, %x", j, got[j*es:(j+1)*es], i, in[i*es:(i+1)*es])
		}
	}
}

// unravelIndex and ravelIndex convert between flat and multi-indices.
func unravelIndex(i int, shape []int) []int {
	idx := make([]int, len(shape))
	for d := len(shape) - 1; d >= 0; d-- {
		idx[d] = i % shape[d]
		i /= shape[d]
	}
	return idx
}

func ravelIndex(idx, shape []int) int {
	i := 0
	for d, n := range shape {
		i = i*n + idx[d]
	}
	return i
}

func TestReshapeIsAView(t *testing.T) {
	for _, tg := range loomtest.Targets(t) {
		a := graph.FromFloat32s(loomtest.Float32s(loomtest.Rand(1), 24, -1, 1), 2, 3, 4)
		b := graph.FromFloat32s(loomtest.Float32s(loomtest.Rand(2), 24, -1, 1), 2, 3, 4)
		sum := ops.Add(a, b)
		r := ops.Reshape(sum, 4, -1)
		tg.Eval(t, r)
		st := tg.RT.LastStats()
		if st.Nodes != 2 || st.Dispatches != 1 {
			t.Fatalf("%s: reshape of an add: %d nodes and %d dispatches, want 2 and 1 (the add only)", tg.Name, st.Nodes, st.Dispatches)
		}
		if !slices.Equal(r.Shape(), []int{4, 6}) {
			t.Fatalf("%s: shape %v, want [4 6]", tg.Name, r.Shape())
		}
		got, _ := r.Float32s()
		av, _ := a.Float32s()
		bv, _ := b.Float32s()
		for i := range got {
			if got[i] != av[i]+bv[i] {
				t.Fatalf("%s: element %d: got %v, want %v", tg.Name, i, got[i], av[i]+bv[i])
			}
		}
		// A view of a constant moves nothing either.
		c := ops.Reshape(graph.FromInt32s([]int32{7}), 1, 1, 1)
		tg.Eval(t, c)
		if st := tg.RT.LastStats(); st.Dispatches != 0 {
			t.Fatalf("%s: reshape of a constant made %d dispatches, want 0", tg.Name, st.Dispatches)
		}
		v, _ := c.Int32s()
		if !slices.Equal(v, []int32{7}) || !slices.Equal(c.Shape(), []int{1, 1, 1}) {
			t.Fatalf("%s: got %v of shape %v, want [7] of shape [1 1 1]", tg.Name, v, c.Shape())
		}
	}
}

func TestReshapeShapes(t *testing.T) {
	cases := []struct{ in, shape, want []int }{
		{[]int{2, 3, 4}, []int{24}, []int{24}},
		{[]int{2, 3, 4}, []int{-1, 4}, []int{6, 4}},
		{[]int{2, 3, 4}, []int{2, -1, 2}, []int{2, 6, 2}},
		{[]int{1}, []int{}, []int{}},
		{[]int{}, []int{1, 1, -1}, []int{1, 1, 1}},
		{[]int{0, 3}, []int{3, -1}, []int{3, 0}},
	}
	for _, c := range cases {
		r := ops.Reshape(graph.FromBytes(graph.Float16, make([]byte, 2*graph.NumElements(c.in)), c.in...), c.shape...)
		if r.Err() != nil || !slices.Equal(r.Shape(), c.want) {
			t.Errorf("reshape %v to %v: got shape %v, error %v; want %v", c.in, c.shape, r.Shape(), r.Err(), c.want)
		}
	}
}

func TestTranspose(t *testing.T) {
	cases := []struct{ shape, perm []int }{
		{[]int{2, 3, 4}, []int{0, 1, 2}}, {[]int{2, 3, 4}, []int{0, 2, 1}}, {[]int{2, 3, 4}, []int{1, 0, 2}},
		{[]int{2, 3, 4}, []int{1, 2, 0}}, {[]int{2, 3, 4}, []int{2, 0, 1}}, {[]int{2, 3, 4}, []int{2, 1, 0}},
		{[]int{5, 1, 7}, []int{2, 0, 1}}, {[]int{300, 70}, []int{1, 0}}, {[]int{9}, []int{0}}, {[]int{}, []int{}},
		{[]int{2, 3, 4, 5}, []int{0, 2, 1, 3}}, {[]int{2, 3, 4, 5}, []int{3, 1, 0, 2}}, {[]int{3, 0, 2}, []int{2, 1, 0}},
		{[]int{130, 9, 20}, []int{1, 0, 2}}, // several workers
	}
	for ci, c := range cases {
		for _, dt := range graph.DTypes {
			if ci > 0 && dt != graph.BFloat16 && dt != graph.Int64 && dt != graph.Bool {
				continue // every dtype for one case; the element sizes for all
			}
			t.Run(fmt.Sprintf("%s/%v/%v", dt, c.shape, c.perm), func(t *testing.T) {
				n := graph.NumElements(c.shape)
				in := randBytes(uint64(ci), dt, n)
				spec, got := evalOnTargets(t, func() *graph.Array { return ops.Transpose(graph.FromBytes(dt, in, c.shape...), c.perm...) })
				out := make([]int, len(c.perm))
				for i, p := range c.perm {
					out[i] = c.shape[p]
				}
				checkShape(t, spec, dt, out...)
				checkMoved(t, dt, got, in, n, func(j int) int {
					oi := unravelIndex(j, out)
					ii := make([]int, len(oi))
					for d, p := range c.perm {
						ii[p] = oi[d]
					}
					return ravelIndex(ii, c.shape)
				})
			})
		}
	}
}

func TestTransposeDefaultReverses(t *testing.T) {
	a := graph.FromBytes(graph.Int32, make([]byte, 4*24), 2, 3, 4)
	if got := ops.Transpose(a).Shape(); !slices.Equal(got, []int{4, 3, 2}) {
		t.Fatalf("Transpose with no perm: shape %v, want [4 3 2]", got)
	}
}

func TestSlice(t *testing.T) {
	cases := []struct{ shape, starts, ends []int }{
		{[]int{5, 7, 9}, []int{1, 0, 2}, []int{4, 7, 9}},
		{[]int{5, 7, 9}, []int{0, 0, 0}, []int{5, 7, 9}},
		{[]int{5, 7, 9}, []int{2, 3, 4}, []int{3, 4, 5}},
		{[]int{5, 7, 9}, []int{0, 2, 0}, []int{5, 2, 9}},
		{[]int{5, 7, 9}, []int{1, 0, 0}, []int{3, 7, 9}}, // contiguous rows
		{[]int{1}, []int{0}, []int{1}},
		{[]int{}, []int{}, []int{}},
		{[]int{40, 1000}, []int{3, 1}, []int{39, 999}}, // several workers
	}
	for ci, c := range cases {
		for _, dt := range graph.DTypes {
			if ci > 0 && dt != graph.Float16 && dt != graph.Uint32 && dt != graph.Int64 && dt != graph.Bool {
				continue
			}
			t.Run(fmt.Sprintf("%s/%v/%v:%v", dt, c.shape, c.starts, c.ends), func(t *testing.T) {
				n := graph.NumElements(c.shape)
				in := randBytes(uint64(ci), dt, n)
				spec, got := evalOnTargets(t, func() *graph.Array { return ops.Slice(graph.FromBytes(dt, in, c.shape...), c.starts, c.ends) })
				out := make([]int, len(c.shape))
				for i := range out {
					out[i] = c.ends[i] - c.starts[i]
				}
				checkShape(t, spec, dt, out...)
				checkMoved(t, dt, got, in, graph.NumElements(out), func(j int) int {
					idx := unravelIndex(j, out)
					for d := range idx {
						idx[d] += c.starts[d]
					}
					return ravelIndex(idx, c.shape)
				})
			})
		}
	}
}

func TestConcatenate(t *testing.T) {
	cases := []struct {
		axis   int
		shapes [][]int
	}{
		{0, [][]int{{2, 3, 4}, {1, 3, 4}, {5, 3, 4}}},
		{1, [][]int{{2, 3, 4}, {2, 1, 4}, {2, 5, 4}}},
		{-1, [][]int{{2, 3, 4}, {2, 3, 1}, {2, 3, 7}}},
		{1, [][]int{{2, 3, 4}, {2, 0, 4}, {2, 2, 4}}}, // an empty input
		{0, [][]int{{7}}},
		{0, [][]int{{1}, {1}, {1}, {1}, {1}}},
		{0, [][]int{{1, 9}, {1, 9}}},
		{1, [][]int{{1, 3}, {1, 5}}}, // axis 1 but one outer row: contiguous parts
		{1, [][]int{{300, 50}, {300, 70}}},
	}
	for ci, c := range cases {
		for _, dt := range graph.DTypes {
			if ci > 0 && dt != graph.BFloat16 && dt != graph.Float32 && dt != graph.Int64 && dt != graph.Bool {
				continue
			}
			t.Run(fmt.Sprintf("%s/axis%d/%v", dt, c.axis, c.shapes), func(t *testing.T) {
				ins := make([][]byte, len(c.shapes))
				for i, s := range c.shapes {
					ins[i] = randBytes(uint64(10*ci+i), dt, graph.NumElements(s))
				}
				spec, got := evalOnTargets(t, func() *graph.Array {
					arrays := make([]*graph.Array, len(ins))
					for i, s := range c.shapes {
						arrays[i] = graph.FromBytes(dt, ins[i], s...)
					}
					return ops.Concatenate(c.axis, arrays...)
				})
				axis := c.axis
				if axis < 0 {
					axis += len(c.shapes[0])
				}
				out := slices.Clone(c.shapes[0])
				var all []byte
				for i, s := range c.shapes {
					if i > 0 {
						out[axis] += s[axis]
					}
					all = append(all, ins[i]...)
				}
				checkShape(t, spec, dt, out...)
				// Element j of the output comes from input i at the same index,
				// shifted along axis; all holds the inputs one after another.
				checkMoved(t, dt, got, all, graph.NumElements(out), func(j int) int {
					idx := unravelIndex(j, out)
					base := 0
					for _, s := range c.shapes {
						if idx[axis] < s[axis] {
							return base + ravelIndex(idx, s)
						}
						idx[axis] -= s[axis]
						base += graph.NumElements(s)
					}
					panic("index outside the inputs")
				})
			})
		}
	}
}

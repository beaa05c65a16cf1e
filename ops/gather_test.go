package ops_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
)

// randIndices returns n seeded indices in [lo, hi) with both ends and
// repeats among them.
func randIndices(seed uint64, n, lo, hi int) []int64 {
	r := loomtest.Rand(seed)
	v := make([]int64, n)
	for i := range v {
		v[i] = int64(lo + r.IntN(hi-lo))
	}
	if n >= 3 {
		v[0], v[1], v[2] = int64(lo), int64(hi-1), v[0]
	}
	return v
}

func TestGatherRows(t *testing.T) {
	cases := []struct{ table, idx []int }{
		{[]int{10, 3, 5}, []int{4}},
		{[]int{10, 3, 5}, []int{2, 3}},
		{[]int{10, 3, 5}, []int{}}, // a scalar index: one row
		{[]int{10, 3, 5}, []int{0}},
		{[]int{1}, []int{6}},
		{[]int{1000, 64}, []int{5000}}, // several workers
	}
	for ci, c := range cases {
		for _, dt := range graph.DTypes {
			for _, idt := range []graph.DType{graph.Int32, graph.Int64} {
				if ci > 0 && dt != graph.BFloat16 && dt != graph.Float32 {
					continue
				}
				t.Run(fmt.Sprintf("%s/%s/%v/%v", dt, idt, c.table, c.idx), func(t *testing.T) {
					table := randBytes(uint64(ci), dt, graph.NumElements(c.table))
					idx := randIndices(uint64(ci), graph.NumElements(c.idx), 0, c.table[0])
					spec, got := evalOnTargets(t, func() *graph.Array {
						return ops.GatherRows(graph.FromBytes(dt, table, c.table...), intConst(idt, idx, c.idx...))
					})
					row := graph.NumElements(c.table[1:])
					checkShape(t, spec, dt, append(append([]int{}, c.idx...), c.table[1:]...)...)
					checkMoved(t, dt, got, table, len(idx)*row, func(j int) int { return int(idx[j/row])*row + j%row })
				})
			}
		}
	}
}

// computed returns indices as a computed array (v + 0), whose values the op
// cannot check while building.
func computed(dt graph.DType, v []int64) *graph.Array {
	return ops.Add(intConst(dt, v, len(v)), intConst(dt, make([]int64, len(v)), len(v)))
}

func TestGatherRowsOutOfRange(t *testing.T) {
	for _, bad := range []int64{10, -1, 1 << 40} {
		for _, idt := range []graph.DType{graph.Int32, graph.Int64} {
			if idt == graph.Int32 && bad > 1<<31 {
				continue
			}
			idx := []int64{0, 9, 3, bad, 1}
			// A constant: checked while building.
			a := ops.GatherRows(graph.FromFloat32s(make([]float32, 20), 10, 2), intConst(idt, idx, 5))
			wantErr(t, a, "gather_rows", fmt.Sprintf("indices[3] = %d is out of range [0, 10)", bad), "gather_test.go:")
			// Computed: checked by the kernel, on every target.
			for _, tg := range loomtest.Targets(t) {
				out := ops.GatherRows(graph.FromFloat32s(make([]float32, 20), 10, 2), computed(idt, idx))
				err := tg.RT.Eval(out)
				if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("indices[3] = %d is out of range [0, 10)", bad)) {
					t.Fatalf("%s: index %d: eval error %v, want one naming indices[3] = %d", tg.Name, bad, err, bad)
				}
				tg.NoHazards(t)
			}
		}
	}
	// The multi-index of a bad constant index is named.
	a := ops.GatherRows(graph.FromFloat32s(make([]float32, 20), 10, 2), graph.FromInt32s([]int32{1, 2, 3, 4, 10, 5}, 2, 3))
	wantErr(t, a, "indices[1 1] = 10 is out of range [0, 10)")
}

package ops_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
)

// scatterRef writes rows into a copy of dst in index order, skipping
// negative indices.
func scatterRef(dt graph.DType, dst, rows []byte, idx []int64, row int) []byte {
	out := bytes.Clone(dst)
	rb := row * dt.Size()
	for i, r := range idx {
		if r >= 0 {
			copy(out[int(r)*rb:(int(r)+1)*rb], rows[i*rb:(i+1)*rb])
		}
	}
	return out
}

func TestScatterRows(t *testing.T) {
	cases := []struct {
		dst []int
		n   int
	}{
		{[]int{8, 4}, 5},
		{[]int{8, 3, 5}, 12}, // more indices than rows: repeats
		{[]int{1}, 3},
		{[]int{8, 4}, 0},
		{[]int{300, 512}, 200}, // several workers
	}
	for ci, c := range cases {
		for _, dt := range graph.DTypes {
			for _, idt := range []graph.DType{graph.Int32, graph.Int64} {
				if ci > 0 && dt != graph.BFloat16 && dt != graph.Int64 {
					continue
				}
				t.Run(fmt.Sprintf("%s/%s/%v/%d", dt, idt, c.dst, c.n), func(t *testing.T) {
					row := graph.NumElements(c.dst[1:])
					dst := randBytes(uint64(ci), dt, graph.NumElements(c.dst))
					rows := randBytes(uint64(100+ci), dt, c.n*row)
					idx := randIndices(uint64(ci), c.n, -2, c.dst[0]) // negatives skip
					rowsShape := append([]int{c.n}, c.dst[1:]...)
					_, got := evalOnTargets(t, func() *graph.Array {
						return ops.ScatterRows(graph.FromBytes(dt, dst, c.dst...), intConst(idt, idx, c.n), graph.FromBytes(dt, rows, rowsShape...))
					})
					if want := scatterRef(dt, dst, rows, idx, row); !bytes.Equal(got, want) {
						t.Fatalf("result differs from the reference (indices %v)", idx)
					}
				})
			}
		}
	}
}

// TestScatterRowsInPlace checks the donation: the update reuses dst's
// buffer, with no copy and no new memory, and dst is unusable afterwards.
func TestScatterRowsInPlace(t *testing.T) {
	for _, tg := range loomtest.Targets(t) {
		dst := ops.Add(graph.FromFloat32s(make([]float32, 32), 8, 4), graph.Scalar(graph.Float32, 1)) // all ones
		tg.Eval(t, dst)
		held, _ := tg.RT.MemoryInUse()
		rows := graph.FromFloat32s([]float32{5, 5, 5, 5, 7, 7, 7, 7}, 2, 4)
		out := ops.ScatterRows(dst, graph.FromInt32s([]int32{6, 1}), rows)
		tg.Eval(t, out)
		st := tg.RT.LastStats()
		if st.Donations != 1 || st.DonationsRefused != 0 || st.Dispatches != 1 {
			t.Fatalf("%s: donations %d, refused %d, dispatches %d; want 1, 0, 1 (in place, no copy)", tg.Name, st.Donations, st.DonationsRefused, st.Dispatches)
		}
		if after, _ := tg.RT.MemoryInUse(); after-held > 2*256 { // the two small constants at most
			t.Fatalf("%s: the in-place update grew device memory from %d to %d bytes", tg.Name, held, after)
		}
		got, err := out.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		want := []float32{1, 1, 1, 1, 7, 7, 7, 7, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 5, 5, 5, 5, 1, 1, 1, 1}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: got %v, want %v", tg.Name, got, want)
		}
		// The consumed dst: reading it, using it and evaluating it are errors.
		if _, err := dst.Float32s(); err == nil || !strings.Contains(err.Error(), "scatter_rows") {
			t.Fatalf("%s: reading the donated dst: error %v, want one naming scatter_rows", tg.Name, err)
		}
		wantErr(t, ops.Neg(dst), "neg", "donated to scatter_rows", "scatter_test.go:")
		if err := tg.RT.Eval(dst); err == nil || !strings.Contains(err.Error(), "donated to scatter_rows") {
			t.Fatalf("%s: evaluating the donated dst: error %v", tg.Name, err)
		}
	}
}

// TestScatterRowsRefusedDonation asks for dst and the update in one Eval:
// the old value must survive, so the update works on a copy.
func TestScatterRowsRefusedDonation(t *testing.T) {
	for _, tg := range loomtest.Targets(t) {
		dst := ops.Neg(graph.FromFloat32s([]float32{1, 2, 3, 4, 5, 6}, 3, 2))
		out := ops.ScatterRows(dst, graph.FromInt64s([]int64{2}), graph.FromFloat32s([]float32{9, 9}, 1, 2))
		tg.Eval(t, out, dst)
		st := tg.RT.LastStats()
		if st.Donations != 0 || st.DonationsRefused != 1 {
			t.Fatalf("%s: donations %d, refused %d; want 0 and 1", tg.Name, st.Donations, st.DonationsRefused)
		}
		got, _ := out.Float32s()
		old, err := dst.Float32s()
		if err != nil {
			t.Fatalf("%s: reading dst, requested in the same Eval: %v", tg.Name, err)
		}
		if fmt.Sprint(got) != "[-1 -2 -3 -4 9 9]" || fmt.Sprint(old) != "[-1 -2 -3 -4 -5 -6]" {
			t.Fatalf("%s: update %v and old value %v, want [-1 -2 -3 -4 9 9] and [-1 -2 -3 -4 -5 -6]", tg.Name, got, old)
		}
	}
}

func TestScatterRowsOutOfRange(t *testing.T) {
	dst := func() *graph.Array { return graph.FromFloat32s(make([]float32, 8), 4, 2) }
	rows := func() *graph.Array { return graph.FromFloat32s(make([]float32, 6), 3, 2) }
	// A constant index ≥ R is reported while building, and dst stays usable.
	d := dst()
	a := ops.ScatterRows(d, graph.FromInt32s([]int32{0, 4, -1}), rows())
	wantErr(t, a, "scatter_rows", "indices[1] = 4 is out of range [0, 4)", "scatter_test.go:")
	if d.Consumer() != nil {
		t.Fatalf("a scatter that failed to build consumed its dst")
	}
	// Computed: the kernel reports it, on every target.
	for _, tg := range loomtest.Targets(t) {
		out := ops.ScatterRows(dst(), computed(graph.Int64, []int64{-5, 3, 4}), rows())
		err := tg.RT.Eval(out)
		if err == nil || !strings.Contains(err.Error(), "indices[2] = 4 is out of range [0, 4)") {
			t.Fatalf("%s: eval error %v, want one naming indices[2] = 4", tg.Name, err)
		}
		tg.NoHazards(t)
	}
}

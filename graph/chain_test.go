package graph_test

import (
	"testing"
	"time"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/ops"
)

// TestMillionNodeChain evaluates a chain of a million nodes: building,
// ordering, planning and freeing must all be iterative, never recursive.
func TestMillionNodeChain(t *testing.T) {
	const n = 1_000_000
	start := time.Now()
	x := graph.FromFloat32s([]float32{1.5})
	for range n {
		x = ops.Neg(x)
	}
	built := time.Now()
	rt := newRuntime(t)
	if err := rt.Eval(x); err != nil {
		t.Fatal(err)
	}
	v, err := x.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	if v[0] != 1.5 { // an even number of negations
		t.Fatalf("got %v, want 1.5", v[0])
	}
	st := rt.LastStats()
	if st.Nodes != n || st.Dispatches != n {
		t.Fatalf("%d nodes and %d dispatches, want %d of each", st.Nodes, st.Dispatches, n)
	}
	t.Logf("build %v, eval %v (plan %v, encode %v, wait %v)", built.Sub(start), time.Since(built), st.Plan, st.Encode, st.Wait)
}

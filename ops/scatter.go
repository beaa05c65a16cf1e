package ops

import (
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// ScatterRows writes rows ([N, ...]) into dst ([R, ...]) at the rows named
// by indices (int32 or int64 [N]) and returns the updated array.
//
// dst is donated: building an op on it afterwards is an error. The runtime
// updates dst's buffer in place when nothing else needs its old value
// (Stats.Donations), after which evaluating or reading dst is an error too.
// When something does — dst is also an output of the same Eval, or another
// evaluated array shares its buffer — the update works on a copy
// (Stats.DonationsRefused) and dst keeps its value.
//
// An index < 0 skips its row; an index ≥ R is an error (reported here when
// indices is a constant, otherwise by the evaluation) and nothing is
// written. When several indices name one row, the last of them wins.
func ScatterRows(dst, indices, rows *graph.Array) *graph.Array {
	pc := graph.Caller(0)
	if err := inputErr(pc, "scatter_rows", dst, indices, rows); err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	if err := constIndexErr(pc, "scatter_rows", dst, indices, true); err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	return apply1(pc, primitives.ScatterRows{}, dst, indices, rows)
}

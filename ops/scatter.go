package ops

import (
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// ScatterRows writes rows ([N, ...]) into dst ([R, ...]) at the rows named
// by indices (int32 or int64 [N]) and returns the updated array. dst is
// donated: the runtime updates its buffer in place when nothing else needs
// the old value (Stats.Donations), and a copy when something does — dst is
// also an output of the same Eval, or another array still shares its buffer
// (Stats.DonationsRefused). Either way dst may not be used again: later ops
// on it, evaluating it and reading it are errors.
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

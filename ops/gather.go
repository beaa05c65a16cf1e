package ops

import (
	"fmt"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// GatherRows returns the rows of table ([V, ...]) named by indices (int32 or
// int64, any shape [N...]): the result is [N..., ...], the embedding lookup.
// An index outside [0, V) is an error: when indices is a constant it is
// reported here, otherwise by the evaluation, naming its position and value.
func GatherRows(table, indices *graph.Array) *graph.Array {
	pc := graph.Caller(0)
	if err := inputErr(pc, "gather_rows", table, indices); err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	if err := constIndexErr(pc, "gather_rows", table, indices, false); err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	return apply1(pc, primitives.GatherRows{}, table, indices)
}

// hostIndices returns the values of an int32 or int64 constant whose bytes
// are on the host (nil for other arrays).
func hostIndices(a *graph.Array) []int64 {
	switch a.DType() {
	case graph.Int32:
		v, _ := a.Int32s()
		vals := make([]int64, len(v))
		for i, x := range v {
			vals[i] = int64(x)
		}
		return vals
	case graph.Int64:
		v, _ := a.Int64s()
		return v
	}
	return nil
}

// constIndexErr checks the values of indices against the rows of table, for
// op called at pc, when indices is a constant whose bytes are still on the
// host; other indices are checked by the kernels. With skip, negative
// indices are allowed.
func constIndexErr(pc uintptr, op string, table, indices *graph.Array, skip bool) error {
	if indices.HostBytes() == nil || table.Ndim() == 0 {
		return nil // not a constant, or the primitive reports the problem
	}
	vals := hostIndices(indices)
	rows := int64(table.Shape()[0])
	for i, v := range vals {
		if v >= rows || v < 0 && !skip {
			return graph.Errorf(pc, op, "indices%v = %d is out of range [0, %d) (inputs: %s, %s)",
				unravel(i, indices.Shape()), v, rows, table.Spec(), indices.Spec())
		}
	}
	return nil
}

// unravel returns the multi-index of flat element i of an array of shape.
func unravel(i int, shape []int) string {
	idx := make([]int, len(shape))
	for d := len(shape) - 1; d >= 0; d-- {
		idx[d] = i % shape[d]
		i /= shape[d]
	}
	return fmt.Sprint(idx)
}

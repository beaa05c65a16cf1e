package ops

import (
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// Cumsum returns the inclusive running sum of a along axis (negative counts
// from the end), for every numeric dtype: each line summed in order, floats
// in float64 on the CPU and CUDA and float32 on Metal, integers wrapping
// around.
func Cumsum(a *graph.Array, axis int) *graph.Array {
	return apply1(graph.Caller(0), primitives.Cumsum{Axis: axis}, a)
}

// Sort returns a sorted along axis (ascending, or descending), stably;
// NaN counts as larger than any number. See primitives.Sort for the cost.
func Sort(a *graph.Array, axis int, descending bool) *graph.Array {
	return apply(graph.Caller(0), primitives.Sort{Axis: axis, Descending: descending}, a)[0]
}

// Argsort returns the int32 indices along axis that sort a (a stable sort:
// equal values keep their order), as Sort.
func Argsort(a *graph.Array, axis int, descending bool) *graph.Array {
	return apply(graph.Caller(0), primitives.Sort{Axis: axis, Descending: descending}, a)[1]
}

// TopK returns the k largest values of a along axis, largest first, and
// their int32 indices (among equal values the first comes first; NaN is
// the largest). It is a descending Sort and a Slice of each output.
func TopK(a *graph.Array, k, axis int) (values, indices *graph.Array) {
	pc := graph.Caller(0)
	if err := inputErr(pc, "topk", a); err != nil {
		return graph.Failed(err, graph.Spec{}), graph.Failed(err, graph.Spec{})
	}
	ax := axis
	if ax < 0 {
		ax += a.Ndim()
	}
	if ax < 0 || ax >= a.Ndim() {
		err := graph.Errorf(pc, "topk", "axis %d is out of range for rank %d (input: %s)", axis, a.Ndim(), a.Spec())
		return graph.Failed(err, graph.Spec{}), graph.Failed(err, graph.Spec{})
	}
	if n := a.Shape()[ax]; k < 0 || k > n {
		err := graph.Errorf(pc, "topk", "k = %d is not within [0, %d], the length of axis %d (input: %s)", k, n, axis, a.Spec())
		return graph.Failed(err, graph.Spec{}), graph.Failed(err, graph.Spec{})
	}
	sorted := apply(pc, primitives.Sort{Axis: ax, Descending: true}, a)
	starts, ends := make([]int, a.Ndim()), append([]int{}, a.Shape()...)
	ends[ax] = k
	s, _ := primitives.NewDims(starts) // the rank passed Sort's shape rule
	e, _ := primitives.NewDims(ends)
	return apply1(pc, primitives.Slice{Starts: s, Ends: e}, sorted[0]), apply1(pc, primitives.Slice{Starts: s, Ends: e}, sorted[1])
}

// TakeAlongAxis picks elements of a along axis by indices (int32 or int64,
// a's rank, a's shape but along axis): out[…, j, …] = a[…, indices[…, j, …],
// …]. A negative index counts from the end; one outside [−N, N) is an
// error of the evaluation naming its position and value. With Argsort's
// indices it sorts a.
func TakeAlongAxis(a, indices *graph.Array, axis int) *graph.Array {
	return apply1(graph.Caller(0), primitives.TakeAlongAxis{Axis: axis}, a, indices)
}

// ScatterAddRows adds rows ([N, ...]) into dst ([R, ...]) at the rows named
// by indices (int32 or int64 [N]) and returns the updated array; dst is
// donated as ScatterRows' is. Repeated indices accumulate, in index order,
// each sum rounded to the dtype (the same bits on every device); integers
// wrap around. An index < 0 skips its row; an index ≥ R is an error
// (reported here when indices is a constant, otherwise by the evaluation)
// and nothing is written.
func ScatterAddRows(dst, indices, rows *graph.Array) *graph.Array {
	pc := graph.Caller(0)
	if err := inputErr(pc, "scatter_add_rows", dst, indices, rows); err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	if err := constIndexErr(pc, "scatter_add_rows", dst, indices, true); err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	return apply1(pc, primitives.ScatterAddRows{}, dst, indices, rows)
}

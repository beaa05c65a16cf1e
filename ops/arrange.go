package ops

import (
	"math"
	"slices"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// Arange returns the vector start, start+step, … of the values below stop
// (above it for a negative step), in dtype dt: ceil((stop−start)/step)
// elements, none if that is negative. Each value is start + i·step in
// float64, rounded to dt. Integer dtypes need integer start and step. The
// vector is built on the host and uploaded as a constant.
func Arange(start, stop, step float64, dt graph.DType) *graph.Array {
	pc := graph.Caller(0)
	for _, v := range []float64{start, stop, step} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fail(pc, "arange", "start %v, stop %v and step %v must be finite", start, stop, step)
		}
	}
	if step == 0 {
		return fail(pc, "arange", "step is 0")
	}
	n := math.Ceil((stop - start) / step)
	switch {
	case !slices.Contains(primitives.BinaryDTypes, dt):
		return fail(pc, "arange", "dtype %s is unsupported (supported: %v)", dt, primitives.BinaryDTypes)
	case !dt.IsFloat() && (start != math.Trunc(start) || step != math.Trunc(step)):
		return fail(pc, "arange", "start %v and step %v must be integers for dtype %s", start, step, dt)
	case n > 1<<31-1:
		return fail(pc, "arange", "%v elements are unsupported (the limit is 2^31-1)", n)
	}
	v := make([]float64, max(int(n), 0))
	for i := range v {
		v[i] = start + float64(i)*step
	}
	return fromFloat64s(dt, v)
}

// fromFloat64s returns a constant vector of numeric dtype dt holding v
// (floats rounded to nearest even, integers as int64(v) wrapped to dt).
func fromFloat64s(dt graph.DType, v []float64) *graph.Array {
	switch dt {
	case graph.Int32:
		w := make([]int32, len(v))
		for i, x := range v {
			w[i] = int32(int64(x))
		}
		return graph.FromInt32s(w, len(v))
	case graph.Int64:
		w := make([]int64, len(v))
		for i, x := range v {
			w[i] = int64(x)
		}
		return graph.FromInt64s(w, len(v))
	case graph.Uint32:
		w := make([]uint32, len(v))
		for i, x := range v {
			w[i] = uint32(int64(x))
		}
		return graph.FromUint32s(w, len(v))
	}
	w := make([]float32, len(v))
	for i, x := range v {
		w[i] = float32(x)
	}
	return graph.FromFloat32sAs(dt, w, len(v))
}

// BroadcastTo returns a copied to shape, which a's shape broadcasts to
// (dimensions of 1 repeat; missing leading ones are added).
func BroadcastTo(a *graph.Array, shape ...int) *graph.Array {
	pc := graph.Caller(0)
	d, err := dims(pc, "broadcast_to", "shape", shape, a)
	if err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	return apply1(pc, primitives.BroadcastTo{Shape: d}, a)
}

// Stack joins arrays of one dtype and shape along a new axis (negative
// counts from the end of the result's axes): a Reshape of each, then a
// Concatenate.
func Stack(axis int, arrays ...*graph.Array) *graph.Array {
	pc := graph.Caller(0)
	if len(arrays) == 0 {
		return fail(pc, "stack", "needs at least 1 input")
	}
	if err := inputErr(pc, "stack", arrays...); err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	first := arrays[0].Spec()
	rank := len(first.Shape) + 1
	at := axis
	if at < 0 {
		at += rank
	}
	if at < 0 || at >= rank {
		return fail(pc, "stack", "axis %d is out of range for rank %d (inputs: %s)", axis, rank, first)
	}
	parts := make([]*graph.Array, len(arrays))
	for i, a := range arrays {
		if s := a.Spec(); s.DType != first.DType || !slices.Equal(s.Shape, first.Shape) {
			return fail(pc, "stack", "input %d is %s, input 0 %s: stacked arrays must have one dtype and shape", i, s, first)
		}
		shape := append(append(append([]int{}, first.Shape[:at]...), 1), first.Shape[at:]...)
		parts[i] = reshape(pc, "stack", a, shape)
	}
	return apply1(pc, primitives.Concatenate{Axis: at}, parts...)
}

// Split cuts a into parts equal pieces along axis (negative counts from the
// end), whose length parts must divide: one Slice each.
func Split(a *graph.Array, parts, axis int) []*graph.Array {
	pc := graph.Caller(0)
	if parts <= 0 {
		return failedOutputs(graph.Errorf(pc, "split", "parts %d must be ≥ 1", parts), 1)
	}
	ax, err := splitAxis(pc, a, axis, parts)
	if err != nil {
		return failedOutputs(err, parts)
	}
	n := a.Shape()[ax]
	if n%parts != 0 {
		return failedOutputs(graph.Errorf(pc, "split", "axis %d of length %d does not split into %d equal parts (input: %s)", axis, n, parts, a.Spec()), parts)
	}
	at := make([]int, parts-1)
	for i := range at {
		at[i] = (i + 1) * n / parts
	}
	return splitAt(pc, a, at, ax)
}

// SplitAt cuts a along axis before each of the ascending indices in [0,
// n]: len(indices)+1 pieces (empty ones where indices repeat), one Slice
// each.
func SplitAt(a *graph.Array, indices []int, axis int) []*graph.Array {
	pc := graph.Caller(0)
	ax, err := splitAxis(pc, a, axis, len(indices)+1)
	if err != nil {
		return failedOutputs(err, len(indices)+1)
	}
	n := a.Shape()[ax]
	for i, x := range indices {
		if x < 0 || x > n || i > 0 && x < indices[i-1] {
			return failedOutputs(graph.Errorf(pc, "split", "indices %v must ascend within [0, %d] (input: %s)", indices, n, a.Spec()), len(indices)+1)
		}
	}
	return splitAt(pc, a, indices, ax)
}

// splitAxis checks a and returns axis counted from the front.
func splitAxis(pc uintptr, a *graph.Array, axis, parts int) (int, error) {
	if err := inputErr(pc, "split", a); err != nil {
		return 0, err
	}
	ax := axis
	if ax < 0 {
		ax += a.Ndim()
	}
	if ax < 0 || ax >= a.Ndim() {
		return 0, graph.Errorf(pc, "split", "axis %d is out of range for rank %d (input: %s)", axis, a.Ndim(), a.Spec())
	}
	return ax, nil
}

func splitAt(pc uintptr, a *graph.Array, at []int, axis int) []*graph.Array {
	shape := a.Shape()
	bounds := append(append([]int{0}, at...), shape[axis])
	out := make([]*graph.Array, len(bounds)-1)
	for i := range out {
		starts, ends := make([]int, len(shape)), append([]int{}, shape...)
		starts[axis], ends[axis] = bounds[i], bounds[i+1]
		s, err := primitives.NewDims(starts)
		if err != nil {
			return failedOutputs(graph.Errorf(pc, "split", "%v (input: %s)", err, a.Spec()), len(out))
		}
		e, _ := primitives.NewDims(ends)
		out[i] = apply1(pc, primitives.Slice{Starts: s, Ends: e}, a)
	}
	return out
}

// Pad returns a with low[i] elements before and high[i] after along every
// axis i, all equal to value (converted to a's dtype).
func Pad(a *graph.Array, low, high []int, value float64) *graph.Array {
	pc := graph.Caller(0)
	lo, err := dims(pc, "pad", "low", low, a)
	if err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	hi, err := dims(pc, "pad", "high", high, a)
	if err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	return apply1(pc, primitives.Pad{Low: lo, High: hi}, a, graph.Scalar(a.DType(), value))
}

// SliceStrided returns a[starts[0]:stops[0]:steps[0], …] with Python's
// rules, one entry per axis: negative starts and stops count from the end,
// bounds beyond the axis are clamped (math.MinInt and math.MaxInt stand for
// an open end), a negative step walks backward, a step of 0 is an error.
// a[::-1] along an axis of n is start n−1 (or −1), stop math.MinInt, step −1.
func SliceStrided(a *graph.Array, starts, stops, steps []int) *graph.Array {
	pc := graph.Caller(0)
	if err := inputErr(pc, "slice_strided", a); err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	shape := a.Shape()
	if len(starts) != len(shape) || len(stops) != len(shape) || len(steps) != len(shape) {
		return fail(pc, "slice_strided", "starts %v, stops %v and steps %v must have one entry per axis of the rank-%d input %s", starts, stops, steps, len(shape), a.Spec())
	}
	first, counts := make([]int, len(shape)), make([]int, len(shape))
	steps = append([]int{}, steps...)
	for i, n := range shape {
		step := steps[i]
		if step == 0 {
			return fail(pc, "slice_strided", "axis %d: step 0 (input: %s)", i, a.Spec())
		}
		lo, hi := 0, n // the clamping range of a positive step
		if step < 0 {
			lo, hi = -1, n-1
		}
		norm := func(x int) int {
			if x < 0 {
				x += n // cannot overflow: x < 0
			}
			return min(max(x, lo), hi)
		}
		start, stop := norm(starts[i]), norm(stops[i])
		if step > 0 && stop > start {
			counts[i] = (stop-start-1)/step + 1
		} else if step < 0 && start > stop {
			counts[i] = (start-stop-1)/-max(step, -n) + 1 // |step| ≥ n takes one element, as n does
		}
		first[i], steps[i] = start, step
		if counts[i] == 0 {
			first[i] = 0
		}
		if counts[i] <= 1 {
			steps[i] = 1 // any step takes the one element; this one cannot overflow a stride
		}
	}
	s, err := primitives.NewDims(first)
	if err != nil {
		return fail(pc, "slice_strided", "%v (input: %s)", err, a.Spec())
	}
	c, _ := primitives.NewDims(counts)
	st, _ := primitives.NewDims(steps)
	return apply1(pc, primitives.SliceStrided{Starts: s, Counts: c, Steps: st}, a)
}

// Tril keeps the elements of a on and below diagonal k of its last two axes
// ([..., N, M]: element (i, j) is kept where j ≤ i + k) and zeroes the
// others: one comparison of two index vectors, one Where.
func Tril(a *graph.Array, k int) *graph.Array {
	return triangle(graph.Caller(0), "tril", a, k, primitives.LessEqual)
}

// Triu keeps the elements of a on and above diagonal k of its last two axes
// (where j ≥ i + k) and zeroes the others, as Tril.
func Triu(a *graph.Array, k int) *graph.Array {
	return triangle(graph.Caller(0), "triu", a, k, primitives.GreaterEqual)
}

func triangle(pc uintptr, op string, a *graph.Array, k int, cmp primitives.BinaryOp) *graph.Array {
	if err := inputErr(pc, op, a); err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	shape := a.Shape()
	if len(shape) < 2 {
		return fail(pc, op, "input %s must have at least 2 dimensions", a.Spec())
	}
	n, m := shape[len(shape)-2], shape[len(shape)-1]
	mask := diagonalMask(pc, n, m, k, cmp)
	return apply1(pc, primitives.Where{}, mask, a, graph.Scalar(a.DType(), 0))
}

// diagonalMask is the bool [n, m] of j cmp i + k, for rows i and columns j.
func diagonalMask(pc uintptr, n, m, k int, cmp primitives.BinaryOp) *graph.Array {
	k = min(max(k, -n-1), m+1) // beyond these every element compares alike
	rows, cols := make([]int32, n), make([]int32, m)
	for i := range rows {
		rows[i] = int32(i + k)
	}
	for j := range cols {
		cols[j] = int32(j)
	}
	return apply1(pc, primitives.Binary{Op: cmp}, graph.FromInt32s(cols, m), graph.FromInt32s(rows, n, 1))
}

// CausalMask returns the additive attention mask [queries, keys] of float
// dtype dt for queries that are the last of the keys' positions: 0 where
// key j is visible to query i (j ≤ i + keys − queries), −Inf elsewhere.
// Add it to the scores before a softmax.
func CausalMask(queries, keys int, dt graph.DType) *graph.Array {
	pc := graph.Caller(0)
	if !dt.IsFloat() {
		return fail(pc, "causal_mask", "dtype %s is unsupported (supported: %v)", dt, primitives.FloatDTypes)
	}
	if queries < 0 || keys < 0 || queries > 1<<30 || keys > 1<<30 {
		return fail(pc, "causal_mask", "queries %d and keys %d must be in [0, 2^30]", queries, keys)
	}
	mask := diagonalMask(pc, queries, keys, keys-queries, primitives.LessEqual)
	return apply1(pc, primitives.Where{}, mask, graph.Scalar(dt, 0), graph.Scalar(dt, math.Inf(-1)))
}

package ops

import (
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// Sum returns the sum of a over axis (negative counts from the end),
// keeping it as a dimension of size 1 if keepDims. Float sums accumulate in
// float64 on the CPU (at least float32 elsewhere) in a fixed order; integer
// sums wrap around. The sum over an empty axis is 0.
func Sum(a *graph.Array, axis int, keepDims bool) *graph.Array {
	return apply1(graph.Caller(0), primitives.Reduce{Op: primitives.Sum, Axis: axis, KeepDims: keepDims}, a)
}

// Max returns the maximum of a over axis. NaN counts as larger than any
// number. An empty axis is an error.
func Max(a *graph.Array, axis int, keepDims bool) *graph.Array {
	return apply1(graph.Caller(0), primitives.Reduce{Op: primitives.Max, Axis: axis, KeepDims: keepDims}, a)
}

// Mean returns the mean of a (a float dtype) over axis. The mean over an
// empty axis is NaN.
func Mean(a *graph.Array, axis int, keepDims bool) *graph.Array {
	return apply1(graph.Caller(0), primitives.Reduce{Op: primitives.Mean, Axis: axis, KeepDims: keepDims}, a)
}

// Argmax returns the int32 index of the first maximum of a over axis. NaN
// counts as larger than any number, so the first NaN wins. An empty axis is
// an error.
func Argmax(a *graph.Array, axis int, keepDims bool) *graph.Array {
	return apply1(graph.Caller(0), primitives.Reduce{Op: primitives.Argmax, Axis: axis, KeepDims: keepDims}, a)
}

// Min returns the minimum of a over axis. NaN counts as smaller than any
// number. An empty axis is an error.
func Min(a *graph.Array, axis int, keepDims bool) *graph.Array {
	return apply1(graph.Caller(0), primitives.Reduce{Op: primitives.Min, Axis: axis, KeepDims: keepDims}, a)
}

// Argmin returns the int32 index of the first minimum of a over axis. NaN
// counts as smaller than any number, so the first NaN wins. An empty axis
// is an error.
func Argmin(a *graph.Array, axis int, keepDims bool) *graph.Array {
	return apply1(graph.Caller(0), primitives.Reduce{Op: primitives.Argmin, Axis: axis, KeepDims: keepDims}, a)
}

// Prod returns the product of a over axis. Float products accumulate in
// float64 on the CPU and CUDA, float32 on Metal; integer products wrap
// around. The product over an empty axis is 1.
func Prod(a *graph.Array, axis int, keepDims bool) *graph.Array {
	return apply1(graph.Caller(0), primitives.Reduce{Op: primitives.Prod, Axis: axis, KeepDims: keepDims}, a)
}

// LogSumExp returns log(Σ exp(a)) over axis, for a float array, computed
// as max + log(Σ exp(a − max)) so that it neither overflows nor
// underflows. An infinite or NaN maximum is the result; an empty axis
// gives −Inf.
func LogSumExp(a *graph.Array, axis int, keepDims bool) *graph.Array {
	return apply1(graph.Caller(0), primitives.Reduce{Op: primitives.LogSumExp, Axis: axis, KeepDims: keepDims}, a)
}

// SumAxes returns the sum of a over the given axes (negative counts from
// the end; none: every axis), keeping them as dimensions of size 1 if
// keepDims.
func SumAxes(a *graph.Array, axes []int, keepDims bool) *graph.Array {
	return reduceAxes(graph.Caller(0), primitives.Sum, a, axes, keepDims)
}

// MeanAxes is Mean over several axes (none: every axis), as SumAxes.
func MeanAxes(a *graph.Array, axes []int, keepDims bool) *graph.Array {
	return reduceAxes(graph.Caller(0), primitives.Mean, a, axes, keepDims)
}

// MaxAxes is Max over several axes (none: every axis), as SumAxes.
func MaxAxes(a *graph.Array, axes []int, keepDims bool) *graph.Array {
	return reduceAxes(graph.Caller(0), primitives.Max, a, axes, keepDims)
}

// MinAxes is Min over several axes (none: every axis), as SumAxes.
func MinAxes(a *graph.Array, axes []int, keepDims bool) *graph.Array {
	return reduceAxes(graph.Caller(0), primitives.Min, a, axes, keepDims)
}

// ProdAxes is Prod over several axes (none: every axis), as SumAxes.
func ProdAxes(a *graph.Array, axes []int, keepDims bool) *graph.Array {
	return reduceAxes(graph.Caller(0), primitives.Prod, a, axes, keepDims)
}

// LogSumExpAxes is LogSumExp over several axes (none: every axis), as
// SumAxes.
func LogSumExpAxes(a *graph.Array, axes []int, keepDims bool) *graph.Array {
	return reduceAxes(graph.Caller(0), primitives.LogSumExp, a, axes, keepDims)
}

// reduceAxes reduces a over several axes with one Reduce over one axis:
// the reduced axes are moved behind the others (a Transpose, only when they
// are not already next to each other) and merged into one (a Reshape, a
// view), so that the result is reduced in one pass in a fixed order.
func reduceAxes(pc uintptr, op primitives.ReduceOp, a *graph.Array, axes []int, keepDims bool) *graph.Array {
	name := op.String()
	if err := inputErr(pc, name, a); err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	shape := a.Shape()
	rank := len(shape)
	reduced := make([]bool, rank)
	if len(axes) == 0 {
		for i := range reduced {
			reduced[i] = true
		}
	}
	for _, ax := range axes {
		i := ax
		if i < 0 {
			i += rank
		}
		if i < 0 || i >= rank {
			return fail(pc, name, "axis %d is out of range for rank %d (input: %s)", ax, rank, a.Spec())
		}
		if reduced[i] {
			return fail(pc, name, "axis %d is given twice in %v (input: %s)", ax, axes, a.Spec())
		}
		reduced[i] = true
	}
	var kept, gone, outShape []int // kept and reduced axes in order; the result's shape
	n := 1
	for i, r := range reduced {
		switch {
		case r:
			gone, n = append(gone, i), n*shape[i]
			if keepDims {
				outShape = append(outShape, 1)
			}
		default:
			kept, outShape = append(kept, i), append(outShape, shape[i])
		}
	}
	if outShape == nil {
		outShape = []int{}
	}
	x := a
	if len(gone) > 0 && gone[len(gone)-1]-gone[0] != len(gone)-1 {
		// Not next to each other: move them behind the others.
		perm, err := primitives.NewDims(append(append([]int{}, kept...), gone...))
		if err != nil {
			return fail(pc, name, "%v (input: %s)", err, a.Spec())
		}
		x = apply1(pc, primitives.Transpose{Perm: perm}, x)
		gone = []int{len(kept)}
		shape = x.Shape()
	}
	// Merge the reduced axes (now consecutive, from gone[0]) into one.
	at := rank // an empty list of axes of a scalar: reduce a new axis of 1
	if len(gone) > 0 {
		at = gone[0]
	}
	merged := append(append(append([]int{}, shape[:at]...), n), shape[min(at+len(reduced)-len(kept), len(shape)):]...)
	x = reshape(pc, name, x, merged)
	x = apply1(pc, primitives.Reduce{Op: op, Axis: at}, x)
	return reshape(pc, name, x, outShape)
}

// reshape is Reshape for ops built of others: errors name op.
func reshape(pc uintptr, op string, a *graph.Array, shape []int) *graph.Array {
	d, err := primitives.NewDims(shape)
	if err != nil {
		return fail(pc, op, "%v (input: %s)", err, a.Spec())
	}
	return apply1(pc, primitives.Reshape{Shape: d}, a)
}

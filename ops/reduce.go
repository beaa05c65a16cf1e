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

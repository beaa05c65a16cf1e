package ops

import (
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// Reshape returns a with the given shape, which must have as many elements;
// one dimension may be -1, inferred from the others. The result is a view of
// a's buffer: nothing is copied.
func Reshape(a *graph.Array, shape ...int) *graph.Array {
	pc := graph.Caller(0)
	d, err := dims(pc, "reshape", "shape", shape, a)
	if err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	return apply1(pc, primitives.Reshape{Shape: d}, a)
}

// Transpose permutes the axes of a: axis i of the result is axis perm[i] of
// a. With no perm, the axes are reversed.
func Transpose(a *graph.Array, perm ...int) *graph.Array {
	pc := graph.Caller(0)
	if err := inputErr(pc, "transpose", a); err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	if len(perm) == 0 {
		for i := a.Ndim() - 1; i >= 0; i-- {
			perm = append(perm, i)
		}
	}
	d, err := dims(pc, "transpose", "permutation", perm, a)
	if err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	return apply1(pc, primitives.Transpose{Perm: d}, a)
}

// Slice returns the elements [starts[i], ends[i]) of every axis i of a,
// with step 1. starts and ends have one entry per axis; bounds outside a are
// an error, not clamped.
func Slice(a *graph.Array, starts, ends []int) *graph.Array {
	pc := graph.Caller(0)
	s, err := dims(pc, "slice", "starts", starts, a)
	if err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	e, err := dims(pc, "slice", "ends", ends, a)
	if err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	return apply1(pc, primitives.Slice{Starts: s, Ends: e}, a)
}

// Concatenate joins arrays along axis (negative counts from the end). They
// must share a dtype and have the same shape except along axis.
func Concatenate(axis int, arrays ...*graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Concatenate{Axis: axis}, arrays...)
}

// dims converts v, the argument of op called what, for a primitive. A
// problem with the input a is reported first.
func dims(pc uintptr, op, what string, v []int, a *graph.Array) (primitives.Dims, error) {
	if err := inputErr(pc, op, a); err != nil {
		return primitives.Dims{}, err
	}
	d, err := primitives.NewDims(v)
	if err != nil {
		return d, graph.Errorf(pc, op, "%s %v: %v (input: %s)", what, v, err, a.Spec())
	}
	return d, nil
}

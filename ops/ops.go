// Package ops is Loom's user API: functions that validate their arguments
// and build graph nodes. Nothing runs until the runtime evaluates the result.
//
// An op never panics on bad input: it returns an array in an error state
// that names the op, the shapes and dtypes involved and the caller's
// file:line. Arrays built from it inherit the error, and Eval returns it.
package ops

import (
	"fmt"
	"strings"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// Apply builds the outputs of prim applied to inputs. It is how a custom
// primitive enters a graph; built-in ops use it too.
func Apply(prim primitives.Primitive, inputs ...*graph.Array) []*graph.Array {
	return apply(graph.Caller(0), prim, inputs...)
}

func apply(pc uintptr, prim primitives.Primitive, inputs ...*graph.Array) []*graph.Array {
	n := primitives.NumOutputs(prim)
	if err := graph.CheckInputs(prim.Name(), inputs, pc); err != nil {
		return failedOutputs(err, n)
	}
	specs := make([]graph.Spec, len(inputs))
	for i, in := range inputs {
		specs[i] = in.Spec()
	}
	outs, err := prim.Outputs(specs)
	if err != nil {
		return failedOutputs(graph.Errorf(pc, prim.Name(), "%v (inputs: %s)", err, describe(specs)), n)
	}
	if len(outs) != n {
		return failedOutputs(graph.Errorf(pc, prim.Name(), "the shape rule returns %d outputs but declares %d (a primitive with several outputs implements primitives.MultiOutput)", len(outs), n), max(n, len(outs)))
	}
	return graph.New(prim, inputs, outs, pc)
}

// failedOutputs returns n arrays carrying err, one per output of a node
// that could not be built.
func failedOutputs(err error, n int) []*graph.Array {
	outs := make([]*graph.Array, max(n, 1))
	for i := range outs {
		outs[i] = graph.Failed(err, graph.Spec{})
	}
	return outs
}

// apply1 builds a single-output node.
func apply1(pc uintptr, prim primitives.Primitive, inputs ...*graph.Array) *graph.Array {
	return apply(pc, prim, inputs...)[0]
}

// fail returns an array in an error state for op called at pc.
func fail(pc uintptr, op, format string, args ...any) *graph.Array {
	return graph.Failed(graph.Errorf(pc, op, format, args...), graph.Spec{})
}

func describe(specs []graph.Spec) string {
	parts := make([]string, len(specs))
	for i, s := range specs {
		parts[i] = fmt.Sprint(s)
	}
	return strings.Join(parts, ", ")
}

// inputErr returns the first unusable input's error, for ops that inspect
// their inputs' shapes before building a node.
func inputErr(pc uintptr, op string, inputs ...*graph.Array) error {
	return graph.CheckInputs(op, inputs, pc)
}

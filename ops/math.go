package ops

import (
	"slices"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// Abs returns |a| elementwise, for every numeric dtype. Floats lose their
// sign bit (−0 becomes 0); the most negative integer wraps around to
// itself.
func Abs(a *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Unary{Op: primitives.Abs}, a)
}

// Sin returns sin(a) elementwise, for float dtypes.
func Sin(a *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Unary{Op: primitives.Sin}, a)
}

// Cos returns cos(a) elementwise, for float dtypes.
func Cos(a *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Unary{Op: primitives.Cos}, a)
}

// Erf returns the error function of a elementwise, for float dtypes.
func Erf(a *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Unary{Op: primitives.Erf}, a)
}

// Floor returns the largest integer not above a elementwise, for float
// dtypes.
func Floor(a *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Unary{Op: primitives.Floor}, a)
}

// Power returns a^b elementwise, broadcasting, as C's pow for floats (a
// negative base to a non-integer power is NaN). Integer powers wrap
// around; a negative integer exponent gives 0, except for the bases 1 and
// −1.
func Power(a, b *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Binary{Op: primitives.Power}, a, b)
}

// Square returns a·a elementwise, for every numeric dtype (one Mul).
func Square(a *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Binary{Op: primitives.Mul}, a, a)
}

// ReLU returns max(a, 0) elementwise, for every numeric dtype; NaN stays
// NaN (one Maximum with a zero of a's dtype).
func ReLU(a *graph.Array) *graph.Array {
	pc := graph.Caller(0)
	if err := checkDTypes(pc, "relu", primitives.BinaryDTypes, a); err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	return apply1(pc, primitives.Binary{Op: primitives.Maximum}, a, graph.Scalar(a.DType(), 0))
}

// Clip returns a limited to [lo, hi] elementwise: Minimum(Maximum(a, lo),
// hi), broadcasting the three. lo or hi may be nil for no bound on that
// side, not both. They share a's dtype (make them with graph.Scalar); NaN
// in a stays NaN.
func Clip(a, lo, hi *graph.Array) *graph.Array {
	pc := graph.Caller(0)
	if lo == nil && hi == nil {
		return fail(pc, "clip", "lo and hi are both nil: give at least one bound")
	}
	if err := checkDTypes(pc, "clip", primitives.BinaryDTypes, a); err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	for i, bound := range []*graph.Array{lo, hi} {
		if bound == nil {
			continue
		}
		if err := inputErr(pc, "clip", bound); err != nil {
			return graph.Failed(err, graph.Spec{})
		}
		if bound.DType() != a.DType() {
			return fail(pc, "clip", "%s has dtype %s, a %s: make the bound in a's dtype", []string{"lo", "hi"}[i], bound.DType(), a.DType())
		}
	}
	out := a
	if lo != nil {
		out = apply1(pc, primitives.Binary{Op: primitives.Maximum}, out, lo)
	}
	if hi != nil {
		out = apply1(pc, primitives.Binary{Op: primitives.Minimum}, out, hi)
	}
	return out
}

// LogicalNot returns !a elementwise, for a bool array.
func LogicalNot(a *graph.Array) *graph.Array {
	pc := graph.Caller(0)
	if err := checkDTypes(pc, "logical_not", []graph.DType{graph.Bool}, a); err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	return apply1(pc, primitives.Where{}, a, graph.Scalar(graph.Bool, 0), graph.Scalar(graph.Bool, 1))
}

// LogicalAnd returns a && b elementwise for bool arrays, broadcasting.
func LogicalAnd(a, b *graph.Array) *graph.Array {
	pc := graph.Caller(0)
	if err := checkDTypes(pc, "logical_and", []graph.DType{graph.Bool}, a, b); err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	return apply1(pc, primitives.Where{}, a, b, graph.Scalar(graph.Bool, 0))
}

// LogicalOr returns a || b elementwise for bool arrays, broadcasting.
func LogicalOr(a, b *graph.Array) *graph.Array {
	pc := graph.Caller(0)
	if err := checkDTypes(pc, "logical_or", []graph.DType{graph.Bool}, a, b); err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	return apply1(pc, primitives.Where{}, a, graph.Scalar(graph.Bool, 1), b)
}

// checkDTypes returns the error for op, built of others, over inputs that
// are unusable or not all of a dtype in list: ops composed of primitives
// check up front, so that the error names the op the user called.
func checkDTypes(pc uintptr, op string, list []graph.DType, inputs ...*graph.Array) error {
	if err := inputErr(pc, op, inputs...); err != nil {
		return err
	}
	for i, in := range inputs {
		if !slices.Contains(list, in.DType()) {
			return graph.Errorf(pc, op, "input %d has dtype %s, which is unsupported (supported: %v)", i, in.DType(), list)
		}
	}
	return nil
}

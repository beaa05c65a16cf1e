package ops

import (
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// Neg returns −a elementwise. It supports every numeric dtype; uint32
// negation wraps around modulo 2^32.
func Neg(a *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Unary{Op: primitives.Neg}, a)
}

// Exp returns e^a elementwise, for float dtypes.
func Exp(a *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Unary{Op: primitives.Exp}, a)
}

// Log returns the natural logarithm of a elementwise, for float dtypes.
func Log(a *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Unary{Op: primitives.Log}, a)
}

// Sqrt returns √a elementwise, for float dtypes.
func Sqrt(a *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Unary{Op: primitives.Sqrt}, a)
}

// Rsqrt returns 1/√a elementwise, for float dtypes.
func Rsqrt(a *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Unary{Op: primitives.Rsqrt}, a)
}

// Tanh returns tanh(a) elementwise, for float dtypes.
func Tanh(a *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Unary{Op: primitives.Tanh}, a)
}

// Sigmoid returns 1/(1+e^−a) elementwise, for float dtypes.
func Sigmoid(a *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Unary{Op: primitives.Sigmoid}, a)
}

// SiLU returns a·sigmoid(a) elementwise, for float dtypes.
func SiLU(a *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Unary{Op: primitives.SiLU}, a)
}

// GELU returns the exact GELU 0.5·a·(1+erf(a/√2)) elementwise, for float
// dtypes.
func GELU(a *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Unary{Op: primitives.GELU}, a)
}

// Cast converts a to dtype dt; see primitives.Cast for the rules: floats
// round to nearest even, conversions to integers truncate toward zero and
// saturate, NaN converts to integer 0, bool is 0 or 1. If a already has
// dtype dt, Cast returns a itself.
func Cast(a *graph.Array, dt graph.DType) *graph.Array {
	pc := graph.Caller(0)
	if err := inputErr(pc, "cast", a); err == nil && a.DType() == dt {
		return a
	}
	return apply1(pc, primitives.Cast{To: dt}, a)
}

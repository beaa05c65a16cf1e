package ops

import (
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// Add returns a + b elementwise, broadcasting.
func Add(a, b *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Binary{Op: primitives.Add}, a, b)
}

// Sub returns a − b elementwise, broadcasting.
func Sub(a, b *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Binary{Op: primitives.Sub}, a, b)
}

// Mul returns a · b elementwise, broadcasting.
func Mul(a, b *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Binary{Op: primitives.Mul}, a, b)
}

// Div returns a / b elementwise, broadcasting. Integer division truncates
// toward zero; an integer division by zero gives 0.
func Div(a, b *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Binary{Op: primitives.Div}, a, b)
}

// Maximum returns the elementwise maximum, broadcasting. NaN wins.
func Maximum(a, b *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Binary{Op: primitives.Maximum}, a, b)
}

// Minimum returns the elementwise minimum, broadcasting. NaN wins.
func Minimum(a, b *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Binary{Op: primitives.Minimum}, a, b)
}

// Equal returns a == b elementwise as bool, broadcasting.
func Equal(a, b *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Binary{Op: primitives.Equal}, a, b)
}

// NotEqual returns a != b elementwise as bool, broadcasting.
func NotEqual(a, b *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Binary{Op: primitives.NotEqual}, a, b)
}

// Less returns a < b elementwise as bool, broadcasting.
func Less(a, b *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Binary{Op: primitives.Less}, a, b)
}

// LessEqual returns a <= b elementwise as bool, broadcasting.
func LessEqual(a, b *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Binary{Op: primitives.LessEqual}, a, b)
}

// Greater returns a > b elementwise as bool, broadcasting.
func Greater(a, b *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Binary{Op: primitives.Greater}, a, b)
}

// GreaterEqual returns a >= b elementwise as bool, broadcasting.
func GreaterEqual(a, b *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Binary{Op: primitives.GreaterEqual}, a, b)
}

// Where returns cond ? a : b elementwise. cond is bool; a and b share a
// dtype; the three shapes broadcast together.
func Where(cond, a, b *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.Where{}, cond, a, b)
}

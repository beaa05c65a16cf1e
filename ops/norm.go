package ops

import (
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// Softmax returns exp(a − max) / Σ exp(a − max) along axis (negative counts
// from the end), for float dtypes, computed in float32. A row holding a NaN,
// or only −Inf, gives NaN.
func Softmax(a *graph.Array, axis int) *graph.Array {
	return apply1(graph.Caller(0), primitives.Softmax{Axis: axis}, a)
}

// RMSNorm returns x / sqrt(mean(x²) + eps) · weight over the last axis of x;
// weight has shape [D], D being x's last dimension, and x's dtype.
func RMSNorm(x, weight *graph.Array, eps float32) *graph.Array {
	return apply1(graph.Caller(0), primitives.RMSNorm{Eps: eps}, x, weight)
}

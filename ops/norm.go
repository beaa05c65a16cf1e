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

// LayerNorm normalises x ([..., D], a float dtype) over the last axis to
// mean 0 and variance 1 and applies weight and bias ([D], x's dtype):
// (x − mean)/√(var + eps) · weight + bias, var the biased variance. A nil
// weight is ones, a nil bias zeros (constants of D elements).
func LayerNorm(x, weight, bias *graph.Array, eps float32) *graph.Array {
	pc := graph.Caller(0)
	if err := inputErr(pc, "layer_norm", x); err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	if x.Ndim() == 0 {
		return fail(pc, "layer_norm", "x must have at least 1 dimension, got a scalar (%s)", x.Spec())
	}
	d := x.Shape()[x.Ndim()-1]
	if weight == nil {
		weight = graph.Full(x.DType(), 1, d)
	}
	if bias == nil {
		bias = graph.Full(x.DType(), 0, d)
	}
	return apply1(pc, primitives.LayerNorm{Eps: eps}, x, weight, bias)
}

package ops

import (
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// RoPE applies rotary position embeddings in the half-rotation form (Llama,
// Qwen3) to x [T, H, D] at positions (int32 [T]) with base theta; see
// primitives.RoPE. D must be even.
func RoPE(x, positions *graph.Array, theta float32) *graph.Array {
	return apply1(graph.Caller(0), primitives.RoPE{Theta: theta}, x, positions)
}

// RoPEScaled is RoPE with the inverse frequencies scaled as Llama 3.1's
// (primitives.RoPEScaling).
func RoPEScaled(x, positions *graph.Array, theta float32, scaling primitives.RoPEScaling) *graph.Array {
	return apply1(graph.Caller(0), primitives.RoPE{Theta: theta, Scaling: scaling}, x, positions)
}

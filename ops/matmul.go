package ops

import (
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// MatMul returns the matrix product a · b of a [..., M, K] and b [..., K, N]:
// an array [..., M, N] of the inputs' dtype (float32, float16 or bfloat16,
// the same for both), accumulated in float32. The batch dims (all but the
// last two) broadcast NumPy-style. Both inputs must have rank 2 or more:
// reshape a vector to [1, K] or [K, 1].
func MatMul(a, b *graph.Array) *graph.Array {
	return apply1(graph.Caller(0), primitives.MatMul{}, a, b)
}

// MatMulTransposed is MatMul with either operand's last two axes swapped
// first: a is [..., K, M] when transposeA, b is [..., N, K] when
// transposeB. A linear layer with weights W [N, K] (the Hugging Face
// layout) is MatMulTransposed(x, w, false, true), and with one token
// (x [1, K]) it runs the GEMV kernel, which streams W once.
func MatMulTransposed(a, b *graph.Array, transposeA, transposeB bool) *graph.Array {
	return apply1(graph.Caller(0), primitives.MatMul{TransposeA: transposeA, TransposeB: transposeB}, a, b)
}

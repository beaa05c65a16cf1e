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

// QuantizedMatMul returns x · dequant(W)ᵀ for x [..., K] and quantized
// weights W [N, K] in MLX's affine format (docs/QUANT.md): w the packed
// codes (uint32 [N, K·bits/32]), scales and biases [N, K/groupSize] of x's
// dtype. The result is [..., N] of x's dtype, accumulated in float32. bits
// is 4 or 8, groupSize 32, 64 or 128; K must be a multiple of groupSize.
// The kernels dequantise the weights as they read them.
func QuantizedMatMul(x, w, scales, biases *graph.Array, groupSize, bits int) *graph.Array {
	return apply1(graph.Caller(0), primitives.QuantizedMatMul{Bits: bits, GroupSize: groupSize}, x, w, scales, biases)
}

// Dequantize expands quantized weights (w uint32 [..., K·bits/32], scales
// and biases [..., K/groupSize]) to [..., K] of the scales' dtype. Gather
// rows of the three first to dequantise only those (a quantized
// embedding).
func Dequantize(w, scales, biases *graph.Array, groupSize, bits int) *graph.Array {
	return apply1(graph.Caller(0), primitives.Dequantize{Bits: bits, GroupSize: groupSize}, w, scales, biases)
}

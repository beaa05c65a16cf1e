// The horizontal sum of the AVX2 kernels (included by the small-M matmul
// and the quantized matmul assembly). It uses X15.

// REDUCE8 adds the 8 lanes of Y (X is its low half) as lanes j+4, j+2,
// j+1 and stores the sum at dst.
#define REDUCE8(Y, X, dst) \
	VEXTRACTF128 $1, Y, X15 \
	VADDPS       X15, X, X \
	VMOVHLPS     X, X, X15 \
	VADDPS       X15, X, X \
	VMOVSHDUP    X, X15 \
	VADDSS       X15, X, X \
	VMOVSS       X, dst

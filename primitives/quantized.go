package primitives

import (
	"fmt"
	"slices"

	"github.com/loomrt/loom/graph"
)

// Quantized weights in MLX's affine format (docs/QUANT.md): a matrix W
// [N, K] is stored as uint32 words [N, K·Bits/32], each row's codes a
// little-endian bit stream (lowest bits first), and per group of GroupSize
// consecutive elements of a row a scale and a bias [N, K/GroupSize] in a
// float dtype; element w = scale·q + bias.

// QuantBits are the code widths the quantized kernels take.
var QuantBits = []int{4, 8}

// QuantGroupSizes are the group sizes the quantized kernels take.
var QuantGroupSizes = []int{32, 64, 128}

// QuantParams describe a quantized dispatch: N rows of K elements of the
// weights, in groups of GroupSize; for QuantizedMatMul, M rows of x (for
// Dequantize, M is 1).
type QuantParams struct {
	M, N, K   uint32
	GroupSize uint32
}

// QuantKernel is the name of a quantized kernel, such as
// "qmatmul_bf16_q4".
func QuantKernel(op string, dt graph.DType, bits int) string {
	return fmt.Sprintf("%s_q%d", KernelName(op, dt), bits)
}

// checkQuant checks the format's parameters.
func checkQuant(bits, groupSize int) error {
	if !slices.Contains(QuantBits, bits) {
		return fmt.Errorf("%d-bit codes are unsupported (4 or 8)", bits)
	}
	if !slices.Contains(QuantGroupSizes, groupSize) {
		return fmt.Errorf("group size %d is unsupported (32, 64 or 128)", groupSize)
	}
	return nil
}

// checkQuantWeights checks packed weights w [rows..., K·bits/32] (uint32)
// with scales and biases [rows..., K/groupSize] of dtype dt, for rows of K
// elements, and returns K.
func checkQuantWeights(w, scales, biases graph.Spec, dt graph.DType, bits, groupSize int) (k int, err error) {
	if w.DType != graph.Uint32 {
		return 0, fmt.Errorf("packed weights must be uint32, got %s", w.DType)
	}
	if len(w.Shape) < 1 || len(w.Shape) > MaxRank {
		return 0, fmt.Errorf("packed weights have rank %d: unsupported (1 to %d)", len(w.Shape), MaxRank)
	}
	k = w.Shape[len(w.Shape)-1] * 32 / bits
	if k == 0 {
		return 0, fmt.Errorf("packed weights %v have empty rows: unsupported", w.Shape)
	}
	if k%groupSize != 0 {
		return 0, fmt.Errorf("rows of %d elements (%d words of %d-bit codes) are not a multiple of the group size %d", k, w.Shape[len(w.Shape)-1], bits, groupSize)
	}
	want := append(slices.Clone(w.Shape[:len(w.Shape)-1]), k/groupSize)
	for _, s := range []struct {
		name string
		spec graph.Spec
	}{{"scales", scales}, {"biases", biases}} {
		if s.spec.DType != dt {
			return 0, fmt.Errorf("%s are %s, want %s", s.name, s.spec.DType, dt)
		}
		if !slices.Equal(s.spec.Shape, want) {
			return 0, fmt.Errorf("%s have shape %v, want %v (one per group of %d of packed weights %v)", s.name, s.spec.Shape, want, groupSize, w.Shape)
		}
	}
	if int64(graph.NumElements(w.Shape[:len(w.Shape)-1]))*int64(k) > 1<<32-1 {
		return 0, fmt.Errorf("packed weights %v hold more than 2^32-1 elements: unsupported", w.Shape)
	}
	return k, nil
}

// QuantizedMatMul is the product of x [..., K] with the transpose of
// quantized weights W [N, K]: out[..., N] = x · dequant(W)ᵀ, the linear
// layer of a quantized checkpoint. Its inputs are x (float32, float16 or
// bfloat16), the packed weights (uint32 [N, K·Bits/32]) and the scales and
// biases ([N, K/GroupSize], x's dtype). Products are accumulated in
// float32, per group as scale·Σ q·x + bias·Σ x, and the output has x's
// dtype. The kernels dequantise the codes as they read them: no float copy
// of the weights exists.
//
// The kernel is qmatmul_<dt>_q<bits>. Its grid is one GEMV threadgroup
// (GEMVRowsPerGroup SIMD groups) per GEMVRowsPerGroup·w outputs, w the
// outputs a SIMD group takes (quantWarpRows), by blocks of QuantXRows rows
// of x, whose products a GPU kernel computes from one read of each weight;
// the CPU kernel reads each weight once for all the rows.
type QuantizedMatMul struct{ Bits, GroupSize int }

// QuantXRows is the rows of x one threadgroup of the GPU quantized matmul
// takes (LOOM_QUANT_X_ROWS in the kernels).
const QuantXRows = 4

func (q QuantizedMatMul) Name() string { return "quantized_matmul" }

func (q QuantizedMatMul) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 4 {
		return nil, fmt.Errorf("needs 4 inputs (x, packed weights, scales, biases), got %d", len(in))
	}
	if err := checkQuant(q.Bits, q.GroupSize); err != nil {
		return nil, err
	}
	x := in[0]
	if !hasDType(MatMulDTypes, x.DType) {
		return nil, fmt.Errorf("x dtype %s is unsupported (float32, float16, bfloat16)", x.DType)
	}
	if len(x.Shape) < 1 || len(x.Shape) > MaxRank {
		return nil, fmt.Errorf("x has rank %d: unsupported (1 to %d)", len(x.Shape), MaxRank)
	}
	if len(in[1].Shape) != 2 {
		return nil, fmt.Errorf("packed weights must be a matrix [N, K·bits/32], got shape %v", in[1].Shape)
	}
	k, err := checkQuantWeights(in[1], in[2], in[3], x.DType, q.Bits, q.GroupSize)
	if err != nil {
		return nil, err
	}
	if xk := x.Shape[len(x.Shape)-1]; xk != k {
		return nil, fmt.Errorf("x has %d elements a row, the weights %d (%d words of %d-bit codes)", xk, k, in[1].Shape[1], q.Bits)
	}
	out := graph.Spec{DType: x.DType, Shape: append(slices.Clone(x.Shape[:len(x.Shape)-1]), in[1].Shape[0])}
	if int64(out.Size()) > 1<<32-1 || int64(x.Size()) > 1<<32-1 {
		return nil, fmt.Errorf("x %v or the output %v has more than 2^32-1 elements: unsupported", x.Shape, out.Shape)
	}
	return []graph.Spec{out}, nil
}

func (q QuantizedMatMul) Lower(l *Lowering) error {
	x, w := l.Inputs[0], l.Inputs[1]
	k := x.Shape[len(x.Shape)-1]
	lowerQuantMatMul(l, x.DType, q.Bits, q.GroupSize, x.Size()/k, w.Shape[0], k, Out(0))
	return nil
}

// lowerQuantMatMul dispatches qmatmul_<dt>_q<bits> for x [m, k] (input 0)
// by the quantized weights [n, k] (inputs 1 to 3) into out.
func lowerQuantMatMul(l *Lowering, dt graph.DType, bits, groupSize, m, n, k int, out Ref) {
	p := &QuantParams{M: uint32(m), N: uint32(n), K: uint32(k), GroupSize: uint32(groupSize)}
	wr, grid := 1, Groups(n, GEMVRowsPerGroup)
	if m == 1 {
		wr = quantWarpRows(n, l.Caps)
	}
	if l.Caps.QuantWarpRows > 1 {
		// The kernel loops over its outputs, loading a step ahead: as many
		// blocks as are resident (quantBlocksPerCore), each warp's loads
		// overlapping its arithmetic, rather than waves of blocks that
		// load, then compute (on an H100: 4 % off the 4-bit lm_head, 9 %
		// off the 8-bit one).
		grid = min(Groups(n, GEMVRowsPerGroup*wr), quantBlocksPerCore*l.Caps.Cores)
	}
	l.Dispatch(QuantKernel("qmatmul", dt, bits), Dim3{grid, Groups(m, QuantXRows), 1},
		Dim3{GEMVThreads, 1, 1}, p, In(0), In(1), In(2), In(3), out)
}

// quantBlocksPerCore is the threadgroups a core of the looping quantized
// GEMV's grid: the CUDA kernel's launch bounds (quantized.cu) keep two
// resident.
const quantBlocksPerCore = 2

// quantWarpRows is the outputs a SIMD group of the quantized GEMV (one row
// of x) takes for n outputs on a device of caps c, for the grid's width:
// the most (1 or 2, up to c.QuantWarpRows) that still leave
// quantBlocksPerCore threadgroups a core, so that a product of few outputs
// keeps its loads spread over every core. (The CUDA kernel then takes up
// to four a warp where the grid leaves each warp eight or more.)
func quantWarpRows(n int, c Caps) int {
	w := 1
	for 2*w <= min(2, c.QuantWarpRows) && Groups(n, GEMVRowsPerGroup*2*w) >= quantBlocksPerCore*c.Cores {
		w *= 2
	}
	return w
}

// QuantizedMatMulSiLUMul is MatMulSiLUMul with quantized weights: x
// [..., K] by the stacked gate and up weights (packed [2N, K·Bits/32], the
// gate rows then the up rows, with their scales and biases [2N,
// K/GroupSize]) gives out[..., j] = SiLU(x·w[j])·(x·w[N+j]), [..., N]. It
// is QuantizedMatMul followed by SiLUMul, bit for bit on the CPU: each dot
// product is summed as the quantized matmul sums it and rounded to x's
// dtype, then SiLU and the product are evaluated as SiLUMul evaluates
// them.
//
// Lowering emits one dispatch (qmatmul_silu_mul_<dt>_q<bits>: a SIMD group
// per output takes its gate and up rows together, a threadgroup's rows of
// x one) where x has at most Caps.QuantGatedMaxRows rows; otherwise the
// quantized matmul into a scratch buffer and silu_mul.
type QuantizedMatMulSiLUMul struct{ Bits, GroupSize int }

func (q QuantizedMatMulSiLUMul) Name() string { return "quantized_matmul_silu_mul" }

func (q QuantizedMatMulSiLUMul) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	out, err := QuantizedMatMul(q).Outputs(in)
	if err != nil {
		return nil, err
	}
	if in[1].Shape[0]%2 != 0 {
		return nil, fmt.Errorf("packed weights %v must be [2N, K·bits/32]: the gate rows, then as many up rows", in[1].Shape)
	}
	out[0].Shape[len(out[0].Shape)-1] /= 2
	return out, nil
}

func (q QuantizedMatMulSiLUMul) Lower(l *Lowering) error {
	x, w := l.Inputs[0], l.Inputs[1]
	dt, k, n := x.DType, x.Shape[len(x.Shape)-1], w.Shape[0]/2
	m := x.Size() / k
	if m <= l.Caps.QuantGatedMaxRows {
		p := &QuantParams{M: uint32(m), N: uint32(n), K: uint32(k), GroupSize: uint32(q.GroupSize)}
		l.Dispatch(QuantKernel("qmatmul_silu_mul", dt, q.Bits), Dim3{Groups(n, GEMVRowsPerGroup), m, 1},
			Dim3{GEMVThreads, 1, 1}, p, In(0), In(1), In(2), In(3), Out(0))
		l.Count("quantized_matmul_silu_mul.fused", 1)
		return nil
	}
	gateUp := l.NewScratch(int64(m) * int64(2*n) * int64(dt.Size()))
	lowerQuantMatMul(l, dt, q.Bits, q.GroupSize, m, 2*n, k, gateUp)
	lowerSiLUMul(l, dt, m, n, gateUp, Out(0))
	l.Count("quantized_matmul_silu_mul.unfused", 1)
	return nil
}

// Dequantize expands quantized weights to floats: packed weights (uint32
// [..., K·Bits/32]) with their scales and biases ([..., K/GroupSize], a
// float dtype) give [..., K] of the scales' dtype, each element
// scale·q + bias computed in float32 and rounded once. The model's
// quantized embedding is GatherRows of the three, then Dequantize of the
// gathered rows only.
//
// The kernel is dequantize_<dt>_q<bits>, one thread per packed word.
type Dequantize struct{ Bits, GroupSize int }

func (d Dequantize) Name() string { return "dequantize" }

func (d Dequantize) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("needs 3 inputs (packed weights, scales, biases), got %d", len(in))
	}
	if err := checkQuant(d.Bits, d.GroupSize); err != nil {
		return nil, err
	}
	dt := in[1].DType
	if !hasDType(MatMulDTypes, dt) {
		return nil, fmt.Errorf("scales dtype %s is unsupported (float32, float16, bfloat16)", dt)
	}
	k, err := checkQuantWeights(in[0], in[1], in[2], dt, d.Bits, d.GroupSize)
	if err != nil {
		return nil, err
	}
	w := in[0].Shape
	return []graph.Spec{{DType: dt, Shape: append(slices.Clone(w[:len(w)-1]), k)}}, nil
}

func (d Dequantize) Lower(l *Lowering) error {
	w := l.Inputs[0]
	words := w.Size()
	k := w.Shape[len(w.Shape)-1] * 32 / d.Bits
	p := &QuantParams{M: 1, N: uint32(graph.NumElements(w.Shape[:len(w.Shape)-1])), K: uint32(k), GroupSize: uint32(d.GroupSize)}
	l.Dispatch(QuantKernel("dequantize", l.Outputs[0].DType, d.Bits), Dim3{Groups(words, ElementwiseThreads), 1, 1},
		Dim3{ElementwiseThreads, 1, 1}, p, In(0), In(1), In(2), Out(0))
	return nil
}

func init() {
	for _, dt := range MatMulDTypes {
		for _, bits := range QuantBits {
			register(
				KernelSpec{Name: QuantKernel("qmatmul", dt, bits), Args: []ArgSpec{R("x"), R("w"), R("scales"), R("biases"), W("out")}, Params: (*QuantParams)(nil)},
				KernelSpec{Name: QuantKernel("qmatmul_silu_mul", dt, bits), Args: []ArgSpec{R("x"), R("w"), R("scales"), R("biases"), W("out")}, Params: (*QuantParams)(nil)},
				KernelSpec{Name: QuantKernel("dequantize", dt, bits), Args: []ArgSpec{R("w"), R("scales"), R("biases"), W("out")}, Params: (*QuantParams)(nil)},
			)
		}
	}
}

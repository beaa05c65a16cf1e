package primitives

import (
	"fmt"
	"math"

	"github.com/loomrt/loom/graph"
)

// Softmax normalises its input along Axis (negative counts from the end):
// out = exp(x − max) / Σ exp(x − max), computed in float32 with the maximum
// subtracted first so that no exponential overflows. A row that holds a NaN,
// or only −Inf, gives NaN.
type Softmax struct{ Axis int }

func (Softmax) Name() string { return "softmax" }

func (s Softmax) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("needs 1 input, got %d", len(in))
	}
	if !hasDType(FloatDTypes, in[0].DType) {
		return nil, fmt.Errorf("dtype %s is unsupported (supported: %v)", in[0].DType, FloatDTypes)
	}
	if _, err := normAxis(s.Axis, len(in[0].Shape)); err != nil {
		return nil, err
	}
	return []graph.Spec{in[0]}, nil
}

func (s Softmax) Lower(l *Lowering) error {
	p, err := axisParams(l.Inputs[0].Shape, s.Axis)
	if err != nil {
		return err
	}
	l.Dispatch(SoftmaxKernel(l.Inputs[0].DType), Dim3{int(p.Outer * p.Inner), 1, 1}, // a group per row
		Dim3{ReduceThreads, 1, 1}, p, In(0), Out(0))
	return nil
}

// SoftmaxKernel is Softmax's kernel for an input of dtype dt.
func SoftmaxKernel(dt graph.DType) string { return KernelName("softmax", dt) }

// RMSNormParams describe an RMS normalisation of Rows rows of D elements.
type RMSNormParams struct {
	Rows, D uint32
	Eps     float32
}

// RMSNorm normalises its first input x ([..., D]) over the last axis and
// scales it by its second, weight ([D], x's dtype):
// out = x / sqrt(mean(x²) + Eps) · weight, computed in float32.
type RMSNorm struct{ Eps float32 }

func (RMSNorm) Name() string { return "rms_norm" }

func (r RMSNorm) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 2 {
		return nil, fmt.Errorf("needs 2 inputs (x, weight), got %d", len(in))
	}
	x, w := in[0], in[1]
	if !hasDType(FloatDTypes, x.DType) {
		return nil, fmt.Errorf("dtype %s is unsupported (supported: %v)", x.DType, FloatDTypes)
	}
	if w.DType != x.DType {
		return nil, fmt.Errorf("weight has dtype %s, x %s", w.DType, x.DType)
	}
	if len(x.Shape) == 0 {
		return nil, fmt.Errorf("x must have at least 1 dimension, got a scalar")
	}
	d := x.Shape[len(x.Shape)-1]
	if len(w.Shape) != 1 || w.Shape[0] != d {
		return nil, fmt.Errorf("weight has shape %v, want [%d] (x's last dimension)", w.Shape, d)
	}
	if !(r.Eps >= 0) || math.IsInf(float64(r.Eps), 0) {
		return nil, fmt.Errorf("eps %g must be finite and ≥ 0", r.Eps)
	}
	return []graph.Spec{x}, nil
}

func (r RMSNorm) Lower(l *Lowering) error {
	return lowerRMSNorm(l, RMSNormKernel, r.Eps, In(0), In(1), Out(0))
}

// RMSNormKernel is RMSNorm's kernel for x of dtype dt.
func RMSNormKernel(dt graph.DType) string { return KernelName("rms_norm", dt) }

// lowerRMSNorm adds the dispatch of a kernel (named for x's dtype by
// kernel) that normalises the rows of input 0, x ([..., D]), a group per
// row.
func lowerRMSNorm(l *Lowering, kernel func(graph.DType) string, eps float32, refs ...Ref) error {
	x := l.Inputs[0]
	if err := checkElements(x.Size()); err != nil {
		return err
	}
	d := x.Shape[len(x.Shape)-1]
	rows := 0
	if d > 0 {
		rows = x.Size() / d
	}
	l.Dispatch(kernel(x.DType), Dim3{rows, 1, 1}, Dim3{ReduceThreads, 1, 1}, &RMSNormParams{Rows: uint32(rows), D: uint32(d), Eps: eps}, refs...)
	return nil
}

func init() {
	for _, dt := range FloatDTypes {
		register(
			KernelSpec{Name: SoftmaxKernel(dt), Args: []ArgSpec{R("a"), W("out")}, Params: (*AxisParams)(nil)},
			KernelSpec{Name: RMSNormKernel(dt), Args: []ArgSpec{R("x"), R("weight"), W("out")}, Params: (*RMSNormParams)(nil)},
		)
	}
}

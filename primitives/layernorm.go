package primitives

import (
	"fmt"
	"math"

	"github.com/loomrt/loom/graph"
)

// LayerNorm normalises its first input x ([..., D]) over the last axis to
// mean 0 and variance 1, then scales by its second, weight, and shifts by
// its third, bias (both [D], x's dtype): out = (x − mean)/√(var + Eps) ·
// weight + bias, with var the biased variance. The mean and the variance
// are summed in at least float32 (float64 on the CPU and CUDA), in two
// passes; the output is computed in float32. It takes RMSNorm's params.
type LayerNorm struct{ Eps float32 }

func (LayerNorm) Name() string { return "layer_norm" }

func (n LayerNorm) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("needs 3 inputs (x, weight, bias), got %d", len(in))
	}
	x := in[0]
	if !hasDType(FloatDTypes, x.DType) {
		return nil, fmt.Errorf("dtype %s is unsupported (supported: %v)", x.DType, FloatDTypes)
	}
	if len(x.Shape) == 0 {
		return nil, fmt.Errorf("x must have at least 1 dimension, got a scalar")
	}
	d := x.Shape[len(x.Shape)-1]
	for i, name := range []string{"weight", "bias"} {
		s := in[1+i]
		if s.DType != x.DType {
			return nil, fmt.Errorf("%s has dtype %s, x %s", name, s.DType, x.DType)
		}
		if len(s.Shape) != 1 || s.Shape[0] != d {
			return nil, fmt.Errorf("%s has shape %v, want [%d] (x's last dimension)", name, s.Shape, d)
		}
	}
	if !(n.Eps >= 0) || math.IsInf(float64(n.Eps), 0) {
		return nil, fmt.Errorf("eps %g must be finite and ≥ 0", n.Eps)
	}
	return []graph.Spec{x}, nil
}

func (n LayerNorm) Lower(l *Lowering) error {
	return lowerRMSNorm(l, LayerNormKernel, n.Eps, In(0), In(1), In(2), Out(0))
}

// LayerNormKernel is LayerNorm's kernel for x of dtype dt.
func LayerNormKernel(dt graph.DType) string { return KernelName("layer_norm", dt) }

func init() {
	for _, dt := range FloatDTypes {
		register(KernelSpec{Name: LayerNormKernel(dt), Args: []ArgSpec{R("x"), R("weight"), R("bias"), W("out")}, Params: (*RMSNormParams)(nil)})
	}
}

package primitives

import (
	"fmt"

	"github.com/loomrt/loom/graph"
)

// Cast converts its input to dtype To. Floats convert to floats by rounding
// to nearest even; to an integer type they truncate toward zero, NaN gives 0
// and values outside the type's range saturate to its minimum or maximum.
// Integers convert to integers saturating the same way, and to floats by
// rounding to nearest even (overflowing to ±Inf for float16). Bool converts
// to 0 or 1; any nonzero value, NaN included, converts to true.
type Cast struct{ To graph.DType }

func (c Cast) Name() string { return "cast" }

func (c Cast) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("needs 1 input, got %d", len(in))
	}
	if !hasDType(graph.DTypes, in[0].DType) {
		return nil, fmt.Errorf("input dtype %s is unsupported", in[0].DType)
	}
	if !hasDType(graph.DTypes, c.To) {
		return nil, fmt.Errorf("target dtype %s is unsupported", c.To)
	}
	if err := checkRank(in[0].Shape); err != nil {
		return nil, err
	}
	return []graph.Spec{{DType: c.To, Shape: in[0].Shape}}, nil
}

func (c Cast) Lower(l *Lowering) error {
	p, err := NewElementwiseParams(l.Outputs[0].Shape, l.Inputs[0].Shape)
	if err != nil {
		return err
	}
	elementwiseDispatch(l, CastKernel(l.Inputs[0].DType, c.To), p, In(0), Out(0))
	return nil
}

// CastKernel is the name of the kernel that converts from one dtype to
// another, such as "cast_f32_bf16".
func CastKernel(from, to graph.DType) string { return KernelName("cast", from, to) }

func init() {
	for _, from := range graph.DTypes {
		for _, to := range graph.DTypes {
			register(KernelSpec{Name: CastKernel(from, to), Args: []ArgSpec{R("a"), W("out")}, Params: (*ElementwiseParams)(nil)})
		}
	}
}

package primitives

import (
	"fmt"

	"github.com/loomrt/loom/graph"
)

// UnaryOp is a unary elementwise operation.
type UnaryOp uint8

// The unary operations. GELU is the exact form 0.5·x·(1+erf(x/√2)); SiLU is
// x·sigmoid(x). Abs of the most negative integer wraps around to itself, as
// Neg does.
const (
	Neg UnaryOp = iota
	Exp
	Log
	Sqrt
	Rsqrt
	Tanh
	Sigmoid
	SiLU
	GELU
	Abs
	Sin
	Cos
	Erf
	Floor
)

var unaryNames = [...]string{"neg", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "silu", "gelu", "abs", "sin", "cos", "erf", "floor"}

// UnaryOps lists every unary operation.
var UnaryOps = []UnaryOp{Neg, Exp, Log, Sqrt, Rsqrt, Tanh, Sigmoid, SiLU, GELU, Abs, Sin, Cos, Erf, Floor}

func (op UnaryOp) String() string { return unaryNames[op] }

// DTypes are the dtypes op supports: every numeric dtype for Neg and Abs
// (uint32 negation wraps around), the float dtypes for the others.
func (op UnaryOp) DTypes() []graph.DType {
	if op == Neg || op == Abs {
		return BinaryDTypes
	}
	return FloatDTypes
}

// FloatDTypes are the floating-point dtypes.
var FloatDTypes = []graph.DType{graph.Float32, graph.Float16, graph.BFloat16}

// Unary applies Op to every element of its input. The output has the
// input's dtype and shape.
type Unary struct{ Op UnaryOp }

func (u Unary) Name() string { return u.Op.String() }

func (u Unary) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("needs 1 input, got %d", len(in))
	}
	if !hasDType(u.Op.DTypes(), in[0].DType) {
		return nil, fmt.Errorf("dtype %s is unsupported (supported: %v)", in[0].DType, u.Op.DTypes())
	}
	if err := checkRank(in[0].Shape); err != nil {
		return nil, err
	}
	return []graph.Spec{in[0]}, nil
}

func (u Unary) Lower(l *Lowering) error {
	p, err := NewElementwiseParams(l.Outputs[0].Shape, l.Inputs[0].Shape)
	if err != nil {
		return err
	}
	elementwiseDispatch(l, UnaryKernel(u.Op, l.Inputs[0].DType), p, In(0), Out(0))
	return nil
}

// UnaryKernel is the kernel of op on an input of dtype dt.
func UnaryKernel(op UnaryOp, dt graph.DType) string { return KernelName(op.String(), dt) }

func init() {
	for _, op := range UnaryOps {
		for _, dt := range op.DTypes() {
			register(KernelSpec{Name: UnaryKernel(op, dt), Args: []ArgSpec{R("a"), W("out")}, Params: (*ElementwiseParams)(nil)})
		}
	}
}

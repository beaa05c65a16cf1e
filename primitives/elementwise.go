package primitives

import (
	"fmt"
	"slices"

	"github.com/loomrt/loom/graph"
)

// MaxRank is the largest rank elementwise kernels index: their params hold
// fixed-size shape and stride arrays so the layout is the same in Go, MSL and
// CUDA C.
const MaxRank = 8

// ElementwiseThreads is the threadgroup size of elementwise kernels.
const ElementwiseThreads = 256

// ElementwiseParams describe an elementwise dispatch over an output of N
// elements and shape Shape[:Rank]. Strides[i] are input i's element strides
// per output dimension, 0 where the input is broadcast. Contiguous is 1 when
// every input has the output's shape, so kernels can index linearly.
type ElementwiseParams struct {
	N          uint32
	Rank       uint32
	Contiguous uint32
	Shape      [MaxRank]uint32
	Strides    [3][MaxRank]uint32
}

// BinaryOp is a binary elementwise operation.
type BinaryOp uint8

// The binary operations. Comparisons produce bool. Power of integers
// wraps around; a negative integer exponent gives 0 except for bases 1
// and −1, whose powers are exact.
const (
	Add BinaryOp = iota
	Sub
	Mul
	Div
	Maximum
	Minimum
	Power
	Equal
	NotEqual
	Less
	LessEqual
	Greater
	GreaterEqual
)

var binaryNames = [...]string{"add", "sub", "mul", "div", "maximum", "minimum", "power", "equal", "not_equal", "less", "less_equal", "greater", "greater_equal"}

// BinaryOps lists every binary operation.
var BinaryOps = []BinaryOp{Add, Sub, Mul, Div, Maximum, Minimum, Power, Equal, NotEqual, Less, LessEqual, Greater, GreaterEqual}

func (op BinaryOp) String() string { return binaryNames[op] }

// IsComparison reports whether op produces bool.
func (op BinaryOp) IsComparison() bool { return op >= Equal }

// Binary applies Op elementwise to two inputs of one dtype, broadcasting
// their shapes NumPy-style.
type Binary struct{ Op BinaryOp }

func (b Binary) Name() string { return b.Op.String() }

// BinaryDTypes are the dtypes binary arithmetic supports.
var BinaryDTypes = []graph.DType{graph.Float32, graph.Float16, graph.BFloat16, graph.Int32, graph.Int64, graph.Uint32}

func (b Binary) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 2 {
		return nil, fmt.Errorf("needs 2 inputs, got %d", len(in))
	}
	if in[0].DType != in[1].DType {
		return nil, fmt.Errorf("dtypes differ: %s and %s", in[0].DType, in[1].DType)
	}
	if !hasDType(BinaryDTypes, in[0].DType) {
		return nil, fmt.Errorf("dtype %s is unsupported (supported: %v)", in[0].DType, BinaryDTypes)
	}
	shape, err := BroadcastShapes(in[0].Shape, in[1].Shape)
	if err != nil {
		return nil, err
	}
	if err := checkRank(shape); err != nil {
		return nil, err
	}
	dt := in[0].DType
	if b.Op.IsComparison() {
		dt = graph.Bool
	}
	return []graph.Spec{{DType: dt, Shape: shape}}, nil
}

func (b Binary) Lower(l *Lowering) error {
	p, err := NewElementwiseParams(l.Outputs[0].Shape, l.Inputs[0].Shape, l.Inputs[1].Shape)
	if err != nil {
		return err
	}
	elementwiseDispatch(l, BinaryKernel(b.Op, l.Inputs[0].DType), p, In(0), In(1), Out(0))
	return nil
}

// BinaryKernel is the kernel of op on inputs of dtype dt.
func BinaryKernel(op BinaryOp, dt graph.DType) string { return KernelName(op.String(), dt) }

// elementwiseDispatch adds a dispatch of one thread per output element.
func elementwiseDispatch(l *Lowering, kernel string, p *ElementwiseParams, refs ...Ref) {
	l.Dispatch(kernel, Dim3{Groups(int(p.N), ElementwiseThreads), 1, 1}, Dim3{ElementwiseThreads, 1, 1}, p, refs...)
}

// Where selects elementwise between its second and third inputs by its
// first, a bool: out = cond ? a : b. The three shapes broadcast together;
// a and b share a dtype, which may be any.
type Where struct{}

func (Where) Name() string { return "where" }

func (Where) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("needs 3 inputs (cond, a, b), got %d", len(in))
	}
	if in[0].DType != graph.Bool {
		return nil, fmt.Errorf("cond must be bool, got %s", in[0].DType)
	}
	if in[1].DType != in[2].DType {
		return nil, fmt.Errorf("dtypes of a and b differ: %s and %s", in[1].DType, in[2].DType)
	}
	if !hasDType(graph.DTypes, in[1].DType) {
		return nil, fmt.Errorf("dtype %s is unsupported", in[1].DType)
	}
	shape, err := BroadcastShapes(in[0].Shape, in[1].Shape, in[2].Shape)
	if err != nil {
		return nil, err
	}
	if err := checkRank(shape); err != nil {
		return nil, err
	}
	return []graph.Spec{{DType: in[1].DType, Shape: shape}}, nil
}

func (Where) Lower(l *Lowering) error {
	p, err := NewElementwiseParams(l.Outputs[0].Shape, l.Inputs[0].Shape, l.Inputs[1].Shape, l.Inputs[2].Shape)
	if err != nil {
		return err
	}
	elementwiseDispatch(l, WhereKernel(l.Inputs[1].DType), p, In(0), In(1), In(2), Out(0))
	return nil
}

// WhereKernel is Where's kernel for a and b of dtype dt.
func WhereKernel(dt graph.DType) string { return KernelName("where", dt) }

func init() {
	for _, op := range BinaryOps {
		for _, dt := range BinaryDTypes {
			register(KernelSpec{Name: BinaryKernel(op, dt), Args: []ArgSpec{R("a"), R("b"), W("out")}, Params: (*ElementwiseParams)(nil)})
		}
	}
	for _, dt := range graph.DTypes {
		register(KernelSpec{Name: WhereKernel(dt), Args: []ArgSpec{R("cond"), R("a"), R("b"), W("out")}, Params: (*ElementwiseParams)(nil)})
	}
}

func hasDType(list []graph.DType, d graph.DType) bool {
	for _, x := range list {
		if x == d {
			return true
		}
	}
	return false
}

// BroadcastShapes returns the NumPy broadcast of the shapes, or an error
// naming the dimensions that conflict.
func BroadcastShapes(shapes ...[]int) ([]int, error) {
	rank := 0
	for _, s := range shapes {
		rank = max(rank, len(s))
	}
	out := make([]int, rank)
	for i := range out {
		out[i] = 1
	}
	for k, s := range shapes {
		if k > 0 && slices.Equal(s, shapes[0]) {
			continue
		}
		off := rank - len(s)
		for i, d := range s {
			switch {
			case d == out[off+i] || d == 1:
			case out[off+i] == 1:
				out[off+i] = d
			default:
				return nil, fmt.Errorf("shapes %v cannot be broadcast together (dimension %d: %d vs %d)", shapes, off+i-rank, out[off+i], d)
			}
		}
	}
	return out, nil
}

// checkRank returns an error if elementwise kernels cannot index shape.
func checkRank(shape []int) error {
	if len(shape) > MaxRank {
		return fmt.Errorf("rank %d is unsupported (the limit is %d)", len(shape), MaxRank)
	}
	return nil
}

// NewElementwiseParams builds the params for an output of shape out whose
// inputs have the given shapes (each broadcastable to out).
func NewElementwiseParams(out []int, inputs ...[]int) (*ElementwiseParams, error) {
	if err := checkRank(out); err != nil {
		return nil, err
	}
	n := graph.NumElements(out)
	if err := checkElements(n); err != nil {
		return nil, err
	}
	p := &ElementwiseParams{N: uint32(n), Rank: uint32(len(out)), Contiguous: 1}
	for i, d := range out {
		p.Shape[i] = uint32(d)
	}
	for k, in := range inputs {
		off := len(out) - len(in)
		stride := 1
		for i := len(in) - 1; i >= 0; i-- {
			if in[i] != 1 || out[off+i] == 1 {
				p.Strides[k][off+i] = uint32(stride)
			}
			stride *= in[i]
		}
		if graph.NumElements(in) != n {
			p.Contiguous = 0
		}
	}
	return p, nil
}

package primitives

import (
	"fmt"

	"github.com/loomrt/loom/graph"
)

// ReduceOp is a reduction over one axis.
type ReduceOp uint8

// The reductions. Argmax and Argmin give the int32 index of the first
// maximum or minimum; NaN counts as larger than any number for Max and
// Argmax and as smaller than any for Min and Argmin, so that it wins every
// one of them. Prod of integers wraps around. LogSumExp is
// max + log(Σ exp(x − max)), computed so that it neither overflows nor
// underflows; it is the max where that is infinite or NaN, and −Inf over an
// empty axis.
const (
	Sum ReduceOp = iota
	Max
	Mean
	Argmax
	Min
	Prod
	Argmin
	LogSumExp
)

var reduceNames = [...]string{"sum", "max", "mean", "argmax", "min", "prod", "argmin", "logsumexp"}

// ReduceOps lists every reduction.
var ReduceOps = []ReduceOp{Sum, Max, Mean, Argmax, Min, Prod, Argmin, LogSumExp}

func (op ReduceOp) String() string { return reduceNames[op] }

// DTypes are the input dtypes op supports: the float dtypes for Mean and
// LogSumExp, every numeric dtype for the others.
func (op ReduceOp) DTypes() []graph.DType {
	if op == Mean || op == LogSumExp {
		return FloatDTypes
	}
	return BinaryDTypes
}

// AxisParams describe an operation along one axis of an array viewed as
// [Outer, N, Inner]: element (o, k, i) is at (o·N + k)·Inner + i.
type AxisParams struct {
	Outer, N, Inner uint32
}

// ReduceThreads is the threadgroup size of reductions and row normalisations,
// which run one threadgroup per output row or element.
const ReduceThreads = 256

// Reduce reduces its input over Axis (negative counts from the end),
// keeping it as a dimension of size 1 if KeepDims. Float sums and means
// accumulate in at least float32 in a fixed order, so results do not depend
// on the schedule. Over an empty axis Sum gives 0, Prod 1, Mean NaN and
// LogSumExp −Inf; Max, Min, Argmax and Argmin are errors.
type Reduce struct {
	Op       ReduceOp
	Axis     int
	KeepDims bool
}

func (r Reduce) Name() string { return r.Op.String() }

func (r Reduce) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("needs 1 input, got %d", len(in))
	}
	if !hasDType(r.Op.DTypes(), in[0].DType) {
		return nil, fmt.Errorf("dtype %s is unsupported (supported: %v)", in[0].DType, r.Op.DTypes())
	}
	axis, err := normAxis(r.Axis, len(in[0].Shape))
	if err != nil {
		return nil, err
	}
	if in[0].Shape[axis] == 0 && (r.Op == Max || r.Op == Argmax || r.Op == Min || r.Op == Argmin) {
		return nil, fmt.Errorf("axis %d is empty: %s of no elements is undefined", r.Axis, r.Op)
	}
	shape := make([]int, 0, len(in[0].Shape))
	for i, d := range in[0].Shape {
		switch {
		case i != axis:
			shape = append(shape, d)
		case r.KeepDims:
			shape = append(shape, 1)
		}
	}
	dt := in[0].DType
	if r.Op == Argmax || r.Op == Argmin {
		dt = graph.Int32
	}
	return []graph.Spec{{DType: dt, Shape: shape}}, nil
}

func (r Reduce) Lower(l *Lowering) error {
	p, err := axisParams(l.Inputs[0].Shape, r.Axis)
	if err != nil {
		return err
	}
	l.Dispatch(ReduceKernel(r.Op, l.Inputs[0].DType), Dim3{int(p.Outer * p.Inner), 1, 1}, // a group per output element
		Dim3{ReduceThreads, 1, 1}, p, In(0), Out(0))
	return nil
}

// ReduceKernel is the kernel of op over an input of dtype dt.
func ReduceKernel(op ReduceOp, dt graph.DType) string { return KernelName(op.String(), dt) }

// normAxis returns axis counted from the front, or an error if it is not an
// axis of an array of the given rank.
func normAxis(axis, rank int) (int, error) {
	a := axis
	if a < 0 {
		a += rank
	}
	if a < 0 || a >= rank {
		return 0, fmt.Errorf("axis %d is out of range for rank %d", axis, rank)
	}
	return a, nil
}

// axisParams views shape as [outer, n, inner] around axis.
func axisParams(shape []int, axis int) (*AxisParams, error) {
	a, err := normAxis(axis, len(shape))
	if err != nil {
		return nil, err
	}
	if err := checkElements(graph.NumElements(shape)); err != nil {
		return nil, err
	}
	return &AxisParams{
		Outer: uint32(graph.NumElements(shape[:a])),
		N:     uint32(shape[a]),
		Inner: uint32(graph.NumElements(shape[a+1:])),
	}, nil
}

// checkElements returns an error if n elements cannot be indexed by the
// 32-bit indices of kernel params.
func checkElements(n int) error {
	if int64(n) > 1<<32-1 {
		return fmt.Errorf("%d elements are unsupported (the limit is 2^32-1)", n)
	}
	return nil
}

func init() {
	for _, op := range ReduceOps {
		for _, dt := range op.DTypes() {
			register(KernelSpec{Name: ReduceKernel(op, dt), Args: []ArgSpec{R("a"), W("out")}, Params: (*AxisParams)(nil)})
		}
	}
}

package primitives

import (
	"fmt"

	"github.com/loomrt/loom/graph"
)

// Cumsum is the inclusive running sum of its input along Axis (negative
// counts from the end): element k is the sum of elements 0..k. Each line
// is summed in order, floats in at least float32 (float64 on the CPU and
// CUDA) and rounded once per element; integers wrap around.
type Cumsum struct{ Axis int }

func (Cumsum) Name() string { return "cumsum" }

func (c Cumsum) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("needs 1 input, got %d", len(in))
	}
	if !hasDType(BinaryDTypes, in[0].DType) {
		return nil, fmt.Errorf("dtype %s is unsupported (supported: %v)", in[0].DType, BinaryDTypes)
	}
	if _, err := normAxis(c.Axis, len(in[0].Shape)); err != nil {
		return nil, err
	}
	return []graph.Spec{in[0]}, nil
}

// Lower adds a thread per line along the axis; an empty output needs none.
func (c Cumsum) Lower(l *Lowering) error {
	p, err := axisParams(l.Inputs[0].Shape, c.Axis)
	if err != nil {
		return err
	}
	if l.Outputs[0].Size() == 0 {
		return nil
	}
	l.Dispatch(CumsumKernel(l.Inputs[0].DType), Dim3{Groups(int(p.Outer*p.Inner), ElementwiseThreads), 1, 1},
		Dim3{ElementwiseThreads, 1, 1}, p, In(0), Out(0))
	return nil
}

// CumsumKernel is Cumsum's kernel for an input of dtype dt.
func CumsumKernel(dt graph.DType) string { return KernelName("cumsum", dt) }

// SortParams describe a sort along the axis of an array viewed as [Outer,
// N, Inner]; Descending is 1 for largest first.
type SortParams struct {
	Outer, N, Inner, Descending uint32
}

// Sort sorts its input along Axis (negative counts from the end), stably:
// its outputs are the sorted values and their int32 indices along the
// axis. NaN counts as larger than any number (last ascending, first
// descending); equal values (−0 and 0 among them) keep their order.
//
// The kernels give each element its rank, the number of elements that come
// before it, and write it there: O(N²) comparisons per line of N, all in
// parallel on a GPU, which suits lines of up to some thousands.
type Sort struct {
	Axis       int
	Descending bool
}

func (Sort) Name() string { return "sort" }

// NumOutputs is 2: the values and the indices.
func (Sort) NumOutputs() int { return 2 }

func (s Sort) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("needs 1 input, got %d", len(in))
	}
	if !hasDType(BinaryDTypes, in[0].DType) {
		return nil, fmt.Errorf("dtype %s is unsupported (supported: %v)", in[0].DType, BinaryDTypes)
	}
	if _, err := normAxis(s.Axis, len(in[0].Shape)); err != nil {
		return nil, err
	}
	return []graph.Spec{in[0], {DType: graph.Int32, Shape: in[0].Shape}}, nil
}

func (s Sort) Lower(l *Lowering) error {
	a, err := axisParams(l.Inputs[0].Shape, s.Axis)
	if err != nil {
		return err
	}
	n := l.Inputs[0].Size()
	if n == 0 {
		return nil
	}
	if a.N > 1<<31-1 {
		return fmt.Errorf("an axis of %d elements is unsupported (the limit is 2^31-1)", a.N)
	}
	p := &SortParams{Outer: a.Outer, N: a.N, Inner: a.Inner}
	if s.Descending {
		p.Descending = 1
	}
	l.Dispatch(SortKernel(l.Inputs[0].DType), Dim3{Groups(n, ElementwiseThreads), 1, 1}, Dim3{ElementwiseThreads, 1, 1},
		p, In(0), Out(0), Out(1))
	return nil
}

// SortKernel is Sort's kernel for an input of dtype dt.
func SortKernel(dt graph.DType) string { return KernelName("sort", dt) }

func init() {
	for _, dt := range BinaryDTypes {
		register(
			KernelSpec{Name: CumsumKernel(dt), Args: []ArgSpec{R("a"), W("out")}, Params: (*AxisParams)(nil)},
			KernelSpec{Name: SortKernel(dt), Args: []ArgSpec{R("a"), W("values"), W("indices")}, Params: (*SortParams)(nil)},
		)
	}
}

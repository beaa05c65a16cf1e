package primitives

import (
	"fmt"

	"github.com/loomrt/loom/graph"
)

// TakeParams describe TakeAlongAxis: the input viewed as [Outer, N, Inner],
// the indices and the output as [Outer, M, Inner].
type TakeParams struct {
	Outer, N, M, Inner uint32
}

// TakeAlongAxis picks elements of its first input along Axis by its second,
// int32 or int64 indices of the same rank and the same shape but along
// Axis: out[…, j, …] = a[…, indices[…, j, …], …]. A negative index counts
// from the end (−1 is the last); one outside [−N, N) is an error of the
// evaluation that names its position and value.
type TakeAlongAxis struct{ Axis int }

func (TakeAlongAxis) Name() string { return "take_along_axis" }

func (t TakeAlongAxis) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 2 {
		return nil, fmt.Errorf("needs 2 inputs (a, indices), got %d", len(in))
	}
	a, idx := in[0], in[1]
	if !hasDType(graph.DTypes, a.DType) {
		return nil, fmt.Errorf("dtype %s is unsupported", a.DType)
	}
	if !hasDType(IndexDTypes, idx.DType) {
		return nil, fmt.Errorf("indices must be int32 or int64, got %s", idx.DType)
	}
	axis, err := normAxis(t.Axis, len(a.Shape))
	if err != nil {
		return nil, err
	}
	if len(idx.Shape) != len(a.Shape) {
		return nil, fmt.Errorf("indices have rank %d, a rank %d", len(idx.Shape), len(a.Shape))
	}
	for d := range a.Shape {
		if d != axis && idx.Shape[d] != a.Shape[d] {
			return nil, fmt.Errorf("indices have shape %v, a %v: they may differ only on axis %d", idx.Shape, a.Shape, t.Axis)
		}
	}
	if a.Shape[axis] == 0 && idx.Size() > 0 {
		return nil, fmt.Errorf("axis %d of a is empty: there is nothing to take", t.Axis)
	}
	return []graph.Spec{{DType: a.DType, Shape: idx.Shape}}, nil
}

func (t TakeAlongAxis) Lower(l *Lowering) error {
	a, idx := l.Inputs[0], l.Inputs[1]
	ap, err := axisParams(a.Shape, t.Axis)
	if err != nil {
		return err
	}
	ip, err := axisParams(idx.Shape, t.Axis)
	if err != nil {
		return err
	}
	if idx.Size() == 0 {
		return nil
	}
	l.Dispatch(RowsKernel("take_along_axis", a.DType, idx.DType), Dim3{Groups(idx.Size(), ElementwiseThreads), 1, 1},
		Dim3{ElementwiseThreads, 1, 1}, &TakeParams{Outer: ap.Outer, N: ap.N, M: ip.N, Inner: ap.Inner}, In(0), In(1), Out(0))
	return nil
}

// ScatterAddRows adds the rows of its third input ([N, ...]) into its first
// (dst, [R, ...]) in place, at the rows named by its second (int32 or int64
// indices [N]), and returns the updated dst, which is donated as
// ScatterRows' is. Rows are added in index order, each sum rounded to the
// dtype, so that repeated indices accumulate the same on every device; an
// index < 0 skips its row; an index ≥ R is an error of the evaluation, and
// nothing is written. Integers wrap around.
//
// The kernels give a thread to each element of a row and walk the indices
// in order: the parallelism is the row's length.
type ScatterAddRows struct{}

func (ScatterAddRows) Name() string { return "scatter_add_rows" }

func (ScatterAddRows) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	return scatterOutputs(in, BinaryDTypes)
}

// Aliases makes the output dst's buffer, updated in place.
func (ScatterAddRows) Aliases() []graph.Alias {
	return []graph.Alias{{Output: 0, Input: 0, Donate: true}}
}

func (ScatterAddRows) Lower(l *Lowering) error {
	dst, idx := l.Inputs[0], l.Inputs[1]
	p, err := rowsParams(idx.Size(), dst.Shape)
	if err != nil {
		return err
	}
	l.Dispatch(RowsKernel("scatter_add_rows", dst.DType, idx.DType), Dim3{Groups(int(p.RowElems), ElementwiseThreads), 1, 1},
		Dim3{ElementwiseThreads, 1, 1}, p, Out(0), In(1), In(2))
	return nil
}

func init() {
	for _, idx := range IndexDTypes {
		for _, dt := range graph.DTypes {
			register(KernelSpec{Name: RowsKernel("take_along_axis", dt, idx), Args: []ArgSpec{R("a"), R("indices"), W("out")}, Params: (*TakeParams)(nil)})
		}
		for _, dt := range BinaryDTypes {
			register(KernelSpec{Name: RowsKernel("scatter_add_rows", dt, idx), Args: []ArgSpec{RW("dst"), R("indices"), R("rows")}, Params: (*RowsParams)(nil)})
		}
	}
}

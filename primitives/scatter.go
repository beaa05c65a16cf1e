package primitives

import (
	"fmt"
	"slices"

	"github.com/loomrt/loom/graph"
)

// ScatterRows writes the rows of its third input ([N, ...]) into its first
// (dst, [R, ...]) in place, at the rows named by its second (int32 or int64
// indices [N]), and returns the updated dst. dst is donated: the runtime
// updates its buffer in place when nothing else needs the old value, and a
// copy otherwise; later ops may not use dst itself. An index < 0 skips its
// row; an index ≥ R is an error of the evaluation, and nothing is written.
// When several indices name one row, the last of them wins.
type ScatterRows struct{}

func (ScatterRows) Name() string { return "scatter_rows" }

func (ScatterRows) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	return scatterOutputs(in, graph.DTypes)
}

// scatterOutputs checks the inputs of a row scatter (dst, indices, rows),
// with dst of one of dtypes, and returns dst's spec.
func scatterOutputs(in []graph.Spec, dtypes []graph.DType) ([]graph.Spec, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("needs 3 inputs (dst, indices, rows), got %d", len(in))
	}
	dst, idx, rows := in[0], in[1], in[2]
	if len(dst.Shape) == 0 {
		return nil, fmt.Errorf("dst must have at least 1 dimension, got a scalar")
	}
	if !hasDType(dtypes, dst.DType) {
		return nil, fmt.Errorf("dst dtype %s is unsupported (supported: %v)", dst.DType, dtypes)
	}
	if !hasDType(IndexDTypes, idx.DType) {
		return nil, fmt.Errorf("indices must be int32 or int64, got %s", idx.DType)
	}
	if len(idx.Shape) != 1 {
		return nil, fmt.Errorf("indices must have 1 dimension, got shape %v", idx.Shape)
	}
	if rows.DType != dst.DType {
		return nil, fmt.Errorf("rows have dtype %s, dst %s", rows.DType, dst.DType)
	}
	want := append([]int{idx.Shape[0]}, dst.Shape[1:]...)
	if !slices.Equal(rows.Shape, want) {
		return nil, fmt.Errorf("rows have shape %v, want %v (one row of dst's shape per index)", rows.Shape, want)
	}
	return []graph.Spec{dst}, nil
}

// Aliases makes the output dst's buffer, updated in place.
func (ScatterRows) Aliases() []graph.Alias {
	return []graph.Alias{{Output: 0, Input: 0, Donate: true}}
}

func (ScatterRows) Lower(l *Lowering) error {
	dst, idx := l.Inputs[0], l.Inputs[1]
	p, err := rowsParams(idx.Size(), dst.Shape)
	if err != nil {
		return err
	}
	l.Dispatch(RowsKernel("scatter_rows", dst.DType, idx.DType), Dim3{Groups(int(p.Rows*p.RowElems), ElementwiseThreads), 1, 1},
		Dim3{ElementwiseThreads, 1, 1}, p, Out(0), In(1), In(2))
	return nil
}

func init() {
	for _, dt := range graph.DTypes {
		for _, idx := range IndexDTypes {
			register(KernelSpec{Name: RowsKernel("scatter_rows", dt, idx), Args: []ArgSpec{RW("dst"), R("indices"), R("rows")}, Params: (*RowsParams)(nil)})
		}
	}
}

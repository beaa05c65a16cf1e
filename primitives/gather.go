package primitives

import (
	"fmt"

	"github.com/loomrt/loom/graph"
)

// IndexDTypes are the dtypes of row indices.
var IndexDTypes = []graph.DType{graph.Int32, graph.Int64}

// RowsParams describe an operation that moves Rows rows of RowElems
// elements between an array of TableRows rows and a dense array of rows.
type RowsParams struct {
	Rows, TableRows, RowElems uint32
}

// GatherRows looks rows of its first input (the table, [V, ...]) up by its
// second (int32 or int64 indices of any shape [N...]): the output is
// [N..., ...]. An index outside [0, V) is an error of the evaluation that
// names its position and value.
type GatherRows struct{}

func (GatherRows) Name() string { return "gather_rows" }

func (GatherRows) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 2 {
		return nil, fmt.Errorf("needs 2 inputs (table, indices), got %d", len(in))
	}
	table, idx := in[0], in[1]
	if len(table.Shape) == 0 {
		return nil, fmt.Errorf("table must have at least 1 dimension, got a scalar")
	}
	if !hasDType(graph.DTypes, table.DType) {
		return nil, fmt.Errorf("table dtype %s is unsupported", table.DType)
	}
	if !hasDType(IndexDTypes, idx.DType) {
		return nil, fmt.Errorf("indices must be int32 or int64, got %s", idx.DType)
	}
	shape := append(append([]int{}, idx.Shape...), table.Shape[1:]...)
	return []graph.Spec{{DType: table.DType, Shape: shape}}, nil
}

func (GatherRows) Lower(l *Lowering) error {
	table, idx := l.Inputs[0], l.Inputs[1]
	p, err := rowsParams(idx.Size(), table.Shape)
	if err != nil {
		return err
	}
	l.Dispatch(RowsKernel("gather_rows", table.DType, idx.DType), Dim3{Groups(int(p.Rows*p.RowElems), ElementwiseThreads), 1, 1},
		Dim3{ElementwiseThreads, 1, 1}, p, In(0), In(1), Out(0))
	return nil
}

func rowsParams(n int, table []int) (*RowsParams, error) {
	rowElems := graph.NumElements(table[1:])
	if err := checkElements(max(n*rowElems, graph.NumElements(table))); err != nil {
		return nil, err
	}
	return &RowsParams{Rows: uint32(n), TableRows: uint32(table[0]), RowElems: uint32(rowElems)}, nil
}

// RowsKernel is the name of a gather or scatter kernel, such as
// "gather_rows_bf16_i32".
func RowsKernel(op string, dt, idx graph.DType) string {
	return KernelName(op, dt, idx)
}

func init() {
	for _, dt := range graph.DTypes {
		for _, idx := range IndexDTypes {
			register(KernelSpec{Name: RowsKernel("gather_rows", dt, idx), Args: []ArgSpec{R("table"), R("indices"), W("out")}, Params: (*RowsParams)(nil)})
		}
	}
}

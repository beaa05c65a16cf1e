package graph_test

import (
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
)

// huge is a primitive whose shape rule returns a shape whose byte size
// overflows, as a broadcast of two large shapes could.
type huge struct{}

func (huge) Name() string { return "test_huge" }
func (huge) Outputs([]graph.Spec) ([]graph.Spec, error) {
	return []graph.Spec{{DType: graph.Float32, Shape: []int{1 << 31, 1 << 31, 4}}}, nil
}
func (huge) Lower(*primitives.Lowering) error { return nil }

// TestShapeOverflow: a shape whose element count or byte size overflows is
// an error state, never accepted because the product wrapped (274177 ·
// 67280421310721 = 2^64 + 1) and never a panic.
func TestShapeOverflow(t *testing.T) {
	one := graph.FromFloat32s([]float32{5})
	for _, c := range []struct {
		name string
		a    *graph.Array
	}{
		{"FromFloat32s", graph.FromFloat32s([]float32{5}, 274177, 67280421310721)},
		{"FromInt32s", graph.FromInt32s([]int32{5}, 274177, 67280421310721)},
		{"Full", graph.Full(graph.Float32, 1, 1, 1<<32, 1<<32)},
		{"Full bytes", graph.Full(graph.Int64, 1, 1<<61)},
		{"FromBytes", graph.FromBytes(graph.Int64, nil, 1<<61)},
		{"FromBytes elements", graph.FromBytes(graph.Bool, []byte{1}, 274177, 67280421310721)},
		{"Reshape", ops.Reshape(one, 274177, 67280421310721)},
		{"Reshape inferred", ops.Reshape(one, -1, 274177, 67280421310721)},
		{"primitive output", ops.Apply(huge{}, one)[0]},
	} {
		err := c.a.Err()
		if err == nil || !strings.Contains(err.Error(), "overflows") || !strings.Contains(err.Error(), "shape_test.go:") {
			t.Errorf("%s: error %v, want an overflow error naming the call site", c.name, err)
		}
	}
	// The largest shapes that fit are still fine to describe (not to allocate).
	if err := graph.CheckShape(graph.Int64, []int{1<<60 - 1}); err != nil {
		t.Errorf("2^60-1 int64 elements: %v", err)
	}
}

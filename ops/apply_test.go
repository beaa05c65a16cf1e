package ops_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
)

// pair is a two-output primitive whose shape rule accepts only float32.
type pair struct{ declare bool }

func (pair) Name() string { return "test_pair" }
func (p pair) NumOutputs() int {
	if p.declare {
		return 2
	}
	return 1
}
func (pair) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 1 || in[0].DType != graph.Float32 {
		return nil, errors.New("needs one float32 input")
	}
	return []graph.Spec{in[0], in[0]}, nil
}
func (pair) Lower(*primitives.Lowering) error { return errors.New("not lowered in this test") }

// TestApplyMultiOutputErrors: when a multi-output primitive's shape rule
// fails, Apply still returns one array per output, each carrying the error;
// a primitive that returns more outputs than it declares is an error too.
func TestApplyMultiOutputErrors(t *testing.T) {
	bad := ops.Apply(pair{declare: true}, graph.FromInt32s([]int32{1, 2}))
	if len(bad) != 2 {
		t.Fatalf("a failed shape rule gave %d arrays, want 2", len(bad))
	}
	for i, a := range bad {
		if err := a.Err(); err == nil || !strings.Contains(err.Error(), "test_pair: needs one float32 input") || !strings.Contains(err.Error(), "apply_test.go:") {
			t.Errorf("output %d: error %v", i, err)
		}
	}
	good := ops.Apply(pair{declare: true}, graph.FromFloat32s([]float32{1, 2}))
	if len(good) != 2 || good[0].Err() != nil || good[1].Err() != nil {
		t.Fatalf("valid inputs: %v", good)
	}
	undeclared := ops.Apply(pair{}, graph.FromFloat32s([]float32{1, 2}))
	if err := undeclared[0].Err(); err == nil || !strings.Contains(err.Error(), "2 outputs but declares 1") {
		t.Fatalf("undeclared outputs: error %v", err)
	}
	// A failed input also gives one failed array per declared output.
	if outs := ops.Apply(pair{declare: true}, graph.FromFloat32s([]float32{1}, 2)); len(outs) != 2 || outs[1].Err() == nil {
		t.Fatalf("failed input: %d arrays", len(outs))
	}
}

package graph_test

import (
	"fmt"
	goruntime "runtime"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/ops"
)

// line returns the line of its caller.
func line() int {
	_, _, l, _ := goruntime.Caller(1)
	return l
}

// TestErrorState checks that an op with bad arguments gives an array in an
// error state naming the op, the shapes and dtypes and the caller's
// file:line, and that everything built from it, and Eval, carry that error.
func TestErrorState(t *testing.T) {
	a := graph.FromFloat32s(make([]float32, 6), 2, 3)
	b := graph.FromFloat32sAs(graph.Float16, make([]float32, 3), 3)
	bad, at := ops.Add(a, b), line()
	err := bad.Err()
	if err == nil {
		t.Fatal("adding float32 and float16 arrays gave no error")
	}
	for _, part := range []string{"add", "dtypes differ", "float32[2 3]", "float16[3]", fmt.Sprintf("graph/errors_test.go:%d", at)} {
		if !strings.Contains(err.Error(), part) {
			t.Fatalf("error %q does not mention %q", err, part)
		}
	}
	ge, ok := err.(*graph.Error)
	if !ok || ge.Op != "add" || ge.Site != fmt.Sprintf("graph/errors_test.go:%d", at) {
		t.Fatalf("error %#v is not a *graph.Error for add at line %d", err, at)
	}

	// Dependents inherit the very same error, however deep.
	dep := ops.Softmax(ops.Reshape(ops.Exp(bad), 6), 0)
	multi := ops.Concatenate(0, graph.FromFloat32s([]float32{1}), dep)
	for _, d := range []*graph.Array{dep, multi} {
		if d.Err() != ge {
			t.Fatalf("dependent error %v, want the original %v", d.Err(), ge)
		}
	}
	// Eval returns it, and reading returns it.
	if err := newRuntime(t).Eval(graph.FromFloat32s([]float32{1}), multi); err != ge {
		t.Fatalf("Eval returned %v, want the original error", err)
	}
	if _, err := multi.Float32s(); err != ge {
		t.Fatalf("reading returned %v, want the original error", err)
	}

	// An error found before a node is built (here by the op itself) names
	// the call site too.
	r, at := ops.Reshape(a, 4, 4), line()
	if r.Err() == nil || !strings.Contains(r.Err().Error(), fmt.Sprintf("graph/errors_test.go:%d", at)) ||
		!strings.Contains(r.Err().Error(), "reshape") || !strings.Contains(r.Err().Error(), "float32[2 3]") {
		t.Fatalf("reshape error %v does not name the op, the input and line %d", r.Err(), at)
	}
}

package ops_test

import (
	"fmt"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

// Building a graph does no work; Eval computes the arrays it is given and
// everything they depend on, after which their values can be read.
func Example() {
	rt, err := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
	if err != nil {
		panic(err)
	}
	logits := graph.FromFloat32s([]float32{1, 2, 3, 1, 1, 1}, 2, 3)
	probs := ops.Softmax(logits, -1)
	best := ops.Argmax(logits, -1, false)
	if err := rt.Eval(probs, best); err != nil {
		panic(err)
	}
	p, _ := probs.Float32s()
	b, _ := best.Int32s()
	fmt.Printf("probs %.3f\n", p)
	fmt.Println("argmax", b)
	// Output:
	// probs [0.090 0.245 0.665 0.333 0.333 0.333]
	// argmax [2 0]
}

// Elementwise ops broadcast NumPy-style: dimensions are matched from the
// last, and a dimension of 1 stretches to the other operand's.
func Example_broadcasting() {
	rt, _ := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
	rows := graph.FromFloat32s([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	bias := graph.FromFloat32s([]float32{10, 20, 30})           // [3]
	scale := graph.FromFloat32s([]float32{1, -1}, 2, 1)         // [2, 1]
	out := ops.Mul(ops.Add(rows, bias), scale)                  // [2, 3]
	outer := ops.Mul(graph.FromFloat32s([]float32{1, 2}, 2, 1), // [2, 1] · [3] → [2, 3]
		graph.FromFloat32s([]float32{1, 10, 100}))
	if err := rt.Eval(out, outer); err != nil {
		panic(err)
	}
	v, _ := out.Float32s()
	w, _ := outer.Float32s()
	fmt.Println(out.Shape(), v)
	fmt.Println(outer.Shape(), w)
	// Output:
	// [2 3] [11 22 33 -14 -25 -36]
	// [2 3] [1 10 100 2 20 200]
}

// ScatterRows updates its destination in place: the destination is donated,
// the result reuses its buffer, and the old array may not be used again.
func ExampleScatterRows() {
	rt, _ := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
	cache := graph.Full(graph.Float32, 0, 4, 2) // four rows of zeros
	rows := graph.FromFloat32s([]float32{1, 1, 2, 2, 3, 3}, 3, 2)
	slots := graph.FromInt32s([]int32{3, -1, 0}) // -1 skips its row
	updated := ops.ScatterRows(cache, slots, rows)
	if err := rt.Eval(updated); err != nil {
		panic(err)
	}
	v, _ := updated.Float32s()
	fmt.Println(v)
	fmt.Println("donations:", rt.LastStats().Donations)
	_, err := cache.Float32s()
	fmt.Println("reading the old array fails:", err != nil)
	// Output:
	// [3 3 0 0 0 0 1 1]
	// donations: 1
	// reading the old array fails: true
}

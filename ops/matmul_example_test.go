package ops_test

import (
	"fmt"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

// A linear layer stores its weights [out, in] (the Hugging Face layout), so
// it multiplies by the transpose. One token is the decode case, which runs
// the GEMV kernel; batch dims broadcast, and a few tokens sharing the
// weights (batched decode) run the GEMV kernel's small-M path on the CPU.
func ExampleMatMulTransposed() {
	rt, _ := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
	w := graph.FromFloat32s([]float32{
		1, 0, 0, // out 0 = in 0
		1, 1, 1, // out 1 = sum
	}, 2, 3)
	token := graph.FromFloat32s([]float32{1, 2, 3}, 1, 3)              // [1, 3]
	prompt := graph.FromFloat32s([]float32{1, 2, 3, 4, 5, 6}, 2, 1, 3) // [2, 1, 3]
	y1 := ops.MatMulTransposed(token, w, false, true)                  // [1, 2]
	y2 := ops.MatMulTransposed(prompt, w, false, true)                 // [2, 1, 2]
	if err := rt.Eval(y1, y2); err != nil {
		panic(err)
	}
	v1, _ := y1.Float32s()
	v2, _ := y2.Float32s()
	fmt.Println(y1.Shape(), v1)
	fmt.Println(y2.Shape(), v2)
	fmt.Println(rt.LastStats().Counters)
	// Output:
	// [1 2] [1 6]
	// [2 1 2] [1 6 4 15]
	// map[matmul_gemv:1 matmul_small_m:1]
}

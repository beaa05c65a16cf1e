package runtime_test

import (
	"fmt"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

// EvalAsync submits a step and returns at once, so the next step can be
// built while this one runs. The arrays it computes may feed the next graph
// right away: the encoder orders the reads after the writes. Reading a value
// waits for it.
func ExampleRuntime_EvalAsync() {
	rt, _ := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
	defer rt.Close()
	x := graph.FromFloat32s([]float32{1, 2, 3})
	var steps []*runtime.Pending
	for range 3 {
		x = ops.Mul(x, x)
		p, err := rt.EvalAsync(x)
		if err != nil {
			panic(err)
		}
		steps = append(steps, p)
	}
	for _, p := range steps {
		if err := p.Wait(); err != nil {
			panic(err)
		}
	}
	v, _ := x.Float32s()
	fmt.Println(v)
	// Output: [1 256 6561]
}

// The checking device runs work as concurrently as the encoded ordering
// allows and reports any conflicting accesses the ordering leaves unordered.
// Every Eval reports its statistics.
func Example_checkingDevice() {
	dev := cpu.New(cpu.Options{Check: true})
	rt, _ := runtime.New(dev, runtime.Options{DispatchesPerCommandBuffer: 1})
	defer rt.Close()
	a := graph.FromFloat32s([]float32{1, 2, 3, 4}, 2, 2)
	b := ops.Add(a, a)
	c := ops.MatMul(b, a)
	if err := rt.Eval(ops.Sub(c, b)); err != nil {
		panic(err)
	}
	st := rt.LastStats()
	fmt.Println("hazards:", len(dev.Hazards()))
	fmt.Println("dispatches:", st.Dispatches, "command buffers:", st.CommandBuffers, "host waits:", st.HostWaits)
	// Output:
	// hazards: 0
	// dispatches: 3 command buffers: 3 host waits: 1
}

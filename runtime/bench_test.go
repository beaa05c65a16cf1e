package runtime_test

import (
	"testing"
	"time"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

// build10k builds a 10,000-node graph: a chain of small elementwise ops with
// a constant side input every node, the shape of a long unrolled program.
func build10k(xs []*graph.Array) *graph.Array {
	h := xs[0]
	for i := range 10000 {
		switch i % 3 {
		case 0:
			h = ops.Add(h, xs[1])
		case 1:
			h = ops.Mul(h, xs[2])
		default:
			h = ops.Sub(h, xs[3])
		}
	}
	return h
}

func inputs() []*graph.Array {
	xs := make([]*graph.Array, 4)
	for i := range xs {
		xs[i] = graph.FromFloat32s([]float32{1, 0.5, 0.25, 2}, 4)
	}
	return xs
}

// BenchmarkBuild reports the cost of building one node (goal: ≤ 1 µs).
func BenchmarkBuild(b *testing.B) {
	xs := inputs()
	for b.Loop() {
		build10k(xs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10000/1000, "µs/node")
}

// BenchmarkEval reports the host time Eval spends per node of a 10,000-node
// graph of tiny ops (goal: ≤ 3 µs), split into planning and encoding.
func BenchmarkEval(b *testing.B) {
	rt, _ := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
	defer rt.Close()
	xs := inputs()
	if err := rt.Eval(xs...); err != nil {
		b.Fatal(err)
	}
	var plan, enc, total time.Duration
	for b.Loop() {
		h := build10k(xs)
		t := time.Now()
		if err := rt.Eval(h); err != nil {
			b.Fatal(err)
		}
		total += time.Since(t)
		st := rt.LastStats()
		plan += st.Plan
		enc += st.Encode
	}
	n := float64(b.N) * 10000
	b.ReportMetric(float64(total.Nanoseconds())/n/1000, "µs/node")
	b.ReportMetric(float64(plan.Nanoseconds())/n/1000, "plan-µs/node")
	b.ReportMetric(float64(enc.Nanoseconds())/n/1000, "encode-µs/node")
}

package cuda

import (
	"fmt"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loombench"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

// BenchmarkMatMul times decode GEMVs x[1,K]·Wᵀ and a square product through
// runtime.Eval on the CUDA device (each Eval includes one host wait),
// reporting the weights' GB/s and the product's GFLOP/s.
func BenchmarkMatMul(b *testing.B) {
	d := device(b)
	rt, err := runtime.New(d, runtime.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	for _, c := range []struct{ m, n, k int }{{1, 4096, 4096}, {1, 11008, 4096}, {1024, 1024, 1024}} {
		for _, dt := range []graph.DType{graph.Float32, graph.BFloat16, graph.Float16} {
			b.Run(fmt.Sprintf("%s_%dx%dx%d", dt, c.m, c.n, c.k), func(b *testing.B) {
				f, err := loombench.MatMul(rt, dt, c.m, c.n, c.k, true)
				if err != nil {
					b.Fatal(err)
				}
				if err := f(); err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					if err := f(); err != nil {
						b.Fatal(err)
					}
				}
				s := b.Elapsed().Seconds() / float64(b.N)
				b.ReportMetric(float64(c.n*c.k*dt.Size())/s/1e9, "weight-GB/s")
				b.ReportMetric(2*float64(c.m*c.n*c.k)/s/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkSmallEval measures the host's cost of one small evaluation on
// the CUDA device: planning, encoding, one launch, and the host wait.
func BenchmarkSmallEval(b *testing.B) {
	d := device(b)
	rt, err := runtime.New(d, runtime.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	x, err := loombench.Operand(rt, graph.Float32, 1, 1024)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := rt.Eval(ops.Add(x, x)); err != nil {
			b.Fatal(err)
		}
	}
}

package cpu_test

import (
	"fmt"
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

// evaluated returns a random array of the given dtype and shape, already
// on the device, so that a benchmark's Evals do not upload it.
func evaluated(b *testing.B, rt *runtime.Runtime, dt graph.DType, shape ...int) *graph.Array {
	b.Helper()
	a := graph.FromFloat32sAs(dt, loomtest.Float32s(loomtest.Rand(1), graph.NumElements(shape), -1, 1), shape...)
	if err := rt.Eval(a); err != nil {
		b.Fatal(err)
	}
	return a
}

// BenchmarkGEMV is the decode matmul, x[1, 4096] · W[4096, 4096]ᵀ, through
// the runtime: GB/s counts the weight bytes streamed.
func BenchmarkGEMV(b *testing.B) {
	const n, k = 4096, 4096
	for _, dt := range []graph.DType{graph.Float32, graph.BFloat16, graph.Float16} {
		b.Run(dt.String(), func(b *testing.B) {
			rt, err := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
			if err != nil {
				b.Fatal(err)
			}
			w := evaluated(b, rt, dt, n, k)
			x := evaluated(b, rt, dt, 1, k)
			b.SetBytes(int64(n * k * dt.Size()))
			for b.Loop() {
				if err := rt.Eval(ops.MatMulTransposed(x, w, false, true)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*k*dt.Size())*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}

// BenchmarkMatMul is a square float32 product through the runtime, in
// GFLOP/s (2n³ flops).
func BenchmarkMatMul(b *testing.B) {
	for _, n := range []int{256, 1024} {
		for _, dt := range []graph.DType{graph.Float32, graph.BFloat16} {
			b.Run(fmt.Sprintf("%s/n=%d", dt, n), func(b *testing.B) {
				rt, err := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
				if err != nil {
					b.Fatal(err)
				}
				x, y := evaluated(b, rt, dt, n, n), evaluated(b, rt, dt, n, n)
				for b.Loop() {
					if err := rt.Eval(ops.MatMul(x, y)); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(2*float64(n*n*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

package cpu_test

import (
	"fmt"
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/cpu/internal/vec"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loombench"
	"github.com/loomrt/loom/runtime"
)

// eachCode runs the benchmark with the assembly and with the Go fallback
// (what runs on CPUs without AVX2 and on other architectures).
func eachCode(b *testing.B, name string, f func(b *testing.B)) {
	for _, asm := range []bool{true, false} {
		b.Run(fmt.Sprintf("%s/asm=%v", name, asm), func(b *testing.B) {
			was := vec.SetAssembly(asm)
			defer vec.SetAssembly(was)
			if vec.Assembly() != asm {
				b.Skip("this CPU has no AVX2+FMA+F16C")
			}
			f(b)
		})
	}
}

// BenchmarkGEMV is the decode matmul, x[1, 4096] · W[4096, 4096]ᵀ, through
// the runtime: GB/s counts the weight bytes streamed.
func BenchmarkGEMV(b *testing.B) {
	const n, k = 4096, 4096
	for _, dt := range []graph.DType{graph.Float32, graph.BFloat16, graph.Float16} {
		eachCode(b, dt.String(), func(b *testing.B) {
			rt, err := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
			if err != nil {
				b.Fatal(err)
			}
			f, err := loombench.MatMul(rt, dt, 1, n, k, true)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(n * k * dt.Size()))
			for b.Loop() {
				if err := f(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*k*dt.Size())*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}

// BenchmarkMatMul is a square product through the runtime, in GFLOP/s
// (2n³ flops).
func BenchmarkMatMul(b *testing.B) {
	for _, n := range []int{256, 1024} {
		for _, dt := range []graph.DType{graph.Float32, graph.BFloat16} {
			eachCode(b, fmt.Sprintf("%s/n=%d", dt, n), func(b *testing.B) {
				rt, err := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
				if err != nil {
					b.Fatal(err)
				}
				f, err := loombench.MatMul(rt, dt, n, n, n, false)
				if err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					if err := f(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(2*float64(n*n*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkSmallM is the batched-decode matmul through the runtime:
// x[M, 4096] times 4096×4096 weights stored [N, K] (x·Wᵀ, tb=true) or
// [K, N], which the CPU runs on the GEMV kernel's small-M path. GB/s counts
// the weight bytes, each read once, beside read-GB/s, the machine's read
// bandwidth measured just before; GFLOP/s counts 2·M·N·K.
func BenchmarkSmallM(b *testing.B) {
	const n, k = 4096, 4096
	for _, dt := range []graph.DType{graph.BFloat16, graph.Float32} {
		for _, tb := range []bool{true, false} {
			for _, m := range []int{2, 8, 16} {
				eachCode(b, fmt.Sprintf("%s/tb=%v/m=%d", dt, tb, m), func(b *testing.B) {
					rt, err := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
					if err != nil {
						b.Fatal(err)
					}
					f, err := loombench.MatMul(rt, dt, m, n, k, tb)
					if err != nil {
						b.Fatal(err)
					}
					if err := f(); err != nil {
						b.Fatal(err)
					}
					if got := rt.LastStats().Counters["matmul_small_m"]; got != 1 {
						b.Fatalf("the product took another path (counters %v)", rt.LastStats().Counters)
					}
					read := cpu.MeasureBandwidth(64<<20, rt.Device().Caps().Cores, 1).Read
					bytes := float64(n * k * dt.Size())
					b.SetBytes(int64(bytes))
					for b.Loop() {
						if err := f(); err != nil {
							b.Fatal(err)
						}
					}
					s := b.Elapsed().Seconds() / float64(b.N)
					b.ReportMetric(bytes/s/1e9, "GB/s")
					b.ReportMetric(read, "read-GB/s")
					b.ReportMetric(2*float64(m*n*k)/s/1e9, "GFLOP/s")
				})
			}
		}
	}
}

// BenchmarkQuantizedGEMV is the decode matmul with 4- and 8-bit weights in
// groups of 64 (bfloat16 x, scales and biases), x[1, 4096] · W[4096,
// 4096]ᵀ, through the runtime: GB/s counts the packed codes, scales and
// biases streamed.
func BenchmarkQuantizedGEMV(b *testing.B) {
	const n, k = 4096, 4096
	for _, bits := range []int{4, 8} {
		eachCode(b, fmt.Sprintf("q%d", bits), func(b *testing.B) {
			rt, err := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
			if err != nil {
				b.Fatal(err)
			}
			f, bytes, err := loombench.QuantizedMatMul(rt, graph.BFloat16, bits, 64, 1, n, k)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(bytes)
			for b.Loop() {
				if err := f(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(bytes)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}

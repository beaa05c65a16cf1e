// Command gonum compares Loom's CPU matmul and GEMV with gonum's blas32
// (pure Go with SSE assembly) in one run, the two taking turns so that the
// machine's load affects both alike. It lives in its own module so that
// Loom's go.mod does not depend on gonum.
//
//	cd bench/peers/gonum && go run . [-n 1024] [-gemv 4096] [-reps 10]
package main

import (
	"flag"
	"fmt"
	"log"
	goruntime "runtime"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loombench"
	"github.com/loomrt/loom/runtime"
)

func main() {
	n := flag.Int("n", 1024, "matmul size: [n, n] · [n, n], float32")
	g := flag.Int("gemv", 4096, "GEMV size: x[1, g] · W[g, g]ᵀ, float32")
	reps := flag.Int("reps", 10, "timed runs of each (best and median are printed)")
	flag.Parse()
	workers := goruntime.GOMAXPROCS(0)
	rt, err := runtime.New(cpu.New(cpu.Options{Workers: workers}), runtime.Options{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("Loom vs gonum blas32, float32, GOMAXPROCS %d, best (median) of %d, taking turns:\n", workers, *reps)

	loomMM, err := loombench.MatMul(rt, graph.Float32, *n, *n, *n, false)
	if err != nil {
		log.Fatal(err)
	}
	a, b, c := general(*n, *n), general(*n, *n), general(*n, *n)
	gonumMM := func() error {
		blas32.Gemm(blas.NoTrans, blas.NoTrans, 1, a, b, 0, c)
		return nil
	}
	flops := 2 * float64(*n) * float64(*n) * float64(*n)
	report(fmt.Sprintf("matmul [%d,%d]·[%d,%d]", *n, *n, *n, *n), *reps, "GFLOP/s", flops/1e9, loomMM, gonumMM)

	loomGEMV, err := loombench.MatMul(rt, graph.Float32, 1, *g, *g, true)
	if err != nil {
		log.Fatal(err)
	}
	w := general(*g, *g)
	x := blas32.Vector{N: *g, Inc: 1, Data: make([]float32, *g)}
	y := blas32.Vector{N: *g, Inc: 1, Data: make([]float32, *g)}
	gonumGEMV := func() error {
		blas32.Gemv(blas.NoTrans, 1, w, x, 0, y) // y = W·x, W [g, g] row-major: Loom's x·Wᵀ
		return nil
	}
	bytes := 4 * float64(*g) * float64(*g)
	report(fmt.Sprintf("GEMV x[1,%d]·W[%d,%d]ᵀ (weight bytes)", *g, *g, *g), *reps, "GB/s", bytes/1e9, loomGEMV, gonumGEMV)
}

// general returns a row-major rows×cols matrix of varied values.
func general(rows, cols int) blas32.General {
	d := make([]float32, rows*cols)
	for i := range d {
		d[i] = float32(i%17)/8 - 1
	}
	return blas32.General{Rows: rows, Cols: cols, Stride: cols, Data: d}
}

// report times Loom and gonum in turns and prints work/time for each and
// their ratio.
func report(what string, reps int, unit string, work float64, loom, gonum func() error) {
	t, err := loombench.Interleaved(reps, loom, gonum)
	if err != nil {
		log.Fatal(err)
	}
	rate := func(d time.Duration) float64 { return work / d.Seconds() }
	fmt.Printf("  %s\n", what)
	fmt.Printf("    loom   %8.3f ms (%.3f ms)  %6.1f %s\n", ms(t[0].Best), ms(t[0].Median), rate(t[0].Best), unit)
	fmt.Printf("    gonum  %8.3f ms (%.3f ms)  %6.1f %s\n", ms(t[1].Best), ms(t[1].Median), rate(t[1].Best), unit)
	fmt.Printf("    loom / gonum: %.2f× (best), %.2f× (median)\n", rate(t[0].Best)/rate(t[1].Best), rate(t[0].Median)/rate(t[1].Median))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

package cuda

import (
	"fmt"
	"testing"
	"time"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loombench"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
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

// BenchmarkCommandBuffer commits a command buffer of 40 small dependent
// additions and waits for it, launch by launch ("launches") and as a graph
// exec, unchanged ("graph") or with the first dispatch's input alternating
// between two buffers ("graph-update", one node update per command
// buffer). commit-µs is the host's time in Commit.
func BenchmarkCommandBuffer(b *testing.B) {
	d := device(b)
	const n, dispatches = 4096, 40
	add, err := d.Kernel("add_f32")
	if err != nil {
		b.Fatal(err)
	}
	p, _ := primitives.NewElementwiseParams([]int{n}, []int{n}, []int{n})
	var bufs [3]runtime.Buffer
	for i := range bufs {
		if bufs[i], err = d.NewBuffer(4 * n); err != nil {
			b.Fatal(err)
		}
		defer bufs[i].Release()
	}
	x, y, z := bufs[0], bufs[1], bufs[2]
	for _, c := range []struct {
		name          string
		graphs, alter bool
	}{{"launches", false, false}, {"graph", true, false}, {"graph-update", true, true}} {
		b.Run(c.name, func(b *testing.B) {
			was := d.graphs.Load()
			if err := d.SetGraphs(c.graphs); err != nil {
				b.Fatal(err)
			}
			defer d.SetGraphs(was)
			q, err := d.NewQueue()
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			ev := q.NewEvent()
			before := d.GraphStats()
			var commit time.Duration
			for i := 0; i < b.N; i++ {
				cb := &runtime.CommandList{}
				cb.NewPass()
				for j := range dispatches {
					in := x
					if j == 0 && c.alter && i%2 == 1 {
						in = z
					}
					cb.Dispatch(add, primitives.Dim3{X: n / 256, Y: 1, Z: 1}, primitives.Dim3{X: 256, Y: 1, Z: 1},
						[]runtime.BufferArg{{Buffer: in, Size: 4 * n, Name: "a"}, {Buffer: y, Size: 4 * n, Name: "b"}, {Buffer: x, Size: 4 * n, Name: "out"}}, p, 0)
				}
				cb.Signal(ev, uint64(i+1))
				t := time.Now()
				sub := q.Submit(cb)
				commit += time.Since(t)
				ev.Wait(uint64(i + 1))
				if err := sub.Err(); err != nil {
					b.Fatal(err)
				}
			}
			after := d.GraphStats()
			b.ReportMetric(float64(commit.Microseconds())/float64(b.N), "commit-µs")
			b.ReportMetric(float64(after.Launches-before.Launches)/float64(b.N), "graph-launches/op")
			b.ReportMetric(float64(after.Updates-before.Updates)/float64(b.N), "updates/op")
		})
	}
}

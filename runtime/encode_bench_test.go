package runtime_test

import (
	"fmt"
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

// BenchmarkEncodeLength evaluates chains of growing length with one
// dispatch per command buffer, every node reading the same constants: the
// case where a buffer is read across many passes before the host sees any
// of them complete. Encoding must take linear time, so encode-µs/node stays
// flat as the graph grows.
func BenchmarkEncodeLength(b *testing.B) {
	for _, n := range []int{1000, 5000, 20000, 40000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			dev := cpu.New(cpu.Options{Workers: 1})
			rt, _ := runtime.New(dev, runtime.Options{DispatchesPerCommandBuffer: 1})
			defer rt.Close()
			xs := inputs()
			if err := rt.Eval(xs...); err != nil {
				b.Fatal(err)
			}
			var enc float64
			for b.Loop() {
				h := xs[0]
				for i := range n {
					if i%2 == 0 {
						h = ops.Add(h, xs[1])
					} else {
						h = ops.Mul(h, xs[2])
					}
				}
				if err := rt.Eval(h); err != nil {
					b.Fatal(err)
				}
				enc += float64(rt.LastStats().Encode.Nanoseconds())
			}
			b.ReportMetric(enc/float64(b.N)/float64(n)/1000, "encode-µs/node")
		})
	}
}

// TestReadsStayFew: a constant read by every node of a long chain, one
// dispatch per command buffer and the host never observing completion in
// between, leaves one tracked read, not one per pass (which made encoding
// quadratic in the graph's length).
func TestReadsStayFew(t *testing.T) {
	dev := cpu.New(cpu.Options{Check: true, Lazy: true})
	rt, _ := runtime.New(dev, runtime.Options{DispatchesPerCommandBuffer: 1})
	defer func() { rt.Close(); dev.Close() }()
	xs := inputs()
	if err := rt.Eval(xs...); err != nil {
		t.Fatal(err)
	}
	h := xs[0]
	for range 300 {
		h = ops.Add(h, xs[1])
	}
	p, err := rt.EvalAsync(h)
	if err != nil {
		t.Fatal(err)
	}
	if n := runtime.ReadEntries(rt, xs[1]); n > 1 {
		t.Errorf("%d reads tracked for the shared constant after a 300-pass chain; want 1", n)
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if hz := dev.Hazards(); len(hz) > 0 {
		t.Fatal(hz[0])
	}
	if v, _ := h.Float32s(); v[0] != 1+300*1 {
		t.Fatalf("h[0] = %v, want %v", v[0], 1+300*1)
	}
}

package cpu_test

import (
	"strings"
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// TestSampleSplitUnsupported: a pass of the split sampling form (which the
// CPU's caps never ask for) fails with an error instead of drawing from a
// scratch the first pass never filled.
func TestSampleSplitUnsupported(t *testing.T) {
	dev := cpu.New(cpu.Options{})
	defer dev.Close()
	q, _ := dev.NewQueue()
	defer q.Close()
	k, err := dev.Kernel("sample_f32")
	if err != nil {
		t.Fatal(err)
	}
	const s, v, w = 1, 8, 1
	sizes := []int64{s * v * 4, s * primitives.SampleSettings * 4, s * primitives.SampleKeys * 4, s * 4, s * w * 4, s*v*4 + s*8, s * 4}
	names := []string{"logits", "settings", "keys", "counters", "window", "weights", "out"}
	args := make([]runtime.BufferArg, len(sizes))
	for i, n := range sizes {
		b, err := dev.NewBuffer(n)
		if err != nil {
			t.Fatal(err)
		}
		access := primitives.Read
		if i >= 5 {
			access = primitives.Write
		}
		args[i] = runtime.BufferArg{Buffer: b, Size: n, Access: access, Name: names[i]}
	}
	for _, pass := range []uint32{primitives.SampleFirst, primitives.SampleFinal} {
		l := &runtime.CommandList{}
		l.NewPass()
		l.Dispatch(k, primitives.Dim3{X: 1, Y: 1, Z: 1}, primitives.Dim3{X: primitives.SampleThreads, Y: 1, Z: 1}, args,
			&primitives.SampleParams{S: s, V: v, W: w, Pass: pass, Groups: 1}, 0)
		ev := q.NewEvent()
		l.Signal(ev, 1)
		sub := q.Submit(l)
		ev.Wait(1)
		if err := sub.Err(); err == nil || !strings.Contains(err.Error(), "unsupported") {
			t.Errorf("pass %d: err = %v, want an error saying unsupported", pass, err)
		}
	}
}

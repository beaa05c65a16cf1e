package cuda

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

var registerUserScale = sync.OnceValue(func() error { return primitives.Register(userScale) })

// TestPDLUserKernelInReplay runs, on a GPU that can do programmatic
// dependent launch, an identified list whose graph mixes catalog kernels
// and a user kernel (compiled at first use: kernel.user), with PDL on:
// upload x, t1 = x + b, t2 = user_scale(t1), t3 = t2 + b,
// t4 = user_scale(t3), out = t4 · c. The edges into the user kernel's
// nodes stay ordinary (4 programmatic edges: the upload's copy to the
// first add, each user kernel to the node after it, the last node to the
// status copy), and every submission's result is the float32 reference bit
// for bit, also when replayed with new inputs.
func TestPDLUserKernelInReplay(t *testing.T) {
	d := replayDevice(t)
	if err := d.pdlSupport(); err != nil {
		t.Skip(err)
	}
	if err := registerUserScale(); err != nil {
		t.Fatal(err)
	}
	rk, err := d.Kernel(userScale.Name)
	if err != nil {
		t.Fatal(err)
	}
	uk := rk.(*kernel)
	if !uk.user {
		t.Fatal("the user kernel is not marked as one (kernel.user)")
	}
	add, err := d.Kernel("add_f32")
	if err != nil {
		t.Fatal(err)
	}
	mul, err := d.Kernel("mul_f32")
	if err != nil {
		t.Fatal(err)
	}
	const n = 3001
	const scale = float32(0.75)
	r := rand.New(rand.NewPCG(31, 32))
	bv, cv := randF32(r, n), randF32(r, n)
	a, b, c := f32Buffer(t, d, make([]float32, n)), f32Buffer(t, d, bv), f32Buffer(t, d, cv)
	var ts []runtime.Buffer
	for range 5 {
		ts = append(ts, f32Buffer(t, d, make([]float32, n)))
	}
	out := ts[4]
	q, err := d.NewQueue()
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ev := q.NewEvent()
	full, _ := primitives.NewElementwiseParams([]int{n}, []int{n}, []int{n})
	sp := &userScaleParams{N: n, Scale: scale}
	grid, group := primitives.Dim3{X: (n + 255) / 256, Y: 1, Z: 1}, primitives.Dim3{X: 256, Y: 1, Z: 1}
	was := d.PDL()
	defer d.SetPDL(was)
	if err := d.SetPDL(true); err != nil {
		t.Fatal(err)
	}
	withGraphs(t, d, true, func() {
		for step := range 4 {
			x := randF32(r, n)
			raw := make([]byte, 4*n)
			for i, v := range x {
				binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
			}
			l := &runtime.CommandList{Replay: 1<<60 + 7}
			l.NewPass()
			l.Upload(a, 0, raw)
			for _, s := range []struct {
				k       runtime.Kernel
				in, in2 runtime.Buffer
				o       runtime.Buffer
			}{{add, a, b, ts[0]}, {rk, ts[0], nil, ts[1]}, {add, ts[1], b, ts[2]}, {rk, ts[2], nil, ts[3]}, {mul, ts[3], c, out}} {
				if s.in2 == nil {
					l.Dispatch(s.k, grid, group, []runtime.BufferArg{arg(s.in, "a", primitives.Read), arg(s.o, "out", primitives.Write)}, sp, 0)
				} else {
					l.Dispatch(s.k, grid, group, []runtime.BufferArg{arg(s.in, "a", primitives.Read), arg(s.in2, "b", primitives.Read), arg(s.o, "out", primitives.Write)}, full, 0)
				}
				l.Barrier()
			}
			l.Signal(ev, uint64(step+1))
			before := d.GraphStats()
			sub := q.Submit(l)
			ev.Wait(uint64(step + 1))
			if err := sub.Err(); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			st := d.GraphStats()
			if step == 0 && st.Programmatic-before.Programmatic != 4 {
				t.Errorf("the exec was built with %d programmatic edges, want 4", st.Programmatic-before.Programmatic)
			}
			if st.Replays-before.Replays != 1 || st.Failures != before.Failures {
				t.Errorf("step %d: statistics %+v then %+v, want one replay and no failure", step, before, st)
			}
			got := readF32(t, out)
			for i := range x {
				t1 := float32(float64(x[i]) + float64(bv[i]))
				t2 := float32(float64(t1) * float64(scale))
				t3 := float32(float64(t2) + float64(bv[i]))
				t4 := float32(float64(t3) * float64(scale))
				want := float32(float64(t4) * float64(cv[i]))
				if math.Float32bits(got[i]) != math.Float32bits(want) {
					t.Fatalf("step %d: out[%d] = %v, want %v", step, i, got[i], want)
				}
			}
		}
	})
}

package runtime_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

// Fault injection. faultDevice wraps the CPU device and replaces dispatches,
// at random, by the test_fault kernel, which fails without writing: the
// same accesses are encoded (so ordering and hazard checking see the same
// program), only the kernel's work is lost.

var errInjected = errors.New("injected fault")

func init() {
	if err := cpu.Register("test_fault", func(*cpu.Call) error { return errInjected }); err != nil {
		panic(err)
	}
}

type faultDevice struct {
	*cpu.Device
	rng   *rand.Rand // used only while encoding, under the runtime's lock
	rate  float64
	fault runtime.Kernel
	hits  int
}

func newFaultDevice(t *testing.T, co cpu.Options, seed uint64) *faultDevice {
	dev := cpu.New(co)
	k, err := dev.Kernel("test_fault")
	if err != nil {
		t.Fatal(err)
	}
	return &faultDevice{Device: dev, rng: rand.New(rand.NewPCG(seed, 7)), fault: k}
}

func (d *faultDevice) NewQueue() (runtime.Queue, error) {
	q, err := d.Device.NewQueue()
	return faultQueue{q, d}, err
}

type faultQueue struct {
	runtime.Queue
	d *faultDevice
}

// Submit replaces dispatches of a copy of the list: a submitted list is
// read-only (a replay submits the recorded one again).
func (q faultQueue) Submit(l *runtime.CommandList) runtime.Submission {
	if q.d.rate > 0 {
		c := &runtime.CommandList{Passes: make([]runtime.Pass, len(l.Passes)), Signals: l.Signals}
		for i, p := range l.Passes {
			cmds := slices.Clone(p.Commands)
			for j := range cmds {
				if cmds[j].Kind == runtime.CmdDispatch && q.d.rng.Float64() < q.d.rate {
					cmds[j].Kernel = q.d.fault
					q.d.hits++
				}
			}
			c.Passes[i].Commands = cmds
		}
		l = c
	}
	return q.Queue.Submit(l)
}

// faultModel is a small decode loop: per layer, h = x·w, an in-place write
// of h into the layer's cache at the step's slot, and the cache's column
// sums; host holds the reference caches, updated only by steps that
// succeeded.
type faultModel struct {
	rt     *runtime.Runtime
	w      *graph.Array
	wHost  []float32
	caches []*graph.Array
	host   [][]float32
	r      *rand.Rand
}

const faultRows, faultCols = 8, 8

func newFaultModel(t *testing.T, rt *runtime.Runtime, layers int) *faultModel {
	r := loomtest.Rand(21)
	m := &faultModel{rt: rt, r: r, wHost: loomtest.Float32s(r, faultCols*faultCols, -1, 1)}
	m.w = graph.FromFloat32s(m.wHost, faultCols, faultCols)
	for range layers {
		m.host = append(m.host, loomtest.Float32s(r, faultRows*faultCols, -1, 1))
	}
	m.reload()
	if err := rt.Eval(append([]*graph.Array{m.w}, m.caches...)...); err != nil {
		t.Fatal(err)
	}
	return m
}

// reload rebuilds the caches from the reference: what a server does when a
// failed step has consumed them.
func (m *faultModel) reload() {
	m.caches = m.caches[:0]
	for _, h := range m.host {
		m.caches = append(m.caches, graph.FromFloat32s(append([]float32(nil), h...), faultRows, faultCols))
	}
}

// step runs one step and returns its error; on success it checks every
// column sum against the float64 reference and updates the reference.
func (m *faultModel) step(t *testing.T, s int) error {
	t.Helper()
	slot := int32(s % faultRows)
	var sums []*graph.Array
	next := make([][]float32, len(m.host))
	for l := range m.caches {
		x := loomtest.Float32s(m.r, faultCols, -1, 1)
		h := ops.Apply(tMatMul{}, graph.FromFloat32s(x, 1, faultCols), m.w)[0]
		m.caches[l] = ops.Apply(tScatter{}, m.caches[l], graph.FromInt32s([]int32{slot}), h)[0]
		sums = append(sums, ops.Apply(tReadSum{}, m.caches[l])[0])
		next[l] = append([]float32(nil), m.host[l]...)
		for j := range faultCols {
			var v float64
			for k := range faultCols {
				v += float64(x[k]) * float64(m.wHost[k*faultCols+j])
			}
			next[l][int(slot)*faultCols+j] = float32(v)
		}
	}
	if err := m.rt.Eval(append(sums, m.caches...)...); err != nil {
		var de *runtime.DispatchError
		for _, a := range append(sums, m.caches...) {
			if errors.As(err, &de) && a.Err() == nil {
				t.Fatalf("step %d failed in a kernel (%v) but an output has no error", s, err)
			}
		}
		return err
	}
	for l, a := range sums {
		got, err := a.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float64, faultCols)
		for i := range faultRows {
			for j := range faultCols {
				want[j] += float64(next[l][i*faultCols+j])
			}
		}
		if err := loomtest.CloseErr(f64(got), want, 1e-4, 1e-4); err != nil {
			t.Fatalf("step %d layer %d: %v", s, l, err)
		}
	}
	m.host = next
	return nil
}

// inUse is the device memory held outside the pool, once the arrays that
// are garbage have returned theirs.
func inUse(rt *runtime.Runtime, want int64) int64 {
	var n int64
	for range 100 {
		goruntime.GC()
		held, pooled := rt.MemoryInUse()
		if n = held - pooled; n == want {
			break
		}
		time.Sleep(time.Millisecond)
	}
	return n
}

// TestFaultInjection makes kernels fail at random dispatches of a decode
// loop, on the plain and the checking devices. Every failed step reports
// the injected error at the call site of an op of this file; the runtime
// keeps working; every step that succeeds (during and after the faults) is
// right; an array computed before the faults stays readable; memory in use
// returns to its level; the checking devices see no hazard.
func TestFaultInjection(t *testing.T) {
	for _, co := range []cpu.Options{{}, {Check: true}, {Check: true, Lazy: true, Seed: 8}} {
		for _, n := range []int{1, 40} {
			t.Run(fmt.Sprintf("N=%d/%+v", n, co), func(t *testing.T) {
				dev := newFaultDevice(t, co, uint64(n)+co.Seed)
				defer dev.Close()
				rt, _ := runtime.New(dev, runtime.Options{DispatchesPerCommandBuffer: n})
				defer rt.Close()
				m := newFaultModel(t, rt, 3)
				kept := ops.Apply(tMatMul{}, m.w, m.w)[0]
				if err := rt.Eval(kept); err != nil {
					t.Fatal(err)
				}
				keptVals, _ := kept.Float32s()
				base := inUse(rt, -1)

				dev.rate = 0.04
				failed := 0
				for s := range 40 {
					err := m.step(t, s)
					if err == nil {
						continue
					}
					failed++
					var ge *graph.Error
					if !errors.Is(err, errInjected) || !errors.As(err, &ge) || !strings.HasPrefix(ge.Site, "runtime/fault_test.go:") {
						t.Fatalf("step %d: error %v does not name an op of this file and wrap the injected fault", s, err)
					}
					m.reload()
				}
				if failed == 0 || failed == 40 {
					t.Fatalf("%d of 40 steps failed (%d faults injected); the test needs some of each", failed, dev.hits)
				}
				dev.rate = 0
				for s := 40; s < 50; s++ {
					if err := m.step(t, s); err != nil {
						t.Fatalf("step %d without faults: %v", s, err)
					}
				}
				if got, err := kept.Float32s(); err != nil || fmt.Sprint(got) != fmt.Sprint(keptVals) {
					t.Fatalf("array computed before the faults: %v", err)
				}
				if hz := dev.Hazards(); len(hz) > 0 {
					t.Fatalf("%d hazards; first: %v", len(hz), hz[0])
				}
				// The caches of the last step are live, as they were when
				// base was measured; the recorded plans' buffers go back.
				rt.ReleaseMemory()
				if got := inUse(rt, base); got != base {
					t.Fatalf("memory in use %d bytes after the faults, %d before", got, base)
				}
				goruntime.KeepAlive(m)
				goruntime.KeepAlive(kept)
			})
		}
	}
}

// TestMemoryLimitMidPlan: the memory limit is hit partway through building
// a step's plan. The Eval fails with ErrMemoryLimit and changes nothing: the
// caches are not overwritten and keep their values; the same in-place
// updates then succeed without the oversized part, memory in use is back to
// its level, and later steps are right.
func TestMemoryLimitMidPlan(t *testing.T) {
	dev := cpu.New(cpu.Options{Check: true, Seed: 12})
	defer dev.Close()
	rt, _ := runtime.New(dev, runtime.Options{MemoryLimit: 32 << 10, DispatchesPerCommandBuffer: 2})
	defer rt.Close()
	m := newFaultModel(t, rt, 3)
	base := inUse(rt, -1)
	before := make([][]float32, len(m.caches))
	for l, c := range m.caches {
		before[l], _ = c.Float32s()
	}
	// The step's own nodes fit; an extra chain of 4 KiB intermediates that
	// all stay live does not, and it is planned after them.
	wide := graph.FromFloat32s(loomtest.Float32s(m.r, 32*32, -1, 1), 32, 32)
	if err := rt.Eval(wide); err != nil {
		t.Fatal(err)
	}
	var outs []*graph.Array
	for l := range m.caches {
		outs = append(outs, ops.Apply(tScatter{}, m.caches[l], graph.FromInt32s([]int32{1}), graph.Full(graph.Float32, 2, 1, faultCols))[0])
	}
	h := wide
	for range 8 {
		h = ops.Apply(tMatMul{}, h, wide)[0]
		outs = append(outs, h)
	}
	err := rt.Eval(outs...)
	if !errors.Is(err, runtime.ErrMemoryLimit) {
		t.Fatalf("got %v, want runtime.ErrMemoryLimit", err)
	}
	for l, c := range m.caches {
		if c.Overwritten() || c.Err() != nil {
			t.Fatalf("cache %d consumed by the failed plan", l)
		}
		if v, err := c.Float32s(); err != nil || fmt.Sprint(v) != fmt.Sprint(before[l]) {
			t.Fatalf("cache %d changed by the failed plan: %v", l, err)
		}
	}
	if err := rt.Eval(outs[:len(m.caches)]...); err != nil {
		t.Fatalf("the updates without the oversized chain: %v", err)
	}
	for l := range m.caches {
		m.caches[l] = outs[l]
		for j := range faultCols {
			m.host[l][faultCols+j] = 2
		}
	}
	outs, h = nil, nil
	if got := inUse(rt, base+32*32*4); got != base+32*32*4 {
		t.Fatalf("memory in use %d bytes after the failed plan, want %d", got, base+32*32*4)
	}
	goruntime.KeepAlive(wide)
	for s := range 5 {
		if err := m.step(t, s); err != nil {
			t.Fatalf("step %d after the failed plan: %v", s, err)
		}
	}
	if hz := dev.Hazards(); len(hz) > 0 {
		t.Fatal(hz[0])
	}
}

// TestCloseDuringEvalAsync closes the runtime while steps submitted with
// EvalAsync run. Their results are right and readable afterwards, later
// Evals return ErrClosed, the memory of the closed runtime goes back to the
// device as its arrays are dropped, and a new runtime on the same device
// works.
func TestCloseDuringEvalAsync(t *testing.T) {
	for _, co := range []cpu.Options{{}, {Check: true, Seed: 13}} {
		t.Run(fmt.Sprintf("%+v", co), func(t *testing.T) {
			dev := cpu.New(co)
			defer dev.Close()
			rt, _ := runtime.New(dev, runtime.Options{DispatchesPerCommandBuffer: 1})
			x := graph.FromFloat32s([]float32{1, 2, 3}, 3)
			var results []*graph.Array
			var pend []*runtime.Pending
			for i := range 5 {
				h := x
				for range 30 {
					h = ops.Add(h, x)
				}
				h = ops.Mul(h, graph.Scalar(graph.Float32, float64(i)))
				p, err := rt.EvalAsync(h)
				if err != nil {
					t.Fatal(err)
				}
				results, pend = append(results, h), append(pend, p)
			}
			closed := make(chan struct{})
			go func() { rt.Close(); close(closed) }()
			if _, err := rt.EvalAsync(ops.Add(x, x)); err != nil && !errors.Is(err, runtime.ErrClosed) {
				t.Fatalf("EvalAsync racing with Close: %v", err)
			}
			<-closed
			for i, p := range pend {
				if err := p.Wait(); err != nil {
					t.Fatal(err)
				}
				if v, err := results[i].Float32s(); err != nil || v[2] != float32(3*31*i) {
					t.Fatalf("step %d: %v, %v", i, v, err)
				}
			}
			if err := rt.Eval(ops.Add(x, x)); !errors.Is(err, runtime.ErrClosed) {
				t.Fatalf("Eval after Close: %v", err)
			}
			results, pend, x = nil, nil, nil
			if got := inUse(rt, 0); got != 0 {
				t.Fatalf("closed runtime still holds %d bytes once its arrays are dropped", got)
			}
			if held, _ := rt.MemoryInUse(); held != 0 {
				t.Fatalf("closed runtime holds %d bytes", held)
			}
			rt2, _ := runtime.New(dev, runtime.Options{})
			defer rt2.Close()
			y := ops.Add(graph.FromFloat32s([]float32{1, 2}), graph.FromFloat32s([]float32{3, 4}))
			if err := rt2.Eval(y); err != nil {
				t.Fatal(err)
			}
			if v, _ := y.Float32s(); fmt.Sprint(v) != "[4 6]" {
				t.Fatalf("new runtime: %v", v)
			}
		})
	}
}

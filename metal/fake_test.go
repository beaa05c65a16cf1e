package metal_test

import (
	"errors"
	"fmt"
	"reflect"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/internal/mtlfake"
	"github.com/loomrt/loom/metal"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// What only the Metal device does, on Linux: its Go runs over the recording
// fake of the Objective-C layer (internal/mtlfake), which checks every call
// against Metal's ordering rules with the checking device's happens-before
// model and runs the dispatches with the CPU kernels.

func fakeDevice(t *testing.T, opts mtlfake.Options) (*mtlfake.Device, *metal.Device) {
	t.Helper()
	f, ok := loomtest.MetalFake(t, opts)
	if !ok {
		t.Skip("no g++: the fake reads the MSL kernels through it")
	}
	return f.Fake, f.Device()
}

func fakeRuntime(t *testing.T, fo mtlfake.Options, opts runtime.Options) (*mtlfake.Device, *runtime.Runtime) {
	t.Helper()
	f, dev := fakeDevice(t, fo)
	rt, err := runtime.New(dev, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	return f, rt
}

// clean fails the test on a hazard or a call against Metal's rules.
func clean(t *testing.T, f *mtlfake.Device) {
	t.Helper()
	if hz := f.Hazards(); len(hz) > 0 {
		t.Fatalf("%d hazards, first: %v", len(hz), hz[0])
	}
	if v := f.Violations(); len(v) > 0 {
		t.Fatalf("%d calls against Metal's rules, first: %s", len(v), v[0])
	}
}

func TestOpenOffMacOS(t *testing.T) {
	if goruntime.GOOS == "darwin" {
		t.Skip("Open opens the Mac's GPU")
	}
	for range 2 { // the error is kept
		if _, err := metal.Open(); err == nil || !strings.Contains(err.Error(), "Metal is available on macOS only") {
			t.Fatalf("Open: %v, want the macOS-only error", err)
		}
	}
}

func TestFakeDeviceCaps(t *testing.T) {
	_, dev := fakeDevice(t, mtlfake.Options{})
	c := dev.Caps()
	if c.Device != "metal" || c.SIMDWidth != 32 || c.MaxThreadsPerGroup != 1024 || c.MaxSharedBytes != 32<<10 || c.Cores != 8 || c.GatedGEMVMaxRows != 1 {
		t.Fatalf("caps %+v: want metal, SIMD 32, 1024 threads, 32 KiB, the default 8 cores, gated GEMV of 1 row", c)
	}
	if dev.Name() != "Fake Metal GPU" {
		t.Fatalf("name %q", dev.Name())
	}
	_, dev = fakeDevice(t, mtlfake.Options{Cores: 38})
	if got := dev.Caps().Cores; got != 38 {
		t.Fatalf("cores %d, want the 38 the GPU reports", got)
	}
	for _, c := range []struct {
		opts mtlfake.Options
		want string
	}{
		{mtlfake.Options{Unsupported: true}, "need the Apple7 GPU family"},
		{mtlfake.Options{SIMDWidth: 64}, "SIMD groups have 64 threads"},
	} {
		fake := mtlfake.New(c.opts)
		_, err := metal.New(fake)
		fake.Close()
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "unsupported") {
			t.Errorf("%+v: error %v, want one saying unsupported: %s", c.opts, err, c.want)
		}
	}
}

func TestFakeKernels(t *testing.T) {
	_, dev := fakeDevice(t, mtlfake.Options{})
	k, err := dev.Kernel("add_f32")
	if err != nil || k.Name() != "add_f32" {
		t.Fatalf("add_f32: %v, %v", k, err)
	}
	if again, _ := dev.Kernel("add_f32"); again != k {
		t.Fatalf("the pipeline is not cached")
	}
	_, err = dev.Kernel("no_such_kernel")
	if !errors.Is(err, runtime.ErrUnsupportedKernel) || !strings.Contains(err.Error(), "no_such_kernel") {
		t.Fatalf("unknown kernel: %v, want ErrUnsupportedKernel naming it", err)
	}
}

func TestFakeBuffers(t *testing.T) {
	_, dev := fakeDevice(t, mtlfake.Options{})
	if _, err := dev.NewBuffer(-1); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Fatalf("negative size: %v", err)
	}
	b, err := dev.NewBuffer(8)
	if err != nil {
		t.Fatal(err)
	}
	if b.Len() != 8 {
		t.Fatalf("length %d", b.Len())
	}
	if err := b.Write(4, []byte{1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if err := b.Read(4, got); err != nil || !slices.Equal(got, []byte{1, 2, 3, 4}) {
		t.Fatalf("read %v, %v", got, err)
	}
	if err := b.Write(6, []byte{1, 2, 3}); err == nil || !strings.Contains(err.Error(), "outside a 8-byte buffer") {
		t.Fatalf("write past the end: %v", err)
	}
	if err := b.Read(-1, got); err == nil {
		t.Fatal("read before the start: no error")
	}
	b.Release()
	b.Release() // harmless
	if err := b.Read(0, got); err == nil || !strings.Contains(err.Error(), "after release") {
		t.Fatalf("read after release: %v", err)
	}
}

// TestFakeEvalChain runs a chain long enough for several command buffers,
// so that fences across command buffers and the event frontier are
// exercised, and compares with a float64 reference.
func TestFakeEvalChain(t *testing.T) {
	f, rt := fakeRuntime(t, mtlfake.Options{Seed: 3, Log: true}, runtime.Options{DispatchesPerCommandBuffer: 3, DispatchesPerPass: 2})
	evalChain(t, rt)
	clean(t, f)
	// The calls of one dispatch and of a command buffer's end, as Metal
	// gets them.
	calls := strings.Join(f.Calls(), "\n")
	for _, want := range []string{
		"setComputePipelineState add_f32", "setBytes 140 bytes index 3", "length 24 index 30",
		"dispatchThreadgroups add_f32", "memoryBarrierWithScope:buffers", "updateFence", "waitForFence",
		"encodeWaitForEvent event#1 value 1", "encodeSignalEvent event#1 value 2", "addCompletedHandler",
	} {
		if !strings.Contains(calls, want) {
			t.Errorf("no call %q", want)
		}
	}
}

// order returns the command buffers of the fake's log in the order they
// were committed and in the order they completed.
func order(calls []string) (committed, completed []string) {
	for _, c := range calls {
		f := strings.Fields(c)
		switch {
		case len(f) == 2 && f[1] == "commit":
			committed = append(committed, f[0])
		case len(f) == 2 && f[1] == "completed":
			completed = append(completed, f[0])
		}
	}
	return committed, completed
}

// TestFakeOutOfOrderCompletion submits independent steps, one command
// buffer each, that complete in an order other than their commits': the
// event's value still only ever means that everything up to it completed
// (the fake reports a value signalled past the frontier), the host sees it
// grow, and every result is right.
func TestFakeOutOfOrderCompletion(t *testing.T) {
	shuffled := 0
	for seed := uint64(1); seed <= 6; seed++ {
		// Not replayed: a replay waits for the work before it.
		f, rt := fakeRuntime(t, mtlfake.Options{Seed: seed, Log: true}, runtime.Options{DispatchesPerCommandBuffer: 1, NoPlanCache: true})
		f.Hold(true) // the steps then run together
		r := loomtest.Rand(seed)
		var outs []*graph.Array
		var wants [][]float64
		var pend []*runtime.Pending
		for range 8 {
			a := loomtest.Float32s(r, 33, -2, 2)
			x := graph.FromFloat32s(a, 33)
			out := ops.Mul(x, x)
			p, err := rt.EvalAsync(out)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]float64, len(a))
			for i, v := range a {
				want[i] = float64(v * v)
			}
			outs, wants, pend = append(outs, out), append(wants, want), append(pend, p)
		}
		f.Hold(false)
		for i, p := range pend {
			if err := p.Wait(); err != nil {
				t.Fatal(err)
			}
			got, err := outs[i].Float64s()
			if err != nil {
				t.Fatal(err)
			}
			loomtest.Close(t, fmt.Sprintf("seed %d step %d", seed, i), got, wants[i], 0, 0)
		}
		rt.Close()
		clean(t, f)
		committed, completed := order(f.Calls())
		if len(committed) != len(completed) || len(committed) < 8 {
			t.Fatalf("seed %d: %d command buffers committed, %d completed", seed, len(committed), len(completed))
		}
		if !slices.Equal(committed, completed) {
			shuffled++
		}
	}
	if shuffled == 0 {
		t.Fatal("no schedule completed command buffers out of order: the test exercises nothing")
	}
}

// TestFakeReuseAcrossEvals: the encoder reuses fences once the host has
// seen their passes complete, and a replay submits the same recorded lists
// again while the earlier submissions may still run. Mixed Evals and
// EvalAsyncs of one structure stay right and ordered.
func TestFakeReuseAcrossEvals(t *testing.T) {
	f, rt := fakeRuntime(t, mtlfake.Options{Seed: 5, Log: true}, runtime.Options{DispatchesPerCommandBuffer: 2, DispatchesPerPass: 1})
	r := loomtest.Rand(2)
	w := loomtest.Float32s(r, 16, -1, 1)
	wa := graph.FromFloat32s(w, 4, 4)
	if err := rt.Eval(wa); err != nil {
		t.Fatal(err)
	}
	var pend []*runtime.Pending
	var outs []*graph.Array
	var wants [][]float64
	for step := range 12 {
		xs := loomtest.Float32s(r, 8, -1, 1)
		x := graph.FromFloat32s(xs, 2, 4)
		out := ops.Sub(ops.MatMul(ops.Add(x, x), wa), x)
		want := make([]float64, 8)
		for i := range 2 {
			for j := range 4 {
				var s float64
				for k := range 4 {
					s += float64(2*xs[i*4+k]) * float64(w[k*4+j])
				}
				want[i*4+j] = float64(float32(s) - xs[i*4+j])
			}
		}
		if step%3 == 2 {
			if err := rt.Eval(out); err != nil {
				t.Fatal(err)
			}
		} else {
			p, err := rt.EvalAsync(out)
			if err != nil {
				t.Fatal(err)
			}
			pend = append(pend, p)
		}
		outs, wants = append(outs, out), append(wants, want)
	}
	for _, p := range pend {
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	for i, out := range outs {
		got, err := out.Float64s()
		if err != nil {
			t.Fatal(err)
		}
		loomtest.Close(t, fmt.Sprintf("step %d", i), got, wants[i], 1e-6, 1e-6)
	}
	clean(t, f)
	fences, waits := 0, 0
	for _, c := range f.Calls() {
		fences += strings.Count(c, "newFence")
		waits += strings.Count(c, "waitForFence")
	}
	if hits := rt.CacheStats().Hits; hits < 8 {
		t.Fatalf("%d replays, want most steps replayed", hits)
	}
	if fences == 0 || fences >= waits {
		t.Fatalf("%d fences made for %d fence waits: fences are not reused", fences, waits)
	}
}

// TestFakeCommandBufferError: a command buffer that fails (some never run
// their signal, and the Metal device signals the value from the host)
// fails its evaluation, which names Metal's error; the next evaluations
// work.
func TestFakeCommandBufferError(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		var mu sync.Mutex
		failNext := false
		fail := func(int) bool {
			mu.Lock()
			defer mu.Unlock()
			f := failNext
			failNext = false
			return f
		}
		f, rt := fakeRuntime(t, mtlfake.Options{Seed: seed, Fail: fail}, runtime.Options{})
		x := graph.FromFloat32s([]float32{1, 2, 3}, 3)
		if err := rt.Eval(x); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		failNext = true
		mu.Unlock()
		bad := ops.Add(x, x)
		err := rt.Eval(bad)
		if err == nil || !strings.Contains(err.Error(), "metal: command buffer failed: fake metal: commandbuffer") {
			t.Fatalf("seed %d: error %v, want Metal's command buffer error", seed, err)
		}
		if bad.Err() == nil {
			t.Fatalf("seed %d: the failed evaluation's output has no error", seed)
		}
		good := ops.Mul(x, x)
		if err := rt.Eval(good); err != nil {
			t.Fatalf("seed %d: the evaluation after the failure: %v", seed, err)
		}
		if v, _ := good.Float32s(); !slices.Equal(v, []float32{1, 4, 9}) {
			t.Fatalf("seed %d: %v", seed, v)
		}
		clean(t, f)
	}
}

// TestFakeStatusRecord: a kernel that met a bad entry fills its status
// record, and the evaluation fails with an error naming the kernel, the
// argument, the entry and the op's call site; two entries naming one KV
// slot read as the CPU device's check.
func TestFakeStatusRecord(t *testing.T) {
	report := func(kernel string, words ...uint32) func(string) []uint32 {
		return func(k string) []uint32 {
			if k == kernel {
				return words
			}
			return nil
		}
	}
	f, rt := fakeRuntime(t, mtlfake.Options{StatusIndex: metal.StatusIndex, Report: report("gather_rows_f32_i32", 2, 2, 3, 10, 0, 0)}, runtime.Options{})
	table := graph.FromFloat32s(make([]float32, 20), 10, 2)
	idx := ops.Add(graph.FromInt32s([]int32{0, 9, 3, 1}), graph.FromInt32s([]int32{0, 0, 0, 0}))
	out := ops.GatherRows(table, idx)
	err := rt.Eval(out)
	var ge *graph.Error
	if err == nil || !errors.As(err, &ge) || !strings.HasPrefix(ge.Site, "metal/fake_test.go:") ||
		!strings.Contains(err.Error(), "metal kernel gather_rows_f32_i32: indices entry 3 is 10, out of range (2 bad entries)") {
		t.Fatalf("error %v, want the gather's, naming indices entry 3 at this file's call site", err)
	}
	clean(t, f)

	f, rt = fakeRuntime(t, mtlfake.Options{StatusIndex: metal.StatusIndex, Report: report("kv_write_f16_i32", 1, 5, 2, 9, 1, 1)}, runtime.Options{})
	cache := func() *graph.Array { return graph.Full(graph.Float16, 0, 4, 8, 2, 16) }
	rows := graph.Full(graph.Float16, 1, 3, 2, 16)
	slots := ops.Add(graph.FromInt32s([]int32{3, 9, 9}), graph.FromInt32s([]int32{0, 0, 0}))
	k, v := ops.KVWrite(cache(), cache(), rows, rows, slots)
	err = rt.Eval(k, v)
	if err == nil || !strings.Contains(err.Error(), "slot_mapping[2] = 9 is also slot_mapping[1]") {
		t.Fatalf("error %v, want the CPU device's words for a slot written twice", err)
	}
	clean(t, f)

	// A copy of an upload reporting (which a correct copy never does) is
	// still an error, though no op of the list is to blame.
	f, rt = fakeRuntime(t, mtlfake.Options{StatusIndex: metal.StatusIndex, Report: report("copy_bytes", 1, 1, 0, 0, 0, 0)}, runtime.Options{})
	_ = f
	var last error
	for i := range 4 { // the third evaluation replays, with an upload
		y := ops.Add(graph.FromFloat32s([]float32{float32(i), 2}, 2), graph.FromFloat32s([]float32{1, 1}, 2))
		last = rt.Eval(y)
	}
	if last == nil || !strings.Contains(last.Error(), "metal kernel copy_bytes: src entry 0") {
		t.Fatalf("a replay's upload copy reporting: %v", last)
	}
}

// TestFakeCloseWithWorkInFlight closes the runtime while steps run: they
// complete and are right, the queue is released only once nothing is in
// flight (the fake reports otherwise), and later work fails with ErrClosed.
func TestFakeCloseWithWorkInFlight(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		f, dev := fakeDevice(t, mtlfake.Options{Seed: seed})
		rt, err := runtime.New(dev, runtime.Options{DispatchesPerCommandBuffer: 1})
		if err != nil {
			t.Fatal(err)
		}
		x := graph.FromFloat32s([]float32{1, 2, 3}, 3)
		var results []*graph.Array
		var pend []*runtime.Pending
		for i := range 4 {
			h := x
			for range 10 {
				h = ops.Add(h, x)
			}
			h = ops.Mul(h, graph.Scalar(graph.Float32, float64(i)))
			p, err := rt.EvalAsync(h)
			if err != nil {
				t.Fatal(err)
			}
			results, pend = append(results, h), append(pend, p)
		}
		rt.Close()
		rt.Close() // harmless
		for i, p := range pend {
			if err := p.Wait(); err != nil {
				t.Fatal(err)
			}
			if v, err := results[i].Float32s(); err != nil || v[2] != float32(3*11*i) {
				t.Fatalf("seed %d step %d: %v, %v", seed, i, v, err)
			}
		}
		if err := rt.Eval(ops.Add(x, x)); !errors.Is(err, runtime.ErrClosed) {
			t.Fatalf("Eval after Close: %v", err)
		}
		clean(t, f)
	}
	// The queue itself, closed while its command buffers have not started:
	// Close waits for them (the fake reports a queue released under work
	// in flight), and a list submitted afterwards fails with ErrClosed,
	// its value still reached.
	f, dev := fakeDevice(t, mtlfake.Options{})
	q, err := dev.NewQueue()
	if err != nil {
		t.Fatal(err)
	}
	ev := q.NewEvent()
	k, err := dev.Kernel("neg_f32")
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := primitives.LookupKernel("neg_f32")
	f.Hold(true)
	var subs []runtime.Submission
	for v := uint64(1); v <= 3; v++ {
		a, _ := dev.NewBuffer(64)
		out, _ := dev.NewBuffer(64)
		var l runtime.CommandList
		l.NewPass()
		l.Dispatch(k, primitives.Dim3{X: 1, Y: 1, Z: 1}, primitives.Dim3{X: 16, Y: 1, Z: 1}, []runtime.BufferArg{
			{Buffer: a, Size: 64, Access: primitives.Read, Name: "a"}, {Buffer: out, Size: 64, Access: primitives.Write, Name: "out"},
		}, reflect.New(reflect.TypeOf(spec.Params).Elem()).Interface(), 0)
		l.Signal(ev, v)
		subs = append(subs, q.Submit(&l))
	}
	closed := make(chan struct{})
	go func() { q.Close(); close(closed) }()
	// Time for Close to reach its wait (a Close that does not wait
	// releases the queue meanwhile, under the held work).
	time.Sleep(20 * time.Millisecond)
	f.Hold(false)
	<-closed
	q.Close()
	for _, s := range subs {
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
	}
	var l runtime.CommandList
	l.Signal(ev, 4)
	if err := q.Submit(&l).Err(); !errors.Is(err, runtime.ErrClosed) {
		t.Fatalf("submit after Close: %v", err)
	}
	ev.Wait(4)
	clean(t, f)
}

// TestFakeRefusedDispatches: a dispatch the GPU cannot be trusted with is
// left out and reported as the list's dispatch, by index; the others run.
func TestFakeRefusedDispatches(t *testing.T) {
	f, dev := fakeDevice(t, mtlfake.Options{})
	_, other := fakeDevice(t, mtlfake.Options{})
	q, err := dev.NewQueue()
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	add, err := dev.Kernel("add_f32")
	if err != nil {
		t.Fatal(err)
	}
	neg, err := dev.Kernel("neg_f32")
	if err != nil {
		t.Fatal(err)
	}
	buf := func(d *metal.Device) runtime.Buffer {
		b, err := d.NewBuffer(16)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b, out := buf(dev), buf(dev), buf(dev)
	args := func(bs ...runtime.Buffer) []runtime.BufferArg {
		names := []string{"a", "b", "out"}
		var r []runtime.BufferArg
		for i, x := range bs {
			r = append(r, runtime.BufferArg{Buffer: x, Size: 16, Access: primitives.Read, Name: names[i]})
		}
		return r
	}
	spec, _ := primitives.LookupKernel("add_f32")
	params := func() any { return reflect.New(reflect.TypeOf(spec.Params).Elem()).Interface() }
	one, threads := primitives.Dim3{X: 1, Y: 1, Z: 1}, primitives.Dim3{X: 4, Y: 1, Z: 1}
	ev := q.NewEvent()
	var value uint64
	for _, c := range []struct {
		name   string
		k      runtime.Kernel
		grid   primitives.Dim3
		group  primitives.Dim3
		args   []runtime.BufferArg
		params any
		shared int
		want   string
	}{
		{"threads", add, one, primitives.Dim3{X: 2048, Y: 1, Z: 1}, args(a, b, out), params(), 0, "2048 threads per threadgroup, the pipeline allows 1 to 1024"},
		{"empty grid", add, primitives.Dim3{X: 0, Y: 1, Z: 1}, threads, args(a, b, out), params(), 0, "is empty"},
		{"shared", add, one, threads, args(a, b, out), params(), 64 << 10, "65536 bytes of threadgroup memory, the device has 32768"},
		{"arguments", add, one, threads, args(a, b), params(), 0, "2 buffer arguments, the catalog has 3"},
		{"no params", add, one, threads, args(a, b, out), nil, 0, "params <nil>, want"},
		{"foreign buffer", add, one, threads, args(a, buf(other), out), params(), 0, "argument b is not a buffer of this device"},
		{"outside", add, one, threads, append(args(a, b), runtime.BufferArg{Buffer: out, Offset: 8, Size: 16, Name: "out"}), params(), 0, "argument out: metal: bytes [8,+16) outside a 16-byte buffer"},
	} {
		var l runtime.CommandList
		l.NewPass()
		// Unordered with the other lists: a buffer of its own.
		l.Dispatch(neg, one, threads, args(a, buf(dev)), params(), 0)
		l.Dispatch(c.k, c.grid, c.group, c.args, c.params, c.shared)
		value++
		l.Signal(ev, value)
		err := q.Submit(&l).Err()
		var de *runtime.DispatchError
		if !errors.As(err, &de) || de.Index != 1 || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want dispatch 1 refused: %s", c.name, err, c.want)
		}
	}
	ev.Wait(value)
	clean(t, f)
}

type fakeScaleParams struct {
	N     uint32
	Scale float32
}

// fakeScale is a kernel registered from outside Loom, with its own MSL and
// CPU kernel; fakeScaleBad's MSL does not declare it.
var fakeScale, fakeScaleBad = primitives.KernelSpec{
	Name:   "fake_scale_f32",
	Args:   []primitives.ArgSpec{primitives.R("a"), primitives.W("out")},
	Params: (*fakeScaleParams)(nil),
	MSL: primitives.Source{File: "fake_scale.metal", Text: `
[[kernel]] void fake_scale_f32(device const float* a [[buffer(0)]], device float* out [[buffer(1)]],
                               constant fakeScaleParams& p [[buffer(2)]], uint i [[thread_position_in_grid]]) {
  if (i < p.N) out[i] = a[i] * p.Scale;
}
`},
}, primitives.KernelSpec{
	Name:   "fake_scale_bad_f32",
	Args:   []primitives.ArgSpec{primitives.R("a"), primitives.W("out")},
	Params: (*fakeScaleParams)(nil),
	MSL:    primitives.Source{File: "fake_scale_bad.metal", Text: "[[kernel]] void other(device float* a [[buffer(0)]]) {}\n"},
}

var registerFakeScale = sync.OnceValue(func() error {
	if err := primitives.Register(fakeScale, fakeScaleBad); err != nil {
		return err
	}
	return cpu.Register(fakeScale.Name, func(c *cpu.Call) error {
		p := c.Params.(*fakeScaleParams)
		a, out := c.F32(0), c.F32(1)
		for i := range int(p.N) {
			out[i] = a[i] * p.Scale
		}
		return nil
	})
})

// TestFakeUserKernel: a kernel registered with its own MSL gets a library
// of its own, compiled on first use, and runs; one whose MSL does not
// declare it fails, every time it is asked for, with the reason.
func TestFakeUserKernel(t *testing.T) {
	if err := registerFakeScale(); err != nil {
		t.Fatal(err)
	}
	f, dev := fakeDevice(t, mtlfake.Options{})
	k, err := dev.Kernel(fakeScale.Name)
	if err != nil {
		t.Fatal(err)
	}
	q, err := dev.NewQueue()
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	a, _ := dev.NewBuffer(12)
	out, _ := dev.NewBuffer(12)
	if err := a.Write(0, []byte{0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64}); err != nil { // 1, 2, 3
		t.Fatal(err)
	}
	var l runtime.CommandList
	l.NewPass()
	l.Dispatch(k, primitives.Dim3{X: 1, Y: 1, Z: 1}, primitives.Dim3{X: 3, Y: 1, Z: 1}, []runtime.BufferArg{
		{Buffer: a, Size: 12, Access: primitives.Read, Name: "a"}, {Buffer: out, Size: 12, Access: primitives.Write, Name: "out"},
	}, &fakeScaleParams{N: 3, Scale: 2}, 0)
	ev := q.NewEvent()
	l.Signal(ev, 1)
	if err := q.Submit(&l).Err(); err != nil {
		t.Fatal(err)
	}
	ev.Wait(1)
	got := make([]byte, 12)
	if err := out.Read(0, got); err != nil || !slices.Equal(got, []byte{0, 0, 0, 64, 0, 0, 128, 64, 0, 0, 192, 64}) { // 2, 4, 6
		t.Fatalf("out = %v, %v; want 2, 4, 6", got, err)
	}
	clean(t, f)
	for range 2 {
		_, err := dev.Kernel(fakeScaleBad.Name)
		if err == nil || !strings.Contains(err.Error(), "fake_scale_bad.metal declares no kernel fake_scale_bad_f32") {
			t.Fatalf("a user kernel its MSL lacks: %v", err)
		}
	}
}

// evalChain evaluates ten adds of 1,001 elements in one Eval, enough for
// several command buffers with rt's options, against a float64 reference.
func evalChain(t *testing.T, rt *runtime.Runtime) {
	t.Helper()
	r := loomtest.Rand(1)
	const n = 1001
	a, b := loomtest.Float32s(r, n, -1, 1), loomtest.Float32s(r, n, -1, 1)
	x := graph.FromFloat32s(a, n)
	y := graph.FromFloat32s(b, n)
	want := make([]float64, n)
	for i := range want {
		want[i] = float64(a[i])
	}
	for range 10 {
		x = ops.Add(x, y)
		for i := range want {
			want[i] = float64(float32(want[i] + float64(b[i])))
		}
	}
	if err := rt.Eval(x); err != nil {
		t.Fatal(err)
	}
	got, err := x.Float64s()
	if err != nil {
		t.Fatal(err)
	}
	loomtest.Close(t, "chain of adds", got, want, 0, 0)
}

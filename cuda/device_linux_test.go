package cuda

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// The device tests run where a CUDA device is present and skip elsewhere.
// The op suites (package ops and others) run on the CUDA device through
// loomtest.Targets; these tests cover the device itself.

var (
	testOnce sync.Once
	testDev  *Device
	testErr  error
)

// device opens the CUDA device once for the package's tests, or skips.
func device(t testing.TB) *Device {
	t.Helper()
	testOnce.Do(func() { testDev, testErr = Open() })
	if testErr != nil {
		if IsUnavailable(testErr) {
			t.Skipf("no CUDA device on this machine: %v", testErr)
		}
		t.Fatal(testErr)
	}
	return testDev
}

func TestOpen(t *testing.T) {
	d := device(t)
	c := d.Caps()
	t.Logf("%s, compute capability %s, caps %+v", d.Name(), d.ComputeCapability(), c)
	if d.Name() == "" || c.Device != "cuda" || c.SIMDWidth != 32 || c.Cores <= 0 || c.MaxThreadsPerGroup < 256 || c.MaxSharedBytes < 16<<10 {
		t.Fatalf("implausible device %q caps %+v", d.Name(), c)
	}
	for _, spec := range primitives.Catalog() {
		if _, ok := variantOf(spec.Name); ok {
			continue // compiled at first use (TestLazyVariants); held to the catalog without a GPU (TestKernelsMatchCatalog)
		}
		_, err := d.Kernel(spec.Name)
		if slices.Contains(notImplemented, spec.Name) {
			if err == nil || !strings.Contains(err.Error(), "not implemented by the CUDA device") {
				t.Errorf("kernel %s is listed as not implemented: error %v", spec.Name, err)
			}
		} else if err != nil {
			t.Errorf("catalog kernel %s: %v", spec.Name, err)
		}
	}
	if _, err := d.Kernel("no_such_kernel"); err == nil || !strings.Contains(err.Error(), `kernel "no_such_kernel" is not implemented by the CUDA device`) {
		t.Errorf("unknown kernel: error %v", err)
	}
}

// TestBuffers writes and reads buffers of every size class, with each
// read mode: reads up to arenaBytes go through the pinned arena (unless
// readPageable), larger ones straight into the caller's memory.
func TestBuffers(t *testing.T) {
	d := device(t)
	for _, m := range []readMode{readPinned, readPageable} {
		d.readMode = m
		testBuffers(t, d)
	}
	d.readMode = readPinned
}

func testBuffers(t *testing.T, d *Device) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int64{0, 1, 3, 1000, arenaBytes - 1, arenaBytes, arenaBytes + 1, 1 << 20} {
		b, err := d.NewBuffer(n)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, n)
		for i := range want {
			want[i] = byte(r.Uint32())
		}
		if err := b.Write(0, want); err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if n > 2 { // a partial write at an odd offset
			patch := []byte{0xaa, 0xbb}
			if err := b.Write(1, patch); err != nil {
				t.Fatal(err)
			}
			copy(want[1:], patch)
		}
		got := make([]byte, n)
		if err := b.Read(0, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%d bytes (read mode %d): read back differs", n, d.readMode)
		}
		if n > 2 { // a partial read at an odd offset, into a larger slice
			dst := make([]byte, n+5)
			if err := b.Read(1, dst[3:3+n-2]); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(dst[3:3+n-2], want[1:n-1]) || !bytes.Equal(dst[:3], make([]byte, 3)) || !bytes.Equal(dst[n+1:], make([]byte, 4)) {
				t.Fatalf("%d bytes (read mode %d): the read of [1, %d) differs or wrote outside its slice", n, d.readMode, n-1)
			}
		}
		if err := b.Write(n, []byte{1}); err == nil || !strings.Contains(err.Error(), "outside a buffer") {
			t.Errorf("write past the end: %v", err)
		}
		if err := b.Read(-1, got[:min(n, 1)]); err == nil {
			t.Errorf("read at offset -1: no error")
		}
		b.Release()
		if err := b.Read(0, got); err == nil || !strings.Contains(err.Error(), "after release") {
			t.Errorf("read after release: %v", err)
		}
	}
	if _, err := d.NewBuffer(-1); err == nil {
		t.Error("a buffer of -1 bytes")
	}
}

// TestSmallBuffers: small buffers are slots of shared chunks; more of a
// class than a chunk holds, of every size up to the limit, hold their own
// bytes, and a released slot is given to the next buffer of its class.
func TestSmallBuffers(t *testing.T) {
	d := device(t)
	r := rand.New(rand.NewPCG(3, 4))
	sizes := []int64{1, 200, 255, 256, 257, 1000, 4095, smallMax}
	var bufs []*buffer
	var want [][]byte
	alloc := func(n int64) {
		b, err := d.NewBuffer(n)
		if err != nil {
			t.Fatal(err)
		}
		v := make([]byte, n)
		for i := range v {
			v[i] = byte(r.Uint32())
		}
		if err := b.Write(0, v); err != nil {
			t.Fatal(err)
		}
		bufs, want = append(bufs, b.(*buffer)), append(want, v)
	}
	for i := range 600 { // half of them of the 256-byte class: more than a chunk of it
		alloc(sizes[i%len(sizes)])
	}
	check := func(when string) {
		t.Helper()
		for i, b := range bufs {
			if b.released.Load() {
				continue
			}
			got := make([]byte, b.n)
			if err := b.Read(0, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want[i]) {
				t.Fatalf("%s: buffer %d (%d bytes at %#x) holds other bytes", when, i, b.n, b.ptr)
			}
		}
	}
	check("allocated")
	released := map[uint64]int64{}
	for i := 0; i < len(bufs); i += 3 {
		released[bufs[i].ptr] = bufs[i].small
		bufs[i].Release()
	}
	n := len(bufs)
	for i := range 50 {
		alloc(sizes[i%len(sizes)])
	}
	reused := 0
	for _, b := range bufs[n:] {
		if c, ok := released[b.ptr]; ok {
			if c != b.small {
				t.Fatalf("a slot of class %d given to a buffer of class %d", c, b.small)
			}
			reused++
		}
	}
	if reused < 40 {
		t.Errorf("%d of 50 new buffers took a released slot", reused)
	}
	check("after releases and reuse")
	for _, b := range bufs {
		b.Release()
	}
}

// f32Buffer is a device buffer holding v.
// accumulation is x += ones on n float32s of d (zero at first), with a
// queue (closed when the test ends) and an event of it: the command
// buffers of the queue tests.
type accumulation struct {
	x  runtime.Buffer
	q  runtime.Queue
	ev runtime.Event
	// add records one dispatch of the addition into l's current pass.
	add func(l *runtime.CommandList)
}

func newAccumulation(t *testing.T, d *Device, n int) accumulation {
	t.Helper()
	ones := make([]float32, n)
	for i := range ones {
		ones[i] = 1
	}
	x, inc := f32Buffer(t, d, make([]float32, n)), f32Buffer(t, d, ones)
	kernel, err := d.Kernel("add_f32")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := primitives.NewElementwiseParams([]int{n}, []int{n}, []int{n})
	q, err := d.NewQueue()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	add := func(l *runtime.CommandList) {
		l.Dispatch(kernel, primitives.Dim3{X: (n + 255) / 256, Y: 1, Z: 1}, primitives.Dim3{X: 256, Y: 1, Z: 1},
			[]runtime.BufferArg{arg(x, "a", primitives.Read), arg(inc, "b", primitives.Read), arg(x, "out", primitives.Write)}, p, 0)
	}
	return accumulation{x: x, q: q, ev: q.NewEvent(), add: add}
}

func f32Buffer(t *testing.T, d *Device, v []float32) runtime.Buffer {
	t.Helper()
	b, err := d.NewBuffer(int64(4 * len(v)))
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	if err := b.Write(0, raw); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Release)
	return b
}

func readF32(t *testing.T, b runtime.Buffer) []float32 {
	t.Helper()
	raw := make([]byte, b.Len())
	if err := b.Read(0, raw); err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

func arg(b runtime.Buffer, name string, access primitives.Access) runtime.BufferArg {
	return runtime.BufferArg{Buffer: b, Size: b.Len(), Access: access, Name: name}
}

// TestCommandBuffersAndEvents chains dependent additions through many
// command buffers of one queue: stream order must run each after the one
// before, and the event's value must be a completion frontier.
func TestCommandBuffersAndEvents(t *testing.T) {
	d := device(t)
	const n, steps = 1 << 16, 50
	a := newAccumulation(t, d, n)
	q, ev := a.q, a.ev
	var cbs []runtime.Submission
	for s := 1; s <= steps; s++ {
		cb := &runtime.CommandList{}
		for range 2 { // two passes, two dispatches each
			cb.NewPass()
			for range 2 {
				a.add(cb)
				cb.Barrier()
			}
		}
		cb.Signal(ev, uint64(s))
		cbs = append(cbs, q.Submit(cb))
		if v := ev.Value(); v > uint64(s) {
			t.Fatalf("event at %d after %d commits", v, s)
		}
	}
	ev.Wait(steps / 2)
	if v := ev.Value(); v < steps/2 {
		t.Fatalf("event at %d after waiting for %d", v, steps/2)
	}
	ev.Wait(steps)
	for _, cb := range cbs {
		if err := cb.Err(); err != nil {
			t.Fatal(err)
		}
	}
	for i, v := range readF32(t, a.x) {
		if v != 4*steps {
			t.Fatalf("x[%d] = %v, want %v", i, v, 4*steps)
		}
	}
}

// TestBadIndexIsReported gives a gather several bad indices: the command
// buffer's error names the first, whatever order the threads ran in, and the
// next command buffer is not affected.
func TestBadIndexIsReported(t *testing.T) {
	d := device(t)
	table := f32Buffer(t, d, make([]float32, 10*64))
	out := f32Buffer(t, d, make([]float32, 300*64))
	idx := make([]int32, 300)
	for i := range idx {
		idx[i] = int32(i % 10)
	}
	idx[170], idx[3], idx[250] = 10, -7, 99
	ib, err := d.NewBuffer(4 * 300)
	if err != nil {
		t.Fatal(err)
	}
	defer ib.Release()
	raw := make([]byte, 4*300)
	for i, v := range idx {
		binary.LittleEndian.PutUint32(raw[4*i:], uint32(v))
	}
	if err := ib.Write(0, raw); err != nil {
		t.Fatal(err)
	}
	gather, err := d.Kernel("gather_rows_f32_i32")
	if err != nil {
		t.Fatal(err)
	}
	q, err := d.NewQueue()
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ev := q.NewEvent()
	args := []runtime.BufferArg{arg(table, "table", primitives.Read), arg(ib, "indices", primitives.Read), arg(out, "out", primitives.Write)}
	run := func(rows uint32, seq uint64) error {
		cb := &runtime.CommandList{}
		cb.NewPass()
		cb.Dispatch(gather, primitives.Dim3{X: int(rows) * 64 / 256, Y: 1, Z: 1}, primitives.Dim3{X: 256, Y: 1, Z: 1}, args,
			&primitives.RowsParams{Rows: rows, TableRows: 10, RowElems: 64}, 0)
		cb.Signal(ev, seq)
		sub := q.Submit(cb)
		ev.Wait(seq)
		return sub.Err()
	}
	err = run(300, 1)
	if err == nil || !strings.Contains(err.Error(), "gather_rows_f32_i32: indices[3] = -7 is out of range [0, 10) (and 2 more reports)") {
		t.Fatalf("error %v, want one naming indices[3] = -7 and the other 2 reports", err)
	}
	if err := run(3, 2); err != nil { // rows 0..2 are good
		t.Fatalf("a good gather after a bad one: %v", err)
	}
}

// TestLaunchErrors: dispatches the device cannot launch fail their command
// buffer with an error naming the kernel and the problem.
func TestLaunchErrors(t *testing.T) {
	d := device(t)
	x := f32Buffer(t, d, make([]float32, 256))
	add, err := d.Kernel("add_f32")
	if err != nil {
		t.Fatal(err)
	}
	copyK, err := d.Kernel("copy_bytes")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := primitives.NewElementwiseParams([]int{256}, []int{256}, []int{256})
	three := []runtime.BufferArg{arg(x, "a", primitives.Read), arg(x, "b", primitives.Read), arg(x, "out", primitives.Write)}
	g1, t256 := primitives.Dim3{X: 1, Y: 1, Z: 1}, primitives.Dim3{X: 256, Y: 1, Z: 1}
	cases := []struct {
		name   string
		k      runtime.Kernel
		grid   primitives.Dim3
		group  primitives.Dim3
		args   []runtime.BufferArg
		params any
		want   string
	}{
		{"too few arguments", add, g1, t256, three[:2], p, "add_f32: 2 buffer arguments, the catalog has 3"},
		{"wrong params", add, g1, t256, three, &primitives.CopyParams{}, "add_f32: params *primitives.CopyParams, want *primitives.ElementwiseParams"},
		{"missing params", add, g1, t256, three, nil, "want *primitives.ElementwiseParams"},
		{"missing params of copy_bytes", copyK, g1, t256, three[:2], nil, "copy_bytes: params <nil>"},
		{"group too large", add, g1, primitives.Dim3{X: 4096, Y: 1, Z: 1}, three, p, "add_f32: threads per group"},
		{"grid too large", add, primitives.Dim3{X: 1, Y: 1 << 20, Z: 1}, t256, three, p, "outside the device's limits"},
		{"argument past its buffer", add, g1, t256, []runtime.BufferArg{three[0], three[1], {Buffer: x, Offset: 512, Size: 1024, Access: primitives.Write, Name: "out"}}, p, "argument out: cuda: bytes [512,+1024) outside a buffer of 1024 bytes"},
	}
	q, err := d.NewQueue()
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ev := q.NewEvent()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cb := &runtime.CommandList{}
			cb.NewPass()
			cb.Dispatch(c.k, c.grid, c.group, c.args, c.params, 0)
			cb.Signal(ev, uint64(i+1))
			sub := q.Submit(cb)
			ev.Wait(uint64(i + 1))
			if err := sub.Err(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// TestRuntimePipelining evaluates a chain of dependent steps with one
// dispatch per command buffer, each step's Eval submitted before the last
// one is awaited, from two goroutines: every step must see the one before.
// waiter waits, on a goroutine of its own, for each evaluation sent to it,
// in order, as a decode loop's host does while it encodes the next step;
// done closes the channel, waits for the rest and returns the first error.
func waiter(depth int) (waits chan<- *runtime.Pending, done func() error) {
	ch := make(chan *runtime.Pending, depth)
	result := make(chan error)
	go func() {
		var first error
		for p := range ch {
			if err := p.Wait(); err != nil && first == nil {
				first = err
			}
		}
		result <- first
	}()
	return ch, func() error {
		close(ch)
		return <-result
	}
}

func TestRuntimePipelining(t *testing.T) {
	d := device(t)
	rt, err := runtime.New(d, runtime.Options{DispatchesPerCommandBuffer: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	const n = 1000
	x := graph.FromFloat32s(make([]float32, n))
	waits, done := waiter(64)
	for s := range 100 {
		x = ops.Add(ops.Mul(x, graph.Full(graph.Float32, 1, n)), graph.Full(graph.Float32, float64(s%3), n))
		p, err := rt.EvalAsync(x)
		if err != nil {
			t.Fatal(err)
		}
		waits <- p
	}
	if err := done(); err != nil {
		t.Fatal(err)
	}
	got, err := x.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	want := float32(0)
	for s := range 100 {
		want += float32(s % 3)
	}
	for i, v := range got {
		if v != want {
			t.Fatalf("x[%d] = %v, want %v", i, v, want)
		}
	}
}

// TestHalfConversionsMatchGo casts float32 values of every exponent, the
// float16 and bfloat16 midpoints around them, and NaNs to float16 and
// bfloat16 on the device, and compares the bits with graph's conversions;
// and every float16 back to float32, NaN payloads included.
func TestHalfConversionsMatchGo(t *testing.T) {
	d := device(t)
	rt, err := runtime.New(d, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	r := rand.New(rand.NewPCG(3, 4))
	var vals []float32
	for h := range 1 << 16 {
		f := graph.F16ToF32(uint16(h))
		b := math.Float32bits(f)
		vals = append(vals, f, math.Float32frombits(b+1<<12), math.Float32frombits(b+1<<12+1), math.Float32frombits(b+1<<12-1))
		vals = append(vals, math.Float32frombits(uint32(h)<<16|1<<15), math.Float32frombits(uint32(h)<<16|r.Uint32()&0xffff))
	}
	for range 1 << 18 {
		vals = append(vals, math.Float32frombits(r.Uint32()))
	}
	x := graph.FromFloat32s(vals)
	h, bf := ops.Cast(x, graph.Float16), ops.Cast(x, graph.BFloat16)
	halves := make([]byte, 2<<16)
	for i := range 1 << 16 {
		binary.LittleEndian.PutUint16(halves[2*i:], uint16(i))
	}
	back := ops.Cast(graph.FromBytes(graph.Float16, halves, 1<<16), graph.Float32)
	if err := rt.Eval(h, bf, back); err != nil {
		t.Fatal(err)
	}
	hb, _ := h.Bytes()
	bb, _ := bf.Bytes()
	for i, v := range vals {
		if got, want := binary.LittleEndian.Uint16(hb[2*i:]), graph.F32ToF16(v); got != want {
			t.Fatalf("float16 of %#08x: %#04x, want %#04x", math.Float32bits(v), got, want)
		}
		if got, want := binary.LittleEndian.Uint16(bb[2*i:]), graph.F32ToBF16(v); got != want {
			t.Fatalf("bfloat16 of %#08x: %#04x, want %#04x", math.Float32bits(v), got, want)
		}
	}
	// The raw bits: reading through float64 would quieten signalling NaNs.
	bits, _ := back.Bytes()
	for i := range 1 << 16 {
		got, want := binary.LittleEndian.Uint32(bits[4*i:]), math.Float32bits(graph.F16ToF32(uint16(i)))
		if got != want {
			t.Fatalf("float32 of float16 %#04x: %#08x, want %#08x", i, got, want)
		}
	}
}

// TestLaunchFunction checks which function a launch uses: a matmul's
// tensor-core variant only where its params ask for it and the kernel has
// one, the catalog kernel otherwise.
func TestLaunchFunction(t *testing.T) {
	both, plain := &kernel{name: "matmul_bf16_gemv", fn: 1, mma: 2}, &kernel{name: "matmul_f32_gemv", fn: 3}
	for _, c := range []struct {
		name   string
		k      *kernel
		params any
		want   uintptr
	}{
		{"MMA set", both, &primitives.MatMulParams{M: 8, MMA: 1}, 2},
		{"MMA not set", both, &primitives.MatMulParams{M: 8}, 1},
		{"no variant", plain, &primitives.MatMulParams{M: 1, MMA: 1}, 3},
		{"other params", both, &primitives.CopyParams{}, 1},
		{"no params", both, nil, 1},
	} {
		if got := (&launch{k: c.k, params: c.params}).function(); got != c.want {
			t.Errorf("%s: function %d, want %d", c.name, got, c.want)
		}
	}
}

package cuda

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// bulkEarlyDevice is the device for the GPU tests of the early fill: with
// the bulk GEMV's kernels (LOOM_CUDA_GEMV_BULK=1) and programmatic dependent
// launch in the graphs, without which no kernel overlaps the one before.
func bulkEarlyDevice(t *testing.T) *Device {
	d := device(t)
	if d.Caps().GEMVBulk.Stages == 0 {
		t.Skip("the bulk GEMV is off (LOOM_CUDA_GEMV_BULK unset, or before sm_90 or NVRTC 12)")
	}
	if !d.PDL() {
		t.Skip("no programmatic dependent launch: no kernel starts before the one before it completes")
	}
	return d
}

// bf16Bytes are v stored as bfloat16, and their values as float64.
func bf16Bytes(t *testing.T, v []float32) ([]byte, []float64) {
	t.Helper()
	a := graph.FromFloat32sAs(graph.BFloat16, v, len(v))
	raw, err := a.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return raw, graph.DecodeFloat64s(graph.BFloat16, raw)
}

// TestBulkEarlyChain runs, on a GPU, command lists of a bulk GEMV
// out = x·wᵀ (1 row, N = 4,096, K = 1,024, bfloat16) after a kernel that
// may still run when it starts (a programmatic edge in the list's graph),
// 4 submissions each with new weights or a new x, with graphs on (the
// second and later as a graph exec, through the structure cache or as a
// replayed list's own exec): where that kernel or an upload writes the
// weights the GEMV must copy them late (<name>_mma_bulk) and read the new
// weights; where nothing writes them, early (<name>_mma_bulk_early). Each
// output against a float64 reference; the early GEMV's bits are the late
// one's (LOOM_CUDA_BULK_EARLY=0's).
func TestBulkEarlyChain(t *testing.T) {
	d := bulkEarlyDevice(t)
	defer func(was bool) { d.bulkEarly = was }(d.bulkEarly)
	d.bulkEarly = true
	const m, n, k = 1, 4096, 1024
	dt := graph.BFloat16
	in := []graph.Spec{{DType: dt, Shape: []int{m, k}}, {DType: dt, Shape: []int{n, k}}}
	out, err := primitives.MatMul{TransposeB: true}.Outputs(in)
	if err != nil {
		t.Fatal(err)
	}
	low := primitives.NewLowering(in, out, d.Caps())
	if err := (primitives.MatMul{TransposeB: true}).Lower(low); err != nil {
		t.Fatal(err)
	}
	if len(low.Dispatches) != 1 || low.Dispatches[0].Params.(*primitives.MatMulParams).Bulk == 0 {
		t.Fatalf("the product of %d×%d by [%d, %d]ᵀ lowers to %+v, not one bulk GEMV", m, k, n, k, low.Dispatches)
	}
	disp := low.Dispatches[0]
	gemv, err := d.Kernel(disp.Kernel)
	if err != nil {
		t.Fatal(err)
	}
	copyK, err := d.Kernel(primitives.CopyKernel)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(71, 72))
	randBF16 := func(n int) ([]byte, []float64) {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.Float64()*2 - 1)
		}
		return bf16Bytes(t, v)
	}
	buf := func(n int64) runtime.Buffer {
		b := deviceBuffer(t, d, n)
		t.Cleanup(b.Release)
		return b
	}
	x, w, src, o := buf(2*m*k), buf(2*n*k), buf(2*n*k), buf(2*m*n)
	gemvArgs := func() []runtime.BufferArg {
		bufs := map[primitives.Ref]runtime.Buffer{primitives.In(0): x, primitives.In(1): w, primitives.Out(0): o}
		var args []runtime.BufferArg
		for _, a := range disp.Args {
			b := bufs[a.Ref]
			size := a.Size
			if size == 0 {
				size = b.Len() - a.Offset
			}
			args = append(args, runtime.BufferArg{Buffer: b, Offset: a.Offset, Size: size, Access: a.Access, Name: a.Name})
		}
		return args
	}
	// copyTo copies src's first dst.Len() bytes into dst by a kernel.
	copyTo := func(l *runtime.CommandList, dst runtime.Buffer) {
		cp := primitives.CopyDispatch(primitives.Ref{}, primitives.Ref{}, dst.Len())
		l.Dispatch(copyK, cp.Grid, cp.Group, []runtime.BufferArg{{Buffer: src, Size: dst.Len(), Access: primitives.Read, Name: "src"}, arg(dst, "dst", primitives.Write)}, cp.Params, 0)
	}
	q, err := d.NewQueue()
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ev := q.NewEvent()
	seq := uint64(0)
	xRaw, xv := randBF16(m * k)
	wRaw, wv := randBF16(n * k)
	if err := x.Write(0, xRaw); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(0, wRaw); err != nil {
		t.Fatal(err)
	}
	// The chains: each step's list (uploads its new data and sets xv or
	// wv to it), whether it has a replay identity, and the GEMV's variant.
	chains := []struct {
		name   string
		replay bool
		step   func(l *runtime.CommandList)
		want   string
	}{
		{"a dispatch before writes w", false, func(l *runtime.CommandList) {
			raw, v := randBF16(n * k)
			l.Upload(src, 0, raw)
			copyTo(l, w)
			wv = v
		}, "+bulk"},
		{"an upload before writes w (replayed)", true, func(l *runtime.CommandList) {
			raw, v := randBF16(n * k)
			l.Upload(w, 0, raw)
			wv = v
		}, "+bulk"},
		{"a dispatch before writes x", false, func(l *runtime.CommandList) {
			raw, v := randBF16(m * k)
			l.Upload(src, 0, raw)
			copyTo(l, x)
			xv = v
		}, "+bulk-early"},
		{"an upload before writes x (replayed)", true, func(l *runtime.CommandList) {
			raw, v := randBF16(m * k)
			l.Upload(x, 0, raw)
			xv = v
		}, "+bulk-early"},
	}
	// run submits a chain's step and returns the GEMV's launch name and
	// output, checked against the reference.
	run := func(name string, id uint64, step func(l *runtime.CommandList)) (string, []byte) {
		l := &runtime.CommandList{Replay: id}
		l.NewPass()
		step(l)
		l.Barrier()
		l.Dispatch(gemv, disp.Grid, disp.Group, gemvArgs(), disp.Params, disp.SharedBytes)
		seq++
		l.Signal(ev, seq)
		var launched string
		d.do(func() error {
			ls := d.launchesOf(l)
			launched = ls[len(ls)-1].name()
			return nil
		})
		sub := q.Submit(l)
		ev.Wait(seq)
		if err := sub.Err(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		raw := make([]byte, o.Len())
		if err := o.Read(0, raw); err != nil {
			t.Fatal(err)
		}
		got := graph.DecodeFloat64s(dt, raw)
		for j := range n {
			var ref, mag float64
			for i := range k {
				ref += xv[i] * wv[j*k+i]
				mag += math.Abs(xv[i] * wv[j*k+i])
			}
			if math.Abs(got[j]-ref) > 1e-2*math.Abs(ref)+1e-3*mag {
				t.Fatalf("%s: out[%d] = %g, want %g (%s)", name, j, got[j], ref, launched)
			}
		}
		return launched, raw
	}
	for ci, c := range chains {
		stats := withGraphs(t, d, true, func() {
			id := uint64(0)
			if c.replay {
				id = 1<<61 + uint64(ci)
			}
			for s := range 4 {
				launched, _ := run(fmt.Sprintf("%s, step %d", c.name, s), id, c.step)
				if want := gemv.(*kernel).name + c.want; launched != want {
					t.Errorf("%s, step %d: the GEMV launched as %s, want %s", c.name, s, launched, want)
				}
			}
		})
		if stats.Launches < 3 || stats.Programmatic == 0 || stats.Failures != 0 {
			t.Errorf("%s: graph statistics %+v, want 3 launches or more, programmatic edges and no failure", c.name, stats)
		}
	}
	// The early GEMV's bits are the late one's.
	same := func(l *runtime.CommandList) {}
	var bits [2][]byte
	for i, early := range []bool{false, true} {
		d.bulkEarly = early
		withGraphs(t, d, true, func() {
			for range 2 {
				_, bits[i] = run(fmt.Sprintf("bulk early %v", early), 0, same)
			}
		})
	}
	if !bytes.Equal(bits[0], bits[1]) {
		t.Error("the early GEMV's outputs differ from the late one's")
	}
}

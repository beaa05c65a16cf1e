package cuda

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// ltDevice is the test device with cuBLASLt opened (SetCuBLASLtRows opens
// it where the environment left it off) and its rows set to rows for the
// test; the test skips where the library is missing or LOOM_CUBLASLT=0.
func ltDevice(t *testing.T, rows int) *Device {
	t.Helper()
	d := device(t)
	was := int(d.ltRows.Load())
	if err := d.SetCuBLASLtRows(rows); err != nil {
		t.Skipf("no cuBLASLt: %v", err)
	}
	t.Cleanup(func() { d.SetCuBLASLtRows(was) })
	return d
}

func ltRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// ltUniform is n values in [lo, hi). (ltRand, ltUniform and ltRound are
// loomtest's Rand, Float32s and Round, which this package's tests cannot
// import: loomtest imports cuda.)
func ltUniform(r *rand.Rand, n int, lo, hi float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = lo + (hi-lo)*r.Float32()
	}
	return v
}

// ltRound is v rounded to dt, as float64.
func ltRound(dt graph.DType, v []float32) []float64 {
	r, err := graph.FromFloat32sAs(dt, v, len(v)).Float32s()
	if err != nil {
		panic(err)
	}
	f := make([]float64, len(r))
	for i, x := range r {
		f[i] = float64(x)
	}
	return f
}

// ltProducts is the products cuBLASLt ran or was captured for so far.
func ltProducts(d *Device) int64 { i := d.CuBLASLt(); return i.Calls + i.Captures }

// ltRef is x[m,k]·w[n,k]ᵀ in float64, and per element the bound of a
// float32 accumulation's error plus the output's rounding to dt.
func ltRef(dt graph.DType, x, w []float64, m, n, k int) (want, bound []float64) {
	want, bound = make([]float64, m*n), make([]float64, m*n)
	u := map[graph.DType]float64{graph.Float32: 0x1p-24, graph.Float16: 0x1p-11, graph.BFloat16: 0x1p-8}[dt]
	for i := range m {
		for j := range n {
			s, abs := 0.0, 0.0
			for p := range k {
				v := x[i*k+p] * w[j*k+p]
				s += v
				abs += math.Abs(v)
			}
			want[i*n+j] = s
			bound[i*n+j] = float64(k+2)*0x1p-24*abs + u*math.Abs(s)*1.001 + 0x1p-25
		}
	}
	return want, bound
}

// TestCuBLASLtMatMul runs x[M,K]·Wᵀ through runtime.Eval in each dtype at
// rows past the default cuBLASLt rows (65, 100, 257) and at 9 with the
// rows set to 9 (a product the lowering gives the GEMV), on shapes whose
// rows are 16-byte aligned, which cuBLASLt runs, and on shapes whose N or
// K is not, which fall back to Loom's kernels: every result must be the
// float64 reference's within a float32 accumulation's error, and
// cuBLASLt must have run exactly the aligned ones.
func TestCuBLASLtMatMul(t *testing.T) {
	d := ltDevice(t, ltDefaultRows)
	rt, err := runtime.New(d, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	r := ltRand(21)
	for _, dt := range primitives.MatMulDTypes {
		align := ltAlign / dt.Size()
		for _, c := range []struct{ m, n, k, rows int }{
			{65, 3 * align, 5 * align, ltDefaultRows}, {100, 1024, 64, ltDefaultRows}, {257, 9 * align, 17 * align, ltDefaultRows},
			{128, 4096, 1024, ltDefaultRows}, {9, 136, 1024, 9},
			{100, 3*align + 1, 64, ltDefaultRows}, {65, 24, 5*align + 1, ltDefaultRows}, {64, 1024, 64, ltDefaultRows},
		} {
			name := fmt.Sprintf("%s_%dx%dx%d", dt, c.m, c.n, c.k)
			aligned := c.n%align == 0 && c.k%align == 0 && c.m >= c.rows
			if err := d.SetCuBLASLtRows(c.rows); err != nil {
				t.Fatal(err)
			}
			x := ltUniform(r, c.m*c.k, -1, 1)
			w := ltUniform(r, c.n*c.k, -1, 1)
			out := ops.MatMulTransposed(graph.FromFloat32sAs(dt, x, c.m, c.k), graph.FromFloat32sAs(dt, w, c.n, c.k), false, true)
			before := ltProducts(d)
			if err := rt.Eval(out); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if ran := ltProducts(d) > before; ran != aligned {
				t.Errorf("%s: cuBLASLt ran it: %v, want %v (%v)", name, ran, aligned, d.CuBLASLt())
			}
			got, err := out.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			want, bound := ltRef(dt, ltRound(dt, x), ltRound(dt, w), c.m, c.n, c.k)
			for i := range want {
				if diff := math.Abs(float64(got[i]) - want[i]); !(diff <= bound[i]) {
					t.Fatalf("%s: out[%d][%d] = %v, want %v ± %.3g", name, i/c.n, i%c.n, got[i], want[i], bound[i])
				}
			}
		}
	}
	if i := d.CuBLASLt(); i.Failures > 0 {
		t.Errorf("cuBLASLt calls failed: %v", i)
	}
}

// ltRig is a list of three dispatches over bfloat16 buffers: h = x·W1ᵀ
// (cuBLASLt), g = h + h (Loom's add kernel), out = g·W2ᵀ (cuBLASLt): the
// products are child graph nodes with a kernel node between them.
type ltRig struct {
	d                *Device
	m, n1, n2, k     int
	w1, w2, h, g     runtime.Buffer
	mm, mm2, add     primitives.Dispatch
	mmK, mm2K, addK  runtime.Kernel
	w1f, w2f         []float64
	xs, outs         []runtime.Buffer
	xf               [][]float64
	q                runtime.Queue
	ev               runtime.Event
	seq              uint64
	dispatchesPerRun int
}

func newLtRig(t *testing.T, d *Device) *ltRig {
	const m, n1, n2, k = 96, 256, 136, 512
	dt := graph.BFloat16
	rg := &ltRig{d: d, m: m, n1: n1, n2: n2, k: k, dispatchesPerRun: 3}
	r := ltRand(22)
	buf := func(n int) (runtime.Buffer, []float64) {
		v := ltUniform(r, n, -1, 1)
		b := uploadFloats(t, d, dt, v)
		t.Cleanup(b.Release)
		return b, ltRound(dt, v)
	}
	rg.w1, rg.w1f = buf(n1 * k)
	rg.w2, rg.w2f = buf(n2 * n1)
	for range 3 {
		x, xf := buf(m * k)
		rg.xs, rg.xf = append(rg.xs, x), append(rg.xf, xf)
		o := deviceBuffer(t, d, int64(2*m*n2))
		t.Cleanup(o.Release)
		rg.outs = append(rg.outs, o)
	}
	rg.h, rg.g = deviceBuffer(t, d, int64(2*m*n1)), deviceBuffer(t, d, int64(2*m*n1))
	t.Cleanup(rg.h.Release)
	t.Cleanup(rg.g.Release)
	lower := func(p primitives.Primitive, in, out []graph.Spec) primitives.Dispatch {
		l := primitives.NewLowering(in, out, d.Caps())
		if err := p.Lower(l); err != nil || len(l.Dispatches) != 1 {
			t.Fatalf("lowering %s: %v, %d dispatches", p.Name(), err, len(l.Dispatches))
		}
		return l.Dispatches[0]
	}
	spec := func(s ...int) graph.Spec { return graph.Spec{DType: dt, Shape: s} }
	rg.mm = lower(primitives.MatMul{TransposeB: true}, []graph.Spec{spec(m, k), spec(n1, k)}, []graph.Spec{spec(m, n1)})
	rg.mm2 = lower(primitives.MatMul{TransposeB: true}, []graph.Spec{spec(m, n1), spec(n2, n1)}, []graph.Spec{spec(m, n2)})
	rg.add = lower(primitives.Binary{Op: primitives.Add}, []graph.Spec{spec(m, n1), spec(m, n1)}, []graph.Spec{spec(m, n1)})
	var err error
	if rg.mmK, err = d.Kernel(rg.mm.Kernel); err != nil {
		t.Fatal(err)
	}
	if rg.mm2K, err = d.Kernel(rg.mm2.Kernel); err != nil {
		t.Fatal(err)
	}
	if rg.addK, err = d.Kernel(rg.add.Kernel); err != nil {
		t.Fatal(err)
	}
	q, err := d.NewQueue()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Close)
	rg.q, rg.ev = q, q.NewEvent()
	return rg
}

// list is the rig's list reading x i and writing out i, under replay
// identity id (0: none) with x and out rebound.
func (rg *ltRig) list(i int, id uint64) *runtime.CommandList {
	l := &runtime.CommandList{Replay: id}
	if id != 0 {
		l.Rebound = []runtime.ReboundArg{{Dispatch: 0, Arg: 0}, {Dispatch: 2, Arg: 2}}
	}
	l.NewPass()
	a := func(b runtime.Buffer, name string, acc primitives.Access) runtime.BufferArg {
		return runtime.BufferArg{Buffer: b, Size: b.Len(), Access: acc, Name: name}
	}
	l.Dispatch(rg.mmK, rg.mm.Grid, rg.mm.Group, []runtime.BufferArg{a(rg.xs[i], "a", primitives.Read), a(rg.w1, "b", primitives.Read), a(rg.h, "out", primitives.Write)}, rg.mm.Params, rg.mm.SharedBytes)
	l.Barrier()
	l.Dispatch(rg.addK, rg.add.Grid, rg.add.Group, []runtime.BufferArg{a(rg.h, "a", primitives.Read), a(rg.h, "b", primitives.Read), a(rg.g, "out", primitives.Write)}, rg.add.Params, 0)
	l.Barrier()
	l.Dispatch(rg.mm2K, rg.mm2.Grid, rg.mm2.Group, []runtime.BufferArg{a(rg.g, "a", primitives.Read), a(rg.w2, "b", primitives.Read), a(rg.outs[i], "out", primitives.Write)}, rg.mm2.Params, rg.mm2.SharedBytes)
	rg.seq++
	l.Signal(rg.ev, rg.seq)
	return l
}

// run submits the list of x i and checks out i against the reference,
// computed from the h the device wrote (h's rounding is the device's).
func (rg *ltRig) run(t *testing.T, name string, i int, id uint64) []byte {
	t.Helper()
	sub := rg.q.Submit(rg.list(i, id))
	rg.ev.Wait(rg.seq)
	if err := sub.Err(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	dt := graph.BFloat16
	read := func(b runtime.Buffer) ([]byte, []float64) {
		raw := make([]byte, b.Len())
		if err := b.Read(0, raw); err != nil {
			t.Fatal(err)
		}
		v, err := graph.FromBytes(dt, raw, len(raw)/2).Float32s()
		if err != nil {
			t.Fatal(err)
		}
		f := make([]float64, len(v))
		for j := range v {
			f[j] = float64(v[j])
		}
		return raw, f
	}
	_, h := read(rg.h)
	check := func(what string, got, want, bound []float64) {
		for j := range want {
			if diff := math.Abs(got[j] - want[j]); !(diff <= bound[j]) {
				t.Fatalf("%s: %s[%d] = %v, want %v ± %.3g", name, what, j, got[j], want[j], bound[j])
			}
		}
	}
	want, bound := ltRef(dt, rg.xf[i], rg.w1f, rg.m, rg.n1, rg.k)
	check("h", h, want, bound)
	g := make([]float64, len(h))
	for j := range h {
		g[j] = 2 * h[j]
	}
	raw, out := read(rg.outs[i])
	want, bound = ltRef(dt, g, rg.w2f, rg.m, rg.n2, rg.n1)
	check("out", out, want, bound)
	return raw
}

// TestCuBLASLtGraph submits the rig's list with other x and out buffers:
// launch by launch first, then as a graph exec of the structure (child
// graph nodes of the products), updated as the buffers change; then as a
// replayed list's exec, whose rebound x and out recapture its child
// nodes. Every result must be its own inputs' (a stale child graph would
// read the old x or write the old out), the same bits each time for the
// same inputs, and the device must have captured the products.
func TestCuBLASLtGraph(t *testing.T) {
	d := ltDevice(t, ltDefaultRows)
	if !d.graphs.Load() {
		t.Skip("LOOM_CUDA_GRAPHS=0")
	}
	rg := newLtRig(t, d)
	before := d.CuBLASLt()
	first := map[int][]byte{}
	order := []int{0, 1, 2, 1, 0, 2, 2}
	gs := withGraphs(t, d, true, func() {
		for n, i := range order {
			got := rg.run(t, fmt.Sprintf("structure, submission %d (x %d)", n, i), i, 0)
			if prev, ok := first[i]; ok && !bytes.Equal(prev, got) {
				t.Errorf("submission %d: x %d's product differs from its first", n, i)
			}
			first[i] = got
		}
		if d.replays {
			for n, i := range order {
				got := rg.run(t, fmt.Sprintf("replay, submission %d (x %d)", n, i), i, 1<<40+7)
				if !bytes.Equal(first[i], got) {
					t.Errorf("replayed submission %d: x %d's product differs from the launches'", n, i)
				}
			}
		}
	})
	after := d.CuBLASLt()
	t.Logf("graphs %+v; %v", gs, after)
	if gs.Launches == 0 || gs.Failures > 0 {
		t.Errorf("graph launches %d, failures %d: want launches and no failure", gs.Launches, gs.Failures)
	}
	if after.Calls == before.Calls || after.Captures < before.Captures+4 || after.Failures > before.Failures {
		t.Errorf("cuBLASLt: %v, before %v: want calls, at least 4 captures (2 nodes, then updates) and no failure", after, before)
	}
}

// TestCuBLASLtMissingLibrary opens a second device with LOOM_CUBLASLT
// naming a file that does not exist: Open succeeds, CuBLASLt says why it
// is off, asking for its rows fails with that reason, and a product of
// many rows runs in Loom's kernels, right.
func TestCuBLASLtMissingLibrary(t *testing.T) {
	device(t)
	const missing = "/nonexistent/libcublasLt.so.13"
	t.Setenv("LOOM_CUBLASLT", missing)
	d, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	info := d.CuBLASLt()
	if info.Path != "" || info.Err == nil || !strings.Contains(info.Err.Error(), missing) || !strings.Contains(info.String(), "cuBLASLt off") {
		t.Fatalf("CuBLASLt() = %v, want off naming %s", info, missing)
	}
	if err := d.SetCuBLASLtRows(65); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("SetCuBLASLtRows(65) = %v, want an error naming %s", err, missing)
	}
	rt, err := runtime.New(d, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	const m, n, k = 100, 64, 128
	r := ltRand(23)
	x, w := ltUniform(r, m*k, -1, 1), ltUniform(r, n*k, -1, 1)
	out := ops.MatMulTransposed(graph.FromFloat32sAs(graph.BFloat16, x, m, k), graph.FromFloat32sAs(graph.BFloat16, w, n, k), false, true)
	if err := rt.Eval(out); err != nil {
		t.Fatal(err)
	}
	got, err := out.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	want, bound := ltRef(graph.BFloat16, ltRound(graph.BFloat16, x), ltRound(graph.BFloat16, w), m, n, k)
	for i := range want {
		if diff := math.Abs(float64(got[i]) - want[i]); !(diff <= bound[i]) {
			t.Fatalf("out[%d] = %v, want %v ± %.3g", i, got[i], want[i], bound[i])
		}
	}
	if i := d.CuBLASLt(); i.Calls != 0 || i.Captures != 0 {
		t.Errorf("cuBLASLt ran without a library: %v", i)
	}
}

// BenchmarkCuBLASLt times Loom's matmul kernels and cuBLASLt side by side
// in one process on the GPU (CUDA events around a run of launches, see
// kernelTimer; each launch reads another of enough weight sets to exceed
// the L2) for the Qwen3-0.6B projections, x[M, K]·Wᵀ in bfloat16 at M = 8,
// 16, 32, 64, 128 and 256 (LOOM_MATMUL_ROWS picks others): "loom" is the
// dispatch the lowering gives the device's Caps, run by Loom's kernel
// (cuBLASLt rows 0), "cublaslt" the same dispatch run by cuBLASLt (rows
// 1). The gated MLP ("gated", gate and up weights [6144, 1024]) is Loom's
// gated GEMV where the lowering fuses it (up to Caps.GatedGEMVMaxRows
// rows), else its matmul and silu_mul; beside cuBLASLt's product and
// silu_mul. Each case reports µs a launch (of the products and silu_mul
// together), the weights' GB/s and their share of the read bandwidth
// measured first ("read-%"), TFLOP/s, and for cuBLASLt the largest
// difference from Loom's outputs relative to their largest magnitude
// ("rel-diff").
func BenchmarkCuBLASLt(b *testing.B) {
	d := device(b)
	was := d.ltRows.Load()
	if err := d.SetCuBLASLtRows(1); err != nil {
		b.Skipf("no cuBLASLt: %v", err)
	}
	defer d.ltRows.Store(was)
	kt := newKernelTimer(b, d)
	defer kt.release()
	dt := graph.BFloat16
	rows := benchRows(b, []int{8, 16, 32, 64, 128, 256})
	bw, err := d.MeasureBandwidth(1<<30, 10)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("read bandwidth %.0f GB/s (copy %.0f GB/s); %v", bw.Read, bw.Kernel, d.CuBLASLt())
	spec := func(s ...int) graph.Spec { return graph.Spec{DType: dt, Shape: s} }
	lower := func(b *testing.B, p primitives.Primitive, in []graph.Spec, out graph.Spec) []primitives.Dispatch {
		l := primitives.NewLowering(in, []graph.Spec{out}, d.Caps())
		if err := p.Lower(l); err != nil {
			b.Fatal(err)
		}
		return l.Dispatches
	}
	for _, sh := range []struct {
		name  string
		n, k  int
		gated bool
	}{{"qkv", 4096, 1024, false}, {"o", 1024, 2048, false}, {"gate+up", 6144, 1024, false}, {"gated", 6144, 1024, true}, {"down", 1024, 3072, false}, {"lm_head", 151936, 1024, false}} {
		wBytes := int64(sh.n * sh.k * dt.Size())
		sets := int(max(1, (256<<20)/wBytes))
		var ws []runtime.Buffer
		for _, m := range rows {
			reps := max(sets, 8)
			b.Run(fmt.Sprintf("%s_%dx%dx%d", sh.name, m, sh.n, sh.k), func(b *testing.B) {
				var loomOut []byte
				for _, kind := range []string{"loom", "cublaslt"} {
					b.Run(kind, func(b *testing.B) {
						for i := len(ws); i < sets; i++ {
							ws = append(ws, randomBuffer(b, d, dt, sh.n*sh.k, uint64(i+2)))
						}
						x := randomBuffer(b, d, dt, m*sh.k, 1)
						gu := deviceBuffer(b, d, int64(m*sh.n*dt.Size()))
						out := gu
						defer x.Release()
						defer gu.Release()
						// The launches of one product: a dispatch each, with
						// its buffers (the weights: nil, a set each launch).
						type step struct {
							disp primitives.Dispatch
							bufs []runtime.Buffer
						}
						var steps []step
						mm := lower(b, primitives.MatMul{TransposeB: true}, []graph.Spec{spec(m, sh.k), spec(sh.n, sh.k)}, spec(m, sh.n))
						if sh.gated {
							out = deviceBuffer(b, d, int64(m*sh.n/2*dt.Size()))
							defer out.Release()
							fused := lower(b, primitives.MatMulSiLUMul{}, []graph.Spec{spec(m, sh.k), spec(sh.n, sh.k)}, spec(m, sh.n/2))
							if kind == "loom" && len(fused) == 1 {
								steps = append(steps, step{fused[0], []runtime.Buffer{x, nil, out}})
							} else {
								sm := lower(b, primitives.SiLUMul{}, []graph.Spec{spec(m, sh.n)}, spec(m, sh.n/2))
								steps = append(steps, step{mm[0], []runtime.Buffer{x, nil, gu}}, step{sm[0], []runtime.Buffer{gu, out}})
							}
						} else {
							steps = append(steps, step{mm[0], []runtime.Buffer{x, nil, gu}})
						}
						rows := int64(0)
						if kind == "cublaslt" {
							rows = 1
						}
						d.ltRows.Store(rows)
						defer d.ltRows.Store(was)
						record := func(l *runtime.CommandList) {
							for i := range reps {
								for _, s := range steps {
									k, err := d.Kernel(s.disp.Kernel)
									if err != nil {
										b.Fatal(err)
									}
									ks, _ := primitives.LookupKernel(s.disp.Kernel)
									var args []runtime.BufferArg
									for j, buf := range s.bufs {
										if buf == nil {
											buf = ws[i%sets]
										}
										args = append(args, runtime.BufferArg{Buffer: buf, Size: buf.Len(), Access: ks.Args[j].Access, Name: ks.Args[j].Name})
									}
									l.Dispatch(k, s.disp.Grid, s.disp.Group, args, s.disp.Params, s.disp.SharedBytes)
									l.Barrier()
								}
							}
						}
						before := ltProducts(d)
						best, issue := kt.best(b, record)
						if ran := ltProducts(d) > before; ran != (kind == "cublaslt") {
							b.Fatalf("cuBLASLt ran: %v (%v)", ran, d.CuBLASLt())
						}
						got := make([]byte, out.Len())
						if err := out.Read(0, got); err != nil {
							b.Fatal(err)
						}
						if kind == "loom" {
							loomOut = got
						} else if loomOut != nil {
							b.ReportMetric(relDiff(dt, loomOut, got), "rel-diff")
						}
						reportProduct(b, best, issue, reps, wBytes, bw.Read, m, sh.n, sh.k)
					})
				}
			})
		}
		for _, w := range ws {
			w.Release()
		}
	}
}

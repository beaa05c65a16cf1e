package cuda

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

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

// kernelTimer times launches on the GPU itself with CUDA events, without
// the per-Eval host overhead: a command buffer of busy work goes first, so
// that the host issues the timed launches while the GPU is still busy and
// the events measure the kernels back to back.
type kernelTimer struct {
	d          *Device
	q          *queue
	start, end uintptr // CUevents with timing
	busy       func()  // queues the busy work
	ev         runtime.Event
	n          uint64 // the last value signalled on ev
	release    func()
}

func newKernelTimer(tb testing.TB, d *Device) *kernelTimer {
	tb.Helper()
	kt := &kernelTimer{d: d}
	q, err := d.NewQueue()
	if err != nil {
		tb.Fatal(err)
	}
	kt.q = q.(*queue)
	kt.ev = q.NewEvent()
	if err := d.do(func() error {
		if err := d.drv.call(d.drv.eventCreate, uintptr(unsafe.Pointer(&kt.start)), 0); err != nil {
			return err
		}
		return d.drv.call(d.drv.eventCreate, uintptr(unsafe.Pointer(&kt.end)), 0)
	}); err != nil {
		tb.Fatal(err)
	}
	// Busy work: 32 copies of 256 MiB, about 5 ms on an H100.
	const size = 256 << 20
	src, dst := deviceBuffer(tb, d, size), deviceBuffer(tb, d, size)
	cp := primitives.CopyDispatch(primitives.In(0), primitives.Out(0), size)
	copyK, err := d.Kernel("copy_bytes")
	if err != nil {
		tb.Fatal(err)
	}
	args := []runtime.BufferArg{{Buffer: src, Size: size, Access: primitives.Read, Name: "src"}, {Buffer: dst, Size: size, Access: primitives.Write, Name: "dst"}}
	busy := &runtime.CommandList{}
	busy.NewPass()
	for range 32 {
		busy.Dispatch(copyK, cp.Grid, cp.Group, args, cp.Params, 0)
	}
	kt.busy = func() { kt.q.Submit(busy) }
	kt.release = func() {
		kt.q.Close()
		src.Release()
		dst.Release()
		d.do(func() error {
			d.drv.call(d.drv.eventDestroy, kt.start)
			return d.drv.call(d.drv.eventDestroy, kt.end)
		})
	}
	return kt
}

// reportProduct reports the launches of a product x[m, k]·W[n, k]ᵀ with
// wBytes of weights, runs of reps launches the best of which took best
// (kernelTimer.best) and issue on the host: µs a launch, the weights'
// GB/s and their share of the read bandwidth readGBs, TFLOP/s, issue µs.
func reportProduct(b *testing.B, best, issue time.Duration, reps int, wBytes int64, readGBs float64, m, n, k int) {
	s := best.Seconds() / float64(reps)
	gbs := float64(wBytes) / s / 1e9
	b.ReportMetric(s*1e6, "µs/kernel")
	b.ReportMetric(gbs, "weight-GB/s")
	b.ReportMetric(100*gbs/readGBs, "read-%")
	b.ReportMetric(2*float64(m*n*k)/s/1e12, "TFLOP/s")
	b.ReportMetric(float64(issue.Microseconds()), "issue-µs")
}

// best times record once to warm up, then once an iteration of b's loop,
// and returns the shortest GPU time and the longest issue time.
func (kt *kernelTimer) best(b *testing.B, record func(*runtime.CommandList)) (gpu, issue time.Duration) {
	b.Helper()
	kt.time(b, record)
	for b.Loop() {
		g, is := kt.time(b, record)
		if gpu == 0 || g < gpu {
			gpu = g
		}
		issue = max(issue, is)
	}
	return gpu, issue
}

// time returns the GPU time of the launches that record queues, and the
// host's time to issue them (which must stay under the busy work's for
// the figure to be the kernels' alone).
func (kt *kernelTimer) time(tb testing.TB, record func(*runtime.CommandList)) (gpu, issue time.Duration) {
	tb.Helper()
	d := kt.d
	kt.busy()
	cl := &runtime.CommandList{}
	cl.NewPass()
	record(cl)
	kt.n++
	cl.Signal(kt.ev, kt.n)
	t0 := time.Now()
	err := d.do(func() error { return d.drv.call(d.drv.eventRecord, kt.start, kt.q.stream) })
	var sub runtime.Submission
	if err == nil {
		sub = kt.q.Submit(cl)
		err = d.do(func() error { return d.drv.call(d.drv.eventRecord, kt.end, kt.q.stream) })
	}
	issue = time.Since(t0)
	var ms float32
	if err == nil {
		err = d.current(func() error {
			if err := d.drv.call(d.drv.eventSynchronize, kt.end); err != nil {
				return err
			}
			return d.drv.call(d.drv.eventElapsed, uintptr(unsafe.Pointer(&ms)), kt.start, kt.end)
		})
	}
	if sub != nil {
		kt.ev.Wait(kt.n)
		err = errors.Join(err, sub.Err())
	}
	if err != nil {
		tb.Fatal(err)
	}
	return time.Duration(float64(ms) * float64(time.Millisecond)), issue
}

func deviceBuffer(tb testing.TB, d *Device, n int64) runtime.Buffer {
	tb.Helper()
	b, err := d.NewBuffer(n)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// randomBuffer is a buffer of n values of dt in [-1, 1).
func randomBuffer(tb testing.TB, d *Device, dt graph.DType, n int, seed uint64) runtime.Buffer {
	tb.Helper()
	v := make([]float32, n)
	x := seed | 1
	for i := range v {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		v[i] = float32(x>>40)/(1<<24)*2 - 1
	}
	return uploadFloats(tb, d, dt, v)
}

// uploadFloats is a buffer holding v stored as dt.
func uploadFloats(tb testing.TB, d *Device, dt graph.DType, v []float32) runtime.Buffer {
	tb.Helper()
	data, err := graph.FromFloat32sAs(dt, v, len(v)).Bytes()
	if err != nil {
		tb.Fatal(err)
	}
	b := deviceBuffer(tb, d, int64(len(data)))
	if err := b.Write(0, data); err != nil {
		tb.Fatal(err)
	}
	return b
}

// qwenLinear are the Qwen3-0.6B projections as [N, K] weights (x·Wᵀ): q,
// k/v, o, gate/up, down, the lm_head, and the fused QKV and gate+up.
var qwenLinear = []struct {
	name string
	n, k int
}{
	{"q", 2048, 1024}, {"kv", 1024, 1024}, {"o", 1024, 2048}, {"gate_up", 3072, 1024}, {"down", 1024, 3072},
	{"qkv", 4096, 1024}, {"gate+up", 6144, 1024}, {"lm_head", 151936, 1024},
}

// BenchmarkMatMulKernels times the matmul kernels on the GPU (CUDA events
// around a run of launches, see kernelTimer), without the per-Eval host
// overhead: x[M, K]·Wᵀ for the Qwen3-0.6B projections at M = 1, 2, 4, 8,
// 32, 64, 65 and 128 in bfloat16, and the gated GEMV (MatMulSiLUMul,
// "gated") of its MLP, each launch reading another of enough weight sets
// to exceed the 50 MB L2 (GB/s of weights, and their share of the read
// bandwidth that the benchmark measures first, "read-%"), and the prefill
// and square products (TFLOP/s). Each case runs the lowering's kernel for
// the device's Caps ("default": with tensor cores, the lm_head of 2 to 8
// rows streams, Caps.GEMVStream); the GEMVs of up to 8 rows also run as
// the other GEMV kernels, side by side in one process: "mma", the
// tensor-core GEMV in tiles (Caps.GEMVStream off; the default's outputs
// must be its bits, else the case fails), and "fma", the FMA kernels
// (Caps.TensorCores off: at M = 1 the FMA GEMV, the gated GEMV up to 8
// rows). Past 8 rows, where the device has the cluster GEMV
// (Caps.ClusterGEMVRows), "tiles" runs the products without it (the tile
// loop up to 64 rows, the tiled kernel past them): up to 64 rows its
// outputs must be the default's bits; past them the case reports their
// largest relative difference ("rel-diff"). With LOOM_CUDA_MMA=0 the
// default is the FMA kernels. For
// tuning: LOOM_MATMUL_ROWS=1,8 picks the row counts of the projections,
// LOOM_MATMUL_GRID=x forces the GEMV grid's width and LOOM_MATMUL_SPLIT=s
// the tensor-core GEMV's warps a tile (1, 2, 4 or 8; in tiles with the
// grid that covers the tiles once; any values give the same results),
// LOOM_MATMUL_TILE_ROWS=8 or 16 its tile height (with LOOM_MATMUL_SPLIT),
// and LOOM_MATMUL_DTYPE picks another dtype. At M = 1 "read" times a plain
// read kernel over the same weight bytes, the floor of a kernel of them.
func BenchmarkMatMulKernels(b *testing.B) {
	d := device(b)
	kt := newKernelTimer(b, d)
	defer kt.release()
	dt := graph.BFloat16
	if s := os.Getenv("LOOM_MATMUL_DTYPE"); s != "" {
		var err error
		if dt, err = graph.ParseDType(s); err != nil {
			b.Fatal(err)
		}
	}
	rows := benchRows(b, []int{1, 2, 4, 8, 32, 64, 65, 128})
	bw, err := d.MeasureBandwidth(1<<30, 10)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("read bandwidth %.0f GB/s (copy %.0f GB/s)", bw.Read, bw.Kernel)
	type shape struct {
		name  string
		n, k  int // the weights [n, k]; the gated product's output has n/2 columns
		ms    []int
		gated bool
	}
	var shapes []shape
	for _, s := range qwenLinear {
		shapes = append(shapes, shape{s.name, s.n, s.k, rows, false})
	}
	shapes = append(shapes, shape{"gated", 6144, 1024, rows, true},
		shape{"prefill_gate_up", 3072, 1024, []int{512}, false}, shape{"square", 1024, 1024, []int{1024}, false}, shape{"square", 4096, 4096, []int{4096}, false})
	// The kernels a case runs, as Caps that lower to them.
	type kind struct {
		name string
		caps func(c primitives.Caps) primitives.Caps
	}
	// "read" (at M = 1) is no matmul but the floor a kernel's launch and
	// the weights' bytes set in this harness: sum_f32 over the same bytes,
	// a block of ReduceThreads per 8 KB row (MeasureBandwidth's kernel).
	kinds := func(m int, gated bool) []kind {
		ks := []kind{{"default", func(c primitives.Caps) primitives.Caps { return c }}}
		if m > 8 && d.Caps().ClusterGEMVRows > 0 {
			ks = append(ks, kind{"tiles", func(c primitives.Caps) primitives.Caps { c.ClusterGEMVRows = 0; return c }})
		}
		if m > 8 || !d.Caps().TensorCores {
			return ks
		}
		ks = append(ks, kind{"mma", func(c primitives.Caps) primitives.Caps { c.GEMVStream = false; return c }})
		if m == 1 {
			ks = append(ks, kind{"read", nil})
		}
		if m == 1 || gated {
			ks = append(ks, kind{"fma", func(c primitives.Caps) primitives.Caps {
				c.TensorCores, c.GatedGEMVMaxRows = false, 8
				return c
			}})
		}
		return ks
	}
	for _, sh := range shapes {
		wBytes := int64(sh.n * sh.k * dt.Size())
		sets := int(max(1, (256<<20)/wBytes))
		large := sh.ms[0] >= 512 // prefill and square: compute-bound
		if large {
			sets = 2
		}
		outN := sh.n
		if sh.gated {
			outN = sh.n / 2
		}
		var ws []runtime.Buffer // made by the first case that runs (-test.bench may skip all)
		for _, m := range sh.ms {
			reps := max(sets, 8)
			if large {
				reps = 20
			}
			b.Run(fmt.Sprintf("%s_%dx%dx%d", sh.name, m, sh.n, sh.k), func(b *testing.B) {
				var defaultOut []byte // the last launch's outputs in "default", which "mma" must match bit for bit
				for _, kd := range kinds(m, sh.gated) {
					b.Run(kd.name, func(b *testing.B) {
						for i := len(ws); i < sets; i++ {
							ws = append(ws, randomBuffer(b, d, dt, sh.n*sh.k, uint64(i+2)))
						}
						x := randomBuffer(b, d, dt, m*sh.k, 1)
						out := deviceBuffer(b, d, int64(m*outN*dt.Size()))
						defer x.Release()
						defer out.Release()
						in := []graph.Spec{{DType: dt, Shape: []int{m, sh.k}}, {DType: dt, Shape: []int{sh.n, sh.k}}}
						outs := []graph.Spec{{DType: dt, Shape: []int{m, outN}}}
						caps := d.Caps()
						if kd.caps != nil {
							caps = kd.caps(caps)
						}
						l := primitives.NewLowering(in, outs, caps)
						var prim primitives.Primitive = primitives.MatMul{TransposeB: true}
						if sh.gated {
							prim = primitives.MatMulSiLUMul{}
						}
						if err := prim.Lower(l); err != nil {
							b.Fatal(err)
						}
						if len(l.Dispatches) != 1 {
							b.Skipf("%d dispatches (the gated GEMV takes up to %d rows here)", len(l.Dispatches), d.Caps().GatedGEMVMaxRows)
						}
						disp := l.Dispatches[0]
						var readArgs func(i int) []runtime.BufferArg
						if kd.caps == nil { // "read"
							const rowFloats = 2048
							rows := int(wBytes) / 4 / rowFloats
							dst := deviceBuffer(b, d, int64(4*rows))
							defer dst.Release()
							disp = primitives.Dispatch{Kernel: "sum_f32", Grid: primitives.Dim3{X: rows, Y: 1, Z: 1}, Group: primitives.Dim3{X: primitives.ReduceThreads, Y: 1, Z: 1},
								Params: &primitives.AxisParams{Outer: uint32(rows), N: rowFloats, Inner: 1}}
							readArgs = func(i int) []runtime.BufferArg {
								return []runtime.BufferArg{{Buffer: ws[i%sets], Size: int64(4 * rows * rowFloats), Access: primitives.Read, Name: "a"},
									{Buffer: dst, Size: dst.Len(), Access: primitives.Write, Name: "out"}}
							}
						}
						// The tensor-core GEMV's tiles, its split and whether it runs and streams.
						var split *uint32
						mma, stream, ring, tiles := uint32(0), uint32(0), uint32(0), 0
						switch p := disp.Params.(type) {
						case *primitives.MatMulParams:
							if r, err := strconv.Atoi(os.Getenv("LOOM_MATMUL_TILE_ROWS")); err == nil && p.MMA == 1 && (r == 8 || r == 16) {
								p.TileRows = uint32(r) // the grid: LOOM_MATMUL_SPLIT's
							}
							split, mma, stream, ring, tiles = &p.Split, p.MMA, p.Stream, p.Ring, primitives.Groups(sh.n, max(int(p.TileRows), 1))
						case *primitives.MatMulSiLUMulParams:
							split, mma, ring, tiles = &p.Split, p.MMA, p.Ring, primitives.Groups(outN, 8)
						}
						if s, err := strconv.Atoi(os.Getenv("LOOM_MATMUL_SPLIT")); err == nil && mma == 1 && (s == 1 || s == 2 || s == 4 || s == 8) {
							*split = uint32(s) // and a grid of 8/s tiles a block, as the lowering would
							disp.Grid.X = primitives.Groups(tiles, primitives.GEMVThreads/32/s)
						}
						if g, err := strconv.Atoi(os.Getenv("LOOM_MATMUL_GRID")); err == nil && (strings.HasSuffix(disp.Kernel, "_gemv") || sh.gated) {
							disp.Grid.X = g
						}
						k, err := d.Kernel(disp.Kernel)
						if err != nil {
							b.Fatal(err)
						}
						spec, _ := primitives.LookupKernel(disp.Kernel)
						record := func(pass *runtime.CommandList) {
							for i := range reps {
								var args []runtime.BufferArg
								if readArgs != nil {
									args = readArgs(i)
								} else {
									args = []runtime.BufferArg{
										{Buffer: x, Size: x.Len(), Access: primitives.Read, Name: spec.Args[0].Name},
										{Buffer: ws[i%sets], Size: wBytes, Access: primitives.Read, Name: spec.Args[1].Name},
										{Buffer: out, Size: out.Len(), Access: primitives.Write, Name: spec.Args[2].Name},
									}
								}
								pass.Dispatch(k, disp.Grid, disp.Group, args, disp.Params, disp.SharedBytes)
							}
						}
						best, issue := kt.best(b, record)
						// Every kind's last launch read the same weights.
						// "tiles" must match the cluster GEMV's bits up to
						// MatMulMMARows rows; past them (the tiled kernel) it
						// reports the largest relative difference.
						if d.Caps().TensorCores && (kd.name == "default" || kd.name == "mma" || kd.name == "tiles") {
							got := make([]byte, out.Len())
							if err := out.Read(0, got); err != nil {
								b.Fatal(err)
							}
							if kd.name == "default" {
								defaultOut = got
							} else if kd.name == "tiles" && m > primitives.MatMulMMARows {
								b.ReportMetric(relDiff(dt, defaultOut, got), "rel-diff")
							} else if defaultOut != nil && !bytes.Equal(got, defaultOut) {
								b.Errorf("the default kernel's outputs differ from the %s kernel's bits", kd.name)
							}
						}
						reportProduct(b, best, issue, reps, wBytes, bw.Read, m, sh.n, sh.k)
						b.ReportMetric(float64(disp.Grid.X), "grid-x")
						b.ReportMetric(float64(mma), "mma")
						b.ReportMetric(float64(stream), "stream")
						b.ReportMetric(float64(ring), "ring")
						if split != nil {
							b.ReportMetric(float64(*split), "split")
						}
					})
				}
			})
		}
		for _, w := range ws {
			w.Release()
		}
	}
}

// benchRows is the row counts of LOOM_MATMUL_ROWS (comma-separated), or def.
func benchRows(b *testing.B, def []int) []int {
	s := os.Getenv("LOOM_MATMUL_ROWS")
	if s == "" {
		return def
	}
	var rows []int
	for _, f := range strings.Split(s, ",") {
		m, err := strconv.Atoi(f)
		if err != nil || m < 1 {
			b.Fatalf("LOOM_MATMUL_ROWS=%q: want row counts ≥ 1, separated by commas", s)
		}
		rows = append(rows, m)
	}
	return rows
}

// BenchmarkDecodeMatMuls times a decode step's linear layers as a step
// runs them, back to back: the products of Qwen3-0.6B's 28 layers, each
// layer its own weights (30 MB a layer, 840 MB in all, so that every
// launch reads HBM), lowered as the model lowers them (the residual add
// and RMSNorm fused into the QKV projection [4096, 1024] and the gated
// gate/up [2·3072, 1024]: one kernel each at M = 1, add_rms_norm and the
// product past it; the O [1024, 2048] and down [1024, 3072] projections),
// in one command list, which from its second run on is a CUDA graph with
// programmatic edges where the device has them (kernelTimer), timed with
// CUDA events. "lm_head" times the [151936, 1024] projection alone, 4
// times back to back. Kinds: "main" (Caps.GEMVBulk off: the tile loop),
// "bulk" (the bulk GEMV, LOOM_CUDA_GEMV_BULK=1's shape) and the bulk
// shapes of LOOM_BULK_SHAPES (stages,stageKB,blocks;…, default the
// variants below; none for none), where the device has the bulk GEMV on
// (LOOM_CUDA_GEMV_BULK, which compiles its kernels; sm_90 and later),
// each launch copying its first weights before grid_dependency_wait
// (nothing in the list writes the weights) unless LOOM_CUDA_BULK_EARLY=0;
// their outputs must be main's bits.
// Rows: LOOM_MATMUL_ROWS (default 1 and 8). Reported: µs a layer (or a
// projection), the weights' GB/s, their share of the read bandwidth
// measured first, and the floor (the weights at that bandwidth).
func BenchmarkDecodeMatMuls(b *testing.B) {
	d := device(b)
	kt := newKernelTimer(b, d)
	defer kt.release()
	dt := graph.BFloat16
	bw, err := d.MeasureBandwidth(1<<30, 10)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("read bandwidth %.0f GB/s (copy %.0f GB/s); the bulk GEMV's early fill %v", bw.Read, bw.Kernel, d.bulkEarly)
	type kind struct {
		name string
		bulk primitives.GEMVBulk
	}
	kinds := []kind{{"main", primitives.GEMVBulk{}}}
	if d.Caps().GEMVBulk.Stages > 0 { // its kernels are compiled
		kinds = append(kinds, kind{"bulk", bulkDefault})
		shapes := os.Getenv("LOOM_BULK_SHAPES")
		if shapes == "" {
			shapes = "2,32,1;4,16,1;2,64,1;3,32,2"
		}
		for _, sh := range strings.Split(shapes, ";") {
			if sh == "none" {
				break
			}
			var k kind
			if _, err := fmt.Sscanf(sh, "%d,%d,%d", &k.bulk.Stages, &k.bulk.StageBytes, &k.bulk.Blocks); err != nil {
				b.Fatalf("LOOM_BULK_SHAPES=%q: want stages,stageKB,blocks;…", shapes)
			}
			k.name, k.bulk.StageBytes = "bulk-"+strings.ReplaceAll(sh, ",", "-"), k.bulk.StageBytes<<10
			kinds = append(kinds, k)
		}
	}
	// A product: its primitive and, for m rows, its inputs' shapes; input
	// w is the weights.
	type product struct {
		prim primitives.Primitive
		in   func(m int) [][]int
		w    int
	}
	const eps = 1e-6
	norm := func(n int, gated bool) product {
		return product{primitives.AddRMSNormLinear{Eps: eps, Gated: gated}, func(m int) [][]int { return [][]int{{m, 1024}, {m, 1024}, {1024}, {n, 1024}} }, 3}
	}
	linear := func(n, k int) product {
		return product{primitives.MatMul{TransposeB: true}, func(m int) [][]int { return [][]int{{m, k}, {n, k}} }, 1}
	}
	cases := []struct {
		name     string
		products []product
		repeat   int
	}{
		{"layers", []product{norm(4096, false), linear(1024, 2048), norm(2*3072, true), linear(1024, 3072)}, 28},
		{"lm_head", []product{linear(151936, 1024)}, 4},
	}
	for _, c := range cases {
		var weights [][]runtime.Buffer // [repeat][product], made by the first case that runs
		for _, m := range benchRows(b, []int{1, 8}) {
			b.Run(fmt.Sprintf("%s_%d", c.name, m), func(b *testing.B) {
				var mainOut [][]byte
				for _, kd := range kinds {
					b.Run(kd.name, func(b *testing.B) {
						var wBytes int64
						for r := range c.repeat {
							if r == len(weights) {
								weights = append(weights, make([]runtime.Buffer, len(c.products)))
							}
							for i, p := range c.products {
								sh := p.in(m)[p.w]
								if weights[r][i] == nil {
									weights[r][i] = randomBuffer(b, d, dt, sh[0]*sh[1], uint64(100*r+i+2))
								}
								wBytes += int64(sh[0] * sh[1] * dt.Size())
							}
						}
						caps := d.Caps()
						caps.GEMVBulk = kd.bulk
						var release []runtime.Buffer
						defer func() {
							for _, buf := range release {
								buf.Release()
							}
						}()
						// Each product's dispatches and its buffers other than the
						// weights (the same for every layer).
						type lowered struct {
							ds   []primitives.Dispatch
							ks   []runtime.Kernel
							bufs map[primitives.Ref]runtime.Buffer
							outs []runtime.Buffer
						}
						var lows []lowered
						for i, p := range c.products {
							var in []graph.Spec
							for _, sh := range p.in(m) {
								in = append(in, graph.Spec{DType: dt, Shape: sh})
							}
							outs, err := p.prim.Outputs(in)
							if err != nil {
								b.Fatal(err)
							}
							l := primitives.NewLowering(in, outs, caps)
							if err := p.prim.Lower(l); err != nil {
								b.Fatal(err)
							}
							lw := lowered{ds: l.Dispatches, bufs: map[primitives.Ref]runtime.Buffer{}}
							for _, disp := range l.Dispatches {
								k, err := d.Kernel(disp.Kernel)
								if err != nil {
									b.Fatal(err)
								}
								lw.ks = append(lw.ks, k)
							}
							for j, s := range in {
								if j != p.w {
									lw.bufs[primitives.In(j)] = randomBuffer(b, d, dt, s.Size(), uint64(1000+10*i+j))
									release = append(release, lw.bufs[primitives.In(j)])
								}
							}
							for j, s := range outs {
								lw.bufs[primitives.Out(j)] = deviceBuffer(b, d, int64(s.Size()*dt.Size()))
								lw.outs = append(lw.outs, lw.bufs[primitives.Out(j)])
								release = append(release, lw.bufs[primitives.Out(j)])
							}
							for j, n := range l.Scratch {
								lw.bufs[primitives.Ref{Kind: primitives.ScratchRef, Index: j}] = deviceBuffer(b, d, n)
								release = append(release, lw.bufs[primitives.Ref{Kind: primitives.ScratchRef, Index: j}])
							}
							lows = append(lows, lw)
						}
						record := func(cl *runtime.CommandList) {
							for r := range c.repeat {
								for i, lw := range lows {
									for j, disp := range lw.ds {
										var args []runtime.BufferArg
										for _, a := range disp.Args {
											buf := lw.bufs[a.Ref]
											if a.Ref == primitives.In(c.products[i].w) {
												buf = weights[r][i]
											}
											size := a.Size
											if size == 0 {
												size = buf.Len() - a.Offset
											}
											args = append(args, runtime.BufferArg{Buffer: buf, Offset: a.Offset, Size: size, Access: a.Access, Name: a.Name})
										}
										cl.Dispatch(lw.ks[j], disp.Grid, disp.Group, args, disp.Params, disp.SharedBytes)
									}
								}
							}
						}
						best, _ := kt.best(b, record)
						var got [][]byte
						for _, lw := range lows {
							for _, o := range lw.outs {
								data := make([]byte, o.Len())
								if err := o.Read(0, data); err != nil {
									b.Fatal(err)
								}
								got = append(got, data)
							}
						}
						if kd.name == "main" {
							mainOut = got
						} else if mainOut != nil {
							for i := range got {
								if !bytes.Equal(got[i], mainOut[i]) {
									b.Errorf("output %d differs from main's bits", i)
								}
							}
						}
						s := best.Seconds() / float64(c.repeat)
						gbs := float64(wBytes) / best.Seconds() / 1e9
						b.ReportMetric(s*1e6, "µs/"+strings.TrimSuffix(c.name, "s"))
						b.ReportMetric(gbs, "weight-GB/s")
						b.ReportMetric(100*gbs/bw.Read, "read-%")
						b.ReportMetric(float64(wBytes)/float64(c.repeat)/(bw.Read*1e9)*1e6, "floor-µs")
					})
				}
			})
		}
		for _, ws := range weights {
			for _, w := range ws {
				w.Release()
			}
		}
	}
}

// relDiff is the largest difference of two outputs of dtype dt, relative
// to the largest magnitude of b: where two kernels sum in other orders.
func relDiff(dt graph.DType, a, b []byte) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	x, y := graph.DecodeFloat64s(dt, a), graph.DecodeFloat64s(dt, b)
	var diff, scale float64
	for i := range x {
		diff = max(diff, math.Abs(x[i]-y[i]))
		scale = max(scale, math.Abs(y[i]))
	}
	return diff / scale
}

// BenchmarkGatedGEMV times the gated GEMV (matmul_silu_mul) at batch 1 on
// the Qwen3-0.6B MLP, x[1, 1024] by the stacked gate and up weights [2·3072,
// 1024], the way BenchmarkMatMulKernels times the GEMV (CUDA events around a
// run of launches, each reading another of enough weight sets to exceed the
// L2), beside the unfused product of the same weights.
func BenchmarkGatedGEMV(b *testing.B) {
	d := device(b)
	kt := newKernelTimer(b, d)
	defer kt.release()
	const n, k = 3072, 1024
	dt := graph.BFloat16
	wBytes := int64(2 * n * k * dt.Size())
	sets := int(max(1, (256<<20)/wBytes))
	var ws []runtime.Buffer
	for i := range sets {
		ws = append(ws, randomBuffer(b, d, dt, 2*n*k, uint64(i+2)))
	}
	defer func() {
		for _, w := range ws {
			w.Release()
		}
	}()
	x := randomBuffer(b, d, dt, k, 1)
	out := deviceBuffer(b, d, int64(2*n*dt.Size()))
	defer x.Release()
	defer out.Release()
	in := []graph.Spec{{DType: dt, Shape: []int{1, k}}, {DType: dt, Shape: []int{2 * n, k}}}
	for _, c := range []struct {
		name string
		p    primitives.Primitive
		out  []int
	}{
		{"matmul_silu_mul", primitives.MatMulSiLUMul{}, []int{1, n}},
		{"matmul", primitives.MatMul{TransposeB: true}, []int{1, 2 * n}},
	} {
		b.Run(fmt.Sprintf("%s_1x%dx%d", c.name, 2*n, k), func(b *testing.B) {
			caps := d.Caps()
			caps.GatedGEMVMaxRows = max(caps.GatedGEMVMaxRows, 1)
			l := primitives.NewLowering(in, []graph.Spec{{DType: dt, Shape: c.out}}, caps)
			if err := c.p.Lower(l); err != nil {
				b.Fatal(err)
			}
			disp := l.Dispatches[0]
			kern, err := d.Kernel(disp.Kernel)
			if err != nil {
				b.Fatal(err)
			}
			reps := max(sets, 8)
			record := func(pass *runtime.CommandList) {
				for i := range reps {
					args := []runtime.BufferArg{
						{Buffer: x, Size: x.Len(), Access: primitives.Read, Name: "x"},
						{Buffer: ws[i%sets], Size: wBytes, Access: primitives.Read, Name: "w"},
						{Buffer: out, Size: out.Len(), Access: primitives.Write, Name: "out"},
					}
					pass.Dispatch(kern, disp.Grid, disp.Group, args, disp.Params, disp.SharedBytes)
				}
			}
			best, _ := kt.best(b, record)
			s := best.Seconds() / float64(reps)
			b.ReportMetric(s*1e6, "µs/kernel")
			b.ReportMetric(float64(wBytes)/s/1e9, "weight-GB/s")
		})
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

package cpu_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/cpu/internal/vec"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// attentionInputs are random caches, queries and metadata for sequences of
// kvLens keys and qLens query tokens, with blocks in random order.
type attentionInputs struct {
	q, kc, vc *graph.Array
	meta      ops.AttentionMeta
	kvBytes   int64
}

func newAttentionInputs(r *rand.Rand, dt graph.DType, heads, kvh, hs, bs int, qLens, kvLens []int) attentionInputs {
	blocks, maxBlocks, maxLen, tq := 0, 0, 0, 0
	for s, kv := range kvLens {
		n := (kv + bs - 1) / bs
		blocks += n
		maxBlocks = max(maxBlocks, n)
		maxLen = max(maxLen, kv)
		tq += qLens[s]
	}
	perm := r.Perm(blocks)
	tables := make([]int32, len(kvLens)*maxBlocks)
	lens := make([]int32, len(kvLens))
	cu := []int32{0}
	var keys int64
	for s, kv := range kvLens {
		for b := range (kv + bs - 1) / bs {
			tables[s*maxBlocks+b] = int32(perm[0])
			perm = perm[1:]
		}
		lens[s] = int32(kv)
		cu = append(cu, cu[s]+int32(qLens[s]))
		keys += int64(kv)
	}
	n := blocks * bs * kvh * hs
	return attentionInputs{
		q:  graph.FromFloat32sAs(dt, loomtest.Float32s(r, tq*heads*hs, -2, 2), tq, heads, hs),
		kc: graph.FromFloat32sAs(dt, loomtest.Float32s(r, n, -1, 1), blocks, bs, kvh, hs),
		vc: graph.FromFloat32sAs(dt, loomtest.Float32s(r, n, -1, 1), blocks, bs, kvh, hs),
		meta: ops.AttentionMeta{
			BlockTables: graph.FromInt32s(tables, len(kvLens), maxBlocks),
			SeqLens:     graph.FromInt32s(lens),
			CuSeqlensQ:  graph.FromInt32s(cu),
			MaxSeqLen:   maxLen,
		},
		kvBytes: 2 * keys * int64(kvh*hs*dt.Size()),
	}
}

// TestPagedAttentionWorkersDeterminism checks that both paths give the same
// bits whatever the number of workers (which changes how the kernels split
// KV heads over units), for a varlen batch and a decode batch.
func TestPagedAttentionWorkersDeterminism(t *testing.T) {
	for _, in := range []attentionInputs{
		newAttentionInputs(loomtest.Rand(1), graph.BFloat16, 12, 3, 64, 16, []int{1, 7, 1, 30}, []int{1500, 700, 33, 1100}),
		newAttentionInputs(loomtest.Rand(1), graph.Float16, 8, 4, 128, 8, []int{1, 1}, []int{900, 77}),
	} {
		checkWorkersDeterminism(t, "varlen and decode batches", in, ops.AttentionOptions{Softcap: 4})
	}
}

// TestPagedAttentionDecodeWorkers checks decode dispatches of fewer
// sequences than workers on 1, 2, 3 and 7 workers, bit for bit: contexts
// of a block and one key more, partial last blocks, a sliding window that
// starts inside a block, sinks, odd groups, a head size without the
// assembly (80), one sequence and two.
func TestPagedAttentionDecodeWorkers(t *testing.T) {
	r := loomtest.Rand(9)
	sinks := graph.FromFloat32s(loomtest.Float32s(r, 9, -1, 1))
	for _, c := range []struct {
		dt                 graph.DType
		heads, kvh, hs, bs int
		kvLens             []int
		opts               ops.AttentionOptions
	}{
		{graph.BFloat16, 16, 8, 128, 16, []int{17}, ops.AttentionOptions{}},
		{graph.BFloat16, 16, 8, 128, 16, []int{131}, ops.AttentionOptions{}},
		{graph.BFloat16, 16, 8, 128, 16, []int{512}, ops.AttentionOptions{Softcap: 4}},
		{graph.Float16, 9, 3, 64, 8, []int{75}, ops.AttentionOptions{SlidingWindow: 29, Sinks: sinks}},
		{graph.Float32, 6, 2, 80, 32, []int{100}, ops.AttentionOptions{SlidingWindow: 70}},
		{graph.BFloat16, 8, 8, 96, 16, []int{200, 37}, ops.AttentionOptions{}},
	} {
		in := newAttentionInputs(r, c.dt, c.heads, c.kvh, c.hs, c.bs, slices.Repeat([]int{1}, len(c.kvLens)), c.kvLens)
		checkWorkersDeterminism(t, fmt.Sprintf("%s, %d/%d heads of %d, keys %v", c.dt, c.heads, c.kvh, c.hs, c.kvLens), in, c.opts)
	}
}

// checkWorkersDeterminism checks that the attention of in with opts gives
// the same bits on 1, 2, 3 and 7 workers, on the single pass and the split
// path.
func checkWorkersDeterminism(t *testing.T, what string, in attentionInputs, opts ops.AttentionOptions) {
	for _, split := range []ops.SplitMode{ops.SplitNever, ops.SplitAlways} {
		var first []byte
		for _, workers := range []int{1, 2, 3, 7} {
			rt, err := runtime.New(cpu.New(cpu.Options{Workers: workers}), runtime.Options{})
			if err != nil {
				t.Fatal(err)
			}
			q, kc, vc := in.q, in.kc, in.vc
			meta := in.meta
			// Each runtime needs its own copies of the constants.
			q, kc, vc = clone(q), clone(kc), clone(vc)
			meta.BlockTables, meta.SeqLens, meta.CuSeqlensQ = clone(meta.BlockTables), clone(meta.SeqLens), clone(meta.CuSeqlensQ)
			o := opts
			o.Split = split
			if o.Sinks != nil {
				o.Sinks = clone(o.Sinks)
			}
			out := ops.PagedAttention(q, kc, vc, meta, o)
			if err := rt.Eval(out); err != nil {
				t.Fatal(err)
			}
			b, err := out.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if first == nil {
				first = b
			} else if string(b) != string(first) {
				t.Fatalf("%s, %+v, split %v: %d workers give different bits than 1", what, opts, split, workers)
			}
			rt.Close()
		}
	}
}

// TestPagedAttentionGoFallback checks that the kernels without assembly
// (the path of CPUs without AVX2 and of other architectures) agree with
// the assembly ones, on a varlen and a decode batch, on both paths.
func TestPagedAttentionGoFallback(t *testing.T) {
	if !vec.Assembly() {
		t.Skip("no assembly on this CPU: the Go path is the only one")
	}
	for _, in := range []attentionInputs{
		newAttentionInputs(loomtest.Rand(3), graph.Float32, 8, 2, 80, 16, []int{1, 9, 20}, []int{600, 9, 530}),
		newAttentionInputs(loomtest.Rand(4), graph.BFloat16, 8, 8, 64, 8, []int{1, 1, 1}, []int{520, 1, 700}),
	} {
		for _, split := range []ops.SplitMode{ops.SplitNever, ops.SplitAlways} {
			var got [2][]float64
			for i, asm := range []bool{true, false} {
				was := vec.SetAssembly(asm)
				rt, err := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
				if err != nil {
					t.Fatal(err)
				}
				meta := in.meta
				meta.BlockTables, meta.SeqLens, meta.CuSeqlensQ = clone(meta.BlockTables), clone(meta.SeqLens), clone(meta.CuSeqlensQ)
				out := ops.PagedAttention(clone(in.q), clone(in.kc), clone(in.vc), meta, ops.AttentionOptions{Split: split, SlidingWindow: 600})
				err = rt.Eval(out)
				vec.SetAssembly(was)
				if err != nil {
					t.Fatal(err)
				}
				if got[i], err = out.Float64s(); err != nil {
					t.Fatal(err)
				}
				rt.Close()
			}
			atol, rtol := 1e-5, 1e-5
			if in.q.DType() == graph.BFloat16 {
				atol, rtol = 8e-3, 8e-3 // one bfloat16 rounding apart at most
			}
			loomtest.Close(t, fmt.Sprintf("%s split %v: Go against assembly", in.q.DType(), split), got[1], got[0], atol, rtol)
		}
	}
}

func clone(a *graph.Array) *graph.Array {
	b, err := a.Bytes()
	if err != nil {
		panic(err)
	}
	return graph.FromBytes(a.DType(), b, a.Shape()...)
}

// TestAttentionKernelsRegistered checks that every kernel name the
// attention primitives can emit is in the catalog and implemented by the
// CPU device.
func TestAttentionKernelsRegistered(t *testing.T) {
	dev := cpu.New(cpu.Options{})
	var names []string
	for _, dt := range primitives.AttentionDTypes {
		names = append(names, primitives.KVWriteKernel(dt, graph.Int32), primitives.KVWriteKernel(dt, graph.Int64))
		for _, hs := range primitives.AttentionHeadSizes {
			for _, sinks := range []bool{false, true} {
				for _, bs := range primitives.AttentionBlockSizes {
					names = append(names, primitives.PagedAttentionKernel(dt, hs, bs, sinks), primitives.PagedAttentionSplitKernel(dt, hs, bs, sinks))
				}
			}
		}
	}
	for _, n := range names {
		if _, ok := primitives.LookupKernel(n); !ok {
			t.Errorf("%s is not in the catalog", n)
		}
		if _, err := dev.Kernel(n); err != nil {
			t.Error(err)
		}
	}
}

// BenchmarkPagedAttention times decode and prefill shapes of the benchmark
// suite (`loom bench attention` runs all of it) on both paths and reports
// the K/V bytes read per second.
func BenchmarkPagedAttention(b *testing.B) {
	for _, c := range []struct {
		name          string
		heads         int
		qLens, kvLens []int
	}{
		{"decode-B8-kv2048", 8, []int{1, 1, 1, 1, 1, 1, 1, 1}, []int{2048, 2048, 2048, 2048, 2048, 2048, 2048, 2048}},
		{"decode-B1-kv16384", 8, []int{1}, []int{16384}},
		{"decode-B1-kv1024-16q8kv", 16, []int{1}, []int{1024}}, // a Qwen3-0.6B layer
		{"varlen-q256-kv4096", 8, []int{256}, []int{4096}},
	} {
		in := newAttentionInputs(loomtest.Rand(2), graph.Float16, c.heads, 8, 128, 16, c.qLens, c.kvLens)
		rt, err := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := rt.Eval(in.q, in.kc, in.vc, in.meta.BlockTables, in.meta.SeqLens, in.meta.CuSeqlensQ); err != nil {
			b.Fatal(err)
		}
		for _, split := range []ops.SplitMode{ops.SplitNever, ops.SplitAlways} {
			b.Run(fmt.Sprintf("%s/%v", c.name, split), func(b *testing.B) {
				for b.Loop() {
					if err := rt.Eval(ops.PagedAttention(in.q, in.kc, in.vc, in.meta, ops.AttentionOptions{Split: split})); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(in.kvBytes)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
		}
		rt.Close()
	}
}

package primitives_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// lowerAttention lowers paged attention for q [tq, heads, hs] over caches
// of 64 blocks of bs tokens and kvh heads, for seqs sequences.
func lowerAttention(t *testing.T, p primitives.PagedAttention, caps primitives.Caps, dt graph.DType, tq, heads, kvh, hs, bs, seqs, maxBlocks int) *primitives.Lowering {
	t.Helper()
	in := []graph.Spec{
		{DType: dt, Shape: []int{tq, heads, hs}},
		{DType: dt, Shape: []int{64, bs, kvh, hs}},
		{DType: dt, Shape: []int{64, bs, kvh, hs}},
		{DType: graph.Int32, Shape: []int{seqs, maxBlocks}},
		{DType: graph.Int32, Shape: []int{seqs}},
		{DType: graph.Int32, Shape: []int{seqs + 1}},
	}
	if p.Sinks {
		in = append(in, graph.Spec{DType: graph.Float32, Shape: []int{heads}})
	}
	out, err := p.Outputs(in)
	if err != nil {
		t.Fatal(err)
	}
	l := primitives.NewLowering(in, out, caps)
	if err := p.Lower(l); err != nil {
		t.Fatal(err)
	}
	return l
}

// checkCatalog checks every dispatch against its catalog entry
// (primitives.CheckDispatch): the kernel, its arguments' names and access
// modes in order, the params type.
func checkCatalog(t *testing.T, l *primitives.Lowering) {
	t.Helper()
	for i := range l.Dispatches {
		if err := primitives.CheckDispatch(&l.Dispatches[i]); err != nil {
			t.Error(err)
		}
	}
}

// TestAttentionThreadgroup checks the threadgroup the GPU attention
// kernels get: AttentionWarps SIMD groups on both paths, whatever the
// batch, the grid and the GQA ratio, so that the split of a row's keys
// over the SIMD groups, and with it the row's result, does not depend on
// the batch.
func TestAttentionThreadgroup(t *testing.T) {
	gpu := primitives.Caps{SIMDWidth: 32, MaxThreadsPerGroup: 1024, MaxSharedBytes: 48 << 10, Cores: 132}
	for _, split := range []primitives.SplitMode{primitives.SplitNever, primitives.SplitAlways} {
		for _, heads := range []int{8, 16, 24, 64, 128} {
			for _, tq := range []int{1, 40, 300} {
				l := lowerAttention(t, primitives.PagedAttention{MaxSeqLen: 1300, Split: split}, gpu, graph.Float16, tq, heads, 8, 256, 16, 2, 90)
				for _, d := range l.Dispatches[:1] {
					if d.Group != (primitives.Dim3{32 * primitives.AttentionWarps, 1, 1}) || d.SharedBytes != 0 {
						t.Errorf("split %v, %d heads, %d tokens: threadgroup %v with %d shared bytes, want %d threads and none",
							split, heads, tq, d.Group, d.SharedBytes, 32*primitives.AttentionWarps)
					}
				}
			}
		}
	}
}

// TestPagedAttentionLowering checks both paths' dispatches: kernel names,
// argument order, access modes, scratch sizes, the statistics counter and
// the params.
func TestPagedAttentionLowering(t *testing.T) {
	caps := primitives.Caps{Device: "cpu", SIMDWidth: 8, MaxThreadsPerGroup: 1024, Cores: 2}
	for _, sinks := range []bool{false, true} {
		p := primitives.PagedAttention{MaxSeqLen: 1300, Sinks: sinks, Split: primitives.SplitNever, SlidingWindow: 100, Softcap: 3}
		l := lowerAttention(t, p, caps, graph.Float16, 5, 16, 8, 128, 16, 2, 90)
		checkCatalog(t, l)
		if len(l.Dispatches) != 1 || l.Dispatches[0].Kernel != primitives.PagedAttentionKernel(graph.Float16, 128, 16, sinks) || len(l.Scratch) != 0 {
			t.Fatalf("single pass: %d dispatches (%v), %d scratch buffers", len(l.Dispatches), l.Dispatches, len(l.Scratch))
		}
		if l.Counters["paged_attention.single"] != 1 {
			t.Errorf("counters %v", l.Counters)
		}
		pr := l.Dispatches[0].Params.(*primitives.PagedAttentionParams)
		want := primitives.PagedAttentionParams{NumSeqs: 2, NumTokens: 5, NumHeads: 16, NumKVHeads: 8, HeadSize: 128, BlockSize: 16, NumBlocks: 64,
			MaxBlocksPerSeq: 90, MaxSeqLen: 1300, PartitionSize: 512, SlidingWindow: 100, Scale: pr.Scale, Softcap: 3}
		if *pr != want || pr.Scale != float32(1/11.313708498984761) {
			t.Errorf("params %+v, want %+v with scale 1/√128", *pr, want)
		}

		p.Split = primitives.SplitAlways
		l = lowerAttention(t, p, caps, graph.Float16, 5, 16, 8, 128, 16, 2, 90)
		checkCatalog(t, l)
		if len(l.Dispatches) != 1 || l.Counters["paged_attention.split"] != 1 {
			t.Fatalf("split: %d dispatches, counters %v", len(l.Dispatches), l.Counters)
		}
		// 1300 keys in partitions of 512: 3 partitions per row; a counter
		// per query token and KV head.
		rows := int64(5 * 16 * 3)
		if !slices.Equal(l.Scratch, []int64{4 * rows, 4 * rows, 2 * 128 * rows, 4 * 5 * 8}) || !slices.Equal(l.Zeroed, []bool{false, false, false, true}) {
			t.Errorf("scratch %v zeroed %v, want max_logits and exp_sums of %d floats, tmp_out of %d halves and 40 zeroed counters", l.Scratch, l.Zeroed, rows, rows*128)
		}
		d := l.Dispatches[0]
		if d.Kernel != primitives.PagedAttentionSplitKernel(graph.Float16, 128, 16, sinks) || d.Grid != (primitives.Dim3{8, 5, 3}) {
			t.Errorf("kernel %s, grid %v", d.Kernel, d.Grid)
		}
		if d.Params.(*primitives.PagedAttentionParams).NumPartitions != 3 {
			t.Errorf("split params %+v", d.Params)
		}
		// The partials are the dispatch's own (written before they are
		// read); the counters must come in zero and are left zero.
		scratch := d.Args[len(d.Args)-5 : len(d.Args)-1]
		for i, a := range scratch {
			want := primitives.Write
			if a.Name == "counters" {
				want = primitives.ReadWrite
			}
			if a.Ref != (primitives.Ref{Kind: primitives.ScratchRef, Index: i}) || a.Access != want {
				t.Errorf("split argument %s: %v %v", a.Name, a.Ref, a.Access)
			}
		}
		if out := d.Args[len(d.Args)-1]; out.Ref != primitives.Out(0) || out.Access != primitives.Write {
			t.Errorf("split output %v", out)
		}
	}
}

// TestPagedAttentionLoweringTooLarge checks that split-KV scratch the
// kernels cannot index with 32-bit integers is refused.
func TestPagedAttentionLoweringTooLarge(t *testing.T) {
	p := primitives.PagedAttention{MaxSeqLen: 32768, Split: primitives.SplitAlways}
	in := []graph.Spec{
		{DType: graph.Float16, Shape: []int{2048, 64, 256}},
		{DType: graph.Float16, Shape: []int{64, 16, 8, 256}},
		{DType: graph.Float16, Shape: []int{64, 16, 8, 256}},
		{DType: graph.Int32, Shape: []int{1, 2048}},
		{DType: graph.Int32, Shape: []int{1}},
		{DType: graph.Int32, Shape: []int{2}},
	}
	out, err := p.Outputs(in)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Lower(primitives.NewLowering(in, out, primitives.Caps{Device: "cpu", Cores: 2}))
	if err == nil || !strings.Contains(err.Error(), "unsupported size: the split-KV partial outputs") {
		t.Fatalf("err = %v, want an unsupported size", err)
	}
}

// TestKVWriteLowering checks the KV write's dispatch: both caches
// read-write through the outputs, which alias the donated inputs.
func TestKVWriteLowering(t *testing.T) {
	in := []graph.Spec{
		{DType: graph.BFloat16, Shape: []int{10, 8, 2, 64}},
		{DType: graph.BFloat16, Shape: []int{10, 8, 2, 64}},
		{DType: graph.BFloat16, Shape: []int{3, 2, 64}},
		{DType: graph.BFloat16, Shape: []int{3, 2, 64}},
		{DType: graph.Int64, Shape: []int{3}},
	}
	var p primitives.KVWrite
	out, err := p.Outputs(in)
	if err != nil {
		t.Fatal(err)
	}
	l := primitives.NewLowering(in, out, primitives.Caps{})
	if err := p.Lower(l); err != nil {
		t.Fatal(err)
	}
	checkCatalog(t, l)
	d := l.Dispatches[0]
	if d.Kernel != "kv_write_bf16_i64" || d.Args[0].Ref != primitives.Out(0) || d.Args[1].Ref != primitives.Out(1) ||
		d.Args[0].Access != primitives.ReadWrite || d.Args[1].Access != primitives.ReadWrite {
		t.Errorf("dispatch %+v", d)
	}
	if *d.Params.(*primitives.KVWriteParams) != (primitives.KVWriteParams{NumTokens: 3, KVHeads: 2, HeadSize: 64, NumSlots: 80}) {
		t.Errorf("params %+v", d.Params)
	}
	if !slices.Equal(p.Aliases(), []graph.Alias{{Output: 0, Input: 0, Donate: true}, {Output: 1, Input: 1, Donate: true}}) {
		t.Errorf("aliases %v", p.Aliases())
	}
}

// TestUseSplitKV checks the automatic choice: split only when the single
// pass would leave cores idle and the context spans several partitions.
func TestUseSplitKV(t *testing.T) {
	n := 4
	gpu := primitives.Caps{Device: "metal", Cores: 10, SplitKV: primitives.SplitKVGate{GroupsPerCore: n, PerHead: true}}
	cpu := primitives.Caps{Device: "cpu", Cores: 2, SplitKV: primitives.SplitKVGate{GroupsPerCore: n}}
	always := primitives.Caps{Device: "cuda", Cores: 132, SplitKV: primitives.SplitKVGate{PerHead: true}}
	for _, c := range []struct {
		mode              primitives.SplitMode
		caps              primitives.Caps
		tokens, kvh, part int
		want              bool
	}{
		{primitives.SplitAuto, gpu, 1, 1, 2, true},
		{primitives.SplitAuto, gpu, 1, 1, 1, false}, // one partition: nothing to split
		{primitives.SplitAuto, gpu, 10*n - 1, 1, 16, true},
		{primitives.SplitAuto, gpu, 10*n/8 - 1, 8, 16, true},
		{primitives.SplitAuto, gpu, 10 * n, 1, 16, false},
		{primitives.SplitAuto, gpu, 10 * n / 8, 8, 16, false},
		{primitives.SplitAuto, cpu, 1, 8, 16, true}, // the CPU keeps a token's KV heads together
		{primitives.SplitAuto, cpu, 2*n - 1, 8, 16, true},
		{primitives.SplitAuto, cpu, 2 * n, 1, 16, false},
		{primitives.SplitAuto, cpu, 1, 8, 1, false},
		{primitives.SplitAuto, always, 4096, 8, 2, true}, // no occupancy limit
		{primitives.SplitAuto, always, 4096, 8, 1, false},
		{primitives.SplitNever, gpu, 1, 1, 16, false},
		{primitives.SplitAlways, cpu, 100, 8, 1, true},
	} {
		if got := primitives.UseSplitKV(c.mode, c.caps, c.tokens, c.kvh, c.part); got != c.want {
			t.Errorf("UseSplitKV(%v, %s, %d tokens, %d kv heads, %d partitions) = %v, want %v", c.mode, c.caps.Device, c.tokens, c.kvh, c.part, got, c.want)
		}
	}
	cuda := primitives.AttentionPartitioning{Keys: 64, MaxPartitions: 16}
	for _, c := range []struct {
		pt                       primitives.AttentionPartitioning
		maxSeqLen, maxBlocks, bs int
		want                     int
	}{
		{primitives.AttentionPartitioning{}, 0, 4, 16, 1}, {primitives.AttentionPartitioning{}, 512, 32, 16, 1},
		{primitives.AttentionPartitioning{}, 513, 33, 16, 2}, {primitives.AttentionPartitioning{}, 8192, 512, 16, 16},
		{primitives.AttentionPartitioning{}, 100000, 40, 16, 2}, // the table bounds it
		{cuda, 64, 4, 16, 1}, {cuda, 65, 5, 16, 2}, {cuda, 1024, 64, 16, 16}, {cuda, 100000, 8000, 16, 16}, // the bound
	} {
		if got := primitives.AttentionPartitions(c.pt, c.maxSeqLen, c.maxBlocks, c.bs); got != c.want {
			t.Errorf("AttentionPartitions(%+v, %d, %d, %d) = %d, want %d", c.pt, c.maxSeqLen, c.maxBlocks, c.bs, got, c.want)
		}
	}
}

// TestAttentionPartitionKeys checks a row's partition size: the least size
// up to the bound on their number, then the least multiple of it that
// holds the row in that many; it depends on the row's keys alone.
func TestAttentionPartitionKeys(t *testing.T) {
	for _, c := range []struct{ size, parts, hi, want int }{
		{64, 16, 0, 64}, {64, 16, 1, 64}, {64, 16, 1024, 64}, {64, 16, 1025, 128}, {64, 16, 2048, 128},
		{64, 16, 8192, 512}, {64, 16, 16383, 1024}, {512, 3, 1500, 512}, {512, 0, 100, 512},
	} {
		got := primitives.AttentionPartitionKeys(c.size, c.parts, c.hi)
		if got != c.want || c.hi > 0 && primitives.Groups(c.hi, got) > max(c.parts, 1) {
			t.Errorf("AttentionPartitionKeys(%d, %d, %d) = %d, want %d", c.size, c.parts, c.hi, got, c.want)
		}
	}
}

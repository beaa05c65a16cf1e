package ops_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// attentionTolerance is the (atol, rtol) of paged attention results stored
// as dt (REFERENCE §4). It does not depend on the path.
func attentionTolerance(dt graph.DType) (atol, rtol float64) {
	switch dt {
	case graph.Float16:
		return 1.5e-2, 2e-2
	case graph.BFloat16:
		return 3e-2, 2e-2
	}
	return 1e-3, 1e-3
}

// kvCache is the host side of a K or V cache [blocks, bs, kvh, hs]: its
// bytes and the values they hold.
type kvCache struct {
	dt                  graph.DType
	blocks, bs, kvh, hs int
	raw                 []byte
	val                 []float64
}

func newKVCache(r *rand.Rand, dt graph.DType, blocks, bs, kvh, hs int) *kvCache {
	n := blocks * bs * kvh * hs
	return newKVCacheFrom(dt, blocks, bs, kvh, hs, loomtest.Float32s(r, n, -1, 1))
}

func newKVCacheFrom(dt graph.DType, blocks, bs, kvh, hs int, v []float32) *kvCache {
	c := &kvCache{dt: dt, blocks: blocks, bs: bs, kvh: kvh, hs: hs, raw: make([]byte, len(v)*dt.Size())}
	graph.PutFloat32s(dt, c.raw, v)
	c.val = graph.DecodeFloat64s(dt, c.raw)
	return c
}

func (c *kvCache) array() *graph.Array {
	return graph.FromBytes(c.dt, c.raw, c.blocks, c.bs, c.kvh, c.hs)
}

// row returns the head vector of KV head g in slot s.
func (c *kvCache) row(s, g int) []float64 {
	off := (s*c.kvh + g) * c.hs
	return c.val[off : off+c.hs]
}

// attnBatch is the host side of a batch of sequences.
type attnBatch struct {
	ctx, qLens []int
	tables     [][]int32 // the blocks each sequence uses
	maxBlocks  int       // block table row length, padded
	tq         int
	cu         []int32
}

// newBatch gives the sequences random distinct blocks of a cache of
// numBlocks blocks and pads each table row with out-of-range entries, which
// nothing may read.
func newBatch(r *rand.Rand, ctx, qLens []int, bs, numBlocks int) *attnBatch {
	b := &attnBatch{ctx: ctx, qLens: qLens, cu: []int32{0}}
	perm := r.Perm(numBlocks)
	for s, n := range ctx {
		need := (n + bs - 1) / bs
		t := make([]int32, need)
		for i := range t {
			t[i] = int32(perm[0])
			perm = perm[1:]
		}
		b.tables = append(b.tables, t)
		b.maxBlocks = max(b.maxBlocks, need+1)
		b.tq += qLens[s]
		b.cu = append(b.cu, int32(b.tq))
	}
	return b
}

func (b *attnBatch) tableData(pad int32) []int32 {
	out := make([]int32, 0, len(b.tables)*b.maxBlocks)
	for _, t := range b.tables {
		out = append(out, t...)
		for range b.maxBlocks - len(t) {
			out = append(out, pad)
		}
	}
	return out
}

func (b *attnBatch) maxSeqLen() int {
	m := 0
	for _, n := range b.ctx {
		m = max(m, n)
	}
	return m
}

func (b *attnBatch) meta(pad int32) ops.AttentionMeta {
	lens := make([]int32, len(b.ctx))
	for i, n := range b.ctx {
		lens[i] = int32(n)
	}
	return ops.AttentionMeta{
		BlockTables: graph.FromInt32s(b.tableData(pad), len(b.tables), b.maxBlocks),
		SeqLens:     graph.FromInt32s(lens),
		CuSeqlensQ:  graph.FromInt32s(b.cu),
		MaxSeqLen:   b.maxSeqLen(),
	}
}

// slot is the cache slot of position pos of sequence s.
func (b *attnBatch) slot(s, pos, bs int) int { return int(b.tables[s][pos/bs])*bs + pos%bs }

// attnOpts are the options the reference needs.
type attnOpts struct {
	scale, softcap float64
	window         int
	sinks          []float64
}

// referenceAttention computes paged attention in float64, directly from the
// definition: gather the sequence's keys, repeat KV heads, mask beyond the
// causal frontier and outside the window, softcap, softmax with the sink in
// the denominator.
func referenceAttention(q []float64, heads int, k, v *kvCache, b *attnBatch, o attnOpts) []float64 {
	hs, group := k.hs, heads/k.kvh
	out := make([]float64, b.tq*heads*hs)
	for s := range b.ctx {
		for i := range b.qLens[s] {
			t := int(b.cu[s]) + i
			eff := b.ctx[s] - b.qLens[s] + i + 1
			lo := 0
			if o.window > 0 {
				lo = max(0, eff-o.window)
			}
			for h := range heads {
				qr := q[(t*heads+h)*hs : (t*heads+h+1)*hs]
				var scores []float64
				top := math.Inf(-1)
				if o.sinks != nil {
					top = o.sinks[h]
				}
				for j := lo; j < eff; j++ {
					kr := k.row(b.slot(s, j, k.bs), h/group)
					x := 0.0
					for d := range hs {
						x += qr[d] * kr[d]
					}
					x *= o.scale
					if o.softcap > 0 {
						x = math.Tanh(x/o.softcap) * o.softcap
					}
					scores = append(scores, x)
					top = max(top, x)
				}
				if len(scores) == 0 {
					continue // no key: zeros
				}
				den := 0.0
				if o.sinks != nil {
					den = math.Exp(o.sinks[h] - top)
				}
				or := out[(t*heads+h)*hs : (t*heads+h+1)*hs]
				for x, sc := range scores {
					w := math.Exp(sc - top)
					den += w
					vr := v.row(b.slot(s, lo+x, v.bs), h/group)
					for d := range hs {
						or[d] += w * vr[d]
					}
				}
				for d := range hs {
					or[d] /= den
				}
			}
		}
	}
	return out
}

// attnCase is one paged attention test.
type attnCase struct {
	name       string
	dt         graph.DType
	heads, kvh int
	hs, bs     int
	ctx, qLens []int // qLens nil: decode, one query token per sequence
	window     int
	softcap    float32
	scale      float32
	sinks      bool
}

func (c attnCase) withDefaults() attnCase {
	if c.dt == graph.Invalid {
		c.dt = graph.Float32
	}
	if c.heads == 0 {
		c.heads, c.kvh, c.hs, c.bs = 16, 8, 128, 16
	}
	if c.qLens == nil {
		c.qLens = make([]int, len(c.ctx))
		for i := range c.qLens {
			c.qLens[i] = 1
		}
	}
	return c
}

func (c attnCase) blocksNeeded() int {
	n := 1 // a spare block that no sequence uses
	for _, l := range c.ctx {
		n += (l + c.bs - 1) / c.bs
	}
	return n
}

// runAttention runs each case on every target, forcing each path and on
// auto, against the reference, and checks the path taken. Cases of one
// geometry share their caches.
func runAttention(t *testing.T, cases []attnCase) {
	t.Helper()
	type geom struct {
		dt          graph.DType
		kvh, hs, bs int
	}
	type cache struct {
		k, v   *kvCache
		arrays map[string][2]*graph.Array // per target, uploaded once
	}
	caches := map[geom]*cache{}
	blocks := map[geom]int{}
	for i := range cases {
		c := cases[i].withDefaults()
		g := geom{c.dt, c.kvh, c.hs, c.bs}
		blocks[g] = max(blocks[g], c.blocksNeeded())
		cases[i] = c
	}
	targets := loomtest.Targets(t)
	for i, c := range cases {
		g := geom{c.dt, c.kvh, c.hs, c.bs}
		cc := caches[g]
		if cc == nil {
			r := loomtest.Rand(uint64(len(caches) + 1))
			cc = &cache{
				k:      newKVCache(r, c.dt, blocks[g], c.bs, c.kvh, c.hs),
				v:      newKVCache(r, c.dt, blocks[g], c.bs, c.kvh, c.hs),
				arrays: map[string][2]*graph.Array{},
			}
			caches[g] = cc
		}
		t.Run(c.name, func(t *testing.T) {
			r := loomtest.Rand(uint64(100 + i))
			b := newBatch(r, c.ctx, c.qLens, c.bs, blocks[g])
			qv := loomtest.Float32s(r, b.tq*c.heads*c.hs, -2, 2)
			o := attnOpts{scale: float64(c.scale), softcap: float64(c.softcap), window: c.window}
			if c.scale == 0 {
				o.scale = 1 / math.Sqrt(float64(c.hs))
			}
			var sv []float32
			if c.sinks {
				sv = loomtest.Float32s(r, c.heads, 0, 8)
				o.sinks = loomtest.Round(graph.Float32, sv)
			}
			want := referenceAttention(loomtest.Round(c.dt, qv), c.heads, cc.k, cc.v, b, o)
			atol, rtol := attentionTolerance(c.dt)
			for _, tg := range targets {
				kv, ok := cc.arrays[tg.Name]
				if !ok {
					kv = [2]*graph.Array{cc.k.array(), cc.v.array()}
					cc.arrays[tg.Name] = kv
				}
				for _, mode := range []ops.SplitMode{ops.SplitNever, ops.SplitAlways, ops.SplitAuto} {
					what := fmt.Sprintf("%s split %v", tg.Name, mode)
					opts := ops.AttentionOptions{Scale: c.scale, Softcap: c.softcap, SlidingWindow: c.window, Split: mode}
					if sv != nil {
						opts.Sinks = graph.FromFloat32s(sv)
					}
					q := graph.FromFloat32sAs(c.dt, qv, b.tq, c.heads, c.hs)
					out := ops.PagedAttention(q, kv[0], kv[1], b.meta(int32(blocks[g]+1000)), opts)
					tg.Eval(t, out)
					got, err := out.Float64s()
					if err != nil {
						t.Fatal(err)
					}
					loomtest.Close(t, what, got, want, atol, rtol)

					parts := primitives.AttentionPartitions(tg.RT.Caps().Partitions, b.maxSeqLen(), b.maxBlocks, c.bs)
					split := primitives.UseSplitKV(mode, tg.RT.Caps(), b.tq, c.kvh, parts)
					path := map[bool]string{true: "paged_attention.split", false: "paged_attention.single"}
					st := tg.RT.LastStats()
					if b.tq > 0 && (st.Counters[path[split]] != 1 || st.Counters[path[!split]] != 0) {
						t.Fatalf("%s: want the %s path, stats counters %v", what, path[split], st.Counters)
					}
					if mode == ops.SplitAlways && !split {
						t.Fatalf("%s: SplitAlways did not split", what)
					}
				}
			}
		})
	}
}

// TestPagedAttentionQwen runs the shapes of Qwen3-0.6B's attention (16
// query heads, 8 KV heads, head size 128, block size 16) with the context
// lengths that exercise the partition logic — 16 partitions, one valid
// partition in a 4-partition grid, unaligned lengths, an odd partition
// count — then sliding windows (one starting on a partition boundary, so
// that whole partitions are masked) and sinks, which must join each row's
// denominator exactly once on both paths.
func TestPagedAttentionQwen(t *testing.T) {
	var cases []attnCase
	for _, ctx := range [][]int{{8192}, {100, 2048}, {700, 4096}, {1300}} {
		cases = append(cases, attnCase{name: fmt.Sprintf("ctx%v", ctx), ctx: ctx})
	}
	for _, w := range [][2]int{{2048, 512}, {2048, 700}, {8192, 1300}} {
		cases = append(cases, attnCase{name: fmt.Sprintf("ctx%d/window%d", w[0], w[1]), ctx: []int{w[0]}, window: w[1]})
	}
	cases = append(cases,
		attnCase{name: "sinks", ctx: []int{1300, 37}, sinks: true},
		attnCase{name: "sinks/window/softcap", ctx: []int{2048}, window: 700, softcap: 5, sinks: true},
	)
	runAttention(t, cases)
}

// TestPagedAttentionVarlen mixes decode rows with multi-token segments,
// including a segment longer than its context (rows with eff_ctx ≤ 0 are
// zero), a sequence with no query token and one with an empty context.
func TestPagedAttentionVarlen(t *testing.T) {
	ctx := []int{300, 1100, 3, 1, 0, 700}
	qLens := []int{1, 19, 5, 1, 0, 33}
	runAttention(t, []attnCase{
		{name: "mixed", heads: 8, kvh: 2, hs: 64, bs: 16, ctx: ctx, qLens: qLens},
		{name: "mixed/window/softcap", heads: 8, kvh: 2, hs: 64, bs: 16, ctx: ctx, qLens: qLens, window: 600, softcap: 3},
		{name: "prefill", heads: 2, kvh: 1, hs: 64, bs: 32, ctx: []int{600}, qLens: []int{600}},
		{name: "no-query-tokens", ctx: []int{40, 3}, qLens: []int{0, 0}},
		{name: "no-sequences", ctx: []int{}},
	})
}

// TestPagedAttentionShapes covers every dtype, head size and block size and
// several GQA ratios, with scale, softcap, window and sinks variants.
func TestPagedAttentionShapes(t *testing.T) {
	var cases []attnCase
	for _, dt := range []graph.DType{graph.Float16, graph.BFloat16} {
		cases = append(cases,
			attnCase{name: fmt.Sprintf("%s/qwen", dt), dt: dt, ctx: []int{1300, 9}},
			attnCase{name: fmt.Sprintf("%s/qwen/varlen", dt), dt: dt, ctx: []int{600, 45}, qLens: []int{3, 45}, window: 300},
		)
	}
	geoms := []struct {
		dt                 graph.DType
		heads, kvh, hs, bs int
	}{
		{graph.Float32, 8, 8, 64, 8}, {graph.Float16, 6, 2, 80, 32}, {graph.BFloat16, 12, 3, 96, 16},
		{graph.Float16, 4, 1, 256, 8}, {graph.BFloat16, 8, 1, 128, 32}, {graph.Float32, 2, 2, 64, 16},
	}
	for _, g := range geoms {
		cases = append(cases, attnCase{
			name: fmt.Sprintf("%s/h%d-kv%d-hs%d-bs%d", g.dt, g.heads, g.kvh, g.hs, g.bs),
			dt:   g.dt, heads: g.heads, kvh: g.kvh, hs: g.hs, bs: g.bs, ctx: []int{517, 1, 1030}, qLens: []int{1, 1, 2},
			scale: 0.07, softcap: 2.5,
		})
	}
	cases = append(cases,
		attnCase{name: "bf16/hs256/sinks", dt: graph.BFloat16, heads: 4, kvh: 2, hs: 256, bs: 8, ctx: []int{1500}, sinks: true},
		attnCase{name: "f16/bs32/window", dt: graph.Float16, heads: 4, kvh: 4, hs: 128, bs: 32, ctx: []int{1025}, window: 512},
	)
	runAttention(t, cases)
}

// TestPagedAttentionGQA covers the GQA ratios the GPU kernels take in one
// pass of query heads (1, 2, 4), a ratio that takes two passes (8), and odd
// ones (3, 5: a pass with heads to spare, and one pass and a part), with
// context lengths that are not multiples of the block or partition size
// and random block tables.
func TestPagedAttentionGQA(t *testing.T) {
	var cases []attnCase
	for _, g := range []struct {
		dt                 graph.DType
		heads, kvh, hs, bs int
	}{
		{graph.Float16, 4, 4, 128, 16}, {graph.BFloat16, 8, 4, 64, 8}, {graph.Float16, 16, 4, 256, 16},
		{graph.BFloat16, 32, 4, 128, 32}, {graph.Float32, 9, 3, 80, 16}, {graph.Float16, 10, 2, 96, 8},
		{graph.BFloat16, 3, 1, 256, 16},
	} {
		cases = append(cases, attnCase{
			name: fmt.Sprintf("%s/h%d-kv%d-hs%d-bs%d", g.dt, g.heads, g.kvh, g.hs, g.bs),
			dt:   g.dt, heads: g.heads, kvh: g.kvh, hs: g.hs, bs: g.bs, ctx: []int{1, 37, 515, 1100},
		})
	}
	runAttention(t, cases)
}

// TestPagedAttentionBatchInvariant checks that a row's result does not
// depend on the batch it is computed in: each sequence alone gives the
// bytes it gets in the batch, on every target and path. Where the device's
// gate does not depend on the batch (the CUDA device's), a sequence alone
// with its own max_seq_len, so with other partition counts in the grid,
// must give them too.
func TestPagedAttentionBatchInvariant(t *testing.T) {
	const dt, heads, kvh, hs, bs = graph.BFloat16, 16, 4, 128, 16
	ctx := []int{1, 300, 1030, 2049, 700, 40}
	r := loomtest.Rand(41)
	blocks := 1
	for _, n := range ctx {
		blocks += (n + bs - 1) / bs
	}
	k, v := newKVCache(r, dt, blocks, bs, kvh, hs), newKVCache(r, dt, blocks, bs, kvh, hs)
	b := newBatch(r, ctx, make([]int, len(ctx)), bs, blocks)
	for i := range b.qLens {
		b.qLens[i] = 1
		b.cu[i+1] = int32(i + 1)
	}
	b.tq = len(ctx)
	qv := loomtest.Float32s(r, b.tq*heads*hs, -2, 2)
	row := heads * hs * dt.Size()
	for _, tg := range loomtest.Targets(t) {
		kc, vc := k.array(), v.array()
		for _, mode := range []ops.SplitMode{ops.SplitNever, ops.SplitAlways, ops.SplitAuto} {
			opts := ops.AttentionOptions{Split: mode}
			q := graph.FromFloat32sAs(dt, qv, b.tq, heads, hs)
			all := ops.PagedAttention(q, kc, vc, b.meta(int32(blocks)), opts)
			own := tg.RT.Caps().SplitKV.GroupsPerCore == 0
			var alone, tight []*graph.Array
			for s := range ctx {
				one := *b
				one.ctx, one.qLens, one.tables, one.tq, one.cu = ctx[s:s+1], []int{1}, b.tables[s:s+1], 1, []int32{0, 1}
				m := one.meta(int32(blocks))
				qs := graph.FromFloat32sAs(dt, qv[s*heads*hs:(s+1)*heads*hs], 1, heads, hs)
				if own {
					tight = append(tight, ops.PagedAttention(qs, kc, vc, m, opts))
				}
				m.MaxSeqLen = b.maxSeqLen() // the same partitions, and with them the same path
				alone = append(alone, ops.PagedAttention(qs, kc, vc, m, opts))
			}
			tg.Eval(t, slices.Concat([]*graph.Array{all}, alone, tight)...)
			got, err := all.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			for i, a := range slices.Concat(alone, tight) {
				s, what := i%len(ctx), "alone"
				if i >= len(ctx) {
					what = "alone with its own max_seq_len"
				}
				one, err := a.Bytes()
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(one, got[s*row:(s+1)*row]) {
					t.Errorf("%s split %v: sequence %d (%d keys) %s differs from the same sequence in the batch", tg.Name, mode, s, ctx[s], what)
				}
			}
		}
	}
}

// TestPagedAttentionSplitRepeated evaluates the split path over two sets
// of queries in turn, each evaluation submitted before the last has
// finished, so that they take the same pooled counters one after another:
// the GPU kernels' last partition to finish merges a row and must leave its
// counter zero for the next (else no partition merges and the output keeps
// stale bytes). Every result must equal the first of its queries, bit for
// bit (which partition merges varies; what it computes must not).
func TestPagedAttentionSplitRepeated(t *testing.T) {
	const dt, heads, kvh, hs, bs = graph.Float16, 12, 4, 80, 8
	ctx := []int{1030, 3, 517}
	r := loomtest.Rand(43)
	blocks := 1
	for _, n := range ctx {
		blocks += (n + bs - 1) / bs
	}
	k, v := newKVCache(r, dt, blocks, bs, kvh, hs), newKVCache(r, dt, blocks, bs, kvh, hs)
	b := newBatch(r, ctx, []int{1, 2, 1}, bs, blocks)
	qs := [2][]float32{loomtest.Float32s(r, b.tq*heads*hs, -2, 2), loomtest.Float32s(r, b.tq*heads*hs, -2, 2)}
	for _, tg := range loomtest.Targets(t) {
		kc, vc := k.array(), v.array()
		var outs []*graph.Array
		for i := range 6 {
			q := graph.FromFloat32sAs(dt, qs[i%2], b.tq, heads, hs)
			out := ops.PagedAttention(q, kc, vc, b.meta(int32(blocks)), ops.AttentionOptions{Split: ops.SplitAlways})
			if _, err := tg.RT.EvalAsync(out); err != nil {
				t.Fatal(err)
			}
			outs = append(outs, out)
		}
		var first [2][]byte
		for i, out := range outs {
			got, err := out.Bytes()
			if err != nil {
				t.Fatalf("%s evaluation %d: %v", tg.Name, i, err)
			}
			if i < 2 {
				first[i] = got
				continue
			}
			if !bytes.Equal(got, first[i%2]) {
				t.Errorf("%s evaluation %d differs from evaluation %d of the same queries", tg.Name, i, i%2)
			}
		}
		if bytes.Equal(first[0], first[1]) {
			t.Fatalf("%s: the two sets of queries gave the same result", tg.Name)
		}
	}
}

// evaluated returns a, evaluated on tg, so that ops see a computed array
// rather than a constant and leave its checks to the kernel.
func evaluated(t *testing.T, tg loomtest.Target, a *graph.Array) *graph.Array {
	t.Helper()
	tg.Eval(t, a)
	return a
}

// TestKVWrite writes rows into caches of every dtype with int32 and int64
// slots, some negative, and compares every byte of both caches.
func TestKVWrite(t *testing.T) {
	const blocks, bs, kvh, hs, tokens = 7, 4, 3, 5, 11
	for _, tg := range loomtest.Targets(t) {
		for _, dt := range primitives.AttentionDTypes {
			for _, slotDT := range []graph.DType{graph.Int32, graph.Int64} {
				t.Run(fmt.Sprintf("%s/%s/%s", tg.Name, dt, slotDT), func(t *testing.T) {
					r := loomtest.Rand(3)
					kc := newKVCache(r, dt, blocks, bs, kvh, hs)
					vc := newKVCache(r, dt, blocks, bs, kvh, hs)
					k := newKVCacheFrom(dt, tokens, 1, kvh, hs, loomtest.Float32s(r, tokens*kvh*hs, -3, 3))
					v := newKVCacheFrom(dt, tokens, 1, kvh, hs, loomtest.Float32s(r, tokens*kvh*hs, -3, 3))
					slots := r.Perm(blocks*bs - 1)[:tokens]
					slots[2], slots[7] = -1, -5 // padding: skipped
					slots[4] = blocks*bs - 1    // the last slot, where a wrapped -1 would land
					wantK, wantV := bytes.Clone(kc.raw), bytes.Clone(vc.raw)
					row := kvh * hs * dt.Size()
					for tok, s := range slots {
						if s >= 0 {
							copy(wantK[s*row:(s+1)*row], k.raw[tok*row:])
							copy(wantV[s*row:(s+1)*row], v.raw[tok*row:])
						}
					}
					oldK, oldV := kc.array(), vc.array()
					newK, newV := ops.KVWrite(oldK, oldV,
						graph.FromBytes(dt, k.raw, tokens, kvh, hs), graph.FromBytes(dt, v.raw, tokens, kvh, hs), slotArray(slotDT, slots))
					tg.Eval(t, newK, newV)
					if st := tg.RT.LastStats(); st.Donations != 2 || st.DonationsRefused != 0 {
						t.Errorf("donations %d, refused %d; want 2 in place", st.Donations, st.DonationsRefused)
					}
					for _, c := range []struct {
						name string
						got  *graph.Array
						want []byte
					}{{"k_cache", newK, wantK}, {"v_cache", newV, wantV}} {
						b, err := c.got.Bytes()
						if err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(b, c.want) {
							t.Errorf("%s differs from the expected bytes", c.name)
						}
					}
					for _, old := range []*graph.Array{oldK, oldV} {
						if _, err := old.Bytes(); err == nil || !strings.Contains(err.Error(), "donated to kv_write") {
							t.Errorf("reading a consumed cache: err = %v, want an error naming the donation", err)
						}
						if out := ops.Add(old, old); out.Err() == nil || !strings.Contains(out.Err().Error(), "donated to kv_write") {
							t.Errorf("using a consumed cache: err = %v, want an error naming the donation", out.Err())
						}
					}
				})
			}
		}
	}
}

func slotArray(dt graph.DType, slots []int) *graph.Array {
	if dt == graph.Int64 {
		s := make([]int64, len(slots))
		for i, v := range slots {
			s[i] = int64(v)
		}
		return graph.FromInt64s(s)
	}
	s := make([]int32, len(slots))
	for i, v := range slots {
		s[i] = int32(v)
	}
	return graph.FromInt32s(s)
}

// TestKVWriteEmpty writes no token: the caches come back unchanged.
func TestKVWriteEmpty(t *testing.T) {
	for _, tg := range loomtest.Targets(t) {
		kc := newKVCache(loomtest.Rand(4), graph.Float16, 3, 8, 2, 64)
		empty := graph.FromBytes(graph.Float16, nil, 0, 2, 64)
		newK, newV := ops.KVWrite(kc.array(), kc.array(), empty, empty, graph.FromInt32s(nil, 0))
		tg.Eval(t, newK, newV)
		for _, a := range []*graph.Array{newK, newV} {
			if b, err := a.Bytes(); err != nil || !bytes.Equal(b, kc.raw) {
				t.Fatalf("%s: cache changed by an empty write (err %v)", tg.Name, err)
			}
		}
	}
}

// TestKVWriteErrors checks that bad arguments and bad slots give errors that
// name them, at build time for constant slots (leaving the caches usable) and
// in the kernel otherwise.
func TestKVWriteErrors(t *testing.T) {
	const blocks, bs, kvh, hs = 4, 8, 2, 16
	cache := func() *graph.Array { return graph.Full(graph.Float16, 1, blocks, bs, kvh, hs) }
	rows := func(n int) *graph.Array { return graph.Full(graph.Float16, 2, n, kvh, hs) }
	for _, c := range []struct {
		name        string
		kc, vc      *graph.Array
		k, v, slots *graph.Array
		want        string
	}{
		{"slot past the cache", cache(), cache(), rows(3), rows(3), graph.FromInt32s([]int32{0, 32, 1}), "slot_mapping[1] = 32 out of range: the cache has 32 slots"},
		{"slot used twice", cache(), cache(), rows(3), rows(3), graph.FromInt64s([]int64{5, -1, 5}), "slot_mapping[2] = 5 is also slot_mapping[0]"},
		{"float slots", cache(), cache(), rows(1), rows(1), graph.FromFloat32s([]float32{0}), "slot_mapping must be int32 or int64"},
		{"slots per token", cache(), cache(), rows(2), rows(2), graph.FromInt32s([]int32{0}), "one slot per token"},
		{"k dtype", cache(), cache(), graph.Full(graph.Float32, 2, 1, kvh, hs), rows(1), graph.FromInt32s([]int32{0}), "does not match the cache"},
		{"k head size", cache(), cache(), graph.Full(graph.Float16, 2, 1, kvh, 8), rows(1), graph.FromInt32s([]int32{0}), "does not match the cache"},
		{"v differs", cache(), cache(), rows(1), rows(2), graph.FromInt32s([]int32{0}), "differs from k"},
		{"cache rank", graph.Full(graph.Float16, 1, blocks*bs, kvh, hs), cache(), rows(1), rows(1), graph.FromInt32s([]int32{0}), "k_cache must be [num_blocks, block_size, kv_heads, head_size]"},
		{"caches differ", cache(), graph.Full(graph.Float16, 1, blocks+1, bs, kvh, hs), rows(1), rows(1), graph.FromInt32s([]int32{0}), "v_cache float16[5 8 2 16] differs from k_cache"},
		{"cache dtype", graph.Full(graph.Int32, 1, blocks, bs, kvh, hs), graph.Full(graph.Int32, 1, blocks, bs, kvh, hs), graph.Full(graph.Int32, 1, 1, kvh, hs), graph.Full(graph.Int32, 1, 1, kvh, hs), graph.FromInt32s([]int32{0}), "unsupported cache dtype int32"},
	} {
		t.Run(c.name, func(t *testing.T) {
			newK, newV := ops.KVWrite(c.kc, c.vc, c.k, c.v, c.slots)
			for _, a := range []*graph.Array{newK, newV} {
				if err := a.Err(); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "kv_write") {
					t.Fatalf("err = %v, want kv_write: ...%s", err, c.want)
				}
			}
			if c.kc.Consumer() != nil {
				t.Fatalf("a failed KVWrite consumed its cache")
			}
		})
	}
	// Slots that are not constants are checked by the kernel, which writes
	// nothing then.
	for _, tg := range loomtest.Targets(t) {
		for _, c := range []struct {
			slots *graph.Array
			want  string
		}{
			{graph.FromInt32s([]int32{3, 40, 1}), "slot_mapping[1] = 40 out of range"},
			{graph.FromInt64s([]int64{-1, 9, 9}), "slot_mapping[2] = 9 is also slot_mapping[1]"},
		} {
			slots := evaluated(t, tg, c.slots)
			newK, newV := ops.KVWrite(cache(), cache(), rows(3), rows(3), slots)
			err := tg.RT.Eval(newK, newV)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%s: eval error %v, want %q", tg.Name, err, c.want)
			}
			tg.NoHazards(t)
		}
	}
}

// attnArgs are the arguments of one PagedAttention call, for error tests.
type attnArgs struct {
	q, kc, vc        *graph.Array
	tables, lens, cu []int32 // block tables [len/3, 3]
	maxSeqLen        int
	opts             ops.AttentionOptions
}

// validAttnArgs is a small valid call: two sequences of 20 and 5 keys with
// 2 and 1 query tokens, 4 query heads over 2 KV heads, head size 64, block
// size 8, ten blocks, three per sequence.
func validAttnArgs() attnArgs {
	return attnArgs{
		q:         graph.Full(graph.Float32, 0.5, 3, 4, 64),
		kc:        graph.Full(graph.Float32, 1, 10, 8, 2, 64),
		vc:        graph.Full(graph.Float32, 1, 10, 8, 2, 64),
		tables:    []int32{0, 1, 2, 3, 99, -7},
		lens:      []int32{20, 5},
		cu:        []int32{0, 2, 3},
		maxSeqLen: 24,
	}
}

func (a attnArgs) call(constMeta bool, eval func(*graph.Array) *graph.Array) *graph.Array {
	meta := ops.AttentionMeta{
		BlockTables: graph.FromInt32s(a.tables, len(a.tables)/3, 3),
		SeqLens:     graph.FromInt32s(a.lens),
		CuSeqlensQ:  graph.FromInt32s(a.cu),
		MaxSeqLen:   a.maxSeqLen,
	}
	if !constMeta {
		meta.BlockTables, meta.SeqLens, meta.CuSeqlensQ = eval(meta.BlockTables), eval(meta.SeqLens), eval(meta.CuSeqlensQ)
	}
	return ops.PagedAttention(a.q, a.kc, a.vc, meta, a.opts)
}

// TestPagedAttentionMetaErrors checks that invalid metadata give an error
// naming the entry: at build time when they are constants, and from the
// kernels (on both paths) when they are not.
func TestPagedAttentionMetaErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*attnArgs)
		want string
	}{
		{"block past the cache", func(a *attnArgs) { a.tables[3] = 10 }, "block_tables[1,0] = 10 out of range [0,10) (sequence 1, seq_len 5)"},
		{"negative block in use", func(a *attnArgs) { a.tables[2] = -1 }, "block_tables[0,2] = -1 out of range [0,10) (sequence 0, seq_len 20)"},
		{"seq_len past the table", func(a *attnArgs) { a.lens[0], a.maxSeqLen = 25, 30 }, "seq_lens[0] = 25 needs 4 blocks but block_tables holds 3 per sequence"},
		{"seq_len past max_seq_len", func(a *attnArgs) { a.lens[1] = 23; a.maxSeqLen = 21 }, "seq_lens[1] = 23 exceeds max_seq_len 21"},
		{"negative seq_len", func(a *attnArgs) { a.lens[1] = -2 }, "seq_lens[1] = -2 is negative"},
		{"cu_seqlens_q decreasing", func(a *attnArgs) { a.cu = []int32{0, 4, 3} }, "cu_seqlens_q[2] = 3 is less than cu_seqlens_q[1] = 4 (sequence 1)"},
		{"cu_seqlens_q short of Tq", func(a *attnArgs) { a.cu = []int32{0, 1, 2} }, "cu_seqlens_q[2] = 2, want the number of query tokens, 3"},
		{"cu_seqlens_q not from 0", func(a *attnArgs) { a.cu = []int32{1, 2, 3} }, "cu_seqlens_q[0] = 1, want 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := validAttnArgs()
			c.edit(&a)
			if err := a.call(true, nil).Err(); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "paged_attention") {
				t.Fatalf("constant metadata: err = %v, want paged_attention: ...%s", err, c.want)
			}
			for _, tg := range loomtest.Targets(t) {
				for _, split := range []ops.SplitMode{ops.SplitNever, ops.SplitAlways} {
					a := validAttnArgs()
					c.edit(&a)
					a.opts.Split = split
					out := a.call(false, func(x *graph.Array) *graph.Array { return evaluated(t, tg, x) })
					if out.Err() != nil {
						t.Fatalf("computed metadata are checked by the kernel, not the op: %v", out.Err())
					}
					err := tg.RT.Eval(out)
					if err == nil || !strings.Contains(err.Error(), c.want) {
						t.Fatalf("%s, split %v: eval error %v, want %q", tg.Name, split, err, c.want)
					}
					tg.NoHazards(t)
				}
			}
		})
	}
	// The valid call itself passes, padding entries included.
	for _, tg := range loomtest.Targets(t) {
		tg.Eval(t, validAttnArgs().call(true, nil))
	}
}

// TestPagedAttentionArgErrors checks shapes, dtypes, geometry and options.
func TestPagedAttentionArgErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*attnArgs)
		want string
	}{
		{"heads not a multiple", func(a *attnArgs) { a.q = graph.Full(graph.Float32, 1, 3, 3, 64) }, "3 query heads are not a multiple of 2 kv heads"},
		{"q dtype", func(a *attnArgs) { a.q = graph.Full(graph.Float16, 1, 3, 4, 64) }, "q is float16 but the caches are float32"},
		{"q rank", func(a *attnArgs) { a.q = graph.Full(graph.Float32, 1, 3, 256) }, "q must be [tokens, heads, head_size]"},
		{"q head size", func(a *attnArgs) { a.q = graph.Full(graph.Float32, 1, 3, 4, 128) }, "q's head size 128 differs from the caches' 64"},
		{"head size", func(a *attnArgs) {
			a.q, a.kc, a.vc = graph.Full(graph.Float32, 1, 3, 4, 100), graph.Full(graph.Float32, 1, 10, 8, 2, 100), graph.Full(graph.Float32, 1, 10, 8, 2, 100)
		}, "unsupported head size 100"},
		{"block size", func(a *attnArgs) {
			a.kc, a.vc = graph.Full(graph.Float32, 1, 10, 12, 2, 64), graph.Full(graph.Float32, 1, 10, 12, 2, 64)
		}, "unsupported block size 12"},
		{"cache dtype", func(a *attnArgs) {
			a.q, a.kc, a.vc = graph.Full(graph.Int32, 1, 3, 4, 64), graph.Full(graph.Int32, 1, 10, 8, 2, 64), graph.Full(graph.Int32, 1, 10, 8, 2, 64)
		}, "unsupported cache dtype int32"},
		{"caches differ", func(a *attnArgs) { a.vc = graph.Full(graph.Float32, 1, 9, 8, 2, 64) }, "v_cache float32[9 8 2 64] differs from k_cache"},
		{"sinks dtype", func(a *attnArgs) { a.opts.Sinks = graph.Full(graph.Float16, 0, 4) }, "sinks must be float32 [4]"},
		{"sinks shape", func(a *attnArgs) { a.opts.Sinks = graph.Full(graph.Float32, 0, 2) }, "sinks must be float32 [4]"},
		{"window", func(a *attnArgs) { a.opts.SlidingWindow = -1 }, "sliding window -1 is negative"},
		{"scale", func(a *attnArgs) { a.opts.Scale = float32(math.NaN()) }, "scale NaN is not finite"},
		{"softcap", func(a *attnArgs) { a.opts.Softcap = -1 }, "softcap -1 must be finite and ≥ 0"},
		{"max_seq_len", func(a *attnArgs) { a.maxSeqLen = -1 }, "max_seq_len -1 is negative"},
		{"split mode", func(a *attnArgs) { a.opts.Split = 7 }, "unknown split mode"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := validAttnArgs()
			c.edit(&a)
			if err := a.call(true, nil).Err(); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "paged_attention") {
				t.Fatalf("err = %v, want paged_attention: ...%s", err, c.want)
			}
		})
	}
	// Metadata of the wrong dtype or shape.
	a := validAttnArgs()
	for _, c := range []struct {
		name string
		meta ops.AttentionMeta
		want string
	}{
		{"tables dtype", ops.AttentionMeta{BlockTables: graph.FromInt64s(make([]int64, 6), 2, 3), SeqLens: graph.FromInt32s(a.lens), CuSeqlensQ: graph.FromInt32s(a.cu)}, "block_tables must be int32 [num_seqs, max_blocks]"},
		{"tables rank", ops.AttentionMeta{BlockTables: graph.FromInt32s(a.tables), SeqLens: graph.FromInt32s(a.lens), CuSeqlensQ: graph.FromInt32s(a.cu)}, "block_tables must be int32 [num_seqs, max_blocks]"},
		{"seq_lens shape", ops.AttentionMeta{BlockTables: graph.FromInt32s(a.tables, 2, 3), SeqLens: graph.FromInt32s([]int32{1, 2, 3}), CuSeqlensQ: graph.FromInt32s(a.cu)}, "seq_lens must be int32 [2]"},
		{"cu_seqlens_q shape", ops.AttentionMeta{BlockTables: graph.FromInt32s(a.tables, 2, 3), SeqLens: graph.FromInt32s(a.lens), CuSeqlensQ: graph.FromInt32s([]int32{0, 3})}, "cu_seqlens_q must be int32 [3]"},
		{"missing", ops.AttentionMeta{BlockTables: graph.FromInt32s(a.tables, 2, 3), SeqLens: graph.FromInt32s(a.lens)}, "input 5 is nil"},
	} {
		if err := ops.PagedAttention(a.q, a.kc, a.vc, c.meta, a.opts).Err(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}

// TestAttentionDecodeSteps runs a prefill chunk and then decode steps, each
// one evaluation of KVWrite followed by PagedAttention on the updated
// caches, submitted with EvalAsync without waiting in between: step k+1's
// in-place write must be ordered after step k's reads of the same buffers.
// The checking devices must report no hazard, with one dispatch per command
// buffer and with 40, and every step's output must match the reference
// computed from the caches as they were at that step.
func TestAttentionDecodeSteps(t *testing.T) {
	const heads, kvh, hs, bs, numBlocks, steps = 4, 2, 64, 8, 100, 6
	const dt = graph.Float16
	prompts := []int{600, 13, 1}
	chunk := []int{3, 13, 1} // query tokens of the prefill step
	for _, d := range []struct {
		name string
		dev  cpu.Options
		rt   runtime.Options
	}{
		{"check/1", cpu.Options{Check: true}, runtime.Options{DispatchesPerCommandBuffer: 1}},
		{"check/40", cpu.Options{Check: true}, runtime.Options{DispatchesPerCommandBuffer: 40}},
		{"check-lazy/1", cpu.Options{Check: true, Lazy: true}, runtime.Options{DispatchesPerCommandBuffer: 1}},
		{"adversarial/40", cpu.Options{Check: true, Seed: 11}, runtime.Options{DispatchesPerCommandBuffer: 40, DispatchesPerPass: 2}},
	} {
		t.Run(d.name, func(t *testing.T) {
			dev := cpu.New(d.dev)
			defer dev.Close()
			rt, err := runtime.New(dev, d.rt)
			if err != nil {
				t.Fatal(err)
			}
			defer rt.Close()
			r := loomtest.Rand(21)
			kHost := newKVCache(r, dt, numBlocks, bs, kvh, hs)
			vHost := newKVCache(r, dt, numBlocks, bs, kvh, hs)
			final := make([]int, len(prompts))
			for s, n := range prompts {
				final[s] = n + steps
			}
			b := newBatch(r, final, chunk, bs, numBlocks)
			lens := append([]int(nil), prompts...)
			kc, vc := kHost.array(), vHost.array()
			first := kc
			type stepOut struct {
				out  *graph.Array
				want []float64
				p    *runtime.Pending
				mode ops.SplitMode
				b    attnBatch
			}
			var outs []stepOut
			row := kvh * hs * dt.Size()
			for step := range steps {
				// This step's tokens: the whole prompt first, then one per
				// sequence; plus a padding token with slot -1.
				var slots []int
				qLens := chunk
				if step > 0 {
					qLens = []int{1, 1, 1}
				}
				for s := range lens {
					from := lens[s] - 1
					if step == 0 {
						from = 0
					}
					for pos := from; pos < lens[s]; pos++ {
						slots = append(slots, b.slot(s, pos, bs))
					}
				}
				slots = append(slots, -1)
				kv := loomtest.Float32s(r, 2*len(slots)*kvh*hs, -1, 1)
				k := newKVCacheFrom(dt, len(slots), 1, kvh, hs, kv[:len(kv)/2])
				v := newKVCacheFrom(dt, len(slots), 1, kvh, hs, kv[len(kv)/2:])
				for tok, s := range slots {
					if s >= 0 {
						copy(kHost.raw[s*row:(s+1)*row], k.raw[tok*row:])
						copy(vHost.raw[s*row:(s+1)*row], v.raw[tok*row:])
					}
				}
				kHost.val, vHost.val = graph.DecodeFloat64s(dt, kHost.raw), graph.DecodeFloat64s(dt, vHost.raw)

				sb := *b
				sb.ctx, sb.qLens, sb.tq, sb.cu = append([]int(nil), lens...), qLens, 0, []int32{0}
				for _, n := range qLens {
					sb.tq += n
					sb.cu = append(sb.cu, int32(sb.tq))
				}
				qv := loomtest.Float32s(r, sb.tq*heads*hs, -2, 2)
				want := referenceAttention(loomtest.Round(dt, qv), heads, kHost, vHost, &sb, attnOpts{scale: 1 / math.Sqrt(hs)})

				newK, newV := ops.KVWrite(kc, vc,
					graph.FromBytes(dt, k.raw, len(slots), kvh, hs), graph.FromBytes(dt, v.raw, len(slots), kvh, hs), slotArray(graph.Int64, slots))
				mode := []ops.SplitMode{ops.SplitAuto, ops.SplitAlways, ops.SplitNever}[step%3]
				out := ops.PagedAttention(graph.FromFloat32sAs(dt, qv, sb.tq, heads, hs), newK, newV, sb.meta(-3), ops.AttentionOptions{Split: mode})
				p, err := rt.EvalAsync(out)
				if err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				outs = append(outs, stepOut{out, want, p, mode, sb})
				kc, vc = newK, newV
				for s := range lens {
					lens[s]++
				}
			}
			atol, rtol := attentionTolerance(dt)
			for step, o := range outs {
				got, err := o.out.Float64s()
				if err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				loomtest.Close(t, fmt.Sprintf("step %d", step), got, o.want, atol, rtol)
				if err := o.p.Wait(); err != nil {
					t.Fatal(err)
				}
				st := o.p.Stats()
				parts := primitives.AttentionPartitions(rt.Caps().Partitions, o.b.maxSeqLen(), o.b.maxBlocks, bs)
				path := "paged_attention.single"
				if primitives.UseSplitKV(o.mode, rt.Caps(), o.b.tq, kvh, parts) {
					path = "paged_attention.split"
				}
				if st.Counters[path] != 1 || st.Donations != 2 {
					t.Errorf("step %d (split %v): want the %s path and 2 donations; stats %v", step, o.mode, path, st)
				}
			}
			for _, c := range []struct {
				got  *graph.Array
				want []byte
			}{{kc, kHost.raw}, {vc, vHost.raw}} {
				if b, err := c.got.Bytes(); err != nil || !bytes.Equal(b, c.want) {
					t.Fatalf("final cache differs from the writes made (err %v)", err)
				}
			}
			if _, err := first.Bytes(); err == nil {
				t.Fatal("the first step's consumed cache could be read")
			}
			if hz := dev.Hazards(); len(hz) > 0 {
				t.Fatalf("%d hazards, first: %v", len(hz), hz[0])
			}
		})
	}
}

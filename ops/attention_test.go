package ops_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
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
				for x, j := range scores {
					w := math.Exp(j - top)
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
	name        string
	dt          graph.DType
	heads, kvh  int
	hs, bs      int
	ctx, qLens  []int // qLens nil: decode, one query token per sequence
	window      int
	softcap     float32
	scale       float32
	sinks       bool
	splits      []ops.SplitMode // each is run on the same data; nil: never, always and auto
	spareBlocks int
}

func (c attnCase) withDefaults() attnCase {
	if c.dt == graph.Invalid {
		c.dt = graph.Float32
	}
	if c.heads == 0 {
		c.heads, c.kvh, c.hs, c.bs = 16, 8, 128, 16
	}
	if c.splits == nil {
		c.splits = []ops.SplitMode{ops.SplitNever, ops.SplitAlways, ops.SplitAuto}
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
	n := c.spareBlocks + 1
	for _, l := range c.ctx {
		n += (l + c.bs - 1) / c.bs
	}
	return n
}

// runAttention runs each case on every target against the reference, and
// checks the path taken. Cases of one geometry share their caches.
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
				for _, mode := range c.splits {
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

					parts := primitives.AttentionPartitions(b.maxSeqLen(), b.maxBlocks, c.bs)
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

// TestPagedAttentionReferenceShapes runs the shapes of Qwen3-0.6B's
// attention with the context lengths that exercise the partition logic:
// 16 partitions, one valid partition in a 4-partition grid, unaligned
// lengths, an odd partition count.
func TestPagedAttentionReferenceShapes(t *testing.T) {
	var cases []attnCase
	for _, ctx := range [][]int{{8192}, {100, 2048}, {700, 4096}, {1300}} {
		cases = append(cases, attnCase{name: fmt.Sprintf("ctx%v", ctx), ctx: ctx})
	}
	runAttention(t, cases)
}

// TestPagedAttentionWindow checks sliding windows, including one that starts
// on a partition boundary so that whole partitions are masked.
func TestPagedAttentionWindow(t *testing.T) {
	var cases []attnCase
	for _, w := range [][2]int{{2048, 512}, {2048, 700}, {8192, 1300}} {
		cases = append(cases, attnCase{name: fmt.Sprintf("ctx%d/window%d", w[0], w[1]), ctx: []int{w[0]}, window: w[1]})
	}
	runAttention(t, cases)
}

// TestPagedAttentionSinks checks that each sink joins the denominator once,
// on both paths, alone and with a window and softcap.
func TestPagedAttentionSinks(t *testing.T) {
	runAttention(t, []attnCase{
		{name: "decode", ctx: []int{1300, 37}, sinks: true},
		{name: "window-softcap", ctx: []int{2048}, window: 700, softcap: 5, sinks: true},
	})
}

// TestPagedAttentionVarlen mixes decode rows with multi-token segments,
// including a segment longer than its context (rows with eff_ctx ≤ 0 are
// zero), a sequence with no query token and one with an empty context.
func TestPagedAttentionVarlen(t *testing.T) {
	ctx := []int{300, 1100, 3, 1, 0, 700}
	qLens := []int{1, 19, 5, 1, 0, 33}
	runAttention(t, []attnCase{
		{name: "mixed", heads: 8, kvh: 2, hs: 64, bs: 16, ctx: ctx, qLens: qLens},
		{name: "mixed-window-softcap", heads: 8, kvh: 2, hs: 64, bs: 16, ctx: ctx, qLens: qLens, window: 600, softcap: 3},
		{name: "prefill", heads: 2, kvh: 1, hs: 64, bs: 32, ctx: []int{600}, qLens: []int{600}},
	})
}

// TestPagedAttentionShapes covers every dtype, head size and block size and
// several GQA ratios, with scale and softcap variants.
func TestPagedAttentionShapes(t *testing.T) {
	var cases []attnCase
	for _, dt := range primitives.AttentionDTypes {
		cases = append(cases,
			attnCase{name: fmt.Sprintf("%s/qwen", dt), dt: dt, ctx: []int{1300, 9}},
			attnCase{name: fmt.Sprintf("%s/varlen", dt), dt: dt, ctx: []int{600, 45}, qLens: []int{3, 45}, window: 300},
		)
	}
	geoms := []struct{ heads, kvh, hs, bs int }{
		{8, 8, 64, 8}, {6, 2, 80, 32}, {12, 3, 96, 16}, {4, 1, 256, 8}, {8, 1, 128, 32}, {2, 2, 64, 16},
	}
	for _, g := range geoms {
		cases = append(cases, attnCase{
			name:  fmt.Sprintf("h%d-kv%d-hs%d-bs%d", g.heads, g.kvh, g.hs, g.bs),
			heads: g.heads, kvh: g.kvh, hs: g.hs, bs: g.bs, ctx: []int{517, 1, 1030}, qLens: []int{1, 1, 2},
			scale: 0.07, softcap: 2.5,
		})
	}
	cases = append(cases,
		attnCase{name: "bf16/hs256/sinks", dt: graph.BFloat16, heads: 4, kvh: 2, hs: 256, bs: 8, ctx: []int{1500}, sinks: true},
		attnCase{name: "f16/bs32/window", dt: graph.Float16, heads: 4, kvh: 4, hs: 128, bs: 32, ctx: []int{1025}, window: 512},
	)
	runAttention(t, cases)
}

// TestPagedAttentionEmpty checks batches without query tokens and without
// sequences.
func TestPagedAttentionEmpty(t *testing.T) {
	runAttention(t, []attnCase{
		{name: "no-query-tokens", ctx: []int{40, 3}, qLens: []int{0, 0}},
		{name: "no-sequences", ctx: []int{}},
	})
}

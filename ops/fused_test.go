package ops_test

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
)

// checkFused compares a fused op's output, evaluated on tg, with its
// float64 reference want (already in the dtype: exactly when exactRef,
// within the dtype's tolerance otherwise) and with the unfused chain's
// output evaluated beside it (bit for bit on the CPU targets when
// exactChain, within chainTol times the dtype's tolerance otherwise).
func checkFused(t *testing.T, tg loomtest.Target, what string, fused, chain *graph.Array, want []float64, exactRef, exactChain bool, refTol, chainTol float64) {
	t.Helper()
	fb, err := fused.Bytes()
	if err != nil {
		t.Fatalf("%s: %s: %v", tg.Name, what, err)
	}
	cb, err := chain.Bytes()
	if err != nil {
		t.Fatalf("%s: %s: the chain: %v", tg.Name, what, err)
	}
	dt := fused.DType()
	got := graph.DecodeFloat64s(dt, fb)
	atol, rtol := loomtest.Tolerance(dt)
	if exactRef {
		loomtest.Close(t, fmt.Sprintf("%s: %s against the float64 reference, exactly", tg.Name, what), got, want, 0, 0)
	} else {
		loomtest.Close(t, fmt.Sprintf("%s: %s against the float64 reference", tg.Name, what), got, want, refTol*atol, refTol*rtol)
	}
	if exactChain && tg.Exact {
		if !bytes.Equal(fb, cb) {
			t.Fatalf("%s: %s differs from the unfused chain's bits", tg.Name, what)
		}
		return
	}
	loomtest.Close(t, fmt.Sprintf("%s: %s against the unfused chain", tg.Name, what), got, graph.DecodeFloat64s(dt, cb), chainTol*atol, chainTol*rtol)
}

func TestAddRMSNorm(t *testing.T) {
	// {2, 5001}: a row longer than the CUDA kernel holds in registers.
	shapes := [][]int{{1, 7}, {3, 1024}, {5, 33}, {4, 1}, {2, 3, 300}, {0, 8}, {9, 1000}, {2, 5001}}
	for _, tg := range loomtest.Targets(t) {
		for ci, shape := range shapes {
			for _, dt := range floatDTypes {
				what := fmt.Sprintf("%s %v", dt, shape)
				n, d := graph.NumElements(shape), shape[len(shape)-1]
				fx, x := randFloats(uint64(ci), dt, n, -3, 3)
				fr, r := randFloats(uint64(20+ci), dt, n, -3, 3)
				fw, w := randFloats(uint64(40+ci), dt, d, 0.5, 1.5)
				if n >= 2*d && d > 1 { // a row summing to zero: eps keeps it finite
					for i := d; i < 2*d; i++ {
						fr[i], r[i] = -fx[i], -x[i]
					}
				}
				sum := make([]float64, n)
				for i := range sum {
					sum[i] = x[i] + r[i]
				}
				sum = inDType(dt, sum) // exact: the float32 sum of two values of dt is exact
				normed := inDType(dt, rmsNormRef(sum, w, d, 1e-6))
				xa, ra, wa := floats(dt, fx, shape...), floats(dt, fr, shape...), floats(dt, fw, d)
				gotSum, gotNormed := ops.AddRMSNorm(xa, ra, wa, 1e-6)
				chainSum := ops.Add(xa, ra)
				chainNormed := ops.RMSNorm(chainSum, wa, 1e-6)
				tg.Eval(t, gotSum, gotNormed, chainSum, chainNormed)
				checkShape(t, gotNormed.Spec(), dt, shape...)
				checkFused(t, tg, what+" sum", gotSum, chainSum, sum, true, true, 1, 1)
				checkFused(t, tg, what+" normed", gotNormed, chainNormed, normed, false, true, 1, 1)
			}
		}
	}
}

func TestSiLUMul(t *testing.T) {
	shapes := [][]int{{1, 14}, {3, 2048}, {5, 66}, {1, 2}, {2, 3, 600}, {0, 8}, {7, 6144}}
	for _, tg := range loomtest.Targets(t) {
		for ci, shape := range shapes {
			for _, dt := range floatDTypes {
				what := fmt.Sprintf("%s %v", dt, shape)
				n := graph.NumElements(shape)
				w := shape[len(shape)-1] / 2
				fa, a := randFloats(uint64(ci), dt, n, -6, 6)
				want := make([]float64, n/2)
				for i := range want {
					row, k := i/w, i%w
					g, u := a[2*row*w+k], a[2*row*w+w+k]
					want[i] = g / (1 + math.Exp(-g)) * u
				}
				out := append([]int{}, shape...)
				out[len(out)-1] = w
				arr := floats(dt, fa, shape...)
				got := ops.SiLUMul(arr)
				gate := ops.Slice(arr, make([]int, len(shape)), out)
				starts := make([]int, len(shape))
				starts[len(starts)-1] = w
				up := ops.Slice(arr, starts, shape)
				chain := ops.Mul(ops.SiLU(gate), up)
				tg.Eval(t, got, chain)
				checkShape(t, got.Spec(), dt, out...)
				// In float16 and bfloat16 the chain rounds SiLU's result too.
				checkFused(t, tg, what, got, chain, inDType(dt, want), false, dt == graph.Float32, 1, 2)
			}
		}
	}
}

// qkvCase is a QKNormRoPEKVWrite problem.
type qkvCase struct {
	tokens, heads, kvh, hs int
	slotDT                 graph.DType
	pad                    bool // the last token is padding (slot −1)
}

// qkvRef computes the queries and the caches' new contents in float64: each
// query and key head normalised and rotated, values copied.
func qkvRef(qkv, qn, kn []float64, pos []int32, slots []int, c qkvCase, kCache []float64, vCache []float64) (q []float64) {
	width, row := (c.heads+2*c.kvh)*c.hs, c.kvh*c.hs
	q = make([]float64, c.tokens*c.heads*c.hs)
	for t := range c.tokens {
		for h := range c.heads + 2*c.kvh {
			src := qkv[t*width+h*c.hs : t*width+(h+1)*c.hs]
			var out []float64
			switch {
			case h < c.heads:
				out = ropeRef(rmsNormRef(src, qn, c.hs, 1e-6), []int32{pos[t]}, 1, c.hs, 1e6, nil)
				copy(q[(t*c.heads+h)*c.hs:], out)
				continue
			case h < c.heads+c.kvh:
				out = ropeRef(rmsNormRef(src, kn, c.hs, 1e-6), []int32{pos[t]}, 1, c.hs, 1e6, nil)
			default:
				out = src
			}
			if s := slots[t]; s >= 0 {
				cache, g := kCache, h-c.heads
				if h >= c.heads+c.kvh {
					cache, g = vCache, h-c.heads-c.kvh
				}
				copy(cache[s*row+g*c.hs:], out)
			}
		}
	}
	return q
}

// TestQKNormRoPEKVWrite checks the fused QK-norm, RoPE and KV write
// against a float64 reference and against RMSNorm, RoPE and KVWrite on
// slices of the same qkv, with GQA ratios 1 and 2, head sizes 64, 128 and 640,
// one, odd and no tokens, padding slots (of one token too) and every dtype.
func TestQKNormRoPEKVWrite(t *testing.T) {
	const blocks, bs = 5, 4
	cases := []qkvCase{
		{1, 2, 1, 64, graph.Int32, false},
		{7, 4, 2, 128, graph.Int64, false},
		{3, 2, 2, 64, graph.Int32, false},
		{5, 4, 4, 128, graph.Int32, false},
		{0, 2, 1, 64, graph.Int64, false},
		{2, 16, 8, 128, graph.Int32, false},
		{2, 2, 1, 640, graph.Int32, false}, // more pairs than threads: some threads rotate two
		// One token, of many heads, and one of padding.
		{1, 16, 8, 128, graph.Int64, false},
		{1, 6, 3, 64, graph.Int32, true},
	}
	for _, tg := range loomtest.Targets(t) {
		for ci, c := range cases {
			for _, dt := range primitives.AttentionDTypes {
				what := fmt.Sprintf("%s T%d H%d KV%d hs%d %s", dt, c.tokens, c.heads, c.kvh, c.hs, c.slotDT)
				r := loomtest.Rand(uint64(ci))
				width := (c.heads + 2*c.kvh) * c.hs
				fqkv, qkv := randFloats(uint64(ci), dt, c.tokens*width, -2, 2)
				fqn, qn := randFloats(uint64(10+ci), dt, c.hs, 0.5, 1.5)
				fkn, kn := randFloats(uint64(20+ci), dt, c.hs, 0.5, 1.5)
				kc := newKVCache(r, dt, blocks, bs, c.kvh, c.hs)
				vc := newKVCache(r, dt, blocks, bs, c.kvh, c.hs)
				pos := make([]int32, c.tokens)
				for i := range pos {
					pos[i] = int32(r.IntN(4096))
				}
				slots := r.Perm(blocks * bs)[:c.tokens]
				if c.tokens >= 3 {
					pos[0], slots[1] = 0, -1 // position 0; padding, skipped
				}
				if c.pad {
					slots[c.tokens-1] = -1
				}
				wantK, wantV := append([]float64{}, kc.val...), append([]float64{}, vc.val...)
				wantQ := inDType(dt, qkvRef(qkv, qn, kn, pos, slots, c, wantK, wantV))
				wantK = inDType(dt, wantK)

				qkvArr := floats(dt, fqkv, c.tokens, width)
				qNorm, kNorm := floats(dt, fqn, c.hs), floats(dt, fkn, c.hs)
				positions := graph.FromInt32s(pos, c.tokens)
				slotArr := slotArray(c.slotDT, slots)
				oldK, oldV := kc.array(), vc.array()
				q, newK, newV := ops.QKNormRoPEKVWrite(qkvArr, ops.QKNorm{Heads: c.heads, QNorm: qNorm, KNorm: kNorm, Eps: 1e-6, Theta: 1e6},
					positions, oldK, oldV, slotArr)

				// The chain: slices of qkv, RMSNorm, RoPE, KVWrite.
				part := func(lo, heads int) *graph.Array {
					s := ops.Slice(qkvArr, []int{0, lo * c.hs}, []int{c.tokens, (lo + heads) * c.hs})
					return ops.Reshape(s, c.tokens, heads, c.hs)
				}
				chainQ := ops.RoPE(ops.RMSNorm(part(0, c.heads), qNorm, 1e-6), positions, 1e6)
				chainKIn := ops.RoPE(ops.RMSNorm(part(c.heads, c.kvh), kNorm, 1e-6), positions, 1e6)
				chainK, chainV := ops.KVWrite(kc.array(), vc.array(), chainKIn, part(c.heads+c.kvh, c.kvh), slotArr)

				tg.Eval(t, q, newK, newV, chainQ, chainK, chainV)
				if st := tg.RT.LastStats(); st.Donations != 4 || st.DonationsRefused != 0 {
					t.Errorf("%s: %s: donations %d, refused %d; want 4 in place (2 fused, 2 chained)", tg.Name, what, st.Donations, st.DonationsRefused)
				}
				checkShape(t, q.Spec(), dt, c.tokens, c.heads, c.hs)
				// In float16 and bfloat16 the chain rounds the normalised heads
				// too, so it is up to about one more rounding away.
				checkFused(t, tg, what+" q", q, chainQ, wantQ, false, dt == graph.Float32, 1, 2)
				checkFused(t, tg, what+" k_cache", newK, chainK, wantK, false, dt == graph.Float32, 1, 2)
				checkFused(t, tg, what+" v_cache", newV, chainV, wantV, true, true, 1, 0)
				if _, err := oldK.Bytes(); err == nil || !strings.Contains(err.Error(), "donated to qk_norm_rope_kv_write") {
					t.Errorf("%s: reading a consumed cache: err = %v, want an error naming the donation", tg.Name, err)
				}
			}
		}
	}
}

// TestQKNormRoPEKVWriteErrors checks that bad arguments are refused with
// messages that name them, and bad slots with KVWrite's messages: at build
// time for constant slots (leaving the caches usable) and by the kernel
// otherwise.
func TestQKNormRoPEKVWriteErrors(t *testing.T) {
	const blocks, bs, heads, kvh, hs = 4, 8, 4, 2, 16
	cache := func() *graph.Array { return graph.Full(graph.Float16, 1, blocks, bs, kvh, hs) }
	qkv := func(n int) *graph.Array { return graph.Full(graph.Float16, 0.5, n, (heads+2*kvh)*hs) }
	newQK := func() ops.QKNorm {
		return ops.QKNorm{Heads: heads, QNorm: graph.Full(graph.Float16, 1, hs), KNorm: graph.Full(graph.Float16, 1, hs), Eps: 1e-6, Theta: 1e4}
	}
	qk := newQK()
	with := func(f func(*ops.QKNorm)) ops.QKNorm {
		n := newQK()
		f(&n)
		return n
	}
	pos := func(n int) *graph.Array { return graph.Full(graph.Int32, 3, n) }
	for _, c := range []struct {
		name   string
		qkv    *graph.Array
		n      ops.QKNorm
		pos    *graph.Array
		kc, vc *graph.Array
		slots  *graph.Array
		want   string
	}{
		{"slot past the cache", qkv(3), qk, pos(3), cache(), cache(), graph.FromInt32s([]int32{0, 32, 1}), "slot_mapping[1] = 32 out of range: the cache has 32 slots"},
		{"slot used twice", qkv(3), qk, pos(3), cache(), cache(), graph.FromInt64s([]int64{5, -1, 5}), "slot_mapping[2] = 5 is also slot_mapping[0]: a slot may be written once"},
		{"float slots", qkv(1), qk, pos(1), cache(), cache(), graph.FromFloat32s([]float32{0}), "slot_mapping must be int32 or int64"},
		{"slots per token", qkv(2), qk, pos(2), cache(), cache(), graph.FromInt32s([]int32{0}), "slot_mapping int32[1] must be [2], one slot per token"},
		{"qkv width", graph.Full(graph.Float16, 0, 1, 7*hs), qk, pos(1), cache(), cache(), graph.FromInt32s([]int32{0}), "want float16[tokens, 128] ((4 heads + 2·2 kv heads)·head size 16)"},
		{"qkv dtype", graph.Full(graph.Float32, 0, 1, 8*hs), qk, pos(1), cache(), cache(), graph.FromInt32s([]int32{0}), "qkv float32[1 128] does not match the cache"},
		{"qkv rank", graph.Full(graph.Float16, 0, 1, 8, hs), qk, pos(1), cache(), cache(), graph.FromInt32s([]int32{0}), "does not match the cache"},
		{"no heads", qkv(1), with(func(n *ops.QKNorm) { n.Heads = 0 }), pos(1), cache(), cache(), graph.FromInt32s([]int32{0}), "heads = 0, want at least 1"},
		{"q_norm shape", qkv(1), with(func(n *ops.QKNorm) { n.QNorm = graph.Full(graph.Float16, 1, 8) }), pos(1), cache(), cache(), graph.FromInt32s([]int32{0}), "q_norm float16[8] must be float16[16]"},
		{"k_norm dtype", qkv(1), with(func(n *ops.QKNorm) { n.KNorm = graph.Full(graph.BFloat16, 1, hs) }), pos(1), cache(), cache(), graph.FromInt32s([]int32{0}), "k_norm bfloat16[16] must be float16[16]"},
		{"positions dtype", qkv(1), qk, graph.FromInt64s([]int64{0}), cache(), cache(), graph.FromInt32s([]int32{0}), "positions int64[1] must be int32[1], one per token of qkv"},
		{"positions count", qkv(2), qk, pos(3), cache(), cache(), graph.FromInt32s([]int32{0, 1}), "positions int32[3] must be int32[2]"},
		{"eps", qkv(1), with(func(n *ops.QKNorm) { n.Eps = float32(math.NaN()) }), pos(1), cache(), cache(), graph.FromInt32s([]int32{0}), "eps NaN must be finite and ≥ 0"},
		{"theta", qkv(1), with(func(n *ops.QKNorm) { n.Theta = -1 }), pos(1), cache(), cache(), graph.FromInt32s([]int32{0}), "theta -1 must be finite and > 0"},
		{"odd head size", graph.Full(graph.Float16, 0, 1, 8*15), qk, pos(1), graph.Full(graph.Float16, 1, blocks, bs, kvh, 15), graph.Full(graph.Float16, 1, blocks, bs, kvh, 15), graph.FromInt32s([]int32{0}), "head size 15 is odd"},
		{"caches differ", qkv(1), qk, pos(1), cache(), graph.Full(graph.Float16, 1, blocks+1, bs, kvh, hs), graph.FromInt32s([]int32{0}), "v_cache float16[5 8 2 16] differs from k_cache"},
		{"cache dtype", graph.Full(graph.Int32, 0, 1, 8*hs), qk, pos(1), graph.Full(graph.Int32, 1, blocks, bs, kvh, hs), graph.Full(graph.Int32, 1, blocks, bs, kvh, hs), graph.FromInt32s([]int32{0}), "unsupported cache dtype int32"},
		{"nil norm", qkv(1), with(func(n *ops.QKNorm) { n.KNorm = nil }), pos(1), cache(), cache(), graph.FromInt32s([]int32{0}), "input 2 is nil"},
	} {
		t.Run(c.name, func(t *testing.T) {
			q, newK, newV := ops.QKNormRoPEKVWrite(c.qkv, c.n, c.pos, c.kc, c.vc, c.slots)
			for _, a := range []*graph.Array{q, newK, newV} {
				wantErr(t, a, "qk_norm_rope_kv_write", c.want, "fused_test.go:")
			}
			if c.kc.Consumer() != nil {
				t.Fatalf("a failed QKNormRoPEKVWrite consumed its cache")
			}
		})
	}
	// Slots that are not constants are checked by the kernel, which reports
	// them in KVWrite's words.
	for _, tg := range loomtest.Targets(t) {
		for _, c := range []struct {
			slots *graph.Array
			want  string
		}{
			{graph.FromInt32s([]int32{3, 40, 1}), "slot_mapping[1] = 40 out of range: the cache has 32 slots"},
			{graph.FromInt64s([]int64{-1, 9, 9}), "slot_mapping[2] = 9 is also slot_mapping[1]: a slot may be written once"},
		} {
			slots := evaluated(t, tg, c.slots)
			q, newK, newV := ops.QKNormRoPEKVWrite(qkv(3), newQK(), pos(3), cache(), cache(), slots)
			err := tg.RT.Eval(q, newK, newV)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%s: eval error %v, want %q", tg.Name, err, c.want)
			}
			tg.NoHazards(t)
		}
	}
}

// TestGatedLinear checks GatedLinear against a float64 reference and
// against the chain it fuses, MatMulTransposed then SiLUMul (bit for bit
// on the CPU targets, in every dtype, and on CUDA's tensor cores in float16
// and bfloat16 up to MatMulMMARows rows), and the path each case takes: the
// gated kernel up to the device's Caps.GatedGEMVMaxRows rows of x, the
// matmul and silu_mul above; empty x, N or K on both paths.
func TestGatedLinear(t *testing.T) {
	cases := []struct {
		x []int
		n int
	}{
		{[]int{1, 7}, 5}, {[]int{1, 64}, 16}, {[]int{1, 1}, 1}, {[]int{3, 33}, 13}, {[]int{17, 65}, 9},
		{[]int{2, 3, 40}, 11}, {[]int{primitives.MatMulSmallM + 3, 9}, 6}, {[]int{1, 300}, 300}, {[]int{33, 512}, 40},
		{[]int{0, 7}, 5}, {[]int{2, 7}, 0}, {[]int{3, 0}, 4}, {[]int{primitives.MatMulSmallM + 1, 7}, 0}, {[]int{primitives.MatMulSmallM + 1, 0}, 3},
	}
	for _, tg := range loomtest.Targets(t) {
		maxRows := tg.RT.Caps().GatedGEMVMaxRows
		for ci, c := range cases {
			for _, dt := range floatDTypes {
				what := fmt.Sprintf("%s x%v n=%d", dt, c.x, c.n)
				k := c.x[len(c.x)-1]
				m := graph.NumElements(c.x[:len(c.x)-1])
				fx, x := randFloats(uint64(ci), dt, m*k, -1, 1)
				fw, w := randFloats(uint64(50+ci), dt, 2*c.n*k, -1, 1)
				want := make([]float64, m*c.n)
				for i := range m {
					for j := range c.n {
						var g, u float64
						for p := range k {
							g += x[i*k+p] * w[j*k+p]
							u += x[i*k+p] * w[(c.n+j)*k+p]
						}
						gu := inDType(dt, []float64{g, u}) // the matmul's output is rounded to the dtype
						want[i*c.n+j] = gu[0] / (1 + math.Exp(-gu[0])) * gu[1]
					}
				}
				xa, wa := floats(dt, fx, c.x...), floats(dt, fw, 2*c.n, k)
				got := ops.GatedLinear(xa, wa)
				chain := ops.SiLUMul(ops.MatMulTransposed(xa, wa, false, true))
				tg.Eval(t, got)
				fused := 0
				if m <= maxRows {
					fused = 1
				}
				if cs := tg.RT.LastStats().Counters; cs["matmul_silu_mul.fused"] != fused || cs["matmul_silu_mul.unfused"] != 1-fused {
					t.Fatalf("%s: %s: counters %v, want matmul_silu_mul.fused %d (%d rows, the device's gated kernel takes %d)", tg.Name, what, cs, fused, m, maxRows)
				}
				tg.Eval(t, chain)
				out := append(slices.Clone(c.x[:len(c.x)-1]), c.n)
				checkShape(t, got.Spec(), dt, out...)
				// float32 sums of k products round by up to about k·2⁻²⁴ of
				// their magnitudes, so the gated kernel and the chain (which
				// sum in other orders on the GPU) and the float64 reference
				// part by more than float32's 1e-5 once k is in the hundreds.
				tol := 1.0
				if dt == graph.Float32 {
					tol = max(1, float64(k)/64)
				}
				checkFused(t, tg, what, got, chain, inDType(dt, want), false, true, tol, tol)
				if fused == 1 && dt != graph.Float32 && tg.RT.Caps().TensorCores && m <= primitives.MatMulMMARows {
					// The tensor-core gated GEMV sums as the tensor-core GEMV.
					gb, err1 := got.Bytes()
					cb, err2 := chain.Bytes()
					if err1 != nil || err2 != nil || !bytes.Equal(gb, cb) {
						t.Errorf("%s: %s: the tensor-core gated GEMV differs from the unfused chain's bits (%v, %v)", tg.Name, what, err1, err2)
					}
				}
			}
		}
	}
}

// TestAddRMSNormLinear compares AddRMSNormLinear and AddRMSNormGatedLinear
// with float64 references and with the unfused chain (AddRMSNorm, then
// MatMulTransposed or GatedLinear), whose bits they promise on every
// device: one row in one dispatch (the fused kernels) up to
// primitives.AddRMSNormLinearMaxK elements, more rows or longer rows
// through the chain's own kernels.
func TestAddRMSNormLinear(t *testing.T) {
	cases := []struct {
		x []int
		n int
	}{
		{[]int{1, 7}, 5}, {[]int{1, 1}, 1}, {[]int{1, 64}, 16}, {[]int{1, 1000}, 131}, {[]int{1, 1024}, 40},
		{[]int{1, 1, 33}, 9}, {[]int{1, primitives.AddRMSNormLinearMaxK}, 3}, {[]int{1, primitives.AddRMSNormLinearMaxK + 1}, 3},
		{[]int{2, 40}, 11}, {[]int{3, 1001}, 17}, {[]int{2, 3, 24}, 6}, {[]int{1, 8}, 0}, {[]int{0, 8}, 4},
	}
	for _, tg := range loomtest.Targets(t) {
		for ci, c := range cases {
			for _, dt := range floatDTypes {
				for _, gated := range []bool{false, true} {
					what := fmt.Sprintf("%s x%v n=%d gated %v", dt, c.x, c.n, gated)
					k := c.x[len(c.x)-1]
					m := graph.NumElements(c.x[:len(c.x)-1])
					rows := c.n
					if gated {
						rows *= 2
					}
					fx, x := randFloats(uint64(ci), dt, m*k, -3, 3)
					fd, d := randFloats(uint64(20+ci), dt, m*k, -3, 3)
					fnw, nw := randFloats(uint64(40+ci), dt, k, 0.5, 1.5)
					fw, w := randFloats(uint64(60+ci), dt, rows*k, -1, 1)
					sum := make([]float64, m*k)
					for i := range sum {
						sum[i] = x[i] + d[i]
					}
					sum = inDType(dt, sum)
					normed := inDType(dt, rmsNormRef(sum, nw, k, 1e-6))
					want := make([]float64, m*c.n)
					for i := range m {
						for j := range c.n {
							dot := func(r int) float64 {
								var s float64
								for p := range k {
									s += normed[i*k+p] * w[r*k+p]
								}
								return s
							}
							if !gated {
								want[i*c.n+j] = dot(j)
								continue
							}
							gu := inDType(dt, []float64{dot(j), dot(c.n + j)})
							want[i*c.n+j] = gu[0] / (1 + math.Exp(-gu[0])) * gu[1]
						}
					}
					xa, da, nwa, wa := floats(dt, fx, c.x...), floats(dt, fd, c.x...), floats(dt, fnw, k), floats(dt, fw, rows, k)
					var gotSum, got *graph.Array
					chainSum, normedA := ops.AddRMSNorm(xa, da, nwa, 1e-6)
					var chain *graph.Array
					if gated {
						gotSum, got = ops.AddRMSNormGatedLinear(xa, da, nwa, wa, 1e-6)
						chain = ops.GatedLinear(normedA, wa)
					} else {
						gotSum, got = ops.AddRMSNormLinear(xa, da, nwa, wa, 1e-6)
						chain = ops.MatMulTransposed(normedA, wa, false, true)
					}
					tg.Eval(t, gotSum, got)
					fused := 0
					if m == 1 && c.n > 0 && k <= primitives.AddRMSNormLinearMaxK {
						fused = 1
					}
					if cs := tg.RT.LastStats().Counters; cs["add_rms_norm_linear.fused"] != fused || cs["add_rms_norm_linear.unfused"] != 1-fused {
						t.Fatalf("%s: %s: counters %v, want add_rms_norm_linear.fused %d", tg.Name, what, cs, fused)
					}
					if want := 2 - fused; !gated && c.n > 0 && m > 0 && tg.RT.LastStats().Dispatches != want {
						t.Fatalf("%s: %s: %d dispatches, want %d", tg.Name, what, tg.RT.LastStats().Dispatches, want)
					}
					tg.Eval(t, chainSum, chain)
					checkShape(t, got.Spec(), dt, append(slices.Clone(c.x[:len(c.x)-1]), c.n)...)
					checkFused(t, tg, what+" sum", gotSum, chainSum, sum, true, true, 1, 1)
					// The chain's bits on every device, the GPUs' included;
					// against the reference within 20 times the dtype's
					// tolerance (its norm is float64, the kernels' float32,
					// which the products and SiLU then amplify).
					gb, err1 := got.Bytes()
					cb, err2 := chain.Bytes()
					if err1 != nil || err2 != nil || !bytes.Equal(gb, cb) {
						t.Fatalf("%s: %s: differs from the unfused chain's bits (%v, %v)", tg.Name, what, err1, err2)
					}
					atol, rtol := loomtest.Tolerance(dt)
					loomtest.Close(t, fmt.Sprintf("%s: %s against the float64 reference", tg.Name, what), graph.DecodeFloat64s(dt, gb), inDType(dt, want), 20*atol, 20*rtol)
				}
			}
		}
	}
}

func TestAddRMSNormLinearErrors(t *testing.T) {
	f := func(dt graph.DType, shape ...int) *graph.Array {
		return floats(dt, make([]float32, graph.NumElements(shape)), shape...)
	}
	x, nw := f(graph.Float32, 2, 8), f(graph.Float32, 8)
	_, out := ops.AddRMSNormLinear(x, f(graph.Float32, 2, 7), nw, f(graph.Float32, 3, 8), 1e-6)
	wantErr(t, out, "add_rms_norm_linear", "residual")
	_, out = ops.AddRMSNormLinear(x, x, nw, f(graph.Float32, 3, 7), 1e-6)
	wantErr(t, out, "add_rms_norm_linear", "inner dimensions differ")
	_, out = ops.AddRMSNormLinear(x, x, nw, f(graph.Float32, 2, 3, 8), 1e-6)
	wantErr(t, out, "add_rms_norm_linear", "must be [N, K]")
	_, out = ops.AddRMSNormGatedLinear(x, x, nw, f(graph.Float32, 3, 8), 1e-6)
	wantErr(t, out, "add_rms_norm_linear", "gate rows")
	_, out = ops.AddRMSNormLinear(x, x, f(graph.Float32, 7), f(graph.Float32, 3, 8), 1e-6)
	wantErr(t, out, "add_rms_norm_linear", "weight has shape")
	_, out = ops.AddRMSNormLinear(x, x, nw, f(graph.Float16, 3, 8), 1e-6)
	wantErr(t, out, "add_rms_norm_linear", "dtypes differ")
}

package ops_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// matmulCase is one product: shapes as stored (transposes applied by the
// op), random inputs rounded to the dtype, and the float64 reference.
type matmulCase struct {
	name   string
	dt     graph.DType
	ta, tb bool
	aShape []int
	bShape []int
	a, b   []float32 // as given to the constants
	want   []float64 // reference product
	bound  []float64 // per element: how far a float32 accumulation may stray
	shape  []int     // expected output shape
}

// newMatmulCase draws random inputs and computes the reference.
func newMatmulCase(r *rand.Rand, dt graph.DType, ta, tb bool, aShape, bShape []int) *matmulCase {
	c := &matmulCase{dt: dt, ta: ta, tb: tb, aShape: aShape, bShape: bShape}
	c.name = fmt.Sprintf("%s a%v%s b%v%s", dt, aShape, tmark(ta), bShape, tmark(tb))
	c.a = loomtest.Float32s(r, graph.NumElements(aShape), -1, 1)
	c.b = loomtest.Float32s(r, graph.NumElements(bShape), -1, 1)
	c.want, c.bound, c.shape = refMatMul(loomtest.Round(dt, c.a), loomtest.Round(dt, c.b), aShape, bShape, ta, tb, dt)
	return c
}

func tmark(t bool) string {
	if t {
		return "ᵀ"
	}
	return ""
}

// unitRoundoff is the relative rounding error of storing a float32 result
// as dt (half an ulp).
func unitRoundoff(dt graph.DType) float64 {
	switch dt {
	case graph.Float16:
		return 1.0 / (1 << 11)
	case graph.BFloat16:
		return 1.0 / (1 << 8)
	}
	return 1.0 / (1 << 24)
}

// refMatMul is a plain float64 batched matmul with NumPy broadcasting of
// the batch dims. bound[i] is the error a float32 accumulation in any order
// may make, (K+2)·2⁻²⁴·Σ|a·b|, plus the rounding of the result to dt (and
// float16's smallest subnormal step).
func refMatMul(a, b []float64, aShape, bShape []int, ta, tb bool, dt graph.DType) (out, bound []float64, shape []int) {
	ra, rb := len(aShape), len(bShape)
	m, k := aShape[ra-2], aShape[ra-1]
	if ta {
		m, k = k, m
	}
	n := bShape[rb-1]
	if tb {
		n = bShape[rb-2]
	}
	aBatch, bBatch := aShape[:ra-2], bShape[:rb-2]
	rank := max(len(aBatch), len(bBatch))
	batch := make([]int, rank)
	for i := range batch {
		da, db := dimFromEnd(aBatch, rank-1-i), dimFromEnd(bBatch, rank-1-i)
		batch[i] = max(da, db)
	}
	nb := graph.NumElements(batch)
	out = make([]float64, nb*m*n)
	bound = make([]float64, len(out))
	for bi := range nb {
		ia, ib := broadcastIndex(bi, batch, aBatch), broadcastIndex(bi, batch, bBatch)
		for i := range m {
			for j := range n {
				s, abs := 0.0, 0.0
				for p := range k {
					var x, y float64
					if ta {
						x = a[ia*m*k+p*m+i]
					} else {
						x = a[ia*m*k+i*k+p]
					}
					if tb {
						y = b[ib*k*n+j*k+p]
					} else {
						y = b[ib*k*n+p*n+j]
					}
					s += x * y
					abs += math.Abs(x * y)
				}
				o := bi*m*n + i*n + j
				out[o] = s
				bound[o] = float64(k+2)/(1<<24)*abs + unitRoundoff(dt)*math.Abs(s)*1.001 + 1.0/(1<<25)
			}
		}
	}
	return out, bound, append(batch, m, n)
}

func dimFromEnd(shape []int, i int) int {
	if i >= len(shape) {
		return 1
	}
	return shape[len(shape)-1-i]
}

// broadcastIndex maps output batch index bi (of shape out) to the matrix
// index of an input with batch shape in (right-aligned, size-1 dims
// broadcast).
func broadcastIndex(bi int, out, in []int) int {
	idx := 0
	stride := 1
	for d := len(out) - 1; d >= 0; d-- {
		o := bi % out[d]
		bi /= out[d]
		j := d - (len(out) - len(in))
		if j < 0 {
			continue
		}
		if in[j] != 1 {
			idx += o * stride
		}
		stride *= in[j]
	}
	return idx
}

// build returns the op's result for the case.
func (c *matmulCase) build() *graph.Array {
	a := graph.FromFloat32sAs(c.dt, c.a, c.aShape...)
	b := graph.FromFloat32sAs(c.dt, c.b, c.bShape...)
	if !c.ta && !c.tb {
		return ops.MatMul(a, b)
	}
	return ops.MatMulTransposed(a, b, c.ta, c.tb)
}

// check compares the result with the reference within the case's bound.
func (c *matmulCase) check(t *testing.T, target string, out *graph.Array) {
	t.Helper()
	if out.DType() != c.dt || fmt.Sprint(out.Shape()) != fmt.Sprint(c.shape) {
		t.Fatalf("%s: %s: result %s, want %s%v", target, c.name, out.Spec(), c.dt, c.shape)
	}
	got, err := out.Float64s()
	if err != nil {
		t.Fatalf("%s: %s: %v", target, c.name, err)
	}
	for i := range got {
		if d := math.Abs(got[i] - c.want[i]); !(d <= c.bound[i]) {
			t.Fatalf("%s: %s: element %d = %v, want %v (error %g above bound %g)", target, c.name, i, got[i], c.want[i], d, c.bound[i])
		}
	}
}

// evalChecked evaluates every case in one graph on tg and checks the
// results.
func evalChecked(t *testing.T, tg loomtest.Target, cases []*matmulCase) {
	t.Helper()
	outs := make([]*graph.Array, len(cases))
	for i, c := range cases {
		outs[i] = c.build()
	}
	tg.Eval(t, outs...)
	for i, c := range cases {
		c.check(t, tg.Name, outs[i])
	}
}

// evalCases evaluates every case in one graph on each target, checks the
// results, and checks how many products took the GEMV path and its small-M
// path (x[M, K]·Wᵀ for 1 < M ≤ primitives.MatMulSmallM on the CPU), and
// with wantMMA ≥ 0 how many took a tensor-core path on a device whose Caps
// opt in to tensor cores (CUDA with LOOM_CUDA_MMA=1; none elsewhere, where
// the cases run on the default kernels).
func evalCases(t *testing.T, cases []*matmulCase, wantGEMV, wantSmallM, wantMMA int) {
	t.Helper()
	for _, tg := range loomtest.Targets(t) {
		evalChecked(t, tg, cases)
		if got := tg.RT.LastStats().Counters["matmul_gemv"]; got != wantGEMV {
			t.Errorf("%s: %d products took the GEMV path, want %d", tg.Name, got, wantGEMV)
		}
		if got := tg.RT.LastStats().Counters["matmul_small_m"]; tg.Exact && got != wantSmallM {
			t.Errorf("%s: %d products took the small-M path, want %d", tg.Name, got, wantSmallM)
		}
		if wantMMA >= 0 {
			want := 0
			if tg.RT.Device().Caps().TensorCores {
				want = wantMMA
			} else if !tg.Exact {
				t.Logf("%s: tensor cores are off (LOOM_CUDA_MMA=1 turns them on on CUDA): the cases ran on the default kernels", tg.Name)
			}
			if got := tg.RT.LastStats().Counters["matmul_mma"]; got != want {
				t.Errorf("%s: %d products took a tensor-core path, want %d", tg.Name, got, want)
			}
		}
	}
}

// matmulSizes are the awkward sizes: 1, tiny, around the AVX2 width (8)
// and the 16-column register tile, and past a power of two.
var matmulSizes = []int{1, 2, 3, 7, 8, 9, 16, 17, 33, 65}

// TestMatMulShapes runs every combination of M, N, K in matmulSizes with
// the weights' layout (b transposed), and a subset of the combinations for
// every other transpose combination and dtype (transposes and dtypes change
// only how the operands are read).
func TestMatMulShapes(t *testing.T) {
	r := loomtest.Rand(1)
	small := []int{1, 7, 17, 65}
	for _, dt := range primitives.MatMulDTypes {
		for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
			sizes := small
			if dt == graph.Float32 && tr == [2]bool{false, true} {
				sizes = matmulSizes
			}
			t.Run(fmt.Sprintf("%s/ta=%v/tb=%v", dt, tr[0], tr[1]), func(t *testing.T) {
				var cases []*matmulCase
				gemv, smallM := 0, 0
				for _, m := range sizes {
					for _, n := range sizes {
						for _, k := range sizes {
							aShape, bShape := []int{m, k}, []int{k, n}
							if tr[0] {
								aShape = []int{k, m}
							}
							if tr[1] {
								bShape = []int{n, k}
							}
							cases = append(cases, newMatmulCase(r, dt, tr[0], tr[1], aShape, bShape))
							switch {
							case m == 1:
								gemv++
							case m <= primitives.MatMulSmallM:
								smallM++
							}
						}
					}
				}
				evalCases(t, cases, gemv, smallM, -1)
			})
		}
	}
}

// TestMatMulBlocks crosses every blocking boundary of the CPU kernels: K
// past one 256-deep slice, N past one 1024-column block, M past one
// 1024-row block, a GEMV over untransposed weights past one 256-row chunk,
// and a small-M product of many pieces of work, in each dtype.
func TestMatMulBlocks(t *testing.T) {
	r := loomtest.Rand(2)
	var cases []*matmulCase
	for _, dt := range primitives.MatMulDTypes {
		cases = append(cases,
			newMatmulCase(r, dt, false, true, []int{primitives.MatMulSmallM + 1, 9}, []int{1030, 9}),
			newMatmulCase(r, dt, false, true, []int{7, 260}, []int{1030, 260}),
			newMatmulCase(r, dt, true, false, []int{260, 1030}, []int{260, 9}),
			newMatmulCase(r, dt, false, true, []int{1, 300}, []int{517, 300}),
			newMatmulCase(r, dt, false, false, []int{1, 600}, []int{600, 33}), // GEMV over 3 chunks of rows
		)
	}
	evalCases(t, cases, 2*len(primitives.MatMulDTypes), len(primitives.MatMulDTypes), -1)
}

// TestMatMulBatch covers batch broadcasting: batched and unbatched sides,
// size-1 dims, different ranks, and the batch of one-row products that
// merges into one GEMM or runs as batched GEMVs.
func TestMatMulBatch(t *testing.T) {
	r := loomtest.Rand(3)
	type shapes struct {
		a, b   []int
		ta, tb bool
		gemv   bool
		smallM bool
	}
	for _, dt := range primitives.MatMulDTypes {
		var cases []*matmulCase
		gemv, smallM := 0, 0
		for _, s := range []shapes{
			{a: []int{2, 3, 5, 7}, b: []int{7, 9}, smallM: true},                        // a batched, b shared: one merged product
			{a: []int{5, 7}, b: []int{4, 7, 9}, smallM: true},                           // b batched, a shared
			{a: []int{2, 1, 5, 7}, b: []int{1, 3, 7, 9}, smallM: true},                  // both broadcast to [2, 3]
			{a: []int{3, 1, 17}, b: []int{3, 9, 17}, tb: true, gemv: true},              // batched decode GEMV
			{a: []int{3, 1, 17}, b: []int{9, 17}, tb: true, smallM: true},               // three tokens share the weights
			{a: []int{2, 5, 33}, b: []int{2, 9, 33}, tb: true, smallM: true},            // batched small-M products
			{a: []int{2, 33, 5}, b: []int{9, 33}, ta: true, tb: true, smallM: true},     // transposed a, weights shared
			{a: []int{3, 2, 20}, b: []int{2, 1, 7, 20}, tb: true, smallM: true},         // small-M with broadcast batch dims
			{a: []int{2, 7, 5}, b: []int{7, 9}, ta: true, smallM: true},                 // transposed a does not merge
			{a: []int{1, 5, 7}, b: []int{2, 7, 9}, smallM: true},                        // size-1 batch dim on a
			{a: []int{2, 1, 1, 1, 17}, b: []int{3, 17, 10}, gemv: true},                 // rank 5 against rank 3
			{a: []int{4, 2, 6, 3}, b: []int{2, 9, 6}, ta: true, tb: true, smallM: true}, // both transposed, batched
			{a: []int{1, 1, 3, 4}, b: []int{1, 4, 5}, smallM: true},                     // all-ones batch dims
			{a: []int{6, 1, 33}, b: []int{6, 33, 20}, gemv: true},                       // batched GEMV, untransposed weights
			{a: []int{2, 33, 1}, b: []int{2, 20, 33}, ta: true, tb: true, gemv: true},   // a column vector as x
			{a: []int{2, 1, 130, 7}, b: []int{3, 7, 9}},                                 // tiled, both broadcast
			{a: []int{2, 7, 130}, b: []int{2, 9, 7}, ta: true, tb: true},                // tiled, both transposed
		} {
			cases = append(cases, newMatmulCase(r, dt, s.ta, s.tb, s.a, s.b))
			if s.gemv {
				gemv++
			}
			if s.smallM {
				smallM++
			}
		}
		t.Run(dt.String(), func(t *testing.T) { evalCases(t, cases, gemv, smallM, -1) })
	}
}

// TestMatMulSmallM covers the CPU's small-M path and its edges, for
// weights stored [N, K] (x[M, K]·Wᵀ) and [K, N], in each dtype: every M
// from 1 (the GEMV) to 17, each with every K of a list of awkward sizes
// (1, around the 8-wide steps, past the 256-deep blocks of K, past a power
// of two) and an N of another (around the 4-row and 24-column tiles, past
// the 72-column tiles and the pieces of work), so that every pair of N and
// K meets; and the last M of the path and the first past it (the tiled
// kernel).
func TestMatMulSmallM(t *testing.T) {
	r := loomtest.Rand(8)
	ks := []int{1, 7, 9, 17, 33, 257, 1025}
	ns := []int{1, 7, 9, 25, 33, 73, 150}
	for _, c := range []struct {
		dt graph.DType
		tb bool
	}{
		{graph.Float32, true}, {graph.Float16, true}, {graph.BFloat16, true},
		{graph.Float32, false}, {graph.Float16, false}, {graph.BFloat16, false},
	} {
		dt := c.dt
		var cases []*matmulCase
		gemv, smallM := 0, 0
		add := func(m, n, k int) {
			bShape := []int{k, n}
			if c.tb {
				bShape = []int{n, k}
			}
			cases = append(cases, newMatmulCase(r, dt, false, c.tb, []int{m, k}, bShape))
			switch {
			case m == 1:
				gemv++
			case m <= primitives.MatMulSmallM:
				smallM++
			}
		}
		for m := 1; m <= 17; m++ {
			for j, k := range ks {
				add(m, ns[(m+j)%len(ns)], k)
			}
		}
		for _, m := range []int{primitives.MatMulSmallM, primitives.MatMulSmallM + 1} {
			add(m, 33, 1025)
			add(m, 9, 17)
		}
		t.Run(fmt.Sprintf("%s/tb=%v", dt, c.tb), func(t *testing.T) { evalCases(t, cases, gemv, smallM, -1) })
	}
}

// TestMatMulTensorCores covers CUDA's tensor-core paths (float16 and
// bfloat16, weights stored [N, K]): the small-M GEMV at M = 1…64 and the
// tiled kernel past it, with K a multiple of 8 (16-byte loads) and not (one
// element at a time), N not a multiple of the 8-column or 128-column
// tiles, batched weights (a matrix offset per product) and a batch merged
// into one product. With tensor cores on (CUDA with LOOM_CUDA_MMA=1) every
// case must take a tensor-core path (the matmul_mma counter); otherwise,
// and on other devices, the same cases run on the default kernels.
func TestMatMulTensorCores(t *testing.T) {
	r := loomtest.Rand(9)
	for _, dt := range []graph.DType{graph.BFloat16, graph.Float16} {
		var cases []*matmulCase
		gemv, smallM := 0, 0
		add := func(a, b []int) {
			cases = append(cases, newMatmulCase(r, dt, false, true, a, b))
			m := graph.NumElements(a[:len(a)-1])
			if len(b) > 2 {
				m = a[len(a)-2]
			}
			switch {
			case m == 1:
				gemv++
			case m <= primitives.MatMulSmallM:
				smallM++
			}
		}
		for i, m := range []int{1, 2, 3, 8, 17, 32, 64, 65, 130} {
			k := []int{1000, 1001, 40}[i%3]
			n := []int{1001, 136, 9}[i%3]
			add([]int{m, k}, []int{n, k})
		}
		add([]int{8, 1000}, []int{1001, 1000})
		add([]int{64, 1001}, []int{130, 1001})
		add([]int{130, 1000}, []int{137, 1000})
		// K a multiple of 256, N not a multiple of the 16-row tiles; and
		// products whose tile loop would take more than one wave, which
		// 2 to 8 rows stream (Caps.GEMVStream; each warp streams several
		// tiles) and 1 row does not.
		for _, m := range []int{1, 2, 5, 8} {
			add([]int{m, 512}, []int{1001, 512})
		}
		for _, m := range []int{1, 2, 8} {
			add([]int{m, 256}, []int{40000, 256})
		}
		add([]int{9, 768}, []int{77, 768})
		// The cluster GEMV (Caps.ClusterGEMVRows, K a multiple of 256):
		// one pass of x's rows, and passes that loop past 64 rows.
		for _, m := range []int{17, 70, 130} {
			add([]int{m, 512}, []int{1001, 512})
		}
		add([]int{2, 5, 48}, []int{2, 33, 48})   // batched weights, small M
		add([]int{2, 70, 48}, []int{2, 140, 48}) // batched weights, tiled
		add([]int{3, 40, 24}, []int{17, 24})     // three of 40 rows merged: M = 120
		t.Run(dt.String(), func(t *testing.T) { evalCases(t, cases, gemv, smallM, len(cases)) })
	}
}

// TestMatMulBatchInvariant checks that on CUDA's tensor-core GEMV and on
// Metal (whose GEMV and tiled kernels sum every element the same way) a
// row's result does not depend on the rows computed with it: rows of
// x[M, K]·Wᵀ for M = 1, 3, 8, 17, 64 (and x shifted by one row) are the
// same bit for bit as the same rows in any other of these products (on
// CUDA, those of fewer rows than cuBLASLt takes, LOOM_CUBLASLT_ROWS).
// Elsewhere (the CPU devices, CUDA with tensor cores off, whose M = 1 GEMV
// and tiled kernel sum in other orders) the products are only checked
// against the reference.
func TestMatMulBatchInvariant(t *testing.T) {
	r := loomtest.Rand(10)
	const n, k, rows = 131, 1000, 65
	for _, dt := range []graph.DType{graph.BFloat16, graph.Float16} {
		for _, kk := range []int{k, k + 1, 1024} {
			x := loomtest.Float32s(r, rows*kk, -1, 1)
			w := loomtest.Float32s(r, n*kk, -1, 1)
			type part struct{ from, m int }
			parts := []part{{0, 1}, {0, 3}, {0, 8}, {0, 17}, {0, 64}, {1, 64}, {5, 3}, {7, 1}}
			for _, tg := range loomtest.Targets(t) {
				wa := graph.FromFloat32sAs(dt, w, n, kk)
				outs := make([]*graph.Array, len(parts))
				for i, p := range parts {
					xa := graph.FromFloat32sAs(dt, x[p.from*kk:(p.from+p.m)*kk], p.m, kk)
					outs[i] = ops.MatMulTransposed(xa, wa, false, true)
				}
				tg.Eval(t, outs...)
				// rowBits[i] is row i of x's result, from the first product with it.
				rowBits := map[int]string{}
				for i, p := range parts {
					b, err := outs[i].Bytes()
					if err != nil {
						t.Fatal(err)
					}
					c := &matmulCase{name: fmt.Sprintf("%s x[%d:%d]", dt, p.from, p.from+p.m), dt: dt}
					c.want, c.bound, c.shape = refMatMul(loomtest.Round(dt, x[p.from*kk:(p.from+p.m)*kk]), loomtest.Round(dt, w), []int{p.m, kk}, []int{n, kk}, false, true, dt)
					c.check(t, tg.Name, outs[i])
					if tg.Name != "metal" && (tg.Name != "cuda" || !tg.RT.Device().Caps().TensorCores) {
						continue
					}
					if rows, _ := loomtest.CuBLASLt(tg); rows > 0 && p.m >= rows {
						continue // cuBLASLt's algorithm depends on M (docs/SERVE.md, "Batch invariance")
					}
					rb := len(b) / p.m
					for j := range p.m {
						got := string(b[j*rb : (j+1)*rb])
						if prev, ok := rowBits[p.from+j]; !ok {
							rowBits[p.from+j] = got
						} else if got != prev {
							t.Errorf("%s K=%d: row %d of x computed with rows [%d, %d) differs from the same row computed before", dt, kk, p.from+j, p.from, p.from+p.m)
						}
					}
				}
			}
		}
	}
}

// TestMatMulCuBLASLt runs products of many rows whose rows are whole
// 16-byte vectors, which the CUDA device gives cuBLASLt where the
// environment turns it on (LOOM_CUBLASLT_ROWS=65 or fewer), in every
// dtype: each must match the reference, and on CUDA with cuBLASLt taking
// them it must have run them. Elsewhere (and on CUDA by default) they run
// in the devices' own kernels.
func TestMatMulCuBLASLt(t *testing.T) {
	r := loomtest.Rand(12)
	const minRows = 65 // of the products' M
	var cases []*matmulCase
	for _, dt := range primitives.MatMulDTypes {
		for _, s := range [][2][]int{{{100, 1024}, {136, 1024}}, {{257, 64}, {24, 64}}, {{2, 40, 64}, {72, 64}}, {{minRows, 1000}, {136, 1000}}} {
			cases = append(cases, newMatmulCase(r, dt, false, true, s[0], s[1]))
		}
	}
	for _, tg := range loomtest.Targets(t) {
		rows, before := loomtest.CuBLASLt(tg)
		evalChecked(t, tg, cases)
		if tg.Name != "cuda" {
			continue
		}
		if _, after := loomtest.CuBLASLt(tg); rows > 0 && rows <= minRows && after == before {
			t.Errorf("cuda: cuBLASLt takes products of %d rows and more, but ran none of these", rows)
		} else if rows == 0 {
			t.Logf("cuda: cuBLASLt is off (LOOM_CUBLASLT_ROWS=65 turns it on): the products ran in Loom's kernels")
		}
	}
}

// TestMatMulStreamInvariant holds CUDA's streaming tensor-core GEMV (2 to
// 8 rows where the tile loop would take more than one wave:
// Caps.GEMVStream) to the tile loop bit for bit: the rows of x[8, 256]·Wᵀ
// with W of 40,000 rows, computed 1 (tiles), 2 and 8 (streamed) and 9
// (tiles) at a time, are the same. Elsewhere the products are only checked
// against the reference.
func TestMatMulStreamInvariant(t *testing.T) {
	r := loomtest.Rand(11)
	const n, k = 40000, 256
	x := loomtest.Float32s(r, 9*k, -1, 1)
	w := loomtest.Float32s(r, n*k, -1, 1)
	for _, tg := range loomtest.Targets(t) {
		wa := graph.FromFloat32sAs(graph.BFloat16, w, n, k)
		ms := []int{1, 2, 8, 9}
		outs := make([]*graph.Array, len(ms))
		for i, m := range ms {
			outs[i] = ops.MatMulTransposed(graph.FromFloat32sAs(graph.BFloat16, x[:m*k], m, k), wa, false, true)
		}
		tg.Eval(t, outs...)
		var first []byte // row 0's bits
		for i, m := range ms {
			c := &matmulCase{name: fmt.Sprintf("x[:%d]", m), dt: graph.BFloat16}
			c.want, c.bound, c.shape = refMatMul(loomtest.Round(graph.BFloat16, x[:m*k]), loomtest.Round(graph.BFloat16, w), []int{m, k}, []int{n, k}, false, true, graph.BFloat16)
			c.check(t, tg.Name, outs[i])
			if tg.Name != "cuda" || !tg.RT.Device().Caps().TensorCores {
				continue
			}
			b, err := outs[i].Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if first == nil {
				first = b[:2*n]
			} else if !bytes.Equal(b[:2*n], first) {
				t.Errorf("cuda: row 0 of x computed with %d rows differs from the same row computed alone", m)
			}
		}
	}
}

// TestMatMulEmpty checks empty products: no rows, no columns, no batch
// (empty results), and K = 0 (zeros).
func TestMatMulEmpty(t *testing.T) {
	for _, tg := range loomtest.Targets(t) {
		for _, c := range []struct {
			a, b, want []int
			tb         bool
		}{
			{a: []int{0, 5}, b: []int{5, 3}, want: []int{0, 3}},
			{a: []int{4, 5}, b: []int{5, 0}, want: []int{4, 0}},
			{a: []int{0, 4, 5}, b: []int{5, 3}, want: []int{0, 4, 3}},
			{a: []int{4, 0}, b: []int{0, 3}, want: []int{4, 3}},
			{a: []int{1, 0}, b: []int{3, 0}, tb: true, want: []int{1, 3}},
			{a: []int{1, 0}, b: []int{0, 3}, want: []int{1, 3}},
			{a: []int{2, 0}, b: []int{3, 0}, tb: true, want: []int{2, 3}},
		} {
			a := graph.Full(graph.Float32, 1, c.a...)
			b := graph.Full(graph.Float32, 1, c.b...)
			out := ops.MatMulTransposed(a, b, false, c.tb)
			tg.Eval(t, out)
			if fmt.Sprint(out.Shape()) != fmt.Sprint(c.want) {
				t.Fatalf("%s: a%v b%v: shape %v, want %v", tg.Name, c.a, c.b, out.Shape(), c.want)
			}
			got, err := out.Float64s()
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range got {
				if v != 0 {
					t.Fatalf("%s: a%v b%v: element %d = %v, want 0 (K = 0)", tg.Name, c.a, c.b, i, v)
				}
			}
		}
	}
}

// TestMatMulNaN checks that NaN and Inf propagate to the outputs they
// touch and nowhere else, on every path and for both layouts of B.
func TestMatMulNaN(t *testing.T) {
	for _, tg := range loomtest.Targets(t) {
		for _, c := range []struct {
			m  int
			tb bool
		}{ // GEMV, small-M and tiled
			{1, false}, {1, true}, {7, false}, {7, true},
			{primitives.MatMulSmallM + 1, false}, {primitives.MatMulSmallM + 1, true},
		} {
			m := c.m
			a := loomtest.Float32s(loomtest.Rand(4), m*20, -1, 1)
			b := loomtest.Float32s(loomtest.Rand(5), 20*9, -1, 1)
			a[(m-1)*20+3] = float32(math.NaN()) // row m-1
			bShape := []int{20, 9}
			b[3*9+2] = float32(math.Inf(1)) // column 2, row 3 of B
			if c.tb {
				bShape = []int{9, 20}
				b[3*9+2], b[2*20+3] = b[2*20+3], b[3*9+2] // B stored [N, K]
			}
			out := ops.MatMulTransposed(graph.FromFloat32s(a, m, 20), graph.FromFloat32s(b, bShape...), false, c.tb)
			tg.Eval(t, out)
			got, err := out.Float64s()
			if err != nil {
				t.Fatal(err)
			}
			for i := range m {
				for j := range 9 {
					v := got[i*9+j]
					switch {
					case i == m-1 && !math.IsNaN(v):
						t.Fatalf("%s m=%d tb=%v: out[%d,%d] = %v, want NaN (row with a NaN)", tg.Name, m, c.tb, i, j, v)
					case i < m-1 && j == 2 && !math.IsInf(v, 0):
						t.Fatalf("%s m=%d tb=%v: out[%d,%d] = %v, want ±Inf (column with an Inf)", tg.Name, m, c.tb, i, j, v)
					case i < m-1 && j != 2 && (math.IsNaN(v) || math.IsInf(v, 0)):
						t.Fatalf("%s m=%d tb=%v: out[%d,%d] = %v, want a finite value", tg.Name, m, c.tb, i, j, v)
					}
				}
			}
		}
	}
}

// TestMatMulWorkersDeterministic checks that the result does not depend on
// the number of workers, bit for bit, for both kernels.
func TestMatMulWorkersDeterministic(t *testing.T) {
	r := loomtest.Rand(6)
	cases := []*matmulCase{
		newMatmulCase(r, graph.Float32, false, true, []int{primitives.MatMulSmallM + 6, 40}, []int{530, 40}),
		newMatmulCase(r, graph.Float32, false, true, []int{70, 300}, []int{530, 300}),
		newMatmulCase(r, graph.BFloat16, true, false, []int{300, 40}, []int{300, 33}),
		newMatmulCase(r, graph.Float32, false, true, []int{1, 300}, []int{530, 300}),
		newMatmulCase(r, graph.Float16, false, false, []int{1, 300}, []int{300, 530}),
		newMatmulCase(r, graph.Float32, false, false, []int{8, 3, 20}, []int{8, 20, 9}),
		newMatmulCase(r, graph.BFloat16, false, true, []int{8, 300}, []int{530, 300}),
		newMatmulCase(r, graph.Float16, false, true, []int{16, 300}, []int{1030, 300}),
		newMatmulCase(r, graph.BFloat16, false, false, []int{8, 300}, []int{300, 530}),
	}
	var first [][]byte
	for _, workers := range []int{1, 2, 3, 8} {
		rt, err := runtime.New(cpu.New(cpu.Options{Workers: workers}), runtime.Options{})
		if err != nil {
			t.Fatal(err)
		}
		outs := make([]*graph.Array, len(cases))
		for i, c := range cases {
			outs[i] = c.build()
		}
		if err := rt.Eval(outs...); err != nil {
			t.Fatal(err)
		}
		for i, o := range outs {
			b, err := o.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if workers == 1 {
				first = append(first, b)
				cases[i].check(t, "1 worker", o)
				continue
			}
			if string(b) != string(first[i]) {
				t.Errorf("%s: %d workers give different bits than 1 worker", cases[i].name, workers)
			}
		}
	}
}

// TestMatMulErrors checks that bad arguments give an error naming what was
// wrong, never a panic.
func TestMatMulErrors(t *testing.T) {
	f32 := func(shape ...int) *graph.Array { return graph.Full(graph.Float32, 1, shape...) }
	failed := ops.MatMul(f32(2, 3), f32(4, 5)) // an input in an error state
	for _, c := range []struct {
		name string
		out  *graph.Array
		want []string
	}{
		{"inner dims", ops.MatMul(f32(2, 3), f32(4, 5)), []string{"matmul", "inner dimensions differ", "K=3", "K=4"}},
		{"inner dims transposed", ops.MatMulTransposed(f32(2, 3), f32(5, 4), false, true), []string{"K=3", "K=4", "transposed"}},
		{"dtypes", ops.MatMul(f32(2, 3), graph.Full(graph.BFloat16, 1, 3, 4)), []string{"dtypes differ", "float32", "bfloat16"}},
		{"int dtype", ops.MatMul(graph.Full(graph.Int32, 1, 2, 3), graph.Full(graph.Int32, 1, 3, 4)), []string{"int32", "not supported"}},
		{"rank 1", ops.MatMul(f32(3), f32(3, 4)), []string{"rank 1", "reshape"}},
		{"rank 0", ops.MatMul(f32(3, 4), graph.Scalar(graph.Float32, 2)), []string{"input 1", "rank 0"}},
		{"rank 9", ops.MatMul(f32(1, 1, 1, 1, 1, 1, 1, 2, 3), f32(3, 4)), []string{"rank 9", "unsupported"}},
		{"batch", ops.MatMul(f32(2, 2, 3), f32(3, 3, 4)), []string{"batch dims", "cannot be broadcast"}},
		{"nil", ops.MatMul(nil, f32(3, 4)), []string{"input 0 is nil"}},
		{"inherited", ops.MatMul(failed, f32(5, 6)), []string{"inner dimensions differ"}},
	} {
		err := c.out.Err()
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, w)
			}
		}
		if !strings.Contains(err.Error(), "matmul_test.go") {
			t.Errorf("%s: error %q does not name the call site", c.name, err)
		}
	}
}

package cpu

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// The quantized kernels (MLX's affine format, docs/QUANT.md):
// qmatmul_<dt>_q<bits>, x · dequant(W)ᵀ, and dequantize_<dt>_q<bits>.
//
// The matmul never forms a float weight: per group of G codes q with scale
// s and bias b, a row's output gains s·Σ q·x + b·Σ x. Once per dispatch,
// each row of x is rounded to 16-bit fixed point per group (x ≈ sx·xi,
// sx = max|x|/32767 over the group, so the rounding errs by at most
// max|x|/65534 in each element: 128 times finer than bfloat16's), and its
// sums over each group are taken in float32. A micro-kernel (qdotTile)
// takes one weight row with one or qdotXRows rows of x, multiplies the
// codes with xi in integers (exact), and adds s·sx·Σ q·xi + b·Σ x over the
// groups in float32. Each output is one such sum, in a fixed order, so the
// result does not depend on the number of workers.
//
// Float activations (MLX's choice) cost a conversion and a multiply-add
// per 8 weights, which on the development machine made the 4-bit GEMV no
// faster than the bfloat16 one streaming from memory; the integer products
// take 32 codes in about 7 instructions (docs/QUANT.md).

func init() {
	for _, dt := range primitives.MatMulDTypes {
		for _, bits := range primitives.QuantBits {
			mustRegister(primitives.QuantKernel("qmatmul", dt, bits), qmatmulKernel(dt, bits))
			mustRegister(primitives.QuantKernel("qmatmul_silu_mul", dt, bits), qmatmulSiLUMulKernel(dt, bits))
			mustRegister(primitives.QuantKernel("dequantize", dt, bits), dequantizeKernel(dt, bits))
		}
	}
}

// qdotXRows is how many rows of x the wide micro-kernel takes with one
// weight row: the codes it widens serve all of them.
const qdotXRows = 4

// qdotBatch is how many weight rows qmatmulKernel hands the micro-kernel
// at once.
const qdotBatch = 64

// qdotGroups is how many groups the one-row micro-kernel finishes at
// once, and qdotXGroups the four-row one: each keeps the integer sums of
// those groups (of each row of x) in registers of their own, adds each
// one's lanes together with the others' in a few horizontal adds, and
// converts, scales and accumulates them as one vector of 8. Finishing
// each group alone chained two multiply-adds a group on one accumulator,
// and for 64-code groups that chain, not the codes, set the one-row
// kernel's speed.
const (
	qdotGroups  = 8
	qdotXGroups = 2
)

// qdotTile computes, for each of n rows of packed weights r (k codes of
// bits bits, one after another in w), their scales and biases (k/gs a
// row, from element off of the views on), and rows rows of x (1 or
// qdotXRows, in fixed point, ldx elements apart, packed by packQX),
// out[r·rows + i] = Σ_g scales_r[g]·xscales_i[g]·Σ_{k∈g} q_rk·x_i[k] +
// biases_r[g]·xsums_i[g]. xsums and xscales are laid out by qsums and
// packQX (qxLen, qxAt). A call takes many weight rows so that its
// cost in Go (the checks, the dispatch on dtype) is not paid per row: at
// K = 1,024, one call a row, it was a third of the kernel's own time.
type qdotTile func(bits int, w []uint32, x []int16, ldx, rows, k, gs int, scales, biases floats, off int, xsums, xscales, out []float32, n int)

// qdotKernel is a micro-kernel and the layout of x it reads: packQX's,
// unless relayout (where not nil) rewrites a packed row of x, for a call
// of bits, rows, gs and k, into another layout and reports that it did.
type qdotKernel struct {
	tile     qdotTile
	relayout func(bits, rows, gs, k int, x []int16) bool
}

// qxLen returns how many floats the x scales, and the x sums, of a block
// of rows rows of x (1 or qdotXRows) take for groups groups: a float for
// each group and row, in the order the kernel finishes them (qxAt),
// padded with zeros to whole blocks of groups (qdotGroups or
// qdotXGroups), which the kernels read 8 floats at a time.
func qxLen(rows, groups int) int {
	if rows == 1 {
		return roundUp(groups, qdotGroups)
	}
	return roundUp(groups, qdotXGroups) * rows
}

// qxAt is the index of group g of row i in the x scales, and the x sums,
// of a block of rows rows: for one row, g; for qdotXRows rows, the groups
// in pairs, each pair's 8 floats row by row (row 0's two groups, then
// row 1's, …).
func qxAt(rows, g, i int) int {
	if rows == 1 {
		return g
	}
	return g/qdotXGroups*qdotXGroups*rows + i*qdotXGroups + g%qdotXGroups
}

// qsums returns the sums of the rows of x (each k floats, ldx apart) over
// each group of gs, for each block of rows rows (1 or qdotXRows), in the
// layout of qxLen and qxAt. Each group is summed in element order, in
// float32; four groups at a time, each in a variable of its own, so that
// each addition does not wait on the one before it alone.
func qsums(dst, x []float32, ldx, m, rows, k, gs int) []float32 {
	groups := k / gs
	n := qxLen(rows, groups)
	dst = dst[:roundUp(m, rows)/rows*n]
	clear(dst)
	for i := range m {
		blk, r := i/rows, i%rows
		xr := x[i*ldx : i*ldx+k]
		g := 0
		for ; g+4 <= groups; g += 4 {
			a, b, c, d := xr[g*gs:(g+1)*gs], xr[(g+1)*gs:(g+2)*gs], xr[(g+2)*gs:(g+3)*gs], xr[(g+3)*gs:(g+4)*gs]
			b, c, d = b[:len(a)], c[:len(a)], d[:len(a)]
			var s0, s1, s2, s3 float32
			for e, v := range a {
				s0 += v
				s1 += b[e]
				s2 += c[e]
				s3 += d[e]
			}
			for w, v := range [4]float32{s0, s1, s2, s3} {
				dst[blk*n+qxAt(rows, g+w, r)] = v
			}
		}
		for ; g < groups; g++ {
			var s float32
			for _, v := range xr[g*gs : (g+1)*gs] {
				s += v
			}
			dst[blk*n+qxAt(rows, g, r)] = s
		}
	}
	return dst
}

// packQX rounds row r of x (k floats, r of a block of rows rows) to 16-bit
// fixed point per group of gs into dst (k elements), and stores each
// group's scale at xscales[qxAt(rows, g, r)] (of the block's), by
// packQXGroup.
func packQX(bits int, dst []int16, x []float32, k, gs, r, rows int, xscales []float32) {
	for g := range k / gs {
		xscales[qxAt(rows, g, r)] = packQXGroup(bits, dst[g*gs:(g+1)*gs], x[g*gs:(g+1)*gs])
	}
}

// packQXGroupGo rounds the group x (a multiple of 32 elements) to 16-bit
// fixed point in dst, each element round(v/sx) within ±32767, and
// returns its scale sx = max|x|/32767 (no rounding where sx is 0: dst
// is zeros). For 4 bits each run of 32 elements, whose codes are 16
// bytes holding codes 2j (low nibble) and 2j+1 (high nibble) in byte j,
// is reordered to its 16 even elements, then its 16 odd ones, the order
// the kernels widen the codes in. It is the definition packQXGroupAVX2
// follows bit for bit, and the path without AVX2.
func packQXGroupGo(bits int, dst []int16, x []float32) float32 {
	// max|x| by the bits without the sign: for floats of one sign their
	// order is the integers' (a NaN, above +Inf, wins as max would), and
	// it takes a few instructions an element where the float max, minding
	// NaN and −0, took a branch-heavy sequence.
	var top uint32
	for _, v := range x {
		top = max(top, math.Float32bits(v)&^(1<<31))
	}
	sx := math.Float32frombits(top) / 32767
	var run [32]int16
	for c := 0; c < len(x); c += 32 {
		for j, v := range x[c : c+32] {
			run[j] = 0
			if sx != 0 {
				run[j] = int16(max(-32767, min(32767, int32(roundEven(v/sx)))))
			}
		}
		if bits == 8 {
			copy(dst[c:c+32], run[:])
			continue
		}
		for j := range 16 {
			dst[c+j], dst[c+16+j] = run[2*j], run[2*j+1]
		}
	}
	return sx
}

// roundEven rounds v, of magnitude below 2^22, to an integer, halves to
// even, as math.RoundToEven does: v + 1.5·2^23 lies in [2^23, 2^24), where
// float32s are the integers, so the addition rounds (to nearest, ties to
// even: 1.5·2^23 is even) and the subtraction is exact. math.RoundToEven
// is a function call in software unless GOAMD64 ≥ v2, and in packQX it
// had cost 22 ns an element, serial work before each quantized GEMV.
func roundEven(v float32) float32 {
	const magic = 1.5 * (1 << 23)
	return float32(v+magic) - magic
}

// quantCall is a quantized dispatch's params and arguments, checked
// against each other so that no params can make a kernel index outside a
// buffer.
type quantCall struct {
	m, n, k, gs    int
	words          int // packed words a weight row
	groups         int // groups a weight row
	w              []uint32
	scales, biases floats
}

func newQuantCall(c *Call, dt graph.DType, bits int, wArg int, need map[int]float64) (*quantCall, error) {
	p := c.Params.(*primitives.QuantParams)
	q := &quantCall{m: int(p.M), n: int(p.N), k: int(p.K), gs: int(p.GroupSize), w: c.U32(wArg),
		scales: newFloats(dt, c.Args[wArg+1].Bytes), biases: newFloats(dt, c.Args[wArg+2].Bytes)}
	if q.gs <= 0 || q.k%q.gs != 0 || q.k*bits%32 != 0 {
		return nil, fmt.Errorf("quantized params: K=%d is not a multiple of the group size %d", q.k, q.gs)
	}
	q.words, q.groups = q.k*bits/32, q.k/q.gs
	n := float64(q.n)
	need[wArg] = n * float64(q.words)
	need[wArg+1] = n * float64(q.groups)
	need[wArg+2] = n * float64(q.groups)
	for i, elems := range need {
		size := 4
		if i != wArg {
			size = dt.Size()
		}
		if have := len(c.Args[i].Bytes) / size; float64(have) < elems {
			return nil, fmt.Errorf("argument %s holds %d elements; the params need %.0f", c.Args[i].Name, have, elems)
		}
	}
	return q, nil
}

// qx is a quantized dispatch's x in fixed point, packed once for the
// micro-kernel (padded with zero rows to whole blocks where M > 1), with
// its scales and its group sums.
type qx struct {
	tile          qdotTile
	bits          int
	rows, blocks  int // rows of x a block (1 or qdotXRows), blocks
	xl            int // x scales (and sums) a block: qxLen(rows, groups)
	xi            []int16
	xscales, sums []float32
	buf           *[]float32 // the pooled storage of the slices above
}

// packX rounds the dispatch's m rows of x to fixed point (packQX, then
// the kernel's relayout) and takes their group sums (qsums), for the
// kernel kn: the serial work before the weight rows are split over the
// workers. Give the storage back with put.
func (q *quantCall) packX(kn qdotKernel, bits int, x floats) *qx {
	p := &qx{tile: kn.tile, bits: bits, rows: 1}
	if q.m > 1 {
		p.rows = qdotXRows
	}
	mp := roundUp(q.m, p.rows)
	p.xl = qxLen(p.rows, q.groups)
	p.blocks = mp / p.rows
	p.buf = getFloats(q.m*q.k + mp*q.k/2 + 2*p.blocks*p.xl)
	xf, rest := (*p.buf)[:q.m*q.k], (*p.buf)[q.m*q.k:]
	p.xi = unsafe.Slice((*int16)(unsafe.Pointer(unsafe.SliceData(rest))), mp*q.k)
	rest = rest[mp*q.k/2:]
	p.xscales, p.sums = rest[:p.blocks*p.xl], rest[p.blocks*p.xl:]
	x.load(xf, 0)
	clear(p.xi[q.m*q.k:])
	clear(p.xscales)
	p.sums = qsums(p.sums, xf, q.k, q.m, p.rows, q.k, q.gs)
	for i := range q.m {
		packQX(bits, p.xi[i*q.k:(i+1)*q.k], xf[i*q.k:(i+1)*q.k], q.k, q.gs, i%p.rows, p.rows, p.xscales[i/p.rows*p.xl:])
		if kn.relayout != nil {
			kn.relayout(bits, p.rows, q.gs, q.k, p.xi[i*q.k:(i+1)*q.k])
		}
	}
	return p
}

func (p *qx) put() { putFloats(p.buf) }

// dots sets res[r·rows + i] to the dot product of weight row r0+r (r <
// nr ≤ qdotBatch) with row i of x's block b.
func (p *qx) dots(q *quantCall, b, r0, nr int, res []float32) {
	w := q.w[r0*q.words : (r0+nr)*q.words]
	bs, xs := p.sums[b*p.xl:(b+1)*p.xl], p.xscales[b*p.xl:(b+1)*p.xl]
	p.tile(p.bits, w, p.xi[b*p.rows*q.k:], q.k, p.rows, q.k, q.gs, q.scales, q.biases, r0*q.groups, bs, xs, res[:nr*p.rows], nr)
}

// grain is the least number of weight rows a piece of work of the
// dispatch takes, each output reading rowsPerOutput of them.
func (p *qx) grain(q *quantCall, rowsPerOutput int) int {
	return max(1, gemvGrain/max(q.k*p.blocks*p.rows/4*rowsPerOutput, 1))
}

// qmatmulKernel computes out[m, n] = Σ_k x[m, k]·dequant(W)[n, k].
func qmatmulKernel(dt graph.DType, bits int) Kernel {
	return func(c *Call) error {
		p := c.Params.(*primitives.QuantParams)
		m, n, k := float64(p.M), float64(p.N), float64(p.K)
		q, err := newQuantCall(c, dt, bits, 1, map[int]float64{0: m * k, 4: m * n})
		if err != nil {
			return err
		}
		if q.m == 0 || q.n == 0 {
			return nil
		}
		out := newFloats(dt, c.Args[4].Bytes)
		x := q.packX(qdotSelect(), bits, newFloats(dt, c.Args[0].Bytes))
		defer x.put()
		c.ParallelFine(q.n, x.grain(q, 1), func(lo, hi int) {
			var res [qdotBatch * qdotXRows]float32
			for r0 := lo; r0 < hi; r0 += qdotBatch {
				nr := min(qdotBatch, hi-r0)
				for b := range x.blocks {
					x.dots(q, b, r0, nr, res[:])
					i := b * x.rows
					if x.rows == 1 {
						out.store(i*q.n+r0, res[:nr])
						continue
					}
					for j := range min(x.rows, q.m-i) {
						for r := range nr {
							out.set((i+j)*q.n+r0+r, res[r*x.rows+j])
						}
					}
				}
			}
		})
		return nil
	}
}

// qmatmulSiLUMulKernel: args x, w, scales, biases, out. Each piece of work
// computes a run of outputs: the products of x with their gate rows (the
// first N of the stacked weights) and up rows (the N after them) as
// qmatmulKernel computes them, then gatedEpilogue, which rounds both to
// the dtype as the matmul's output is rounded and applies silu_mul: the
// unfused chain's results bit for bit, without its scratch buffer and
// second dispatch.
func qmatmulSiLUMulKernel(dt graph.DType, bits int) Kernel {
	return func(c *Call) error {
		p := c.Params.(*primitives.QuantParams)
		if len(c.Args) != 5 {
			return fmt.Errorf("qmatmul_silu_mul: %d buffer arguments, want 5", len(c.Args))
		}
		m, n, k := float64(p.M), float64(p.N), float64(p.K)
		// The weights are [2N, K]: check them with 2N rows.
		stacked := *c
		stacked.Params = &primitives.QuantParams{M: p.M, N: 2 * p.N, K: p.K, GroupSize: p.GroupSize}
		q, err := newQuantCall(&stacked, dt, bits, 1, map[int]float64{0: m * k, 4: m * n})
		if err != nil {
			return err
		}
		if q.m == 0 || q.n == 0 {
			return nil
		}
		half := q.n / 2
		out := newFloats(dt, c.Args[4].Bytes)
		x := q.packX(qdotSelect(), bits, newFloats(dt, c.Args[0].Bytes))
		defer x.put()
		c.ParallelFine(half, x.grain(q, 2), func(lo, hi int) {
			var gate, up [qdotBatch * qdotXRows]float32
			var g, u [qdotBatch]float32
			for r0 := lo; r0 < hi; r0 += qdotBatch {
				nr := min(qdotBatch, hi-r0)
				for b := range x.blocks {
					x.dots(q, b, r0, nr, gate[:])
					x.dots(q, b, half+r0, nr, up[:])
					for j := range min(x.rows, q.m-b*x.rows) {
						for r := range nr {
							g[r], u[r] = gate[r*x.rows+j], up[r*x.rows+j]
						}
						gatedEpilogue(dt, g[:nr], u[:nr])
						out.store((b*x.rows+j)*half+r0, g[:nr])
					}
				}
			}
		})
		return nil
	}
}

// qdotTileGo is the micro-kernel in Go: the fallback without AVX2, and the
// reference the assembly is tested against (which converts each group's
// integer sum to float32 in 8 parts, so agrees within rounding, not bit
// for bit).
func qdotTileGo(bits int, w []uint32, x []int16, ldx, rows, k, gs int, scales, biases floats, off int, xsums, xscales, out []float32, n int) {
	checkQTile(bits, w, x, ldx, rows, k, gs, scales, biases, off, xsums, xscales, out, n)
	var sb [2]float32
	words, groups := k*bits/32, k/gs
	for r := range n {
		wr, ro := w[r*words:(r+1)*words], off+r*groups
		for i := range rows {
			xr := x[i*ldx : i*ldx+k]
			var total float32
			for g := range groups {
				var s int32
				if bits == 8 {
					for j, word := range wr[g*gs/4 : (g+1)*gs/4] {
						xw := xr[g*gs+4*j : g*gs+4*j+4]
						s += int32(word&0xff)*int32(xw[0]) + int32(word>>8&0xff)*int32(xw[1]) + int32(word>>16&0xff)*int32(xw[2]) + int32(word>>24)*int32(xw[3])
					}
				} else {
					for c := g * gs / 32; c < (g+1)*gs/32; c++ { // runs of 32 codes: 4 words
						xc := xr[32*c : 32*c+32]
						for h, word := range wr[4*c : 4*c+4] {
							for b := range 4 {
								v, j := word>>(8*b), 4*h+b
								s += int32(v&0x0f)*int32(xc[j]) + int32(v>>4&0x0f)*int32(xc[16+j])
							}
						}
					}
				}
				scales.load(sb[:1], ro+g)
				biases.load(sb[1:], ro+g)
				at := qxAt(rows, g, i)
				total += sb[0]*(xscales[at]*float32(s)) + sb[1]*xsums[at]
			}
			out[r*rows+i] = total
		}
	}
}

// checkQTile panics unless the micro-kernel's arguments hold what it
// reads and writes: the assembly trusts it, and qmatmulKernel guarantees
// it.
func checkQTile(bits int, w []uint32, x []int16, ldx, rows, k, gs int, scales, biases floats, off int, xsums, xscales, out []float32, n int) {
	groups := k / gs
	xl := qxLen(rows, groups)
	if gs < 32 || gs%32 != 0 || k%gs != 0 || k < gs || ldx < k || rows != 1 && rows != qdotXRows || off < 0 || n < 1 ||
		scales.dt != biases.dt || len(w) < n*k*bits/32 || len(x) < (rows-1)*ldx+k || scales.len() < off+n*groups || biases.len() < off+n*groups ||
		len(xsums) < xl || len(xscales) < xl || len(out) < n*rows {
		panic("cpu: quantized micro-kernel called with a tile outside its arguments")
	}
}

// dequantizeKernel writes out[n, k] = scale·q + bias for N rows of K.
func dequantizeKernel(dt graph.DType, bits int) Kernel {
	return func(c *Call) error {
		p := c.Params.(*primitives.QuantParams)
		q, err := newQuantCall(c, dt, bits, 0, map[int]float64{3: float64(p.N) * float64(p.K)})
		if err != nil {
			return err
		}
		out := newFloats(dt, c.Args[3].Bytes)
		mask := uint32(1)<<bits - 1
		per := 32 / bits
		c.Parallel(q.n, max(1, gemvGrain/max(q.k, 1)), func(lo, hi int) {
			rp := getFloats(q.k + 2*q.groups)
			defer putFloats(rp)
			row, sc, bs := (*rp)[:q.k], (*rp)[q.k:q.k+q.groups], (*rp)[q.k+q.groups:]
			for r := lo; r < hi; r++ {
				scales, biases := q.scales.row(sc, r*q.groups), q.biases.row(bs, r*q.groups)
				w := q.w[r*q.words : (r+1)*q.words]
				for e := range row {
					code := w[e/per] >> (bits * (e % per)) & mask
					g := e / q.gs
					row[e] = scales[g]*float32(code) + biases[g]
				}
				out.store(r*q.k, row)
			}
		})
		return nil
	}
}

package cpu

import (
	"fmt"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// The quantized kernels (MLX's affine format, docs/QUANT.md):
// qmatmul_<dt>_q<bits>, x · dequant(W)ᵀ, and dequantize_<dt>_q<bits>.
//
// The matmul never forms a float weight: per group of G codes q with scale
// s and bias b, a row's output gains s·Σ q·x + b·Σ x. The sums of x over
// each group are computed once per dispatch; a micro-kernel (qdotTile)
// takes one weight row with one or qdotXRows rows of x, turns its codes,
// scales and biases into float32 in registers and accumulates both terms
// over the groups. Each output is one such sum, in a fixed order, so the
// result does not depend on the number of workers.

func init() {
	for _, dt := range primitives.MatMulDTypes {
		for _, bits := range primitives.QuantBits {
			mustRegister(primitives.QuantKernel("qmatmul", dt, bits), qmatmulKernel(dt, bits))
			mustRegister(primitives.QuantKernel("dequantize", dt, bits), dequantizeKernel(dt, bits))
		}
	}
}

// qdotXRows is how many rows of x the wide micro-kernel takes with one
// weight row: the codes it widens serve all of them.
const qdotXRows = 4

// qdotTile computes, for one row of packed weights w (k codes of bits
// bits), its scales and biases (k/gs each, from element off of the
// views), and rows rows of x (1 or qdotXRows, ldx floats apart, packed by
// packQX), out[i] = Σ_g scales[g]·Σ_{k∈g} q_k·x_i[k] + biases[g]·Σ_{k∈g}
// x_i[k]. xsums holds the sums of x as qsums lays them out.
type qdotTile func(bits int, w []uint32, x []float32, ldx, rows, k, gs int, scales, biases floats, off int, xsums, out []float32)

// qsums returns the sums of the rows of x (each k floats, ldx apart) over
// each group of gs, laid out for the micro-kernels: for each block of
// rows rows (1 or qdotXRows), for each group, for each row of the block,
// 8 floats holding the sum and then 7 zeros.
func qsums(dst, x []float32, ldx, m, rows, k, gs int) []float32 {
	groups := k / gs
	dst = dst[:roundUp(m, rows)*groups*8]
	clear(dst)
	for i := range m {
		blk, r := i/rows, i%rows
		for g := range groups {
			var s float32
			for _, v := range x[i*ldx+g*gs : i*ldx+(g+1)*gs] {
				s += v
			}
			dst[((blk*groups+g)*rows+r)*8] = s
		}
	}
	return dst
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
		x, out := newFloats(dt, c.Args[0].Bytes), newFloats(dt, c.Args[4].Bytes)
		tile := qdotTiles()
		// x as float32 rows packed for the micro-kernel (padded with zero
		// rows to whole blocks where M > 1), and the rows' group sums.
		rows := 1
		if q.m > 1 {
			rows = qdotXRows
		}
		mp := roundUp(q.m, rows)
		xp := getFloats(mp*q.k + mp*q.groups*8)
		defer putFloats(xp)
		xs := (*xp)[:mp*q.k]
		clear(xs[q.m*q.k:])
		x.load(xs[:q.m*q.k], 0)
		sums := qsums((*xp)[mp*q.k:], xs, q.k, q.m, rows, q.k, q.gs)
		for i := range q.m {
			row := xs[i*q.k : (i+1)*q.k]
			packQX(bits, row, row)
		}
		grain := max(1, gemvGrain/max(q.k*mp/4, 1))
		c.Parallel(q.n, grain, func(lo, hi int) {
			var res [qdotXRows]float32
			for r := lo; r < hi; r++ {
				w := q.w[r*q.words : (r+1)*q.words]
				for i := 0; i < mp; i += rows {
					bs := sums[i*q.groups*8 : (i+rows)*q.groups*8]
					tile(bits, w, xs[i*q.k:], q.k, rows, q.k, q.gs, q.scales, q.biases, r*q.groups, bs, res[:rows])
					for j := range min(rows, q.m-i) {
						out.set((i+j)*q.n+r, res[j])
					}
				}
			}
		})
		return nil
	}
}

// packQX reorders a row of x for the micro-kernels. For 8 bits it is x
// itself. For 4 bits each run of 16 elements, whose codes are 8 bytes
// holding codes 2j (low nibble) and 2j+1 (high nibble) in byte j, becomes
// the 8 elements 2j, then the 8 elements 2j+1 divided by 16: the kernel
// masks the high nibble in place (16·q) instead of shifting it, and the
// power-of-two scaling keeps every product exact.
func packQX(bits int, dst, x []float32) {
	if bits == 8 {
		copy(dst, x)
		return
	}
	var run [16]float32 // dst may be x
	for c := 0; c+16 <= len(x); c += 16 {
		copy(run[:], x[c:c+16])
		for j := range 8 {
			dst[c+j] = run[2*j]
			dst[c+8+j] = run[2*j+1] / 16
		}
	}
}

// qdotTileGo is the micro-kernel in Go: the fallback without AVX2, and the
// reference the assembly is tested against (which sums each group's
// products in lanes, so agrees within rounding, not bit for bit). It reads
// a group's codes a word at a time, in packQX's order of x.
func qdotTileGo(bits int, w []uint32, x []float32, ldx, rows, k, gs int, scales, biases floats, off int, xsums, out []float32) {
	checkQTile(bits, w, x, ldx, rows, k, gs, scales, biases, off, xsums, out)
	groups := k / gs
	var sb [2]float32
	for i := range rows {
		xr := x[i*ldx : i*ldx+k]
		var total float32
		for g := range groups {
			var s float32
			if bits == 8 {
				for j, word := range w[g*gs/4 : (g+1)*gs/4] {
					xw := xr[g*gs+4*j : g*gs+4*j+4]
					s += float32(word&0xff)*xw[0] + float32(word>>8&0xff)*xw[1] + float32(word>>16&0xff)*xw[2] + float32(word>>24)*xw[3]
				}
			} else {
				for c := g * gs / 16; c < (g+1)*gs/16; c++ { // runs of 16 codes: 2 words
					xc := xr[16*c : 16*c+16]
					for h, word := range w[2*c : 2*c+2] {
						for b := range 4 {
							v := word >> (8 * b)
							s += float32(v&0x0f)*xc[4*h+b] + float32(v&0xf0)*xc[8+4*h+b]
						}
					}
				}
			}
			scales.load(sb[:1], off+g)
			biases.load(sb[1:], off+g)
			total += sb[0]*s + sb[1]*xsums[(g*rows+i)*8]
		}
		out[i] = total
	}
}

// qcode is the code at packed position e of a row packed by packQX's
// order: for 4 bits, element e of a run of 16 is the low nibble of byte
// e (e < 8) or the high nibble, times 16, of byte e−8; for 8 bits byte e.
func qcode(w []uint32, bits int, mask uint32, e int) uint32 {
	if bits == 8 {
		return w[e/4] >> (8 * (e % 4)) & mask
	}
	c, j := e/16, e%16
	b := w[c*2+j%8/4] >> (8 * (j % 4)) // byte j%8 of the run's 8 bytes
	if j < 8 {
		return b & 0x0f
	}
	return b & 0xf0
}

// checkQTile panics unless the micro-kernel's arguments hold what it
// reads and writes: the assembly trusts it, and qmatmulKernel guarantees
// it.
func checkQTile(bits int, w []uint32, x []float32, ldx, rows, k, gs int, scales, biases floats, off int, xsums, out []float32) {
	if gs < 32 || gs%32 != 0 || k%gs != 0 || k < gs || ldx < k || rows != 1 && rows != qdotXRows || off < 0 ||
		scales.dt != biases.dt || len(w) < k*bits/32 || len(x) < (rows-1)*ldx+k || scales.len() < off+k/gs || biases.len() < off+k/gs ||
		len(xsums) < k/gs*rows*8 || len(out) < rows {
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

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
// takes one weight row with one or qdotXRows rows of x, turns its codes
// into float32 in registers and accumulates s·Σ q·x over the groups, and
// the bias terms are added as a dot product of the row's biases with the x
// rows' group sums. Each output is one such sum, in a fixed order, so the
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
// bits) and rows rows of x (1 or qdotXRows, ldx floats apart, packed by
// packQX), out[i] = Σ_g scales[g]·Σ_{k∈g} q_k·x_i[k] over the k/gs groups.
type qdotTile func(bits int, w []uint32, x []float32, ldx, rows, k, gs int, scales, out []float32)

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
		// rows to whole blocks where M > 1), and each row's group sums.
		mp := q.m
		if q.m > 1 {
			mp = roundUp(q.m, qdotXRows)
		}
		xp := getFloats(mp*q.k + q.m*q.groups + q.k)
		defer putFloats(xp)
		xs, sums, row := (*xp)[:mp*q.k], (*xp)[mp*q.k:mp*q.k+q.m*q.groups], (*xp)[mp*q.k+q.m*q.groups:]
		clear(xs[q.m*q.k:])
		for i := range q.m {
			x.load(row, i*q.k)
			for g := range q.groups {
				var s float32
				for _, v := range row[g*q.gs : (g+1)*q.gs] {
					s += v
				}
				sums[i*q.groups+g] = s
			}
			packQX(bits, xs[i*q.k:(i+1)*q.k], row)
		}
		grain := max(1, gemvGrain/max(q.k*mp/4, 1))
		c.Parallel(q.n, grain, func(lo, hi int) {
			tp := getFloats(2*q.groups + mp)
			defer putFloats(tp)
			sc, bs, res := (*tp)[:q.groups], (*tp)[q.groups:2*q.groups], (*tp)[2*q.groups:]
			for r := lo; r < hi; r++ {
				w := q.w[r*q.words : (r+1)*q.words]
				scales := q.scales.row(sc, r*q.groups)
				biases := q.biases.row(bs, r*q.groups)
				if q.m == 1 {
					tile(bits, w, xs, q.k, 1, q.k, q.gs, scales, res)
				} else {
					for i := 0; i < mp; i += qdotXRows {
						tile(bits, w, xs[i*q.k:], q.k, qdotXRows, q.k, q.gs, scales, res[i:])
					}
				}
				for i := range q.m {
					out.set(i*q.n+r, res[i]+dotF32(biases, sums[i*q.groups:(i+1)*q.groups]))
				}
			}
		})
		return nil
	}
}

// dotF32 is Σ a[i]·b[i] in order: the bias terms, a few per row.
func dotF32(a, b []float32) float32 {
	var s float32
	for i, v := range a {
		s += v * b[i]
	}
	return s
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
	for c := 0; c+16 <= len(x); c += 16 {
		for j := range 8 {
			dst[c+j] = x[c+2*j]
			dst[c+8+j] = x[c+2*j+1] / 16
		}
	}
}

// qdotTileGo is the micro-kernel in Go: the fallback without AVX2, and the
// reference the assembly is tested against (which sums each group's
// products in lanes, so agrees within rounding, not bit for bit).
func qdotTileGo(bits int, w []uint32, x []float32, ldx, rows, k, gs int, scales, out []float32) {
	checkQTile(bits, w, x, ldx, rows, k, gs, scales, out)
	mask := uint32(1)<<bits - 1
	for i := range rows {
		xr := x[i*ldx : i*ldx+k]
		var total float32
		for g := range k / gs {
			var s float32
			for e := g * gs; e < (g+1)*gs; e++ {
				s += float32(qcode(w, bits, mask, e)) * xr[e]
			}
			total += scales[g] * s
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
func checkQTile(bits int, w []uint32, x []float32, ldx, rows, k, gs int, scales, out []float32) {
	if gs < 32 || gs%32 != 0 || k%gs != 0 || k < gs || ldx < k || rows != 1 && rows != qdotXRows ||
		len(w) < k*bits/32 || len(x) < (rows-1)*ldx+k || len(scales) < k/gs || len(out) < rows {
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

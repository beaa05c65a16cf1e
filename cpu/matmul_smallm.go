package cpu

import (
	"github.com/loomrt/loom/graph"
)

// The small-M path of the GEMV kernel: a product of a few rows of x[M, K]
// with weights stored [N, K] (TransposeB, the layout of linear-layer
// weights), the linear layers of batched decode. The tiled kernel would
// pack (and widen) every weight for only a few rows; here each weight is
// read from memory once and serves all M rows.
//
// The output is computed in tiles of smallNR weight rows by smallMR rows
// of x. A micro-kernel keeps the tile's 12 dot products in registers as 8
// lanes each (lane j sums the products of the elements p ≡ j mod 8, in
// order of p), loads and widens 8 weights of a row at a time and
// multiplies them with the same 8 columns of the tile's x rows, then adds
// the lanes as lane j+4, then j+2, then j+1; the products of the last K%8
// elements, summed in order, are added to that. It does so for every
// block of smallMR rows of x in turn, while the weight rows stay in the
// cache. Each output element is one such sum, whichever worker computes
// its tile, so the result does not depend on the number of workers.
const (
	smallNR = 4 // weight rows of a tile
	smallMR = 3 // x rows of a tile: 12 accumulators, 3 x registers and one for the weights fill AVX2's 16
	// smallTiles is the number of tiles of weight rows in one piece of
	// work, whose outputs are stored together, row by row.
	smallTiles = 16
)

// smallMTile computes the dot products over p < k of the smallNR weight
// rows r (row r at element wOff + r·ldw of w) with the blocks·smallMR rows
// i of x (row i at x[i·ldx:]), in the order described above, and stores
// that of weight row r and x row i at out[i·ldo + r].
type smallMTile func(w matrices, wOff, ldw int, x []float32, ldx, k, blocks int, out []float32, ldo int)

// smallM runs the product of each matrix of a (M > 1 rows) with the
// weights of b stored [N, K]. Work is split over pieces of smallTiles
// tiles of weight rows.
func (mc *matmulCall) smallM(c *Call) {
	m, n, k := mc.m, mc.n, mc.k
	// x as float32, each matrix's rows padded with zero rows to whole
	// blocks of smallMR (their products are computed and thrown away).
	// Rows are a whole number of cache lines apart, plus one: at a
	// power-of-two stride the rows' loads would fall in the same L1 sets.
	mp, ldx := roundUp(m, smallMR), roundUp(k, 16)+16
	xp := getFloats(mc.batch * mp * ldx)
	defer putFloats(xp)
	xs := *xp
	for i := range mc.batch {
		aOff, _ := mc.offsets(i)
		mc.loadRows(xs[i*mp*ldx:(i+1)*mp*ldx], ldx, aOff)
	}
	kernel := smallMTileKernel()
	const pieceRows = smallTiles * smallNR
	pieces := (n + pieceRows - 1) / pieceRows
	c.Parallel(mc.batch*pieces, max(1, gemvGrain/max(pieceRows*k, 1)), func(lo, hi int) {
		// The piece's outputs, mp rows of pieceRows.
		outp := getFloats(mp * pieceRows)
		defer putFloats(outp)
		out := *outp
		for u := lo; u < hi; u++ {
			i, n0 := u/pieces, u%pieces*pieceRows
			_, bOff := mc.offsets(i)
			x := xs[i*mp*ldx : (i+1)*mp*ldx]
			rows := min(pieceRows, n-n0)
			for t0 := 0; t0 < rows; t0 += smallNR {
				w, wOff := mc.b, bOff+(n0+t0)*k
				if t0+smallNR > rows {
					// The matrix's last, short tile: its rows padded with
					// zero rows, as the micro-kernel takes whole tiles.
					w, wOff = w.paddedRows(wOff, rows-t0, smallNR, k), 0
				}
				kernel(w, wOff, k, x, ldx, k, mp/smallMR, out[t0:], pieceRows)
			}
			for ii := range m {
				mc.out.store((i*m+ii)*n+n0, out[ii*pieceRows:ii*pieceRows+rows])
			}
		}
	})
}

// loadRows widens a's M×K matrix at element aOff into x as M rows of K
// float32s (op(A)), ldx apart; the rest of x is zeroed. With TransposeA a
// stores the matrix as [K, M].
func (mc *matmulCall) loadRows(x []float32, ldx, aOff int) {
	m, k := mc.m, mc.k
	clear(x)
	if !mc.transA {
		for i := range m {
			mc.a.load(x[i*ldx:i*ldx+k], aOff+i*k)
		}
		return
	}
	tp := getFloats(k * m)
	defer putFloats(tp)
	t := *tp
	mc.a.load(t, aOff)
	for p := range k {
		for i, v := range t[p*m : (p+1)*m] {
			x[i*ldx+p] = v
		}
	}
}

// paddedRows returns a copy of the rows rows of k elements at element off
// followed by zero rows, nr rows in all.
func (m matrices) paddedRows(off, rows, nr, k int) matrices {
	p := matrices{dt: m.dt}
	if m.dt == graph.Float32 {
		p.f32 = make([]float32, nr*k)
		copy(p.f32, m.f32[off:off+rows*k])
	} else {
		p.u16 = make([]uint16, nr*k)
		copy(p.u16, m.u16[off:off+rows*k])
	}
	return p
}

// checkSmallMTile panics unless the tile's weights, x rows and outputs
// lie inside w, x and out: the assembly trusts it, and smallM guarantees
// it.
func checkSmallMTile(w matrices, wOff, ldw int, x []float32, ldx, k, blocks int, out []float32, ldo int) {
	xrows := blocks * smallMR
	if k < 0 || blocks < 1 || wOff < 0 || ldw < k || ldx < k || ldo < smallNR ||
		wOff+(smallNR-1)*ldw+k > w.len() || (xrows-1)*ldx+k > len(x) || (xrows-1)*ldo+smallNR > len(out) {
		panic("cpu: small-M micro-kernel called with a tile outside its arguments")
	}
}

// smallMTileGo is the micro-kernel in Go: the fallback without AVX2, and
// the reference the assembly is tested against (which fuses each
// multiply-add but adds in the same order).
func smallMTileGo(w matrices, wOff, ldw int, x []float32, ldx, k, blocks int, out []float32, ldo int) {
	checkSmallMTile(w, wOff, ldw, x, ldx, k, blocks, out, ldo)
	body := k &^ 7
	rowp := getFloats(body)
	defer putFloats(rowp)
	row := *rowp
	for r := range smallNR {
		w.load(row, wOff+r*ldw)
		for i := range blocks * smallMR {
			out[i*ldo+r] = dotLanes8(row, x[i*ldx:i*ldx+body])
		}
	}
	addTileTail(w, wOff, ldw, x, ldx, k, blocks, out, ldo)
}

// dotLanes8 is Σ a[p]·b[p] (len(a) a multiple of 8) in the micro-kernel's
// order: 8 lanes, lane j summing the products with p ≡ j mod 8 in order,
// added as lanes j+4, j+2, j+1.
func dotLanes8(a, b []float32) float32 {
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	for p := 0; p+8 <= len(a); p += 8 {
		x, y := a[p:p+8], b[p:p+8]
		s0, s1, s2, s3 = s0+x[0]*y[0], s1+x[1]*y[1], s2+x[2]*y[2], s3+x[3]*y[3]
		s4, s5, s6, s7 = s4+x[4]*y[4], s5+x[5]*y[5], s6+x[6]*y[6], s7+x[7]*y[7]
	}
	return ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7))
}

// addTileTail adds to each of the tile's dot products the products of its
// last k%8 elements, summed in order.
func addTileTail(w matrices, wOff, ldw int, x []float32, ldx, k, blocks int, out []float32, ldo int) {
	body := k &^ 7
	if body == k {
		return
	}
	var row [8]float32
	tail := row[:k-body]
	for r := range smallNR {
		w.load(tail, wOff+r*ldw+body)
		for i := range blocks * smallMR {
			xi := x[i*ldx+body : i*ldx+k]
			var t float32
			for p, v := range tail {
				t += v * xi[p]
			}
			out[i*ldo+r] += t
		}
	}
}

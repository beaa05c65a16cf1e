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
// of x: a micro-kernel keeps the tile's 12 dot products in registers, 8
// lanes each (lane j sums the products of the elements p ≡ j mod 8, in
// order of p), loads and widens 8 weights of a row at a time and
// multiplies them with the same 8 columns of all the tile's x rows. The
// lanes are added as lane j+4, then j+2, then j+1, and the last K%8
// products, summed in order, are added to that. Each output element is
// one such sum, whichever worker computes its tile, so the result does not
// depend on the number of workers.
const (
	smallNR = 4 // weight rows of a tile
	smallMR = 3 // x rows of a tile: 12 accumulators, 3 x registers and one for the weights fill AVX2's 16
)

// smallMTile computes the tile[r·smallMR+i] = Σ_p W(r, p)·x[i·ldx+p] over
// p < k, for weight rows r < smallNR (row r at element wOff + r·ldw of w)
// and x rows i < smallMR, in the order described above.
type smallMTile func(w matrices, wOff, ldw int, x []float32, ldx, k int, tile *[smallNR * smallMR]float32)

// smallMGrain is the least number of tiles' worth of weights (smallNR
// rows) one worker takes: gemvGrain weights.
func smallMGrain(k int) int { return max(1, gemvGrain/max(smallNR*k, 1)) }

// smallM runs the product of each matrix of a (M > 1 rows) with the
// weights of b stored [N, K]. Work is split over tiles of weight rows.
func (mc *matmulCall) smallM(c *Call) {
	m, n, k := mc.m, mc.n, mc.k
	// x as float32, each matrix's rows padded with zero rows to whole
	// tiles; the padding's products are computed and thrown away.
	mp := roundUp(m, smallMR)
	xp := getFloats(mc.batch * mp * k)
	defer putFloats(xp)
	xs := *xp
	for i := range mc.batch {
		aOff, _ := mc.offsets(i)
		mc.loadRows(xs[i*mp*k:(i+1)*mp*k], aOff)
	}
	kernel := smallMTileKernel()
	blocks := (n + smallNR - 1) / smallNR
	c.Parallel(mc.batch*blocks, smallMGrain(k), func(lo, hi int) {
		var tile [smallNR * smallMR]float32
		for u := lo; u < hi; u++ {
			i, n0 := u/blocks, u%blocks*smallNR
			_, bOff := mc.offsets(i)
			w, wOff := mc.b, bOff+n0*k
			rows := min(smallNR, n-n0)
			if rows < smallNR {
				// The matrix's last, short block: its rows padded with
				// zero rows, as the micro-kernel takes whole tiles.
				w, wOff = w.paddedRows(wOff, rows, smallNR, k), 0
			}
			x := xs[i*mp*k : (i+1)*mp*k]
			for m0 := 0; m0 < m; m0 += smallMR {
				kernel(w, wOff, k, x[m0*k:], k, k, &tile)
				for r := range rows {
					for ii := range min(smallMR, m-m0) {
						mc.out.set((i*m+m0+ii)*n+n0+r, tile[r*smallMR+ii])
					}
				}
			}
		}
	})
}

// loadRows widens a's M×K matrix at element aOff into x as M rows of K
// float32s (op(A)); rows of x past M are zeroed. With TransposeA a stores
// the matrix as [K, M].
func (mc *matmulCall) loadRows(x []float32, aOff int) {
	m, k := mc.m, mc.k
	clear(x[m*k:])
	if !mc.transA {
		mc.a.load(x[:m*k], aOff)
		return
	}
	tp := getFloats(k * m)
	defer putFloats(tp)
	t := *tp
	mc.a.load(t, aOff)
	for p := range k {
		for i, v := range t[p*m : (p+1)*m] {
			x[i*k+p] = v
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

// checkSmallMTile panics unless the tile lies inside w and x: the
// assembly trusts it, and the callers above guarantee it.
func checkSmallMTile(w matrices, wOff, ldw int, x []float32, ldx, k int) {
	if k < 0 || wOff < 0 || ldw < k || ldx < k || wOff+(smallNR-1)*ldw+k > w.len() || (smallMR-1)*ldx+k > len(x) {
		panic("cpu: small-M micro-kernel called with a tile outside its rows")
	}
}

// smallMTileGo is the micro-kernel in Go: the fallback without AVX2, and
// the reference the assembly is tested against (which fuses each
// multiply-add but adds in the same order).
func smallMTileGo(w matrices, wOff, ldw int, x []float32, ldx, k int, tile *[smallNR * smallMR]float32) {
	checkSmallMTile(w, wOff, ldw, x, ldx, k)
	body := k &^ 7
	rowp := getFloats(body)
	defer putFloats(rowp)
	row := *rowp
	for r := range smallNR {
		w.load(row, wOff+r*ldw)
		for i := range smallMR {
			tile[r*smallMR+i] = dotLanes8(row, x[i*ldx:i*ldx+body])
		}
	}
	addTileTail(w, wOff, ldw, x, ldx, k, tile)
}

// dotLanes8 is Σ a[p]·b[p] over whole steps of 8, in 8 lanes added as
// lanes j+4, j+2, j+1: the assembly's order.
func dotLanes8(a, b []float32) float32 {
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	for p := 0; p+8 <= len(a); p += 8 {
		x, y := a[p:p+8], b[p:p+8]
		s0, s1, s2, s3 = s0+x[0]*y[0], s1+x[1]*y[1], s2+x[2]*y[2], s3+x[3]*y[3]
		s4, s5, s6, s7 = s4+x[4]*y[4], s5+x[5]*y[5], s6+x[6]*y[6], s7+x[7]*y[7]
	}
	return ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7))
}

// addTileTail adds to each of the tile's sums the products of its last
// k%8 elements, summed in order.
func addTileTail(w matrices, wOff, ldw int, x []float32, ldx, k int, tile *[smallNR * smallMR]float32) {
	body := k &^ 7
	if body == k {
		return
	}
	var row [8]float32
	tail := row[:k-body]
	for r := range smallNR {
		w.load(tail, wOff+r*ldw+body)
		for i := range smallMR {
			xi := x[i*ldx+body : i*ldx+k]
			var t float32
			for p, v := range tail {
				t += v * xi[p]
			}
			tile[r*smallMR+i] += t
		}
	}
}

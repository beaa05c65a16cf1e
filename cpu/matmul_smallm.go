package cpu

import (
	"github.com/loomrt/loom/graph"
	"unsafe"
)

// The small-M path of the GEMV kernel: products of a few rows of x[M, K]
// with weights W, the linear layers of batched decode. The tiled kernel
// would pack (and widen) every weight for only a few rows; here each
// weight is read from memory once and serves all M rows, whose x sits in
// the cache. A micro-kernel keeps a tile of outputs in registers; there is
// one for each layout of W:
//
//   - W stored [N, K] (TransposeB, the layout of linear-layer weights): a
//     dot tile is dotTileRows weight rows by dotXRows rows of x, 12 dot
//     products held as 8 lanes each (lane j sums the products of the
//     elements p ≡ j mod 8, in order of p). The micro-kernel loads and
//     widens 8 weights of a row at a time and multiplies them with the same
//     8 columns of the tile's x rows; at the end it adds the lanes as lane
//     j+4, then j+2, then j+1, and the products of the last K%8 elements,
//     summed in order, are added to that.
//   - W stored [K, N]: an axpy tile is axpyTileCols columns of W by
//     axpyXRows rows of x, each output summed over k in order. The
//     micro-kernel holds a strip of axpyStripCols columns: it loads and
//     widens the strip's weights of row k of W and multiplies them by
//     element k of each x row. The strips of a tile take turns a block of
//     axpyKC rows of W at a time, carrying their sums in the outputs.
//
// Either does so for every block of x rows in turn, while the tile's
// weights stay in the cache. Each output element is one such sum,
// whichever worker computes its tile, so the result does not depend on
// the number of workers.
const (
	// dotTileRows and dotXRows are a dot tile's weight rows and x rows:
	// 12 accumulators, 3 x registers and one for the weights fill AVX2's
	// 16.
	dotTileRows = 4
	dotXRows    = 3
	// axpyStripCols and axpyXRows are the weight columns and x rows the
	// axpy micro-kernel holds: 12 accumulators, 3 registers of 8 weights
	// and one for x.
	axpyStripCols = 24
	axpyXRows     = 4
	// axpyTileCols is the width of an axpy tile, three strips: wide enough
	// that its weight rows' cache lines are used whole.
	axpyTileCols = 3 * axpyStripCols
	// axpyKC is the depth of the blocks of k an axpy tile takes in turn:
	// a block's lines of weights (48 KiB of bfloat16 at most) stay in L1
	// and L2.
	axpyKC = 256
	// smallPieceCols is about the number of output columns (a whole
	// number of tiles) one piece of work computes and stores together,
	// row by row.
	smallPieceCols = 64
)

// smallMTile computes a tile of outputs for blocks·xRows rows of x (row i
// at x[i·ldx:]) over k elements, in the order described above, and stores
// the output of x row i and the tile's column c at out[i·ldo + c]. The
// tile's weights are at element wOff of w, their rows ldw apart.
type smallMTile func(w floats, wOff, ldw int, x []float32, ldx, k, blocks int, out []float32, ldo int)

// tileShape is a micro-kernel's tile: cols output columns by xRows rows
// of x, for weights stored [N, K] (transB) or [K, N].
type tileShape struct {
	cols, xRows int
	transB      bool
}

var (
	dotTileShape  = tileShape{dotTileRows, dotXRows, true}
	axpyTileShape = tileShape{axpyTileCols, axpyXRows, false}
)

// weights returns the rows and the width of the weights of a tile over k
// elements.
func (s tileShape) weights(k int) (rows, width int) {
	if s.transB {
		return s.cols, k
	}
	return k, s.cols
}

// smallM runs the product of each matrix of a (M > 1 rows) with b's
// weights.
func (mc *matmulCall) smallM(c *Call) {
	m, n := mc.m, mc.n
	mc.smallMPieces(c, n, []int{0}, func(i, n0, cols int, outs [][]float32, ldo int) {
		for ii := range m {
			mc.out.store((i*m+ii)*n+n0, outs[0][ii*ldo:ii*ldo+cols])
		}
	})
}

// smallMPieces computes the products of each matrix of a (M > 1 rows) with
// b's weights for n output columns, split over pieces of about
// smallPieceCols columns. A piece of columns [n0, n0+cols) of matrix i
// computes, for each offset o of offs, the outputs of b's columns
// [o+n0, o+n0+cols) (outs[t] for offs[t], M rows ldo apart), then calls
// store(i, n0, cols, outs, ldo), which must not keep outs.
func (mc *matmulCall) smallMPieces(c *Call, n int, offs []int, store func(i, n0, cols int, outs [][]float32, ldo int)) {
	m, k := mc.m, mc.k
	dot, axpy := smallMTiles()
	tile, shape := dot, dotTileShape
	if !mc.transB {
		tile, shape = axpy, axpyTileShape
	}
	// x as float32, each matrix's rows padded with zero rows to whole
	// blocks (their products are computed and thrown away). Long rows are
	// a whole number of cache lines apart, plus one: at a power-of-two
	// stride the rows' loads would fall in the same L1 sets.
	mp, ldx := roundUp(m, shape.xRows), k
	if k >= 256 {
		ldx = roundUp(k, 16) + 16
	}
	xp := getFloats(mc.batch * mp * ldx)
	defer putFloats(xp)
	xs := *xp
	for i := range mc.batch {
		aOff, _ := mc.offsets(i)
		mc.loadRows(xs[i*mp*ldx:(i+1)*mp*ldx], ldx, aOff)
	}
	pieceCols := roundUp(smallPieceCols, shape.cols)
	pieces := (n + pieceCols - 1) / pieceCols
	c.Parallel(mc.batch*pieces, max(1, gemvGrain/max(pieceCols*k*len(offs), 1)), func(lo, hi int) {
		// The piece's outputs for each offset, mp rows of pieceCols.
		outp := getFloats(len(offs) * mp * pieceCols)
		defer putFloats(outp)
		outs := make([][]float32, len(offs))
		for t := range offs {
			outs[t] = (*outp)[t*mp*pieceCols : (t+1)*mp*pieceCols]
		}
		for u := lo; u < hi; u++ {
			i, n0 := u/pieces, u%pieces*pieceCols
			_, bOff := mc.offsets(i)
			x := xs[i*mp*ldx : (i+1)*mp*ldx]
			cols := min(pieceCols, n-n0)
			for t, o := range offs {
				for t0 := 0; t0 < cols; t0 += shape.cols {
					w, wOff, ldw, pad := mc.weightTile(shape, bOff, o+n0+t0, min(shape.cols, cols-t0))
					tile(w, wOff, ldw, x, ldx, k, mp/shape.xRows, outs[t][t0:], pieceCols)
					if pad != nil {
						putFloats(pad)
					}
				}
			}
			store(i, n0, cols, outs, pieceCols)
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

// weightTile returns where the weights of the tile of output columns
// [n0, n0+width) lie, in b's matrix at element bOff: width rows of K
// elements for weights stored [N, K], K rows of width elements N apart for
// [K, N]. A tile narrower than the shape's (the matrix's last) is copied
// into pooled scratch, pad, and padded with zeros, as the micro-kernels take
// whole tiles; the caller gives pad back with putFloats when done.
func (mc *matmulCall) weightTile(s tileShape, bOff, n0, width int) (w floats, off, ld int, pad *[]float32) {
	k, n := mc.k, mc.n
	off, ld, rows, cols := bOff+n0*k, k, width, k
	if !s.transB {
		off, ld, rows, cols = bOff+n0, n, k, width
	}
	if width == s.cols {
		return mc.b, off, ld, nil
	}
	fullRows, fullCols := s.weights(k)
	size := fullRows * fullCols * mc.b.dt.Size()
	pad = getFloats((size + 3) / 4)
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(*pad))), size)
	clear(b)
	p := newFloats(mc.b.dt, b)
	for r := range rows {
		if p.dt == graph.Float32 {
			copy(p.f32[r*fullCols:r*fullCols+cols], mc.b.f32[off+r*ld:])
		} else {
			copy(p.u16[r*fullCols:r*fullCols+cols], mc.b.u16[off+r*ld:])
		}
	}
	return p, 0, fullCols, pad
}

// checkTile panics unless a tile's weights, x rows and outputs lie inside
// w, x and out: the assembly trusts it, and smallM guarantees it.
func checkTile(s tileShape, w floats, wOff, ldw int, x []float32, ldx, k, blocks int, out []float32, ldo int) {
	rows, width := s.weights(k)
	xrows := blocks * s.xRows
	if k < 0 || blocks < 1 || wOff < 0 || ldw < width || ldx < k || ldo < s.cols ||
		rows > 0 && wOff+(rows-1)*ldw+width > w.len() || (xrows-1)*ldx+k > len(x) || (xrows-1)*ldo+s.cols > len(out) {
		panic("cpu: small-M micro-kernel called with a tile outside its arguments")
	}
}

// dotTileGo is the dot micro-kernel in Go: the fallback without AVX2, and
// the reference the assembly is tested against (which fuses each
// multiply-add but adds in the same order).
func dotTileGo(w floats, wOff, ldw int, x []float32, ldx, k, blocks int, out []float32, ldo int) {
	checkTile(dotTileShape, w, wOff, ldw, x, ldx, k, blocks, out, ldo)
	body := k &^ 7
	rowp := getFloats(body)
	defer putFloats(rowp)
	row := *rowp
	for r := range dotTileRows {
		w.load(row, wOff+r*ldw)
		for i := range blocks * dotXRows {
			out[i*ldo+r] = dotLanes8(row, x[i*ldx:i*ldx+body])
		}
	}
	addDotTail(w, wOff, ldw, x, ldx, k, blocks, out, ldo)
}

// dotLanes8 is Σ a[p]·b[p] (len(a) a multiple of 8) in the dot
// micro-kernel's order: 8 lanes, lane j summing the products with
// p ≡ j mod 8 in order, added as lanes j+4, j+2, j+1.
func dotLanes8(a, b []float32) float32 {
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	for p := 0; p+8 <= len(a); p += 8 {
		x, y := a[p:p+8], b[p:p+8]
		s0, s1, s2, s3 = s0+x[0]*y[0], s1+x[1]*y[1], s2+x[2]*y[2], s3+x[3]*y[3]
		s4, s5, s6, s7 = s4+x[4]*y[4], s5+x[5]*y[5], s6+x[6]*y[6], s7+x[7]*y[7]
	}
	return ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7))
}

// addDotTail adds to each of a dot tile's outputs the products of its
// last k%8 elements, summed in order.
func addDotTail(w floats, wOff, ldw int, x []float32, ldx, k, blocks int, out []float32, ldo int) {
	body := k &^ 7
	if body == k {
		return
	}
	var row [8]float32
	tail := row[:k-body]
	for r := range dotTileRows {
		w.load(tail, wOff+r*ldw+body)
		for i := range blocks * dotXRows {
			xi := x[i*ldx+body : i*ldx+k]
			var t float32
			for p, v := range tail {
				t += v * xi[p]
			}
			out[i*ldo+r] += t
		}
	}
}

// axpyTileGo is the axpy micro-kernel in Go: the fallback without AVX2,
// and the reference the assembly is tested against (which fuses each
// multiply-add but adds in the same order).
func axpyTileGo(w floats, wOff, ldw int, x []float32, ldx, k, blocks int, out []float32, ldo int) {
	checkTile(axpyTileShape, w, wOff, ldw, x, ldx, k, blocks, out, ldo)
	xrows := blocks * axpyXRows
	clearTile(out, ldo, xrows, axpyTileCols)
	var row [axpyTileCols]float32
	for p := range k {
		w.load(row[:], wOff+p*ldw)
		for i := range xrows {
			xp := x[i*ldx+p]
			o := out[i*ldo : i*ldo+axpyTileCols]
			for j, v := range row {
				o[j] += xp * v
			}
		}
	}
}

// clearTile zeroes the first cols outputs of rows rows of out, ldo apart.
func clearTile(out []float32, ldo, rows, cols int) {
	for i := range rows {
		clear(out[i*ldo : i*ldo+cols])
	}
}

package cpu

import (
	"github.com/loomrt/loom/graph"
)

// The tiled matmul is a packed, cache-blocked GEMM. The output is computed
// in equal blocks of at most gemmMB×gemmNB (sizes chosen by measuring
// 1024², 1100², 1536² and 512×4096×1024 products); for each block and each
// gemmKC-deep slice of K, B's slice is packed into panels of gemmNR columns (each
// gemmKC×16 floats, contiguous) and A's into panels of gemmMR rows, and a
// micro-kernel multiplies one A panel by one B panel into a gemmMR×gemmNR
// tile held in registers. Packing also widens float16/bfloat16 to float32
// and takes care of the transposes, so the micro-kernel sees one layout.
//
// Panels are padded with zeros to whole tiles. The padding only feeds the
// parts of edge tiles that are thrown away; zeros keep that arithmetic off
// stale scratch contents (NaNs, subnormals: slow on some CPUs).
//
// Each output element is C = Σ over K slices (in order) of the slice's
// partial sum, each partial sum accumulated from zero over k in order: the
// same arithmetic whichever worker computes the tile.
const (
	gemmMR = 6    // rows of the register tile: 12 accumulators of 8 lanes
	gemmNR = 16   // columns of the register tile: two AVX2 registers
	gemmKC = 256  // depth of a K slice: a B panel (16 KiB) stays in L1
	gemmMB = 1024 // most rows of an output block: a worker's packed A slice (512 KiB) stays in a 1 MiB L2 (measured with 2 workers)
	gemmNB = 1024 // most columns of an output block: its packed B slice (1 MiB) stays in L2/L3
)

// gemmGrain is the least arithmetic (in flops) worth a goroutine.
const gemmGrain = 1 << 18

// microKernel computes the gemmMR×gemmNR tile c = a·b (c += a·b when
// accumulate) of a packed A panel (gemmMR floats per k) and a packed B
// panel (gemmNR floats per k) over k steps, in order; c's rows are ldc
// elements apart.
type microKernel func(a, b, c []float32, k, ldc int, accumulate bool)

// microKernelGo is the micro-kernel in Go: the fallback without AVX2, and
// the reference the assembly is tested against. Each accumulator adds its
// products in k order, as the assembly does (which fuses them).
//
// It works on four columns at a time, so that the 24 accumulators of a
// 6×4 block, with the 4 values of B and 1 of A they use, fit in arm64's 32
// floating-point registers; each block makes its own pass over the A panel.
func microKernelGo(a, b, c []float32, k, ldc int, accumulate bool) {
	a, b = a[:gemmMR*k], b[:gemmNR*k]
	for j := 0; j < gemmNR; j += 4 {
		var c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23 float32
		var c30, c31, c32, c33, c40, c41, c42, c43, c50, c51, c52, c53 float32
		for p := range k {
			ap := a[p*gemmMR : p*gemmMR+gemmMR]
			bp := b[p*gemmNR+j : p*gemmNR+j+4]
			b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
			a0 := ap[0]
			c00, c01, c02, c03 = c00+a0*b0, c01+a0*b1, c02+a0*b2, c03+a0*b3
			a1 := ap[1]
			c10, c11, c12, c13 = c10+a1*b0, c11+a1*b1, c12+a1*b2, c13+a1*b3
			a2 := ap[2]
			c20, c21, c22, c23 = c20+a2*b0, c21+a2*b1, c22+a2*b2, c23+a2*b3
			a3 := ap[3]
			c30, c31, c32, c33 = c30+a3*b0, c31+a3*b1, c32+a3*b2, c33+a3*b3
			a4 := ap[4]
			c40, c41, c42, c43 = c40+a4*b0, c41+a4*b1, c42+a4*b2, c43+a4*b3
			a5 := ap[5]
			c50, c51, c52, c53 = c50+a5*b0, c51+a5*b1, c52+a5*b2, c53+a5*b3
		}
		for i, row := range [gemmMR][4]float32{
			{c00, c01, c02, c03}, {c10, c11, c12, c13}, {c20, c21, c22, c23},
			{c30, c31, c32, c33}, {c40, c41, c42, c43}, {c50, c51, c52, c53},
		} {
			crow := c[i*ldc+j : i*ldc+j+4]
			if accumulate {
				for jj := range crow {
					crow[jj] += row[jj]
				}
			} else {
				copy(crow, row[:])
			}
		}
	}
}

// parallelFunc runs fn over [0, n) in chunks of at least grain: Call's
// Parallel, or a serial loop inside work that is already parallel.
type parallelFunc func(n, grain int, fn func(lo, hi int))

func serial(n, _ int, fn func(lo, hi int)) { fn(0, n) }

// gemm is one matrix product out = op(A)·op(B) of a tiled dispatch.
type gemm struct {
	mc         *matmulCall
	aOff, bOff int // element offsets of this product's A and B
	outOff     int
	kernel     microKernel
}

// tiledKernel runs the batch's products one after another, each spread
// over the workers, or, when the products are small, the products
// themselves concurrently.
func tiledKernel(dt graph.DType) Kernel {
	return func(c *Call) error {
		mc, err := newMatmulCall(c, dt)
		if err != nil {
			return err
		}
		kernel := gemmMicroKernel()
		product := func(i int, par parallelFunc) {
			aOff, bOff := mc.offsets(i)
			g := gemm{mc: mc, aOff: aOff, bOff: bOff, outOff: i * mc.m * mc.n, kernel: kernel}
			g.run(par)
		}
		flops := 2 * mc.m * mc.n * max(mc.k, 1)
		if mc.batch > 1 && (flops < 1<<22 || mc.batch >= 2*c.Workers()) {
			c.Parallel(mc.batch, max(1, gemmGrain/max(flops, 1)), func(lo, hi int) {
				for i := lo; i < hi; i++ {
					product(i, serial)
				}
			})
			return nil
		}
		for i := range mc.batch {
			product(i, c.Parallel)
		}
		return nil
	}
}

// run computes the product block by block.
func (g *gemm) run(par parallelFunc) {
	mc := g.mc
	m, n, k := mc.m, mc.n, mc.k
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		zeros := make([]float32, n)
		for i := range m {
			mc.out.store(g.outOff+i*n, zeros)
		}
		return
	}
	// Blocks of equal size (in whole tiles), as large as gemmMB×gemmNB
	// allows: a small last block would repeat the packing of the other
	// operand for little work, and split poorly over the workers.
	bm := roundUp((m+(m+gemmMB-1)/gemmMB-1)/((m+gemmMB-1)/gemmMB), gemmMR)
	bn := roundUp((n+(n+gemmNB-1)/gemmNB-1)/((n+gemmNB-1)/gemmNB), gemmNR)
	bp := getFloats(gemmKC * bn)
	defer putFloats(bp)
	// Each block is accumulated in float32 in acc and stored (rounded, for
	// float16 and bfloat16) once complete. Its rows are one tile wider than
	// the block: N's row stride, often a large power of two, would put a
	// tile's rows in the same cache set.
	ldc := bn + gemmNR
	accp := getFloats(min(m, bm) * ldc)
	defer putFloats(accp)
	acc := *accp
	for i0 := 0; i0 < m; i0 += bm {
		mb := min(bm, m-i0)
		for j0 := 0; j0 < n; j0 += bn {
			nb := min(bn, n-j0)
			for p0 := 0; p0 < k; p0 += gemmKC {
				kc := min(gemmKC, k-p0)
				g.packB(par, *bp, p0, kc, j0, nb)
				g.multiply(par, *bp, acc, ldc, i0, mb, nb, p0, kc)
			}
			par(mb, max(1, gemmGrain/nb), func(lo, hi int) {
				for i := lo; i < hi; i++ {
					mc.out.store(g.outOff+(i0+i)*n+j0, acc[i*ldc:i*ldc+nb])
				}
			})
		}
	}
}

func roundUp(n, m int) int { return (n + m - 1) / m * m }

// packB packs op(B)[p0:p0+kc, j0:j0+nb] into panels of gemmNR columns:
// element (p, j0+16t+jj) at bp[t·kc·16 + p·16 + jj], columns past nb zero.
func (g *gemm) packB(par parallelFunc, bp []float32, p0, kc, j0, nb int) {
	mc := g.mc
	n, k := mc.n, mc.k
	panels := (nb + gemmNR - 1) / gemmNR
	par(panels, max(1, gemmGrain/(kc*gemmNR*8)), func(lo, hi int) {
		var col []float32
		if mc.transB {
			colp := getFloats(kc)
			defer putFloats(colp)
			col = *colp
		}
		for t := lo; t < hi; t++ {
			panel := bp[t*kc*gemmNR : (t+1)*kc*gemmNR]
			jt := j0 + t*gemmNR
			w := min(gemmNR, j0+nb-jt)
			if !mc.transB {
				// B is [K, N]: each row of the panel is contiguous.
				for p := range kc {
					dst := panel[p*gemmNR : p*gemmNR+gemmNR]
					mc.b.load(dst[:w], g.bOff+(p0+p)*n+jt)
					clear(dst[w:])
				}
				continue
			}
			// B is stored [N, K]: each column of the panel is contiguous.
			for jj := range gemmNR {
				if jj >= w {
					for p := range kc {
						panel[p*gemmNR+jj] = 0
					}
					continue
				}
				mc.b.load(col, g.bOff+(jt+jj)*k+p0)
				for p, v := range col {
					panel[p*gemmNR+jj] = v
				}
			}
		}
	})
}

// packA packs op(A)[i0+6·tlo : i0+6·thi, p0:p0+kc] (row tiles tlo..thi
// of the block, the last possibly short) into panels of gemmMR rows:
// element (tile t, row ii, p) at ap[(t−tlo)·kc·6 + p·6 + ii], rows past
// mb zero.
func (g *gemm) packA(ap []float32, i0, mb, tlo, thi, p0, kc int) {
	mc := g.mc
	m, k := mc.m, mc.k
	var row []float32
	if !mc.transA {
		rowp := getFloats(kc)
		defer putFloats(rowp)
		row = *rowp
	}
	for t := tlo; t < thi; t++ {
		panel := ap[(t-tlo)*kc*gemmMR : (t-tlo+1)*kc*gemmMR]
		it := i0 + t*gemmMR
		h := min(gemmMR, i0+mb-it)
		if mc.transA {
			// A is stored [K, M]: each k's rows of the panel are contiguous.
			for p := range kc {
				dst := panel[p*gemmMR : p*gemmMR+gemmMR]
				mc.a.load(dst[:h], g.aOff+(p0+p)*m+it)
				clear(dst[h:])
			}
			continue
		}
		// A is [M, K]: each row is contiguous.
		for ii := range gemmMR {
			if ii >= h {
				for p := range kc {
					panel[p*gemmMR+ii] = 0
				}
				continue
			}
			mc.a.load(row, g.aOff+(it+ii)*k+p0)
			for p, v := range row {
				panel[p*gemmMR+ii] = v
			}
		}
	}
}

// multiply adds the K slice [p0, p0+kc) of the block's product into c
// (stores it, for the first slice). Work is split over row tiles when
// there are enough of them, else over column panels, and each worker packs
// the A rows it needs.
func (g *gemm) multiply(par parallelFunc, bp, c []float32, ldc, i0, mb, nb, p0, kc int) {
	tiles := (mb + gemmMR - 1) / gemmMR
	panels := (nb + gemmNR - 1) / gemmNR
	first := p0 == 0
	work := func(tlo, thi, plo, phi int) {
		ap := getFloats((thi-tlo)*kc*gemmMR + gemmMR*gemmNR)
		defer putFloats(ap)
		g.packA(*ap, i0, mb, tlo, thi, p0, kc)
		edge := (*ap)[(thi-tlo)*kc*gemmMR:]
		for pt := plo; pt < phi; pt++ {
			bpanel := bp[pt*kc*gemmNR : (pt+1)*kc*gemmNR]
			w := min(gemmNR, nb-pt*gemmNR)
			for t := tlo; t < thi; t++ {
				apanel := (*ap)[(t-tlo)*kc*gemmMR : (t-tlo+1)*kc*gemmMR]
				h := min(gemmMR, mb-t*gemmMR)
				ct := c[t*gemmMR*ldc+pt*gemmNR:]
				if h == gemmMR && w == gemmNR {
					g.kernel(apanel, bpanel, ct, kc, ldc, !first)
					continue
				}
				// An edge tile: compute it whole, keep the part inside.
				g.kernel(apanel, bpanel, edge, kc, gemmNR, false)
				for i := range h {
					crow, erow := ct[i*ldc:i*ldc+w], edge[i*gemmNR:i*gemmNR+w]
					if first {
						copy(crow, erow)
						continue
					}
					for j := range crow {
						crow[j] += erow[j]
					}
				}
			}
		}
	}
	if tiles >= 4 {
		par(tiles, max(1, gemmGrain/(2*gemmMR*nb*kc)), func(lo, hi int) { work(lo, hi, 0, panels) })
	} else {
		par(panels, max(1, gemmGrain/(2*mb*gemmNR*kc)), func(lo, hi int) { work(0, tiles, lo, hi) })
	}
}

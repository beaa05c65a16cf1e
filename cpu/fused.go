package cpu

import (
	"fmt"
	"unsafe"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// The fused kernels compute with the same helpers as the kernels of the
// chains they replace (rmsNormRow and rmsScale, unaryF32, ropeCosSin and
// ropeRotate), so that where the primitives promise the chain's result bit
// for bit, it is.

// addRMSNormKernel writes each row's sum x + residual, rounded to the dtype,
// and then normalises the stored sum as rmsNormKernel does.
func addRMSNormKernel(dt graph.DType) Kernel {
	return func(c *Call) error {
		p := c.Params.(*primitives.RMSNormParams)
		d := int(p.D)
		x, res, w, sum, out := c.Args[0].Bytes, c.Args[1].Bytes, c.Args[2].Bytes, c.Args[3].Bytes, c.Args[4].Bytes
		c.Parallel(int(p.Rows), max(1, elemGrain/max(d, 1)), func(lo, hi int) {
			tmp := getFloats(3 * chunk)
			defer putFloats(tmp)
			tx, tr, tz := (*tmp)[:chunk], (*tmp)[chunk:2*chunk], (*tmp)[2*chunk:]
			for r := lo; r < hi; r++ {
				for k := 0; k < d; k += chunk {
					at, m := r*d+k, min(chunk, d-k)
					xs := f32In(dt, x, at, 1, m, tx)
					rs := f32In(dt, res, at, 1, m, tr)
					z := f32Out(dt, sum, at, 1, m, tz)
					for i := range z {
						z[i] = xs[i] + rs[i]
					}
					f32Store(dt, sum, at, 1, z)
				}
				rmsNormRow(dt, sum, w, out, r*d, d, p.Eps, *tmp)
			}
		})
		return nil
	}
}

// siluMulKernel computes SiLU(gate)·up over the output's elements, in runs
// that stay within a row.
func siluMulKernel(dt graph.DType) Kernel {
	return func(c *Call) error {
		p := c.Params.(*primitives.SiLUMulParams)
		n := int(p.N)
		a, out := c.Args[0].Bytes, c.Args[1].Bytes
		c.Parallel(int(p.Rows)*n, unaryGrain(primitives.SiLU), func(lo, hi int) {
			tmp := getFloats(3 * chunk)
			defer putFloats(tmp)
			tg, tu, tz := (*tmp)[:chunk], (*tmp)[chunk:2*chunk], (*tmp)[2*chunk:]
			for e := lo; e < hi; {
				r, k := e/n, e%n
				m := min(chunk, n-k, hi-e)
				g := f32In(dt, a, 2*r*n+k, 1, m, tg)
				u := f32In(dt, a, 2*r*n+n+k, 1, m, tu)
				z := f32Out(dt, out, e, 1, m, tz)
				siluMulF32(z, g, u)
				f32Store(dt, out, e, 1, z)
				e += m
			}
		})
		return nil
	}
}

// matmulSiLUMulKernel: args x, w, out. Each piece of work computes a run
// of outputs: both dot products of each, as the GEMV kernel computes them
// for M = 1 (gemvDot) and on its small-M path otherwise (smallMPieces, the
// gate and up columns of a piece side by side), then gatedEpilogue.
func matmulSiLUMulKernel(dt graph.DType) Kernel {
	return func(c *Call) error {
		p := c.Params.(*primitives.MatMulSiLUMulParams)
		m, n, k := int(p.M), int(p.N), int(p.K)
		mc, err := checkMatmulCall(&primitives.MatMulParams{M: p.M, N: 2 * p.N, K: p.K, Batch: 1, TransposeB: 1}, dt, c.Args, n)
		if err != nil {
			return err
		}
		if m == 0 || n == 0 {
			return nil
		}
		out := mc.out
		if m > 1 {
			mc.smallMPieces(c, n, []int{0, n}, func(_, n0, cols int, outs [][]float32, ldo int) {
				for i := range m {
					g, u := outs[0][i*ldo:i*ldo+cols], outs[1][i*ldo:i*ldo+cols]
					gatedEpilogue(dt, g, u)
					out.store(i*n+n0, g)
				}
			})
			return nil
		}
		xp := getFloats(2 * k)
		defer putFloats(xp)
		x := (*xp)[:k]
		mc.a.load(x, 0)
		if dt == graph.BFloat16 {
			packGEMVX((*xp)[k:], x, k)
			x = (*xp)[k:]
		}
		c.ParallelFine(n, max(1, gemvGrain/max(2*k, 1)), func(lo, hi int) {
			tmp := getFloats(2 * chunk)
			defer putFloats(tmp)
			for j0 := lo; j0 < hi; j0 += chunk {
				cols := min(chunk, hi-j0)
				g, u := (*tmp)[:cols], (*tmp)[chunk:chunk+cols]
				for j := range cols {
					g[j] = gemvDot(mc.b, (j0+j)*k, x)
					u[j] = gemvDot(mc.b, (n+j0+j)*k, x)
				}
				gatedEpilogue(dt, g, u)
				out.store(j0, g)
			}
		})
		return nil
	}
}

// addRMSNormLinearKernel: args x, delta, norm_weight, w, sum, out, one row
// of K. It runs add_rms_norm into a buffer of its own and then the GEMV
// (gated: matmul_silu_mul) reading it, the kernels of the chain it
// replaces, so that its results are theirs bit for bit.
func addRMSNormLinearKernel(dt graph.DType, gated bool) Kernel {
	norm, linear := addRMSNormKernel(dt), gemvKernel(dt)
	if gated {
		linear = matmulSiLUMulKernel(dt)
	}
	return func(c *Call) error {
		p := c.Params.(*primitives.AddRMSNormLinearParams)
		row := int64(p.K) * int64(dt.Size())
		for _, i := range []int{0, 1, 2, 4} {
			if int64(len(c.Args[i].Bytes)) < row {
				return fmt.Errorf("argument %s holds %d bytes; the params need %d", c.Args[i].Name, len(c.Args[i].Bytes), row)
			}
		}
		hp := getFloats(int(row+3) / 4) // the norm's row, as bytes of the dtype
		defer putFloats(hp)
		h := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(*hp))), row)
		args := []Arg{c.Args[0], c.Args[1], c.Args[2], c.Args[4], {Bytes: h, Access: primitives.Write, Name: "normed"}}
		if err := norm(&Call{Args: args, Params: &primitives.RMSNormParams{Rows: 1, D: p.K, Eps: p.Eps}, workers: c.workers}); err != nil {
			return err
		}
		var lp any = &primitives.MatMulParams{M: 1, N: p.N, K: p.K, Batch: 1, TransposeB: 1}
		if gated {
			lp = &primitives.MatMulSiLUMulParams{M: 1, N: p.N, K: p.K}
		}
		args = []Arg{{Bytes: h, Access: primitives.Read, Name: "x"}, c.Args[3], c.Args[5]}
		return linear(&Call{Args: args, Params: lp, workers: c.workers})
	}
}

// gatedEpilogue sets g to SiLU(g)·u, each of g and u first rounded to the
// dtype as the matmul's output is, then as siluMulKernel computes it (siluMulF32).
func gatedEpilogue(dt graph.DType, g, u []float32) {
	switch dt {
	case graph.BFloat16:
		for i := range g {
			g[i], u[i] = graph.BF16ToF32(graph.F32ToBF16(g[i])), graph.BF16ToF32(graph.F32ToBF16(u[i]))
		}
	case graph.Float16:
		for i := range g {
			g[i], u[i] = graph.F16ToF32(graph.F32ToF16(g[i])), graph.F16ToF32(graph.F32ToF16(u[i]))
		}
	}
	siluMulF32(g, g, u)
}

// siluMulF32 sets z to SiLU(g)·u.
func siluMulF32(z, g, u []float32) {
	unaryF32(primitives.SiLU, z, g)
	for i := range z {
		z[i] *= u[i]
	}
}

// qkNormRoPEKVWriteKernel: args qkv, q_norm, k_norm, positions, k_cache,
// v_cache, slot_mapping, q. The slots are checked before anything is
// written, as kvWriteKernel does.
func qkNormRoPEKVWriteKernel(dt, slotDT graph.DType) Kernel {
	return func(c *Call) error {
		if slotDT == graph.Int32 {
			return qkNormRoPEKVWrite(c, dt, c.I32(6))
		}
		return qkNormRoPEKVWrite(c, dt, c.I64(6))
	}
}

func qkNormRoPEKVWrite[S int32 | int64](c *Call, dt graph.DType, slots []S) error {
	p := c.Params.(*primitives.QKNormRoPEKVWriteParams)
	if err := primitives.CheckSlots(slots, int(p.NumSlots)); err != nil {
		return err
	}
	h, kvh, d := int(p.Heads), int(p.KVHeads), int(p.HeadSize)
	width, slotRow, es := (h+2*kvh)*d, kvh*d, dt.Size()
	qkv, qNorm, kNorm, pos := c.Args[0].Bytes, c.Args[1].Bytes, c.Args[2].Bytes, c.I32(3)
	kc, vc, q := c.Args[4].Bytes, c.Args[5].Bytes, c.Args[7].Bytes
	inv := ropeInvFreqs(float64(p.Theta), d)
	c.Parallel(len(slots), max(1, elemGrain/max(width, 1)), func(lo, hi int) {
		cos, sin, row := make([]float32, d/2), make([]float32, d/2), make([]float32, d)
		tmp := getFloats(2 * chunk)
		defer putFloats(tmp)
		for t := lo; t < hi; t++ {
			ropeCosSin(cos, sin, float64(pos[t]), inv)
			s := int(slots[t])
			for head := range h + kvh {
				w, dst, at := qNorm, q, (t*h+head)*d
				if head >= h {
					if s < 0 {
						break // padding: no key or value to write
					}
					w, dst, at = kNorm, kc, s*slotRow+(head-h)*d
				}
				normRoPEHead(dt, qkv, t*width+head*d, w, d, p.Eps, cos, sin, row, *tmp)
				newFloats(dt, dst).store(at, row)
			}
			if s >= 0 {
				v := (t*width + (h+kvh)*d) * es
				copy(vc[s*slotRow*es:(s+1)*slotRow*es], qkv[v:v+slotRow*es])
			}
		}
	})
	return nil
}

// normRoPEHead sets row to the head of d elements at first of x,
// normalised as rmsNormRow does with weight w (but not rounded to the
// dtype) and rotated as ropeKernel does with the angles of cos and sin.
// tmp holds 2·chunk float32s.
func normRoPEHead(dt graph.DType, x []byte, first int, w []byte, d int, eps float32, cos, sin, row, tmp []float32) {
	tx, tw := tmp[:chunk], tmp[chunk:2*chunk]
	scale := rmsScale(dt, x, first, d, eps, tx)
	for k := 0; k < d; k += chunk {
		m := min(chunk, d-k)
		xs := f32In(dt, x, first+k, 1, m, tx)
		ws := f32In(dt, w, k, 1, m, tw)
		for i := range m {
			row[k+i] = xs[i] * scale * ws[i]
		}
	}
	half := d / 2
	ropeRotate(row[:half], row[half:], row[:half], row[half:], cos, sin)
}

func init() {
	for _, dt := range primitives.FloatDTypes {
		mustRegister(primitives.AddRMSNormKernel(dt), addRMSNormKernel(dt))
		mustRegister(primitives.SiLUMulKernel(dt), siluMulKernel(dt))
	}
	for _, dt := range primitives.MatMulDTypes {
		mustRegister(primitives.MatMulSiLUMulKernel(dt), matmulSiLUMulKernel(dt))
		mustRegister(primitives.AddRMSNormMatMulKernel(dt), addRMSNormLinearKernel(dt, false))
		mustRegister(primitives.AddRMSNormMatMulSiLUMulKernel(dt), addRMSNormLinearKernel(dt, true))
	}
	for _, dt := range primitives.AttentionDTypes {
		for _, slot := range []graph.DType{graph.Int32, graph.Int64} {
			mustRegister(primitives.QKNormRoPEKVWriteKernel(dt, slot), qkNormRoPEKVWriteKernel(dt, slot))
		}
	}
}

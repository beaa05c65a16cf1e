package cpu

import (
	"fmt"
	"sync"

	"github.com/loomrt/loom/cpu/internal/vec"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// The matmul kernels: matmul_<dt>_gemv (one output row per matrix: the
// decode case, limited by streaming the weights) and matmul_<dt>_tiled
// (packed, cache-blocked GEMM, limited by arithmetic) for float32, float16
// and bfloat16. Both accumulate in float32; each output element is summed
// over K in a fixed order whatever the number of workers.

func init() {
	for _, dt := range primitives.MatMulDTypes {
		mustRegister(primitives.MatMulGEMVKernel(dt), gemvKernel(dt))
		mustRegister(primitives.MatMulTiledKernel(dt), tiledKernel(dt))
	}
}

// matmulCall is a matmul dispatch's params and arguments, checked against
// each other so that no params can make a kernel index outside a buffer.
type matmulCall struct {
	p         *primitives.MatMulParams
	m, n, k   int
	batch     int
	a, b, out floats
	transA    bool
	transB    bool
}

func newMatmulCall(c *Call, dt graph.DType) (*matmulCall, error) {
	p := c.Params.(*primitives.MatMulParams)
	return checkMatmulCall(p, dt, c.Args, int(p.N))
}

// checkMatmulCall returns the matmul of params p with arguments a, b and
// out (args), checked, where out holds outN elements a row of each output
// matrix: N for the product itself, fewer for a product with an epilogue
// (the gated kernel's N/2).
func checkMatmulCall(p *primitives.MatMulParams, dt graph.DType, args []Arg, outN int) (*matmulCall, error) {
	mc := &matmulCall{
		p: p, m: int(p.M), n: int(p.N), k: int(p.K), batch: int(p.Batch),
		a: newFloats(dt, args[0].Bytes), b: newFloats(dt, args[1].Bytes), out: newFloats(dt, args[2].Bytes),
		transA: p.TransposeA != 0, transB: p.TransposeB != 0,
	}
	if p.BatchRank > primitives.MaxRank {
		return nil, fmt.Errorf("batch rank %d above %d", p.BatchRank, primitives.MaxRank)
	}
	// Sizes are counted in float64: products of params up to 2^32−1 each
	// would overflow int, and the counts are exact below 2^53, far past
	// any buffer. Once they fit the buffers, int arithmetic on them is
	// safe.
	count, lastA, lastB := 1.0, 0.0, 0.0
	for d := range int(p.BatchRank) {
		n := float64(p.BatchShape[d])
		count *= n
		if n > 0 {
			lastA += (n - 1) * float64(p.BatchStrideA[d])
			lastB += (n - 1) * float64(p.BatchStrideB[d])
		}
	}
	if count != float64(mc.batch) {
		return nil, fmt.Errorf("batch shape %v holds %.0f matrices, params say %d", p.BatchShape[:p.BatchRank], count, mc.batch)
	}
	if mc.batch == 0 || mc.m == 0 || mc.n == 0 {
		return mc, nil
	}
	m, n, k := float64(mc.m), float64(mc.n), float64(mc.k)
	for _, x := range []struct {
		name        string
		m           floats
		last, elems float64
	}{
		{"a", mc.a, lastA, m * k},
		{"b", mc.b, lastB, k * n},
		{"out", mc.out, float64(mc.batch - 1), m * float64(outN)},
	} {
		if need := (x.last + 1) * x.elems; float64(x.m.len()) < need {
			return nil, fmt.Errorf("argument %s holds %d elements; the params need %.0f", x.name, x.m.len(), need)
		}
	}
	return mc, nil
}

// offsets returns the element offsets of a's and b's matrices for output
// matrix i.
func (mc *matmulCall) offsets(i int) (aOff, bOff int) {
	p := mc.p
	ia, ib := 0, 0
	for d := int(p.BatchRank) - 1; d >= 0; d-- {
		n := int(p.BatchShape[d])
		ia += i % n * int(p.BatchStrideA[d])
		ib += i % n * int(p.BatchStrideB[d])
		i /= n
	}
	return ia * mc.m * mc.k, ib * mc.k * mc.n
}

// floatPool holds the float32 scratch slices of the matmul kernels (packed
// panels, accumulators), which are too large to allocate per dispatch.
var floatPool sync.Pool

// getFloats returns a scratch slice of n float32s with undefined contents;
// give it back with putFloats.
func getFloats(n int) *[]float32 {
	if p, ok := floatPool.Get().(*[]float32); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	s := make([]float32, n)
	return &s
}

func putFloats(p *[]float32) { floatPool.Put(p) }

// gemvGrain is the least number of weights one worker of a GEMV streams:
// below it, starting a goroutine costs more than it saves.
const gemvGrain = 1 << 15

// packGEMVX reorders x (rows of k float32s) into dst for gemvDot's
// bfloat16 dot product, which is cheaper on x so reordered.
func packGEMVX(dst, x []float32, k int) {
	for i := 0; i < len(x); i += k {
		vec.PackBF16X(dst[i:i+k], x[i:i+k])
	}
}

// gemvDot is the GEMV kernel's dot product of the row of len(x) weights
// at element off of w (stored [N, K]) with x, packed by packGEMVX for
// bfloat16.
func gemvDot(w floats, off int, x []float32) float32 {
	k := len(x)
	switch w.dt {
	case graph.Float32:
		return vec.DotF32(w.f32[off:off+k], x)
	case graph.BFloat16:
		return vec.DotBF16Packed(w.u16[off:off+k], x)
	default:
		return vec.DotF16(w.u16[off:off+k], x)
	}
}

// gemvChunk is the number of rows of untransposed weights [K, N] whose
// contribution one piece of GEMV work sums: a contiguous block of W, which
// streams from memory far better than column strips of many rows. The
// chunks' partial sums are then added in chunk order; the chunk size is a
// constant so that the order does not depend on the number of workers.
const gemvChunk = 256

// gemvKernel computes out[n] = Σ_k x[k]·W(n, k) per matrix, for x the one
// row of a and W the weights b. With TransposeB (W stored [N, K], rows
// contiguous) each output is one dot product over a weight row; otherwise
// (W stored [K, N]) each chunk of gemvChunk rows accumulates axpys into a
// partial sum over all N, and the partial sums are added in order. Either
// way the weights are read once, in order.
func gemvKernel(dt graph.DType) Kernel {
	return func(c *Call) error {
		mc, err := newMatmulCall(c, dt)
		if err != nil {
			return err
		}
		n, k := mc.n, mc.k
		if mc.batch == 0 || mc.m == 0 || n == 0 {
			return nil
		}
		if mc.m > 1 {
			mc.smallM(c)
			return nil
		}
		// x as float32, one row per output matrix. a's M×K matrix is a
		// row or a column of K contiguous elements either way.
		xp := getFloats(mc.batch * k)
		defer putFloats(xp)
		xs := *xp
		for i := range mc.batch {
			aOff, _ := mc.offsets(i)
			mc.a.load(xs[i*k:(i+1)*k], aOff)
		}
		if mc.transB {
			if dt == graph.BFloat16 {
				pp := getFloats(len(xs))
				defer putFloats(pp)
				packGEMVX(*pp, xs, k)
				xs = *pp
			}
			c.ParallelFine(mc.batch*n, max(1, gemvGrain/max(k, 1)), func(lo, hi int) {
				for r := lo; r < hi; r++ {
					i, col := r/n, r%n
					_, bOff := mc.offsets(i)
					mc.out.set(r, gemvDot(mc.b, bOff+col*k, xs[i*k:(i+1)*k]))
				}
			})
			return nil
		}
		chunks := max(1, (k+gemvChunk-1)/gemvChunk) // K = 0: one chunk of zeros
		partp := getFloats(mc.batch * chunks * n)
		defer putFloats(partp)
		part := *partp
		c.Parallel(mc.batch*chunks, max(1, gemvGrain/max(gemvChunk*n, 1)), func(lo, hi int) {
			for it := lo; it < hi; it++ {
				i, k0 := it/chunks, it%chunks*gemvChunk
				_, bOff := mc.offsets(i)
				acc := part[it*n : (it+1)*n]
				clear(acc)
				for kk := k0; kk < min(k0+gemvChunk, k); kk++ {
					xk, w := xs[i*k+kk], bOff+kk*n
					switch dt {
					case graph.Float32:
						vec.AxpyF32(acc, xk, mc.b.f32[w:w+n])
					case graph.BFloat16:
						vec.AxpyBF16(acc, xk, mc.b.u16[w:w+n])
					default:
						vec.AxpyF16(acc, xk, mc.b.u16[w:w+n])
					}
				}
			}
		})
		// Add the chunks' partial sums in chunk order, into the first.
		c.Parallel(mc.batch*n, max(1, gemvGrain/max(chunks, 1)), func(lo, hi int) {
			for lo < hi {
				i, n0 := lo/n, lo%n
				n1 := min(n, n0+hi-lo)
				sum := part[i*chunks*n+n0 : i*chunks*n+n1]
				for ch := 1; ch < chunks; ch++ {
					p := part[(i*chunks+ch)*n:]
					vec.AxpyF32(sum, 1, p[n0:n1])
				}
				mc.out.store(i*n+n0, sum)
				lo += n1 - n0
			}
		})
		return nil
	}
}

package cpu

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/loomrt/loom/cpu/internal/vec"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// The assembly and the Go fallback accumulate every output in the same
// order; the assembly fuses each multiply-add. So on inputs whose products
// are exact in float32 they must agree bit for bit, and on any inputs
// within twice the error bound of a float32 sum, 2·(K+2)·2⁻²⁴·Σ|a·b| per
// element (plus one rounding of the result to a 16-bit dtype).

const unit = 1.0 / (1 << 24)

// exactInputs returns values with 8 significant bits at varied magnitudes:
// any product of two is exact in float32, and they are exact in bfloat16.
// Magnitudes stay within float16's normal range too.
func exactInputs(r *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(math.Ldexp(float64(r.IntN(256)-128), r.IntN(8)-10))
	}
	return out
}

func randomInputs(r *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = 2*r.Float32() - 1
	}
	return out
}

// withAssembly runs f with the assembly on or off, restoring the setting.
func withAssembly(on bool, f func()) {
	was := vec.SetAssembly(on)
	defer vec.SetAssembly(was)
	f()
}

func TestMicroKernelAssemblyAgrees(t *testing.T) {
	if !vec.Assembly() {
		t.Skip("no AVX2+FMA on this CPU: only the Go micro-kernel runs")
	}
	asm := gemmMicroKernel() // the assembly, since vec.Assembly()
	r := rand.New(rand.NewPCG(1, 2))
	for _, k := range []int{1, 7, 9, 15, 17, 33, 256, 1023} {
		for _, exact := range []bool{true, false} {
			gen := randomInputs
			if exact {
				gen = exactInputs
			}
			a, b := gen(r, gemmMR*k), gen(r, gemmNR*k)
			const ldc = 19 // rows of c apart, past the tile's 16 columns
			c0 := gen(r, (gemmMR-1)*ldc+gemmNR)
			for _, accumulate := range []bool{false, true} {
				ca, cg := append([]float32(nil), c0...), append([]float32(nil), c0...)
				asm(a, b, ca, k, ldc, accumulate)
				microKernelGo(a, b, cg, k, ldc, accumulate)
				for i := range gemmMR {
					for j := range ldc {
						e := i*ldc + j
						if e >= len(ca) {
							break
						}
						if j >= gemmNR {
							if ca[e] != c0[e] {
								t.Fatalf("k=%d: assembly wrote outside the tile, at row %d column %d", k, i, j)
							}
							continue
						}
						abs := 0.0
						if accumulate {
							abs = math.Abs(float64(c0[e]))
						}
						for p := range k {
							abs += math.Abs(float64(a[p*gemmMR+i]) * float64(b[p*gemmNR+j]))
						}
						bound := 2 * float64(k+2) * unit * abs
						if exact {
							bound = 0
						}
						if d := math.Abs(float64(ca[e]) - float64(cg[e])); d > bound || (exact && math.Float32bits(ca[e]) != math.Float32bits(cg[e])) {
							t.Fatalf("k=%d exact=%v accumulate=%v: c[%d,%d]: assembly %v, Go %v (bound %g)", k, exact, accumulate, i, j, ca[e], cg[e], bound)
						}
					}
				}
			}
		}
	}
}

// runMatMul runs a matmul kernel directly on one product.
func runMatMul(t *testing.T, kernel string, dt graph.DType, m, n, k int, ta, tb bool, a, b []float32) []float64 {
	t.Helper()
	p := &primitives.MatMulParams{M: uint32(m), N: uint32(n), K: uint32(k), Batch: 1}
	if ta {
		p.TransposeA = 1
	}
	if tb {
		p.TransposeB = 1
	}
	ab := make([]byte, len(a)*dt.Size())
	bb := make([]byte, len(b)*dt.Size())
	graph.PutFloat32s(dt, ab, a)
	graph.PutFloat32s(dt, bb, b)
	out := make([]byte, m*n*dt.Size())
	fn, ok := Lookup(kernel)
	if !ok {
		t.Fatalf("kernel %s is not registered", kernel)
	}
	c := &Call{Params: p, Args: []Arg{{Bytes: ab}, {Bytes: bb}, {Bytes: out}}, workers: 2}
	if err := fn(c); err != nil {
		t.Fatalf("%s: %v", kernel, err)
	}
	return graph.DecodeFloat64s(dt, out)
}

// TestMatMulAssemblyAgrees runs both kernels, every dtype and every
// transpose combination with the assembly and with the Go fallback on
// awkward sizes and compares them: bit for bit on exact products, within
// the bound otherwise.
func TestMatMulAssemblyAgrees(t *testing.T) {
	if !vec.Assembly() {
		t.Skip("no AVX2+FMA on this CPU: only the Go routines run")
	}
	r := rand.New(rand.NewPCG(3, 4))
	sizes := [][3]int{ // M, N, K
		{1, 1, 1}, {1, 7, 9}, {1, 15, 17}, {1, 33, 1023}, {1, 1023, 15},
		{2, 9, 1025}, {3, 1, 7}, {5, 17, 33}, {8, 1025, 9}, {16, 33, 1023},
		{7, 9, 15}, {9, 17, 33}, {15, 33, 7}, {17, 1, 9}, {33, 15, 1023},
		{7, 1023, 17}, {1023, 9, 7},
	}
	for _, dt := range primitives.MatMulDTypes {
		for _, s := range sizes {
			m, n, k := s[0], s[1], s[2]
			for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
				kernel := cpuKernel(t, dt, m, n, k, tr[0], tr[1])
				for _, exact := range []bool{true, false} {
					gen := randomInputs
					if exact {
						gen = exactInputs
					}
					a, b := gen(r, m*k), gen(r, k*n)
					var asm, fallback []float64
					withAssembly(true, func() { asm = runMatMul(t, kernel, dt, m, n, k, tr[0], tr[1], a, b) })
					withAssembly(false, func() { fallback = runMatMul(t, kernel, dt, m, n, k, tr[0], tr[1], a, b) })
					wa, wb := graph.DecodeFloat64s(dt, toBytes(dt, a)), graph.DecodeFloat64s(dt, toBytes(dt, b))
					for i := range m {
						for j := range n {
							abs := 0.0
							for p := range k {
								x, y := wa[i*k+p], wb[p*n+j]
								if tr[0] {
									x = wa[p*m+i]
								}
								if tr[1] {
									y = wb[j*k+p]
								}
								abs += math.Abs(x * y)
							}
							got, want := asm[i*n+j], fallback[i*n+j]
							bound := 2*float64(k+2)*unit*abs + ulp(dt, want)
							if exact {
								bound = 0
							}
							if d := math.Abs(got - want); d > bound {
								t.Fatalf("%s %s m=%d n=%d k=%d ta=%v tb=%v exact=%v: out[%d,%d]: assembly %v, Go %v (bound %g)",
									kernel, dt, m, n, k, tr[0], tr[1], exact, i, j, got, want, bound)
							}
						}
					}
				}
			}
		}
	}
}

// cpuKernel returns the kernel the CPU lowering picks for the product.
func cpuKernel(t *testing.T, dt graph.DType, m, n, k int, ta, tb bool) string {
	t.Helper()
	mm := primitives.MatMul{TransposeA: ta, TransposeB: tb}
	aShape, bShape := []int{m, k}, []int{k, n}
	if ta {
		aShape = []int{k, m}
	}
	if tb {
		bShape = []int{n, k}
	}
	in := []graph.Spec{{DType: dt, Shape: aShape}, {DType: dt, Shape: bShape}}
	outs, err := mm.Outputs(in)
	if err != nil {
		t.Fatal(err)
	}
	l := primitives.NewLowering(in, outs, New(Options{}).Caps())
	if err := mm.Lower(l); err != nil {
		t.Fatal(err)
	}
	return l.Dispatches[0].Kernel
}

func toBytes(dt graph.DType, v []float32) []byte {
	b := make([]byte, len(v)*dt.Size())
	graph.PutFloat32s(dt, b, v)
	return b
}

// ulp is one unit in the last place of v stored as dt: two float32 sums a
// little apart may round to neighbouring 16-bit values.
func ulp(dt graph.DType, v float64) float64 {
	bits := map[graph.DType]int{graph.Float32: 24, graph.Float16: 11, graph.BFloat16: 8}[dt]
	_, e := math.Frexp(v)
	return math.Ldexp(1, e-bits)
}

// TestMatMulKernelRejectsBadParams checks that params inconsistent with the
// buffers give an error naming the problem, never an index outside a
// buffer.
func TestMatMulKernelRejectsBadParams(t *testing.T) {
	buf := func(n int) []byte { return make([]byte, 4*n) }
	for _, c := range []struct {
		name    string
		kernel  string
		p       primitives.MatMulParams
		a, b, o int // buffer sizes in float32s
		want    string
	}{
		{"short a", "matmul_f32_tiled", primitives.MatMulParams{M: 4, N: 3, K: 5, Batch: 1}, 19, 15, 12, "argument a holds 19 elements; the params need 20"},
		{"short b", "matmul_f32_gemv", primitives.MatMulParams{M: 1, N: 3, K: 5, Batch: 1}, 5, 14, 3, "argument b holds 14 elements; the params need 15"},
		{"short out", "matmul_f32_tiled", primitives.MatMulParams{M: 4, N: 3, K: 5, Batch: 1}, 20, 15, 11, "argument out holds 11 elements; the params need 12"},
		{"batch past b", "matmul_f32_tiled", primitives.MatMulParams{M: 2, N: 2, K: 2, Batch: 3, BatchRank: 1,
			BatchShape: [primitives.MaxRank]uint32{3}, BatchStrideA: [primitives.MaxRank]uint32{1}, BatchStrideB: [primitives.MaxRank]uint32{1}},
			12, 8, 12, "argument b holds 8 elements; the params need 12"},
		{"batch count", "matmul_f32_tiled", primitives.MatMulParams{M: 2, N: 2, K: 2, Batch: 4, BatchRank: 1,
			BatchShape: [primitives.MaxRank]uint32{3}}, 16, 16, 16, "holds 3 matrices, params say 4"},
		{"batch rank", "matmul_f32_tiled", primitives.MatMulParams{M: 2, N: 2, K: 2, Batch: 1, BatchRank: 9}, 4, 4, 4, "batch rank 9"},
		{"small-M short b", "matmul_f32_gemv", primitives.MatMulParams{M: 3, N: 5, K: 9, Batch: 1, TransposeB: 1}, 27, 44, 15, "argument b holds 44 elements; the params need 45"},
		{"sizes past int", "matmul_f32_gemv", primitives.MatMulParams{M: 1<<32 - 1, N: 1<<32 - 1, K: 1<<32 - 1, Batch: 1, TransposeB: 1},
			4, 4, 4, "argument a holds 4 elements; the params need 18446744065119617024"},
		{"strides past int", "matmul_f32_tiled", primitives.MatMulParams{M: 1, N: 1, K: 1, Batch: 1<<32 - 1, BatchRank: 1,
			BatchShape: [primitives.MaxRank]uint32{1<<32 - 1}, BatchStrideA: [primitives.MaxRank]uint32{1<<32 - 1}}, 4, 4, 4, "argument a holds 4 elements"},
	} {
		fn, _ := Lookup(c.kernel)
		p := c.p
		err := fn(&Call{Params: &p, Args: []Arg{{Bytes: buf(c.a)}, {Bytes: buf(c.b)}, {Bytes: buf(c.o)}}, workers: 2})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

// TestSmallMTileAssemblyAgrees compares the small-M micro-kernels'
// assembly with their Go versions, for both layouts of the weights and
// every dtype, for depths around the 8-wide steps, one to three blocks of
// x rows, rows further apart than their length and the tile away from the
// start of the weights: bit for bit on exact products (the same additions
// in the same order), within the bound otherwise; and checks that they
// write their outputs only.
func TestSmallMTileAssemblyAgrees(t *testing.T) {
	if !vec.Assembly() {
		t.Skip("no AVX2+FMA on this CPU: only the Go micro-kernels run")
	}
	r := rand.New(rand.NewPCG(5, 6))
	dotAsm, axpyAsm := smallMTiles() // the assembly ones, where vec runs assembly
	for _, kern := range []struct {
		name     string
		shape    tileShape
		asm, gov smallMTile
	}{
		{"dot", dotTileShape, dotAsm, dotTileGo},
		{"axpy", axpyTileShape, axpyAsm, axpyTileGo},
	} {
		s := kern.shape
		for _, dt := range primitives.MatMulDTypes {
			for _, k := range []int{0, 1, 7, 8, 9, 16, 17, 33, 1023, 1025} {
				for blocks := 1; blocks <= 3; blocks++ {
					for _, exact := range []bool{true, false} {
						gen := randomInputs
						if exact {
							gen = exactInputs
						}
						rows, width := s.weights(k)
						ldw, ldx, wOff, ldo := width+5, k+3, 2*k+1, s.cols+3
						wb := toBytes(dt, gen(r, wOff+rows*ldw))
						w, wv := newFloats(dt, wb), graph.DecodeFloat64s(dt, wb)
						weight := func(c, p int) float64 { // W(c, p): output column c, element p
							if s.transB {
								return wv[wOff+c*ldw+p]
							}
							return wv[wOff+p*ldw+c]
						}
						xrows := blocks * s.xRows
						x := gen(r, xrows*ldx)
						out0 := gen(r, xrows*ldo)
						asm, gov := append([]float32(nil), out0...), append([]float32(nil), out0...)
						kern.asm(w, wOff, ldw, x, ldx, k, blocks, asm, ldo)
						kern.gov(w, wOff, ldw, x, ldx, k, blocks, gov, ldo)
						for i := range xrows {
							for c := range ldo {
								o := i*ldo + c
								if c >= s.cols {
									if asm[o] != out0[o] || gov[o] != out0[o] {
										t.Fatalf("%s %s k=%d: wrote out[%d] outside the outputs", kern.name, dt, k, o)
									}
									continue
								}
								abs := 0.0
								for p := range k {
									abs += math.Abs(weight(c, p) * float64(x[i*ldx+p]))
								}
								bound := 2 * float64(k+2) * unit * abs
								got, want := asm[o], gov[o]
								if exact && math.Float32bits(got) != math.Float32bits(want) || math.Abs(float64(got)-float64(want)) > bound {
									t.Fatalf("%s %s k=%d blocks=%d exact=%v: x row %d, column %d: assembly %v, Go %v (bound %g)",
										kern.name, dt, k, blocks, exact, i, c, got, want, bound)
								}
							}
						}
					}
				}
			}
		}
	}
}

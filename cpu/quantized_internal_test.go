package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	goruntime "runtime"
	"slices"
	"sync"
	"testing"
	"unsafe"

	"github.com/loomrt/loom/graph"
)

// randScales returns n random scales or biases in [lo, hi) stored as dt,
// as a view and as the float64 values it holds.
func randScales(r *rand.Rand, dt graph.DType, n int, lo, hi float32) (floats, []float64) {
	v := make([]float32, n)
	for i := range v {
		v[i] = lo + (hi-lo)*r.Float32()
	}
	b := make([]byte, n*dt.Size())
	graph.PutFloat32s(dt, b, v)
	return newFloats(dt, b), graph.DecodeFloat64s(dt, b)
}

// poison sets the elements of f from off on to NaN.
func poison(f floats, off int) {
	nan := float32(math.NaN())
	if f.dt == graph.Float32 {
		for i := off; i < len(f.f32); i++ {
			f.f32[i] = nan
		}
		return
	}
	var b [2]byte
	graph.PutFloat32s(f.dt, b[:], []float32{nan})
	for i := off; i < len(f.u16); i++ {
		f.u16[i] = uint16(b[0]) | uint16(b[1])<<8
	}
}

// qcode is, read independently of the kernels, the code that multiplies packed element e of x (packQX's
// order): for 8 bits byte e of the row; for 4 bits, element j of a run of
// 32 is the low nibble of the run's byte j (j < 16) or the high nibble of
// byte j−16.
func qcode(w []uint32, bits int, mask uint32, e int) uint32 {
	if bits == 8 {
		return w[e/4] >> (8 * (e % 4)) & mask
	}
	c, j := e/32, e%32
	b := w[c*4+j%16/4] >> (8 * (j % 4)) // byte j%16 of the run's 16 bytes
	if j < 16 {
		return b & 0x0f
	}
	return b >> 4 & 0x0f
}

// TestQDotTiles holds the assembly micro-kernels (AVX2, and AVX-512 where
// the CPU has it) and the Go one to a float64 sum of the same terms (x in
// fixed point with its scales, codes read by qcode, the scales and biases
// of each dtype at an offset), for three weight rows in one call: the
// integer sums are exact, so they agree within float32 rounding of the
// sum of the terms' magnitudes (each product's: the kernels convert
// partial sums of a group, which may be larger than the whole). The
// AVX-512 kernels must give the AVX2 ones' bits. The group counts take
// the one-row kernel through a lone short block, whole blocks of
// qdotGroups, and whole blocks followed by a short one.
func TestQDotTiles(t *testing.T) {
	kernels := asmKernels()
	if len(kernels) == 0 {
		t.Skip("no assembly micro-kernel on this CPU")
	}
	if _, ok := kernels["avx512"]; !ok {
		t.Log("the CPU has no AVX-512 VNNI (or LOOM_CPU_AVX512=0): the AVX-512 kernels are not tested")
	}
	r := rand.New(rand.NewPCG(3, 4))
	const n = 3
	for _, dt := range []graph.DType{graph.Float32, graph.BFloat16, graph.Float16} {
		for _, bits := range []int{4, 8} {
			for _, gs := range []int{32, 64, 128} {
				for _, groups := range []int{1, 2, 3, qdotGroups, 2*qdotGroups + 5, 2*qdotGroups + 6} {
					for _, rows := range []int{1, qdotXRows} {
						k, off := groups*gs, 5
						ldx, words := k+8, k*bits/32
						w := make([]uint32, n*words)
						for i := range w {
							w[i] = r.Uint32()
						}
						x := make([]int16, (rows-1)*ldx+k)
						for i := range x {
							x[i] = int16(r.IntN(65535) - 32767)
						}
						// NaN after the last row's scales and biases: a
						// kernel that reads them (even to multiply by zero)
						// fails
						scales, sv := randScales(r, dt, off+n*groups+qdotGroups, 0.001, 0.1)
						biases, bv := randScales(r, dt, off+n*groups+qdotGroups, -1, 1)
						poison(scales, off+n*groups)
						poison(biases, off+n*groups)
						sums, xscales := make([]float32, qxLen(rows, groups)), make([]float32, qxLen(rows, groups))
						for g := range groups {
							for i := range rows {
								sums[qxAt(rows, g, i)] = r.Float32()*20 - 10
								xscales[qxAt(rows, g, i)] = r.Float32() / 32767
							}
						}
						res := map[string][]float32{"go": make([]float32, n*rows)}
						qdotTileGo(bits, w, x, ldx, rows, k, gs, scales, biases, off, sums, xscales, res["go"], n)
						for name, kn := range kernels {
							xk := x
							if kn.relayout != nil {
								xk = slices.Clone(x)
								kn.relayout(bits, rows, gs, k, xk[:k])
							}
							res[name] = make([]float32, n*rows)
							kn.tile(bits, w, xk, ldx, rows, k, gs, scales, biases, off, sums, xscales, res[name], n)
						}
						if got, want := res["avx512"], res["avx2"]; got != nil {
							for o := range got {
								if math.Float32bits(got[o]) != math.Float32bits(want[o]) {
									t.Errorf("%s q%d g%d groups %d rows %d: output %d: AVX-512 %v, AVX2 %v", dt, bits, gs, groups, rows, o, got[o], want[o])
								}
							}
						}
						mask := uint32(1)<<bits - 1
						for wr := range n {
							for i := range rows {
								var want, abs float64
								for g := range groups {
									var dot, dotAbs float64
									for e := g * gs; e < (g+1)*gs; e++ {
										p := float64(qcode(w[wr*words:], bits, mask, e)) * float64(x[i*ldx+e])
										dot, dotAbs = dot+p, dotAbs+math.Abs(p)
									}
									sg := off + wr*groups + g
									sx := sv[sg] * float64(xscales[qxAt(rows, g, i)])
									a, b := sx*dot, bv[sg]*float64(sums[qxAt(rows, g, i)])
									want, abs = want+a+b, abs+math.Abs(sx)*dotAbs+math.Abs(b)
								}
								o := wr*rows + i
								for name, got := range res {
									if d := math.Abs(float64(got[o]) - want); !(d <= float64(groups+8)*abs/(1<<23)) {
										t.Errorf("%s q%d g%d groups %d rows %d: weight row %d, x row %d: %s %v, want %v (terms' magnitudes %v)",
											dt, bits, gs, groups, rows, wr, i, name, got[o], want, abs)
									}
								}
							}
						}
					}
				}
			}
		}
	}
}

// TestPackQX checks the fixed point of x: each element's code is the
// element over the step max|x|/32767 of its group rounded to the nearest
// integer, halves to even (within half a step of the element), in the
// order qcode pairs with the codes. The second group's largest magnitude
// is negative, exactly 32767 steps of 2^-10, and its other elements are
// halfway between two steps, positive and negative.
func TestPackQX(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const k, gs = 128, 64
	for _, bits := range []int{4, 8} {
		x := make([]float32, k)
		for i := range x {
			x[i] = r.Float32()*4 - 2
		}
		x[3] = 0
		const step = 1.0 / 1024
		x[gs+5] = -32767 * step
		for i := gs; i < k; i++ {
			if i != gs+5 {
				x[i] = (float32(r.IntN(60000)-30000) + 0.5) * step
			}
		}
		dst, xscales := make([]int16, k), make([]float32, qxLen(qdotXRows, k/gs))
		packQX(bits, dst, x, k, gs, 1, qdotXRows, xscales)
		for e := range k {
			// the element of x at packed position e: for 4 bits, runs of
			// 32 hold the even elements, then the odd ones
			src := e
			if j := e % 32; bits == 4 {
				src = e - j + 2*(j%16) + j/16
			}
			g := src / gs
			sx := float64(xscales[qxAt(qdotXRows, g, 1)])
			if g == 1 && sx != step {
				t.Fatalf("q%d: group 1's step %g, want %g", bits, sx, step)
			}
			if got := float64(dst[e]) * sx; math.Abs(got-float64(x[src])) > sx/2*1.0001 {
				t.Errorf("q%d: packed %d (x[%d] = %v): %d·%g = %v", bits, e, src, x[src], dst[e], sx, got)
			}
			if want := math.RoundToEven(float64(x[src] / float32(sx))); float64(dst[e]) != want {
				t.Errorf("q%d: packed %d (x[%d] = %v, %v steps): code %d, want %v", bits, e, src, x[src], float64(x[src])/sx, dst[e], want)
			}
		}
		for i, v := range xscales {
			if (v != 0) != (i == qxAt(qdotXRows, 0, 1) || i == qxAt(qdotXRows, 1, 1)) {
				t.Errorf("q%d: x scales %v: want row 1's two, the others zero", bits, xscales)
				break
			}
		}
	}
}

// TestPackQXGroupAssembly holds packQXGroup (the assembly where it runs)
// to packQXGroupGo bit for bit, codes and scale: random groups of 32, 64
// and 128 elements spanning many magnitudes, halfway cases, a group of
// zeros, of subnormals (whose scale underflows to 0), with ±Inf, with NaN,
// and a group whose maximum is negative.
func TestPackQXGroupAssembly(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	for _, bits := range []int{4, 8} {
		for _, gs := range []int{32, 64, 128} {
			for c := range 12 {
				x := make([]float32, gs)
				scale := float32(math.Ldexp(1, r.IntN(60)-30))
				for i := range x {
					x[i] = (r.Float32()*2 - 1) * scale
				}
				switch c {
				case 0:
					clear(x)
				case 1:
					for i := range x {
						x[i] = math.Float32frombits(uint32(r.IntN(3)))
					}
				case 2:
					x[r.IntN(gs)] = inf
				case 3:
					x[r.IntN(gs)], x[r.IntN(gs)] = -inf, inf
				case 4:
					x[r.IntN(gs)] = nan
				case 5:
					x[gs-1] = -4 * scale
				case 6: // halfway between two steps of 2^-10
					for i := range x {
						x[i] = (float32(r.IntN(60000)-30000) + 0.5) / 1024
					}
					x[0] = -32767.0 / 1024
				}
				got, want := make([]int16, gs), make([]int16, gs)
				sg, sw := packQXGroup(bits, got, x), packQXGroupGo(bits, want, x)
				if math.Float32bits(sg) != math.Float32bits(sw) {
					t.Fatalf("q%d, %d elements, case %d: scale %v, want %v", bits, gs, c, sg, sw)
				}
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("q%d, %d elements, case %d: code %d is %d, want %d (x %v)", bits, gs, c, i, got[i], want[i], x)
					}
				}
			}
		}
	}
}

// TestQSums checks the group sums of x against float32 sums in element
// order, bit for bit, for group counts around the four summed at once and
// for one and four rows a block.
func TestQSums(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, gs := range []int{32, 64} {
		for _, groups := range []int{1, 3, 4, 5, 9} {
			for _, m := range []int{1, 3, 6} {
				rows := 1
				if m > 1 {
					rows = qdotXRows
				}
				k, ldx := groups*gs, groups*gs+7
				x := make([]float32, m*ldx)
				for i := range x {
					x[i] = r.Float32()*8 - 4
				}
				n := qxLen(rows, groups)
				got := qsums(make([]float32, roundUp(m, rows)/rows*n), x, ldx, m, rows, k, gs)
				for i := range m {
					for g := range groups {
						var want float32
						for _, v := range x[i*ldx+g*gs : i*ldx+(g+1)*gs] {
							want += v
						}
						if at := i/rows*n + qxAt(rows, g, i%rows); got[at] != want {
							t.Fatalf("%d groups of %d, row %d of %d: group %d sums to %v, want %v", groups, gs, i, m, g, got[at], want)
						}
					}
				}
			}
		}
	}
}

// BenchmarkQDotTile times the micro-kernels on one cached weight row of
// 4096 codes (groups of 64, bfloat16 scales and biases), GB/s counting the
// codes: their arithmetic throughput, which must exceed the memory's for
// the GEMV to stream.
func BenchmarkQDotTile(b *testing.B) {
	const k, gs = 4096, 64
	r := rand.New(rand.NewPCG(1, 2))
	kernels := asmKernels()
	kernels["go"] = qdotKernel{tile: qdotTileGo}
	for _, bits := range []int{4, 8} {
		for _, rows := range []int{1, qdotXRows} {
			for _, name := range []string{"avx512", "avx2", "go"} {
				kn, ok := kernels[name]
				if !ok {
					continue
				}
				b.Run(fmt.Sprintf("q%d/rows=%d/%s", bits, rows, name), func(b *testing.B) {
					w := make([]uint32, k*bits/32)
					x := make([]int16, rows*k)
					scales, _ := randScales(r, graph.BFloat16, k/gs, 0, 1)
					sums, xscales, out := make([]float32, qxLen(rows, k/gs)), make([]float32, qxLen(rows, k/gs)), make([]float32, rows)
					b.SetBytes(int64(len(w) * 4))
					for b.Loop() {
						kn.tile(bits, w, x, k, rows, k, gs, scales, scales, 0, sums, xscales, out, 1)
					}
				})
			}
		}
	}
}

// BenchmarkQDotStream times the one-row micro-kernels over 4-bit weights
// far larger than the caches (the rows of a decode step's GEMVs, K =
// 1,024, groups of 64, bfloat16 scales and biases), on one core and on
// GOMAXPROCS cores (each its own share of the rows, as a GEMV splits
// them), beside a plain read of the same codes (sumWords, what the decode
// benchmark's read probe runs): GB/s counts the codes, scales and biases,
// and the codes for the read.
func BenchmarkQDotStream(b *testing.B) {
	const k, gs, n = 1024, 64, 1 << 18 // 128 MiB of codes
	r := rand.New(rand.NewPCG(3, 4))
	w := make([]uint32, n*k/8)
	for i := range w {
		w[i] = r.Uint32()
	}
	scales, _ := randScales(r, graph.BFloat16, n*k/gs, 0, 1)
	biases, _ := randScales(r, graph.BFloat16, n*k/gs, -1, 1)
	x := make([]int16, k)
	xl := qxLen(1, k/gs)
	kernels := asmKernels()
	for _, cores := range []int{1, goruntime.GOMAXPROCS(0)} {
		for _, name := range []string{"avx512", "avx2", "read"} {
			kn, ok := kernels[name]
			if !ok && name != "read" {
				continue
			}
			sink := make([]uint64, cores)
			// share streams rows lo to hi of the weights as worker c of a GEMV
			share := func(c, lo, hi int) {
				if name == "read" {
					sink[c] = sumWords(view[uint64](unsafe.Slice((*byte)(unsafe.Pointer(&w[lo*k/8])), (hi-lo)*k/2)))
					return
				}
				sums, xscales, out := make([]float32, xl), make([]float32, xl), make([]float32, qdotBatch)
				for r0 := lo; r0 < hi; r0 += qdotBatch {
					kn.tile(4, w[r0*k/8:], x, k, 1, k, gs, scales, biases, r0*k/gs, sums, xscales, out, qdotBatch)
				}
			}
			b.Run(fmt.Sprintf("q4/cores=%d/%s", cores, name), func(b *testing.B) {
				b.SetBytes(int64(len(w) * 4))
				if name != "read" {
					b.SetBytes(int64(len(w)*4 + 2*2*n*k/gs))
				}
				for b.Loop() {
					var wg sync.WaitGroup
					for c := range cores {
						wg.Go(func() { share(c, c*n/cores, (c+1)*n/cores) })
					}
					wg.Wait()
				}
			})
		}
	}
}

// BenchmarkQuantPackX times the serial work before each quantized GEMV of
// one row of x (bfloat16, groups of 64): widening, the group sums and the
// rounding to fixed point (packX), at the K of the Qwen3-0.6B decode's
// products.
func BenchmarkQuantPackX(b *testing.B) {
	for _, k := range []int{1024, 3072} {
		x := make([]byte, 2*k)
		v := make([]float32, k)
		r := rand.New(rand.NewPCG(1, 2))
		for i := range v {
			v[i] = r.Float32()*4 - 2
		}
		graph.PutFloat32s(graph.BFloat16, x, v)
		q := &quantCall{m: 1, n: 1, k: k, gs: 64, groups: k / 64, words: k / 8}
		b.Run(fmt.Sprintf("K=%d", k), func(b *testing.B) {
			for b.Loop() {
				q.packX(qdotSelect(), 4, newFloats(graph.BFloat16, x)).put()
			}
		})
	}
}

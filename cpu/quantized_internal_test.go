package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

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

// TestQDotTiles holds the assembly micro-kernels and the Go one to a
// float64 sum of the same terms (x in fixed point with its scales, codes
// read by qcode, the scales and biases of each dtype at an offset): the
// integer sums are exact, so they agree within float32 rounding of the
// sum of the terms' magnitudes.
func TestQDotTiles(t *testing.T) {
	asm := qdotTiles()
	if fmt.Sprintf("%p", asm) == fmt.Sprintf("%p", qdotTileGo) {
		t.Skip("no assembly micro-kernel on this CPU")
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, dt := range []graph.DType{graph.Float32, graph.BFloat16, graph.Float16} {
		for _, bits := range []int{4, 8} {
			for _, gs := range []int{32, 64, 128} {
				for _, rows := range []int{1, qdotXRows} {
					k, off := 3*gs, 5
					groups, ldx := k/gs, k+8
					w := make([]uint32, k*bits/32+5)
					for i := range w {
						w[i] = r.Uint32()
					}
					x := make([]int16, (rows-1)*ldx+k)
					for i := range x {
						x[i] = int16(r.IntN(65535) - 32767)
					}
					scales, sv := randScales(r, dt, off+groups+3, 0.001, 0.1)
					biases, bv := randScales(r, dt, off+groups+3, -1, 1)
					sums, xscales := make([]float32, rows*groups*8), make([]float32, rows*groups)
					for i := range sums {
						if i%8 == 0 {
							sums[i] = r.Float32()*20 - 10
						}
					}
					for i := range xscales {
						xscales[i] = r.Float32() / 32767
					}
					got, goRes := make([]float32, rows), make([]float32, rows)
					asm(bits, w, x, ldx, rows, k, gs, scales, biases, off, sums, xscales, got)
					qdotTileGo(bits, w, x, ldx, rows, k, gs, scales, biases, off, sums, xscales, goRes)
					mask := uint32(1)<<bits - 1
					for i := range rows {
						var want, abs float64
						for g := range groups {
							var dot float64
							for e := g * gs; e < (g+1)*gs; e++ {
								dot += float64(qcode(w, bits, mask, e)) * float64(x[i*ldx+e])
							}
							a, b := sv[off+g]*float64(xscales[g*rows+i])*dot, bv[off+g]*float64(sums[(g*rows+i)*8])
							want, abs = want+a+b, abs+math.Abs(a)+math.Abs(b)
						}
						for _, v := range []float32{got[i], goRes[i]} {
							if d := math.Abs(float64(v) - want); !(d <= float64(groups+8)*abs/(1<<23)) {
								t.Errorf("%s q%d g%d rows %d: row %d: assembly %v, Go %v, want %v", dt, bits, gs, rows, i, got[i], goRes[i], want)
							}
						}
					}
				}
			}
		}
	}
}

// TestPackQX checks the fixed point of x: within half a step of each
// element, the step max|x|/32767 of its group, and in the order qcode
// pairs with the codes.
func TestPackQX(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const k, gs = 128, 64
	for _, bits := range []int{4, 8} {
		x := make([]float32, k)
		for i := range x {
			x[i] = r.Float32()*4 - 2
		}
		x[3] = 0
		dst, xscales := make([]int16, k), make([]float32, 2*k/gs)
		packQX(bits, dst, x, k, gs, 1, 2, xscales)
		for e := range k {
			// the element of x at packed position e: for 4 bits, runs of
			// 32 hold the even elements, then the odd ones
			src := e
			if j := e % 32; bits == 4 {
				src = e - j + 2*(j%16) + j/16
			}
			g := src / gs
			sx := float64(xscales[g*2+1])
			if got := float64(dst[e]) * sx; math.Abs(got-float64(x[src])) > sx/2*1.0001 {
				t.Errorf("q%d: packed %d (x[%d] = %v): %d·%g = %v", bits, e, src, x[src], dst[e], sx, got)
			}
		}
		if xscales[0] != 0 || xscales[2] != 0 {
			t.Errorf("q%d: row 0's scales were written: %v", bits, xscales)
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
	for _, bits := range []int{4, 8} {
		for _, rows := range []int{1, qdotXRows} {
			for _, asm := range []bool{true, false} {
				b.Run(fmt.Sprintf("q%d/rows=%d/asm=%v", bits, rows, asm), func(b *testing.B) {
					tile := qdotTileGo
					if asm {
						if tile = qdotTiles(); fmt.Sprintf("%p", tile) == fmt.Sprintf("%p", qdotTileGo) {
							b.Skip("no assembly micro-kernel on this CPU")
						}
					}
					w := make([]uint32, k*bits/32)
					x := make([]int16, rows*k)
					scales, _ := randScales(r, graph.BFloat16, k/gs, 0, 1)
					sums, xscales, out := make([]float32, rows*k/gs*8), make([]float32, rows*k/gs), make([]float32, rows)
					b.SetBytes(int64(len(w) * 4))
					for b.Loop() {
						tile(bits, w, x, k, rows, k, gs, scales, scales, 0, sums, xscales, out)
					}
				})
			}
		}
	}
}

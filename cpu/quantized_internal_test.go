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

// TestQDotTiles holds the assembly micro-kernels and the Go one to a
// float64 sum of the same terms (packed x, codes read by qcode, the scales
// and biases of each dtype at an offset): they sum in different orders,
// each within float32 rounding of the sum of the terms' magnitudes.
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
					ldx := k + 8
					w := make([]uint32, k*bits/32+5)
					for i := range w {
						w[i] = r.Uint32()
					}
					x := make([]float32, (rows-1)*ldx+k)
					for i := range x {
						x[i] = r.Float32()*2 - 1
					}
					scales, sv := randScales(r, dt, off+k/gs+3, 0.001, 0.1)
					biases, bv := randScales(r, dt, off+k/gs+3, -1, 1)
					xu := make([]float32, len(x)) // x unpacked: odd 4-bit codes' x are 16 times the packed
					for e, v := range x {
						if xu[e] = v; bits == 4 && e%ldx%16 >= 8 {
							xu[e] = 16 * v
						}
					}
					sums := qsums(make([]float32, rows*k/gs*8), xu, ldx, rows, rows, k, gs)
					got, goRes := make([]float32, rows), make([]float32, rows)
					asm(bits, w, x, ldx, rows, k, gs, scales, biases, off, sums, got)
					qdotTileGo(bits, w, x, ldx, rows, k, gs, scales, biases, off, sums, goRes)
					mask := uint32(1)<<bits - 1
					for i := range rows {
						var want, abs float64
						for e := range k {
							g := off + e/gs
							xe := float64(xu[i*ldx+e])
							p := sv[g]*float64(qcode(w, bits, mask, e))*float64(x[i*ldx+e]) + bv[g]*xe
							want, abs = want+p, abs+math.Abs(p)+math.Abs(bv[g]*xe)
						}
						for _, v := range []float32{got[i], goRes[i]} {
							if d := math.Abs(float64(v) - want); !(d <= float64(k+8)*abs/(1<<24)) {
								t.Errorf("%s q%d g%d rows %d: row %d: assembly %v, Go %v, want %v", dt, bits, gs, rows, i, got[i], goRes[i], want)
							}
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
					x := make([]float32, rows*k)
					scales, _ := randScales(r, graph.BFloat16, k/gs, 0, 1)
					sums, out := make([]float32, rows*k/gs*8), make([]float32, rows)
					b.SetBytes(int64(len(w) * 4))
					for b.Loop() {
						tile(bits, w, x, k, rows, k, gs, scales, scales, 0, sums, out)
					}
				})
			}
		}
	}
}

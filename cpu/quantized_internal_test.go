package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestQDotTiles holds the assembly micro-kernels and the Go one to a
// float64 sum of the same products (packed x, codes read by qcode): they
// sum in different orders, each within float32 rounding of the sum of
// |products|.
func TestQDotTiles(t *testing.T) {
	asm := qdotTiles()
	if fmt.Sprintf("%p", asm) == fmt.Sprintf("%p", qdotTileGo) {
		t.Skip("no assembly micro-kernel on this CPU")
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, bits := range []int{4, 8} {
		for _, gs := range []int{32, 64, 128} {
			for _, rows := range []int{1, qdotXRows} {
				k := 3 * gs
				ldx := k + 8
				w := make([]uint32, k*bits/32+5)
				for i := range w {
					w[i] = r.Uint32()
				}
				x := make([]float32, (rows-1)*ldx+k)
				for i := range x {
					x[i] = r.Float32()*2 - 1
				}
				scales := make([]float32, k/gs)
				for i := range scales {
					scales[i] = r.Float32() + 0.1
				}
				got, goRes := make([]float32, rows), make([]float32, rows)
				asm(bits, w, x, ldx, rows, k, gs, scales, got)
				qdotTileGo(bits, w, x, ldx, rows, k, gs, scales, goRes)
				mask := uint32(1)<<bits - 1
				for i := range rows {
					var want, abs float64
					for e := range k {
						p := float64(scales[e/gs]) * float64(qcode(w, bits, mask, e)) * float64(x[i*ldx+e])
						want, abs = want+p, abs+math.Abs(p)
					}
					for _, v := range []float32{got[i], goRes[i]} {
						if d := math.Abs(float64(v) - want); !(d <= float64(k+4)*abs/(1<<24)) {
							t.Errorf("q%d g%d rows %d: row %d: assembly %v, Go %v, want %v", bits, gs, rows, i, got[i], goRes[i], want)
						}
					}
				}
			}
		}
	}
}

package cpu

import "time"

// MeasureMatMulPeak returns the float32 GFLOP/s of the tiled matmul's
// micro-kernel on panels that stay in L1, run by workers goroutines at once
// (best of reps runs of about 20 ms): the most the tiled matmul kernel can
// reach on this machine, which matmul figures are printed beside.
func MeasureMatMulPeak(workers, reps int) float64 {
	kernel := gemmMicroKernel()
	const k, calls = gemmKC, 2000
	var best time.Duration
	for r := range reps {
		start := time.Now()
		Parallel(workers, workers, 1, func(lo, hi int) {
			a := make([]float32, gemmMR*k)
			b := make([]float32, gemmNR*k)
			c := make([]float32, gemmMR*gemmNR)
			for range (hi - lo) * calls {
				kernel(a, b, c, k, gemmNR, true)
			}
		})
		if d := time.Since(start); r == 0 || d < best {
			best = d
		}
	}
	return float64(2*gemmMR*gemmNR*k*calls*workers) / best.Seconds() / 1e9
}

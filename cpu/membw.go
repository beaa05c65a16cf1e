package cpu

import (
	"time"
)

// Bandwidth is this machine's measured memory bandwidth, in GB/s (1e9 bytes
// per second).
type Bandwidth struct {
	Copy float64 // bytes read plus bytes written, copying a large buffer
	Read float64 // bytes read, summing a large buffer
}

// MeasureBandwidth times copies and reads of a buffer of the given size (far
// larger than the caches) with the given number of goroutines, and returns
// the best of reps runs of each.
func MeasureBandwidth(size, workers, reps int) Bandwidth {
	src := make([]byte, size)
	dst := make([]byte, size)
	for i := range src {
		src[i] = byte(i * 7)
	}
	copy(dst, src) // fault the pages in
	best := func(f func()) time.Duration {
		var b time.Duration
		for r := 0; r < reps; r++ {
			t := time.Now()
			f()
			if d := time.Since(t); r == 0 || d < b {
				b = d
			}
		}
		return b
	}
	tc := best(func() {
		Parallel(workers, size, 1<<20, func(lo, hi int) { copy(dst[lo:hi], src[lo:hi]) })
	})
	words := view[uint64](src)
	sums := make([]uint64, workers*8)
	tr := best(func() {
		per := (len(words) + workers - 1) / workers
		Parallel(workers, len(words), per, func(lo, hi int) {
			sums[lo/per*8] = sumWords(words[lo:hi])
		})
	})
	return Bandwidth{
		Copy: 2 * float64(size) / tc.Seconds() / 1e9,
		Read: float64(size) / tr.Seconds() / 1e9,
	}
}

// sumWords reads every word; the sum keeps the loop from being removed.
func sumWords(w []uint64) uint64 {
	var s0, s1, s2, s3 uint64
	i := 0
	for ; i+4 <= len(w); i += 4 {
		s0 += w[i]
		s1 += w[i+1]
		s2 += w[i+2]
		s3 += w[i+3]
	}
	for ; i < len(w); i++ {
		s0 += w[i]
	}
	return s0 + s1 + s2 + s3
}

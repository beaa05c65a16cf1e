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
	rp := &ReadProbe{words: view[uint64](src), sums: make([]uint64, workers*8), workers: workers}
	tr := best(rp.read)
	return Bandwidth{
		Copy: 2 * float64(size) / tc.Seconds() / 1e9,
		Read: float64(size) / tr.Seconds() / 1e9,
	}
}

// ReadProbe measures the read bandwidth over one buffer again and again,
// for figures taken in turns with the work they limit.
type ReadProbe struct {
	words   []uint64
	sums    []uint64
	workers int
}

// NewReadProbe allocates and faults in a buffer of size bytes (far larger
// than the caches) to be read by the given number of goroutines.
func NewReadProbe(size, workers int) *ReadProbe {
	words := make([]uint64, max(size/8, 1))
	for i := range words {
		words[i] = uint64(i)
	}
	return &ReadProbe{words: words, sums: make([]uint64, max(workers, 1)*8), workers: max(workers, 1)}
}

// Read reads the buffer once and returns the bandwidth, in GB/s.
func (p *ReadProbe) Read() float64 {
	start := time.Now()
	p.read()
	return float64(8*len(p.words)) / time.Since(start).Seconds() / 1e9
}

func (p *ReadProbe) read() {
	per := (len(p.words) + p.workers - 1) / p.workers
	Parallel(p.workers, len(p.words), per, func(lo, hi int) {
		p.sums[lo/per*8] = sumWords(p.words[lo:hi])
	})
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

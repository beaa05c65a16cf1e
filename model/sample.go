package model

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// SamplerOptions choose how the next token is drawn from the logits.
type SamplerOptions struct {
	// Temperature divides the logits; 0 means greedy (the argmax).
	Temperature float64
	// TopK keeps the K most likely tokens; 0 keeps all.
	TopK int
	// TopP keeps the smallest set of most likely tokens whose probabilities
	// add up to at least TopP; 0 or 1 keeps all.
	TopP float64
	// Seed seeds the draws: the same seed and logits give the same tokens.
	Seed uint64
}

// Sampler draws tokens from logits on the host.
type Sampler struct {
	opts  SamplerOptions
	rng   *rand.Rand
	order []int
	probs []float64
}

// NewSampler checks the options and returns a sampler.
func NewSampler(o SamplerOptions) (*Sampler, error) {
	switch {
	case !(o.Temperature >= 0) || math.IsInf(o.Temperature, 0):
		return nil, fmt.Errorf("sampler: temperature %v must be a finite number ≥ 0", o.Temperature)
	case o.TopK < 0:
		return nil, fmt.Errorf("sampler: top-k %d must be ≥ 0", o.TopK)
	case !(o.TopP >= 0 && o.TopP <= 1):
		return nil, fmt.Errorf("sampler: top-p %v must lie in [0, 1]", o.TopP)
	}
	return &Sampler{opts: o, rng: rand.New(rand.NewPCG(o.Seed, 0x10a3))}, nil
}

// Sample returns the next token for one sequence's logits. A NaN or +Inf
// logit is an error.
func (s *Sampler) Sample(logits []float32) (int, error) {
	if len(logits) == 0 {
		return 0, fmt.Errorf("sampler: no logits")
	}
	// One comparison rejects NaN and +Inf (−Inf, a masked token, is fine),
	// and the best value stays in a register: this scan of the whole
	// vocabulary runs every step for every sequence (151,936 logits:
	// 0.31–0.39 ms with a NaN and an Inf test per logit on the development
	// machine).
	best, top := 0, logits[0]
	for i, v := range logits {
		if !(v < float32(math.Inf(1))) {
			return 0, fmt.Errorf("sampler: logit %d is %v", i, v)
		}
		if v > top {
			best, top = i, v
		}
	}
	if s.opts.Temperature == 0 || math.IsInf(float64(logits[best]), -1) {
		return best, nil
	}
	// Probabilities relative to the best token, most likely first (ties by
	// id, so the order and hence the draw are deterministic).
	m := float64(logits[best])
	s.probs = slices.Grow(s.probs[:0], len(logits))[:len(logits)]
	s.order = slices.Grow(s.order[:0], len(logits))[:len(logits)]
	for i, v := range logits {
		s.probs[i] = math.Exp((float64(v) - m) / s.opts.Temperature)
		s.order[i] = i
	}
	keep := len(s.order)
	if k := s.opts.TopK; k > 0 && k < keep {
		keep = k
		s.selectTop(keep)
	}
	slices.SortFunc(s.order[:keep], s.compare)
	total := 0.0
	for _, i := range s.order[:keep] {
		total += s.probs[i]
	}
	if p := s.opts.TopP; p > 0 && p < 1 {
		cum := 0.0
		for n, i := range s.order[:keep] {
			cum += s.probs[i]
			if cum >= p*total {
				keep, total = n+1, cum
				break
			}
		}
	}
	u := s.rng.Float64() * total
	for _, i := range s.order[:keep] {
		u -= s.probs[i]
		if u < 0 {
			return i, nil
		}
	}
	return s.order[keep-1], nil // u within rounding of total
}

// compare orders token ids most likely first, ties by id.
func (s *Sampler) compare(a, b int) int {
	return cmp.Or(cmp.Compare(s.probs[b], s.probs[a]), cmp.Compare(a, b))
}

// selectTop moves the k tokens first in compare's order into s.order[:k],
// in no particular order: a heap of the k best so far, whose root is the
// worst of them. Sorting a whole vocabulary of 151,936 for top-k 40 took
// 40 ms a token; this is one pass.
func (s *Sampler) selectTop(k int) {
	h := s.order[:k]
	for i := k/2 - 1; i >= 0; i-- {
		s.siftDown(h, i)
	}
	for _, id := range s.order[k:] {
		if s.compare(id, h[0]) < 0 {
			h[0] = id
			s.siftDown(h, 0)
		}
	}
}

// siftDown restores the heap h (every parent after its children in
// compare's order) below i.
func (s *Sampler) siftDown(h []int, i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && s.compare(h[c+1], h[c]) > 0 {
			c++
		}
		if s.compare(h[c], h[i]) <= 0 {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

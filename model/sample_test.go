package model

import (
	"math"
	"strings"
	"testing"

	"github.com/loomrt/loom/internal/loomtest"
)

func TestSamplerGreedy(t *testing.T) {
	s, err := NewSampler(SamplerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		logits []float32
		want   int
	}{
		{[]float32{0.1, 3, -2, 2.9}, 1},
		{[]float32{-1}, 0},
		{[]float32{1, 5, 5}, 1}, // ties go to the lowest id
		{[]float32{float32(math.Inf(-1)), -3}, 1},
	} {
		if got, err := s.Sample(c.logits); err != nil || got != c.want {
			t.Errorf("Sample(%v) = %d, %v; want %d", c.logits, got, err, c.want)
		}
	}
}

func TestSamplerErrors(t *testing.T) {
	for _, o := range []SamplerOptions{{Temperature: -1}, {Temperature: math.NaN()}, {TopK: -2}, {TopP: 1.5}, {TopP: -0.1}} {
		if _, err := NewSampler(o); err == nil || !strings.Contains(err.Error(), "sampler") {
			t.Errorf("NewSampler(%+v): error %v, want one", o, err)
		}
	}
	s, _ := NewSampler(SamplerOptions{Temperature: 1})
	for _, logits := range [][]float32{nil, {1, float32(math.NaN())}, {float32(math.Inf(1)), 0}} {
		if _, err := s.Sample(logits); err == nil {
			t.Errorf("Sample(%v): no error", logits)
		}
	}
}

// draws samples n tokens from logits and returns how often each came up.
func draws(t *testing.T, o SamplerOptions, logits []float32, n int) []int {
	t.Helper()
	s, err := NewSampler(o)
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]int, len(logits))
	for range n {
		id, err := s.Sample(logits)
		if err != nil {
			t.Fatal(err)
		}
		counts[id]++
	}
	return counts
}

func TestSamplerDistribution(t *testing.T) {
	logits := loomtest.Float32s(loomtest.Rand(3), 11, -2, 2)
	const n, temp = 40000, 0.7
	counts := draws(t, SamplerOptions{Temperature: temp, Seed: 1}, logits, n)
	// The frequencies follow softmax(logits/T) within 5 standard deviations.
	z := 0.0
	for _, v := range logits {
		z += math.Exp(float64(v) / temp)
	}
	for i, v := range logits {
		p := math.Exp(float64(v)/temp) / z
		sd := math.Sqrt(float64(n) * p * (1 - p))
		if d := math.Abs(float64(counts[i]) - float64(n)*p); d > 5*sd+1 {
			t.Errorf("token %d drawn %d times, expected %.0f ± %.0f", i, counts[i], float64(n)*p, sd)
		}
	}
}

func TestSamplerTopKTopP(t *testing.T) {
	logits := []float32{0.5, 2, -1, 1.5, 0, 1.9, -3}
	// Top-k 2: only the two best (ids 1 and 5) ever come up.
	counts := draws(t, SamplerOptions{Temperature: 1, TopK: 2, Seed: 2}, logits, 3000)
	for i, c := range counts {
		if (i == 1 || i == 5) != (c > 0) {
			t.Fatalf("top-k 2 counts %v: want draws of ids 1 and 5 only", counts)
		}
	}
	// Top-p: probabilities of ids 1, 5, 3 are about .33, .30, .20; p 0.6
	// keeps ids 1 and 5, p 0.7 adds 3.
	for _, c := range []struct {
		p    float64
		keep []int
	}{{0.6, []int{1, 5}}, {0.7, []int{1, 5, 3}}, {0.01, []int{1}}} {
		counts := draws(t, SamplerOptions{Temperature: 1, TopP: c.p, Seed: 3}, logits, 3000)
		for i, n := range counts {
			in := false
			for _, k := range c.keep {
				in = in || k == i
			}
			if in != (n > 0) {
				t.Fatalf("top-p %v counts %v: want draws of ids %v only", c.p, counts, c.keep)
			}
		}
	}
}

func TestSamplerDeterministic(t *testing.T) {
	logits := loomtest.Float32s(loomtest.Rand(5), 300, -4, 4)
	o := SamplerOptions{Temperature: 0.9, TopK: 50, TopP: 0.95, Seed: 42}
	a, b := draws(t, o, logits, 500), draws(t, o, logits, 500)
	o.Seed = 43
	c := draws(t, o, logits, 500)
	same := func(x, y []int) bool {
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	if !same(a, b) {
		t.Fatal("the same seed gave different draws")
	}
	if same(a, c) {
		t.Fatal("different seeds gave the same 500 draws")
	}
}

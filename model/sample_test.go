package model

import (
	"cmp"
	"math"
	"slices"
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
	a, b := drawSequence(t, o, logits, 500), drawSequence(t, o, logits, 500)
	o.Seed = 43
	c := drawSequence(t, o, logits, 500)
	if !slices.Equal(a, b) {
		t.Fatal("the same seed gave different draws")
	}
	if slices.Equal(a, c) {
		t.Fatal("different seeds gave the same 500 draws")
	}
}

// drawSequence returns n tokens sampled from logits, in order.
func drawSequence(t *testing.T, o SamplerOptions, logits []float32, n int) []int {
	t.Helper()
	s, err := NewSampler(o)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int, n)
	for i := range out {
		if out[i], err = s.Sample(logits); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestSamplerTopKSelection checks top-k against sorting the whole
// vocabulary (top-k equal to the vocabulary size takes that path): the
// same seed must give the same tokens, over logits with many ties.
func TestSamplerTopKSelection(t *testing.T) {
	r := loomtest.Rand(9)
	logits := make([]float32, 2000)
	for i := range logits {
		logits[i] = float32(r.IntN(64)) / 8 // many equal logits
	}
	for _, k := range []int{1, 2, 7, 40, 1999} {
		for _, p := range []float64{0, 0.5, 0.95} {
			o := SamplerOptions{Temperature: 0.8, TopK: k, TopP: p, Seed: 7}
			got := drawSequence(t, o, logits, 300)
			want := referenceTopK(t, o, logits, 300)
			if !slices.Equal(got, want) {
				t.Fatalf("top-k %d top-p %v: draws %v, want %v (full sort)", k, p, got[:10], want[:10])
			}
		}
	}
}

// referenceTopK samples as Sample does, with top-k taken from a full sort
// of the vocabulary: the tokens outside it get logit −Inf (probability 0,
// sorted last), and the rest is drawn with top-k off.
func referenceTopK(t *testing.T, o SamplerOptions, logits []float32, n int) []int {
	t.Helper()
	best := slices.Max(logits)
	probs := make([]float64, len(logits))
	order := make([]int, len(logits))
	for i, v := range logits {
		probs[i] = math.Exp((float64(v) - float64(best)) / o.Temperature)
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(probs[b], probs[a]), cmp.Compare(a, b))
	})
	k := min(o.TopK, len(logits))
	o.TopK = 0
	kept := make([]float32, len(logits))
	for i := range kept {
		kept[i] = float32(math.Inf(-1))
	}
	for _, id := range order[:k] {
		kept[id] = logits[id]
	}
	return drawSequence(t, o, kept, n)
}

// BenchmarkSampleGreedy times a greedy draw over a Qwen3-sized vocabulary,
// which every decode step does once per sequence on the host.
func BenchmarkSampleGreedy(b *testing.B) {
	logits := loomtest.Float32s(loomtest.Rand(1), 151936, -10, 10)
	s, err := NewSampler(SamplerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Sample(logits); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(logits))*float64(b.N)/b.Elapsed().Seconds()/1e9, "Glogits/s")
}

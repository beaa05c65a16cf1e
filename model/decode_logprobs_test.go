package model

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
)

// TestDecoderLogprobs asks a Decoder for log-probs per sequence and
// changes what it asks between steps: the tokens are those of a decoder
// that asks for none; the log-probs are those of Step's logits for the
// same tokens (raw: before the window's penalties and the temperature),
// checked against a float64 log-softmax; a step with log-probs is a
// structure of its own, replayed while it stays (a change of structure
// traces again: the KV cache's state passes from trace to trace).
func TestDecoderLogprobs(t *testing.T) {
	sampling := []ops.Sampling{
		{},
		{Temperature: 0.9, TopK: 20, RepetitionPenalty: 1.3, PresencePenalty: 0.4, FrequencyPenalty: 0.3, Seed: 7},
		{Temperature: 1.2, TopP: 0.8, Seed: 1 << 40},
	}
	// asked[k] is what the step Next(k) delivers asked for.
	asked := [][]int{{5, -1, 0}, {5, -1, 0}, {5, -1, 0}, nil, nil, {-1, 20, 2}, {-1, 20, 2}, {20, -1, -1}, {3, 3, 3}, nil}
	const window = 6
	for _, tg := range loomtest.Targets(t) {
		e := loadTiny(t, tg, graph.Float32)
		seqs, plain, ref := []int{0, 1, 2}, []int{3, 4, 5}, []int{10, 11, 12}
		for _, id := range slices.Concat(seqs, plain, ref) {
			if err := e.Cache.Add(id); err != nil {
				t.Fatal(err)
			}
		}
		want := make([][]int32, len(asked))
		p, err := e.NewDecoder(plain, decodePrompts, sampling, window)
		if err != nil {
			t.Fatal(err)
		}
		dispatches := 0 // of a decode step without log-probs
		splits := 0     // its draws in two passes (Caps.SampleSplit), which the log-probs kernel makes in one
		for k := range asked {
			r, err := p.Next(k+1 < len(asked))
			if err != nil {
				t.Fatal(err)
			}
			want[k] = r.Tokens
			dispatches, splits = r.Stats.Dispatches, r.Stats.Counters["sample.split"]
		}
		d, err := e.NewDecoderWith(seqs, decodePrompts, sampling, DecoderOptions{PenaltyWindow: window, Logprobs: asked[0]})
		if err != nil {
			t.Fatal(err)
		}
		results := make([]*StepResult, len(asked))
		prev := -2 // the log-probs' top of the decode step before, −1 none
		for k, lp := range asked {
			more := k+1 < len(asked)
			if more {
				if err := d.SetLogprobs(asked[k+1]); err != nil {
					t.Fatal(err)
				}
			}
			got, err := d.Next(more)
			if err != nil {
				t.Fatal(err)
			}
			results[k] = got
			where := fmt.Sprintf("%s step %d", tg.Name, k)
			if !slices.Equal(got.Tokens, want[k]) {
				t.Fatalf("%s: tokens %v, without log-probs %v", where, got.Tokens, want[k])
			}
			if got.Stats.HostWaits > 1 {
				t.Fatalf("%s: %d host waits", where, got.Stats.HostWaits)
			}
			if k > 0 { // the log-probs come from the draw's dispatch
				want := dispatches
				if lp != nil {
					want -= splits
				}
				if got.Stats.Dispatches != want {
					t.Errorf("%s: %d dispatches, want %d (%d without log-probs, %d draws in two passes)", where, got.Stats.Dispatches, want, dispatches, splits)
				}
			}
			if k > 0 { // a decode step: compiled, replayed if its structure is the last one's
				top := -1
				if lp != nil {
					top = slices.Max(lp)
				}
				if hit := got.Stats.CacheHits > 0; hit != (top == prev) {
					t.Errorf("%s: replayed %v, want %v (log-probs top %d, before %d)", where, hit, top == prev, top, prev)
				}
				prev = top
			}
			if (got.Logprobs != nil) != (lp != nil) {
				t.Fatalf("%s: log-probs %v, asked for %v", where, got.Logprobs, lp)
			}
		}
		// The host loop feeds the same tokens to Step.
		next := slices.Clone(decodePrompts)
		for k, lp := range asked {
			r, err := e.Step(ref, next)
			if err != nil {
				t.Fatal(err)
			}
			for i, tok := range results[k].Tokens {
				var dr Draw
				drawn := Drawn{Token: tok}
				if lp != nil && lp[i] >= 0 {
					dr = Draw{Logprobs: true, TopLogprobs: lp[i]}
					drawn.Logprobs = results[k].Logprobs[i]
				}
				checkLogprobs(t, fmt.Sprintf("%s step %d sequence %d", tg.Name, k, i), drawn, dr, f64(r.Logits[i]))
				next[i] = []int32{tok}
			}
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		tg.NoHazards(t)
	}
}

// TestStepSampleLogprobsDispatches: StepSample's log-probs, the top 20
// included, cost no dispatch beside the draw's.
func TestStepSampleLogprobsDispatches(t *testing.T) {
	e := loadTiny(t, loomtest.Targets(t)[0], graph.Float32)
	dispatches := func(id int, d Draw) int {
		if err := e.Cache.Add(id); err != nil {
			t.Fatal(err)
		}
		got, err := e.StepSample([]int{id}, [][]int32{decodePrompts[0]}, []Draw{d})
		if err != nil {
			t.Fatal(err)
		}
		if d.Logprobs && len(got[0].Top) != d.TopLogprobs {
			t.Fatalf("%d top log-probs, want %d", len(got[0].Top), d.TopLogprobs)
		}
		return e.Model.rt.LastStats().Dispatches
	}
	plain := dispatches(0, Draw{})
	if n := dispatches(1, Draw{Logprobs: true, TopLogprobs: 20}); n != plain {
		t.Errorf("a step with the top 20 log-probs ran %d dispatches, without %d", n, plain)
	}
}

func TestDecoderLogprobsErrors(t *testing.T) {
	e := loadTiny(t, loomtest.Targets(t)[0], graph.Float32)
	if err := e.Cache.Add(0); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		logprobs []int
		want     string
	}{
		{[]int{21}, "sequence 0: 21 top log-probs: want at most 20"},
		{[]int{1, 2}, "2 log-probs settings for 1 sequences"},
	} {
		_, err := e.NewDecoderWith([]int{0}, [][]int32{{1}}, []ops.Sampling{{}}, DecoderOptions{Logprobs: c.logprobs})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("log-probs %v: error %v, want %q", c.logprobs, err, c.want)
		}
	}
	if e.Cache.Len(0) != 0 {
		t.Errorf("a refused decoder left %d tokens in the cache", e.Cache.Len(0))
	}
}

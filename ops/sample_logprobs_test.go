package ops_test

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
)

// checkLogprobs evaluates c's draw with log-probs of dist (float32 [S, V]
// values of c's dtype; nil: the logits) on tg, beside the draw without,
// and compares: the same tokens; column 0 the token and its
// log-probability; the top ids exactly, and every log-probability with
// the float64 reference's (bit-near on the CPU, within the float32
// exponentials' and sums' rounding on a GPU).
func checkLogprobs(t *testing.T, tg loomtest.Target, what string, c sampleCase, dist []float32, top int) {
	t.Helper()
	s, v := c.s(), c.v()
	if dist == nil {
		dist = c.logits
	}
	logits := graph.FromFloat32sAs(c.dt, c.logits, s, v)
	counters, window := graph.FromInt32s(c.counters), graph.FromInt32s(c.window, s, c.w)
	params, keys := ops.SamplingArrays(c.settings)
	plain := ops.SampleWith(logits, counters, window, params, keys)
	d := logits
	if &dist[0] != &c.logits[0] {
		d = graph.FromFloat32sAs(c.dt, dist, s, v)
	}
	tokens, ids, lps := ops.SampleLogprobs(logits, counters, window, params, keys, d, top)
	tg.Eval(t, plain, tokens, ids, lps)
	want, _ := plain.Int32s()
	got, _ := tokens.Int32s()
	gotIDs, _ := ids.Int32s()
	gotLP, err := lps.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s: %s: tokens %v with log-probs, %v without", tg.Name, what, got, want)
	}
	if diff := loomtest.LogprobsDiff(loomtest.Round(c.dt, dist), v, top, got, gotIDs, gotLP, tg.Exact); diff != "" {
		t.Fatalf("%s: %s: %s", tg.Name, what, diff)
	}
}

// TestSampleLogprobs checks the log-probs against the float64 reference
// on awkward vocabularies (1, odd, past a threadgroup's 512 threads), with
// every dtype, filters and penalties on the draw, ties and non-finite
// values, and log-probs of the logits themselves or of another array.
func TestSampleLogprobs(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, tg := range loomtest.Targets(t) {
		for _, dt := range primitives.FloatDTypes {
			for ci, c := range []struct{ s, v, top int }{{1, 1, 0}, {2, 1, 1}, {3, 7, 7}, {3, 7, 2}, {2, 33, 20}, {4, 1000, 20}, {3, 4099, 5}} {
				r := loomtest.Rand(uint64(ci)*100 + uint64(dt))
				sc := randomSampleCase(r, dt, c.s, c.v, 1+r.IntN(5))
				var dist []float32
				if ci%2 == 1 {
					dist = loomtest.Float32s(r, c.s*c.v, -6, 6)
				}
				if c.v > 10 { // ties, and the non-finite values
					x := sc.logits
					if dist != nil {
						x = dist
					}
					x[1], x[5], x[c.v+2] = x[3], nan, -inf
					x[c.v+7] = x[c.v+4]
				}
				if c.v > 1100 { // the most likely tied within a GPU thread's share (512 apart) and across threads
					x := sc.logits
					if dist != nil {
						x = dist
					}
					x[10], x[10+512], x[10+1024], x[20], x[21] = 9, 9, 9, 8.5, 8.5
					if c.v > 3600 { // a GPU thread's share holds the top 5, the last two after its list is full
						for j, v := range []float32{20, 19, 18, 17, 16, 19.5, 18.5} {
							x[5+512*j] = v
						}
					}
				}
				checkLogprobs(t, tg, fmt.Sprintf("%s S %d V %d top %d", dt, c.s, c.v, c.top), sc, dist, c.top)
			}
			// Rows of ties and non-finite values, greedy and drawn.
			for _, row := range []struct {
				logits []float32
				top    int
			}{
				{[]float32{1, 3, 3, 0, 3, 2}, 4},
				{[]float32{1, inf, 2, inf, nan}, 5},
				{[]float32{nan, -inf, -inf}, 3},
				{[]float32{-inf, 0, -inf, -inf}, 3},
			} {
				for _, o := range []ops.Sampling{{}, {Temperature: 1, Seed: 4}} {
					sc := repeated(row.logits, o, 3)
					sc.dt = dt
					checkLogprobs(t, tg, fmt.Sprintf("%s %v %+v", dt, row.logits, o), sc, nil, row.top)
				}
			}
		}
	}
}

// TestSampleLogprobsQwenVocabulary reports the top 20 over Qwen3's 151,936
// tokens, with the settings of a chat front end.
func TestSampleLogprobsQwenVocabulary(t *testing.T) {
	r := loomtest.Rand(20)
	const v = 151936
	c := randomSampleCase(r, graph.BFloat16, 3, v, 16)
	c.settings[0] = ops.Sampling{}
	c.settings[1] = ops.Sampling{Temperature: 0.7, TopK: 40, TopP: 0.95, Seed: 1}
	c.settings[2] = ops.Sampling{Temperature: 0.8, TopP: 0.9, RepetitionPenalty: 1.1, PresencePenalty: 0.5, Seed: 2}
	for _, tg := range loomtest.Targets(t) {
		checkLogprobs(t, tg, "vocabulary 151936", c, nil, primitives.SampleMaxTop)
	}
}

func TestSampleLogprobsErrors(t *testing.T) {
	logits := graph.FromFloat32s(make([]float32, 6), 2, 3)
	ctr := graph.FromInt32s([]int32{0, 1})
	params, keys := ops.SamplingArrays(make([]ops.Sampling, 2))
	for _, c := range []struct {
		dist *graph.Array
		top  int
		want string
	}{
		{logits, 21, "21 top log-probs: want 0 to 20"},
		{logits, -1, "-1 top log-probs"},
		{logits, 4, "4 top log-probs exceed the vocabulary of 3"},
		{nil, 1, "dist is nil"},
		{graph.FromFloat32s(make([]float32, 8), 2, 4), 1, "dist float32[2 4] must have the logits' dtype and shape float32[2 3]"},
		{graph.FromFloat32sAs(graph.BFloat16, make([]float32, 6), 2, 3), 1, "dist bfloat16[2 3] must have"},
	} {
		tokens, ids, lps := ops.SampleLogprobs(logits, ctr, nil, params, keys, c.dist, c.top)
		for _, a := range []*graph.Array{tokens, ids, lps} {
			if err := a.Err(); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "sample") {
				t.Errorf("top %d: error %v, want one with %q", c.top, err, c.want)
			}
		}
	}
}

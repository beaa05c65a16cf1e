//go:build linux && amd64

package metal_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
)

// TestEmulatedSample draws tokens with the MSL sampling kernels and checks
// them against the float64 reference: equal wherever the reference's margin
// leaves no room for the float32 exponentials to decide otherwise.
func TestEmulatedSample(t *testing.T) {
	emu, _ := emuRuntimes(t, kernelsWithPrefix("sample_", "add_i32")...)
	nan, inf := math.NaN(), math.Inf(1)
	for _, dt := range primitives.FloatDTypes {
		for ci, c := range []struct{ s, v, w int }{{1, 1, 0}, {24, 7, 3}, {24, 100, 4}, {4, 1000, 5}, {2, 4099, 2}} {
			r := loomtest.Rand(uint64(ci)*10 + uint64(dt))
			logits := loomtest.Float32s(r, c.s*c.v, -4, 4)
			vals := loomtest.Round(dt, logits)
			if c.v > 10 {
				vals[3], vals[4], vals[c.v+1] = nan, inf, -inf
			}
			settings := make([]ops.Sampling, c.s)
			counters := make([]int32, c.s)
			window := make([]int32, c.s*c.w)
			for i := range settings {
				settings[i] = ops.Sampling{Temperature: 0.5 + r.Float32(), TopK: r.IntN(c.v + 1), TopP: []float32{0, 0.3, 0.6, 0.9}[r.IntN(4)],
					MinP: []float32{0, 0.01}[r.IntN(2)], RepetitionPenalty: 1.2, Seed: r.Uint64()}
				counters[i] = int32(r.Uint32())
			}
			settings[0].Temperature = 0 // greedy
			for i := range window {
				window[i] = int32(r.IntN(c.v+1)) - 1
			}
			for i := range logits {
				logits[i] = float32(vals[i])
			}
			got := ops.Sample(graph.FromFloat32sAs(dt, logits, c.s, c.v), graph.FromInt32s(counters), graph.FromInt32s(window, c.s, c.w), settings)
			if err := emu.Eval(got); err != nil {
				t.Fatalf("%s %v: %v", dt, c, err)
			}
			ids, err := got.Int32s()
			if err != nil {
				t.Fatal(err)
			}
			for i, id := range ids {
				want, margin := loomtest.SampleRef(vals[i*c.v:(i+1)*c.v], settings[i], counters[i], window[i*c.w:(i+1)*c.w])
				if int(id) != want && margin >= 1e-5 {
					t.Errorf("%s %v row %d (%+v): token %d, want %d (margin %.3g)", dt, c, i, settings[i], id, want, margin)
				}
			}
		}
	}
	// A window id past the vocabulary is an error of the evaluation.
	window := ops.Add(graph.FromInt32s([]int32{0, 5}, 1, 2), graph.FromInt32s([]int32{0, 1}, 1, 2))
	bad := ops.Sample(graph.FromFloat32s(make([]float32, 6), 1, 6), graph.FromInt32s([]int32{0}), window, []ops.Sampling{{RepetitionPenalty: 2}})
	if err := emu.Eval(bad); err == nil || !strings.Contains(err.Error(), "window entry 1 is 6") {
		t.Fatalf("window id 6 of 6 tokens: got %v, want an error naming window entry 1", err)
	}
}

// TestEmulatedSampleLogprobs checks the MSL kernels' log-probs against the
// float64 reference, beside the tokens of the plain kernels: the logits'
// own log-probs and another array's, ties and non-finite values, vocabularies
// of one token, odd ones and more than a threadgroup's threads.
func TestEmulatedSampleLogprobs(t *testing.T) {
	emu, _ := emuRuntimes(t, kernelsWithPrefix("sample_")...)
	nan, inf := math.NaN(), math.Inf(1)
	for _, dt := range primitives.FloatDTypes {
		for ci, c := range []struct{ s, v, top int }{{1, 1, 1}, {3, 7, 7}, {24, 100, 20}, {2, 1000, 0}, {2, 4099, 20}, {2, 4099, 5}} {
			r := loomtest.Rand(uint64(ci)*10 + uint64(dt) + 500)
			logits := loomtest.Round(dt, loomtest.Float32s(r, c.s*c.v, -4, 4))
			dist := logits
			if ci%2 == 1 {
				dist = loomtest.Round(dt, loomtest.Float32s(r, c.s*c.v, -6, 6))
			}
			if c.v > 10 {
				dist[1], dist[3], dist[4], dist[c.v+1], dist[c.v+5] = dist[2], nan, inf, -inf, dist[c.v+7]
			}
			if c.v > 1100 { // the most likely tied within a thread's share (512 apart) and across threads
				dist[c.v+10], dist[c.v+10+512], dist[c.v+10+1024], dist[c.v+20], dist[c.v+21] = 9, 9, 9, 8.5, 8.5
			}
			if c.v > 3600 { // one thread's share holds the top 5, the last two after its list is full
				for j, x := range []float64{20, 19, 18, 17, 16, 19.5, 18.5} {
					dist[5+512*j] = x
				}
			}
			settings := make([]ops.Sampling, c.s)
			counters := make([]int32, c.s)
			for i := range settings {
				settings[i] = ops.Sampling{Temperature: 0.5 + r.Float32(), TopK: r.IntN(c.v + 1), TopP: []float32{0, 0.6, 0.9}[r.IntN(3)], Seed: r.Uint64()}
				counters[i] = int32(r.Uint32())
			}
			settings[0].Temperature = 0
			asArray := func(v []float64) *graph.Array {
				f := make([]float32, len(v))
				for i, x := range v {
					f[i] = float32(x)
				}
				return graph.FromFloat32sAs(dt, f, c.s, c.v)
			}
			l, ctr, win := asArray(logits), graph.FromInt32s(counters), graph.FromInt32s(nil, c.s, 0)
			d := l
			if ci%2 == 1 || c.v > 10 {
				d = asArray(dist)
			}
			params, keys := ops.SamplingArrays(settings)
			plain := ops.SampleWith(l, ctr, win, params, keys)
			tokens, ids, lps := ops.SampleLogprobs(l, ctr, win, params, keys, d, c.top)
			if err := emu.Eval(plain, tokens, ids, lps); err != nil {
				t.Fatalf("%s %v: %v", dt, c, err)
			}
			want, _ := plain.Int32s()
			got, _ := tokens.Int32s()
			gotIDs, _ := ids.Int32s()
			gotLP, err := lps.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%s %v: tokens %v with log-probs, %v without", dt, c, got, want)
			}
			if diff := loomtest.LogprobsDiff(dist, c.v, c.top, got, gotIDs, gotLP, false); diff != "" {
				t.Errorf("%s %v: %s", dt, c, diff)
			}
		}
	}
}

package ops_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// sampleCase is one evaluation of ops.Sample: S rows of V logits with
// their settings, counters and windows.
type sampleCase struct {
	dt       graph.DType
	logits   []float32 // [S, V], rounded to dt
	settings []ops.Sampling
	counters []int32
	window   []int32 // [S, W]
	w        int
}

func (c sampleCase) s() int { return len(c.settings) }
func (c sampleCase) v() int { return len(c.logits) / c.s() }

func (c sampleCase) build() *graph.Array {
	return ops.Sample(graph.FromFloat32sAs(c.dt, c.logits, c.s(), c.v()), graph.FromInt32s(c.counters),
		graph.FromInt32s(c.window, c.s(), c.w), c.settings)
}

// want returns the reference's token and margin for row i.
func (c sampleCase) want(i int) (int, float64) {
	v := c.v()
	row := make([]float64, v)
	for j := range row {
		row[j] = float64(c.logits[i*v+j])
	}
	return loomtest.SampleRef(row, c.settings[i], c.counters[i], c.window[i*c.w:(i+1)*c.w])
}

// randomSettings returns settings that exercise each filter alone, all of
// them together, greedy and the degenerate values.
func randomSettings(r *rand.Rand, v int) ops.Sampling {
	o := ops.Sampling{Temperature: 0.3 + 1.5*r.Float32(), Seed: r.Uint64()}
	switch r.IntN(8) {
	case 0:
		o.Temperature = 0
	case 1:
		o.TopK = 1 + r.IntN(v+2) // past V too
	case 2:
		o.TopP = 0.05 + 0.95*r.Float32()
	case 3:
		o.MinP = r.Float32() * 0.5
	case 4:
		o.RepetitionPenalty = 0.5 + 1.5*r.Float32()
	case 5:
		o.TopK, o.TopP, o.MinP, o.RepetitionPenalty = 1+r.IntN(v), 0.5+0.5*r.Float32(), 0.05*r.Float32(), 1.3
		o.PresencePenalty, o.FrequencyPenalty = 0.4, 0.3
	case 6:
		o.TopP = 1
	case 7:
		o.PresencePenalty, o.FrequencyPenalty = 3*r.Float32()-1, 3*r.Float32()-1
		if r.IntN(2) == 0 {
			o.Temperature = 0
		}
	}
	return o
}

func randomSampleCase(r *rand.Rand, dt graph.DType, s, v, w int) sampleCase {
	c := sampleCase{dt: dt, w: w, counters: make([]int32, s), window: make([]int32, s*w)}
	spread := float32(1 + r.IntN(8))
	c.logits = loomtest.Float32s(r, s*v, -spread, spread)
	for i, x := range loomtest.Round(dt, c.logits) {
		c.logits[i] = float32(x)
	}
	for i := range s {
		c.settings = append(c.settings, randomSettings(r, v))
		c.counters[i] = int32(r.Uint32())
	}
	for i := range c.window {
		c.window[i] = int32(r.IntN(v+v/2)) - int32(v/2)
		if c.window[i] < 0 { // padding, or a token for the repetition penalty only
			c.window[i] = []int32{-1, primitives.RepetitionOnly(int32(r.IntN(v)))}[r.IntN(2)]
		}
	}
	return c
}

// checkSample evaluates c on tg and compares every token with the
// reference: exactly on the CPU targets; on a GPU, whose float32
// exponentials differ from float64's in the last bits, a different token is
// allowed only where the reference's margin is below 1e-5. It returns the
// number of such ambiguous rows.
func checkSample(t *testing.T, tg loomtest.Target, what string, c sampleCase) int {
	t.Helper()
	got := c.build()
	tg.Eval(t, got)
	ids, err := got.Int32s()
	if err != nil {
		t.Fatal(err)
	}
	ambiguous := 0
	for i, id := range ids {
		want, margin := c.want(i)
		if int(id) == want {
			continue
		}
		if tg.Exact || margin >= 1e-5 {
			t.Fatalf("%s: %s row %d (%+v, counter %d): token %d, want %d (margin %.3g)", tg.Name, what, i, c.settings[i], c.counters[i], id, want, margin)
		}
		ambiguous++
	}
	return ambiguous
}

func TestSampleMatchesReference(t *testing.T) {
	for _, tg := range loomtest.Targets(t) {
		rows, ambiguous := 0, 0
		for _, dt := range primitives.FloatDTypes {
			for _, s := range []int{1, 3, 8} {
				for _, v := range []int{1, 7, 1000, 2*primitives.SampleGroupElems + 3} { // the last: CUDA's split form, 3 groups
					for seed := range uint64(6) {
						r := loomtest.Rand(seed*1000 + uint64(s*10+v) + uint64(dt)<<20)
						c := randomSampleCase(r, dt, s, v, 1+r.IntN(9))
						ambiguous += checkSample(t, tg, fmt.Sprintf("%s S %d V %d seed %d", dt, s, v, seed), c)
						rows += s
					}
				}
			}
		}
		if ambiguous*100 > rows {
			t.Errorf("%s: %d of %d rows differ from the reference near a boundary: more than 1%%", tg.Name, ambiguous, rows)
		}
	}
}

// TestSampleQwenVocabulary draws over Qwen3's 151,936 tokens once, with
// the filters a chat front end uses.
func TestSampleQwenVocabulary(t *testing.T) {
	r := loomtest.Rand(151936)
	const v = 151936
	c := randomSampleCase(r, graph.BFloat16, 4, v, 64)
	c.settings[0] = ops.Sampling{}
	c.settings[1] = ops.Sampling{Temperature: 0.7, TopK: 40, TopP: 0.95, Seed: 1}
	c.settings[2] = ops.Sampling{Temperature: 0.6, TopP: 0.9, MinP: 0.05, RepetitionPenalty: 1.1, Seed: 2}
	c.settings[3] = ops.Sampling{Temperature: 0.8, TopK: 20, PresencePenalty: 0.5, FrequencyPenalty: 0.25, Seed: 3}
	for _, tg := range loomtest.Targets(t) {
		checkSample(t, tg, "vocabulary 151936", c)
	}
}

// TestSamplePresenceFrequency checks the presence and frequency penalties
// with the repetition penalty against a float64 computation of the
// penalized logits, x/r (or x·r) − presence − count·frequency: greedy draws
// on every target give its first maximum wherever the runner-up is not
// within float32 rounding.
func TestSamplePresenceFrequency(t *testing.T) {
	r := loomtest.Rand(77)
	const s, v, w = 40, 13, 9
	c := sampleCase{dt: graph.Float32, w: w, counters: make([]int32, s), logits: loomtest.Float32s(r, s*v, -3, 3), window: make([]int32, s*w)}
	for i := range c.window {
		c.window[i] = int32(r.IntN(v/2+2)) - 1 // few distinct ids: repeats
		if r.IntN(4) == 0 {
			c.window[i] = primitives.RepetitionOnly(int32(r.IntN(v / 2)))
		}
	}
	for i := range s {
		o := ops.Sampling{PresencePenalty: 2*r.Float32() - 0.5, FrequencyPenalty: 1.5*r.Float32() - 0.5}
		if i%2 == 1 {
			o.RepetitionPenalty = 0.7 + r.Float32()
		}
		c.settings = append(c.settings, o)
	}
	for _, tg := range loomtest.Targets(t) {
		got := c.build()
		tg.Eval(t, got)
		ids, err := got.Int32s()
		if err != nil {
			t.Fatal(err)
		}
		for i, id := range ids {
			o := c.settings[i]
			y := make([]float64, v)
			for j := range y {
				y[j] = float64(c.logits[i*v+j])
			}
			n := map[int32]int{} // a repetition-only token counts 0
			for _, e := range c.window[i*w : (i+1)*w] {
				switch {
				case e >= 0:
					n[e]++
				case e <= -2:
					n[-2-e] += 0
				}
			}
			for id, k := range n {
				if pen := float64(o.RepetitionPenalty); pen != 0 {
					if y[id] > 0 {
						y[id] /= pen
					} else {
						y[id] *= pen
					}
				}
				if k > 0 {
					y[id] -= float64(o.PresencePenalty) + float64(k)*float64(o.FrequencyPenalty)
				}
			}
			best := 0
			for j := range y {
				if y[j] > y[best] {
					best = j
				}
			}
			gap := math.Inf(1)
			for j := range y {
				if j != best {
					gap = min(gap, y[best]-y[j])
				}
			}
			if int(id) != best && gap > 1e-5 {
				t.Errorf("%s: row %d (%+v, window %v): token %d, want %d (penalized %v)", tg.Name, i, o, c.window[i*w:(i+1)*w], id, best, y)
			}
		}
	}
}

// drawTokens evaluates c on the plain CPU device and returns its tokens.
func drawTokens(t *testing.T, rt *runtime.Runtime, c sampleCase) []int32 {
	t.Helper()
	got := c.build()
	if err := rt.Eval(got); err != nil {
		t.Fatal(err)
	}
	ids, err := got.Int32s()
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func cpuRuntime(t *testing.T, workers int) *runtime.Runtime {
	t.Helper()
	rt, err := runtime.New(cpu.New(cpu.Options{Workers: workers}), runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// repeated returns a case of n rows that all hold the same logits and
// settings, with counters 0…n−1: n independent draws.
func repeated(logits []float32, o ops.Sampling, n int) sampleCase {
	c := sampleCase{dt: graph.Float32, counters: make([]int32, n)}
	for i := range n {
		c.logits = append(c.logits, logits...)
		c.settings = append(c.settings, o)
		c.counters[i] = int32(i)
	}
	return c
}

// counts returns how often each of v tokens was drawn.
func counts(ids []int32, v int) []int {
	n := make([]int, v)
	for _, id := range ids {
		n[id]++
	}
	return n
}

// TestSampleFilters checks each filter alone on logits whose kept sets are
// known by hand: probabilities of ids 1, 5, 3 are about .33, .30, .20.
func TestSampleFilters(t *testing.T) {
	rt := cpuRuntime(t, 0)
	logits := []float32{0.5, 2, -1, 1.5, 0, 1.9, -3}
	for _, c := range []struct {
		name string
		o    ops.Sampling
		keep []int
	}{
		{"top-k 2", ops.Sampling{Temperature: 1, TopK: 2}, []int{1, 5}},
		{"top-k 7 (V)", ops.Sampling{Temperature: 1, TopK: 7}, []int{0, 1, 2, 3, 4, 5, 6}},
		{"top-p 0.6", ops.Sampling{Temperature: 1, TopP: 0.6}, []int{1, 5}},
		{"top-p 0.7", ops.Sampling{Temperature: 1, TopP: 0.7}, []int{1, 5, 3}},
		{"top-p 0.01", ops.Sampling{Temperature: 1, TopP: 0.01}, []int{1}},
		{"min-p 0.5", ops.Sampling{Temperature: 1, MinP: 0.5}, []int{1, 3, 5}}, // e^-0.5 = .61 ≥ .5 > e^-1.5
		{"min-p 1", ops.Sampling{Temperature: 1, MinP: 1}, []int{1}},
		{"temperature 1e-6", ops.Sampling{Temperature: 1e-6}, []int{1}},
	} {
		n := counts(drawTokens(t, rt, repeated(logits, c.o, 3000)), len(logits))
		for i, k := range n {
			if slices.Contains(c.keep, i) != (k > 0) {
				t.Errorf("%s: counts %v, want draws of ids %v only", c.name, n, c.keep)
				break
			}
		}
	}
}

// TestSampleTies checks what the thresholds keep on ties: every token tied
// with the cut.
func TestSampleTies(t *testing.T) {
	rt := cpuRuntime(t, 0)
	logits := []float32{1, 3, 3, 0, 3, 2}
	for _, o := range []ops.Sampling{{Temperature: 1, TopK: 1}, {Temperature: 1, TopP: 0.1}, {Temperature: 1, MinP: 0.99}} {
		n := counts(drawTokens(t, rt, repeated(logits, o, 600)), len(logits))
		if n[1] == 0 || n[2] == 0 || n[4] == 0 || n[1]+n[2]+n[4] != 600 {
			t.Errorf("%+v: counts %v, want the three tied maxima (ids 1, 2, 4) only", o, n)
		}
	}
	// Greedy takes the first of them, like ops.Argmax.
	if ids := drawTokens(t, rt, repeated(logits, ops.Sampling{}, 1)); ids[0] != 1 {
		t.Errorf("greedy over ties: %d, want 1", ids[0])
	}
}

// TestSamplePenalty checks the repetition penalty alone: it divides a
// positive logit, multiplies a negative one, once per distinct id.
func TestSamplePenalty(t *testing.T) {
	rt := cpuRuntime(t, 0)
	logits := []float32{3, 2.5, -1, -1.2}
	for _, c := range []struct {
		window []int32
		pen    float32
		want   int32
	}{
		{[]int32{-1, -1}, 2, 0},
		{[]int32{0, -1}, 1.3, 1}, // 3/1.3 < 2.5
		{[]int32{0, 0}, 1.15, 0}, // once, not twice: 3/1.15 > 2.5 > 3/1.15²
		{[]int32{0, 1}, 2, 0},    // 1.5 > 1.25
		{[]int32{0, 1}, 0.5, 0},  // penalty < 1 favours them: 6 > 5
	} {
		cs := repeated(logits, ops.Sampling{RepetitionPenalty: c.pen}, 1)
		cs.window, cs.w = c.window, len(c.window)
		if got := drawTokens(t, rt, cs); got[0] != c.want {
			t.Errorf("window %v penalty %v: %d, want %d", c.window, c.pen, got[0], c.want)
		}
	}
	// Negative logits: −1·1.5 = −1.5 < −1.2 makes id 3 the best of them.
	cs := repeated([]float32{-5, -1, -1.2}, ops.Sampling{RepetitionPenalty: 1.5}, 1)
	cs.window, cs.w = []int32{1}, 1
	if got := drawTokens(t, rt, cs); got[0] != 2 {
		t.Errorf("negative logit penalised: %d, want 2", got[0])
	}
	// Presence once per distinct id, frequency once per occurrence, after
	// the repetition penalty: id 0 with 3 − 0.2 − 2·0.2 = 2.4 < 2.5 loses,
	// 3 − 0.2 − 0.2 = 2.6 wins; 3/1.1 − 0.1 = 2.627 wins, − 0.2 more loses.
	for _, c := range []struct {
		window []int32
		o      ops.Sampling
		want   int32
	}{
		{[]int32{0, 0}, ops.Sampling{PresencePenalty: 0.2, FrequencyPenalty: 0.2}, 1},
		{[]int32{0, -1}, ops.Sampling{PresencePenalty: 0.2, FrequencyPenalty: 0.2}, 0},
		{[]int32{0}, ops.Sampling{RepetitionPenalty: 1.1, PresencePenalty: 0.1}, 0},
		{[]int32{0}, ops.Sampling{RepetitionPenalty: 1.1, PresencePenalty: 0.3}, 1},
		{[]int32{2, 2, 2}, ops.Sampling{FrequencyPenalty: -1.5}, 2}, // −1 + 4.5 favours id 2
		// A repetition-only entry (a prompt token, as vLLM's) sees the
		// repetition penalty, once per token, and neither of the others.
		{[]int32{primitives.RepetitionOnly(0)}, ops.Sampling{PresencePenalty: 0.6, FrequencyPenalty: 0.6}, 0},
		{[]int32{primitives.RepetitionOnly(0)}, ops.Sampling{RepetitionPenalty: 1.3}, 1},
		{[]int32{primitives.RepetitionOnly(0), 0}, ops.Sampling{RepetitionPenalty: 1.15}, 0},                                                   // 3/1.15 once
		{[]int32{primitives.RepetitionOnly(0), primitives.RepetitionOnly(0), 0}, ops.Sampling{PresencePenalty: 0.1, FrequencyPenalty: 0.3}, 0}, // 3 − 0.4 (one entry counts)
		{[]int32{primitives.RepetitionOnly(0), 0, 0}, ops.Sampling{PresencePenalty: 0.1, FrequencyPenalty: 0.3}, 1},                            // 3 − 0.7
	} {
		cs := repeated(logits, c.o, 1)
		cs.window, cs.w = c.window, len(c.window)
		if got := drawTokens(t, rt, cs); got[0] != c.want {
			t.Errorf("window %v %+v: %d, want %d", c.window, c.o, got[0], c.want)
		}
	}
	// The primitive reads a presence or frequency penalty that is not
	// finite (ops.Sample rejects them) as off.
	for _, bad := range []float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())} {
		params := graph.FromFloat32s([]float32{0, 0, 0, 1, bad, bad}, 1, primitives.SampleSettings)
		got := ops.SampleWith(graph.FromFloat32s(logits, 1, 4), graph.FromInt32s([]int32{0}), graph.FromInt32s([]int32{0, 0}, 1, 2),
			params, graph.FromUint32s(make([]uint32, primitives.SampleKeys), 1, primitives.SampleKeys))
		if err := rt.Eval(got); err != nil {
			t.Fatal(err)
		}
		if ids, _ := got.Int32s(); ids[0] != 0 {
			t.Errorf("presence and frequency penalties %v: token %d, want 0 (off)", bad, ids[0])
		}
	}
	// Duplicates in a window are one id: the token's weight matches the
	// same window without the duplicate, draw for draw.
	a := repeated(logits, ops.Sampling{Temperature: 1, RepetitionPenalty: 1.3}, 400)
	b := a
	a.window, a.w = slices.Repeat([]int32{1, 1, 0}, 400), 3
	b.window, b.w = slices.Repeat([]int32{1, -1, 0}, 400), 3
	if !slices.Equal(drawTokens(t, rt, a), drawTokens(t, rt, b)) {
		t.Error("a repeated id in the window changed the draws")
	}
}

// TestSampleDegenerate checks that settings which keep everything draw the
// same tokens as no filter, and that greedy agrees with ops.Argmax.
func TestSampleDegenerate(t *testing.T) {
	rt := cpuRuntime(t, 0)
	r := loomtest.Rand(4)
	logits := loomtest.Float32s(r, 50, -3, 3)
	base := ops.Sampling{Temperature: 0.9, Seed: 11}
	want := drawTokens(t, rt, repeated(logits, base, 500))
	for _, o := range []ops.Sampling{
		{Temperature: 0.9, Seed: 11, TopK: 50},
		{Temperature: 0.9, Seed: 11, TopK: 1000},
		{Temperature: 0.9, Seed: 11, TopP: 1},
		{Temperature: 0.9, Seed: 11, RepetitionPenalty: 1},
	} {
		if got := drawTokens(t, rt, repeated(logits, o, 500)); !slices.Equal(got, want) {
			t.Errorf("%+v: draws differ from no filter", o)
		}
	}
	if got := drawTokens(t, rt, repeated(logits, ops.Sampling{Temperature: 0.9, Seed: 12}, 500)); slices.Equal(got, want) {
		t.Error("another seed drew the same 500 tokens")
	}
	// Greedy: the first maximum, as ops.Argmax, on every dtype.
	for _, tg := range loomtest.Targets(t) {
		for _, dt := range primitives.FloatDTypes {
			x := graph.FromFloat32sAs(dt, loomtest.Float32s(r, 5*300, -2, 2), 5, 300)
			got := ops.Sample(x, graph.FromInt32s(make([]int32, 5)), nil, make([]ops.Sampling, 5))
			arg := ops.Argmax(x, 1, false)
			tg.Eval(t, got, arg)
			g, _ := got.Int32s()
			a, _ := arg.Int32s()
			if !slices.Equal(g, a) {
				t.Errorf("%s %s: greedy %v, argmax %v", tg.Name, dt, g, a)
			}
		}
	}
}

// TestSampleNonFinite checks the defined behaviour of NaN and infinite
// logits: NaN is −Inf, +Inf is the most likely, a row without any finite
// or +Inf logit draws −1.
func TestSampleNonFinite(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, tg := range loomtest.Targets(t) {
		for _, c := range []struct {
			logits []float32
			o      ops.Sampling
			want   []int32 // the tokens any draw may give
		}{
			{[]float32{nan, 1, 2}, ops.Sampling{}, []int32{2}},
			{[]float32{3, nan, 2}, ops.Sampling{Temperature: 5}, []int32{0, 2}},
			{[]float32{1, inf, 2, inf}, ops.Sampling{}, []int32{1}},
			{[]float32{1, inf, 2, inf}, ops.Sampling{Temperature: 1}, []int32{1, 3}},
			{[]float32{-inf, nan, -inf}, ops.Sampling{Temperature: 1}, []int32{-1}},
			{[]float32{nan}, ops.Sampling{}, []int32{-1}},
			{[]float32{-inf, 0}, ops.Sampling{Temperature: 1, TopK: 1}, []int32{1}},
		} {
			for _, dt := range primitives.FloatDTypes {
				cs := repeated(c.logits, c.o, 64)
				cs.dt = dt
				got := cs.build()
				tg.Eval(t, got)
				ids, _ := got.Int32s()
				for _, id := range ids {
					if !slices.Contains(c.want, id) {
						t.Fatalf("%s %s: logits %v %+v drew %d, want one of %v", tg.Name, dt, c.logits, c.o, id, c.want)
					}
				}
			}
		}
	}
}

// TestSampleWorkers checks that the CPU kernel's tokens do not depend on
// the number of workers.
func TestSampleWorkers(t *testing.T) {
	c := randomSampleCase(loomtest.Rand(8), graph.BFloat16, 16, 3001, 4)
	want := drawTokens(t, cpuRuntime(t, 1), c)
	for _, w := range []int{2, 5} {
		if got := drawTokens(t, cpuRuntime(t, w), c); !slices.Equal(got, want) {
			t.Errorf("%d workers: %v, want %v", w, got, want)
		}
	}
}

// TestSampleGreedyParts checks a greedy draw of one sequence over a long
// row, which the CPU splits over its workers, against the reference on 1,
// 2, 3 and 7 workers: the largest logit at either end, at the parts'
// bounds, tied across parts (the first wins), behind NaN and +Inf, and a
// row of −Inf and NaN only (−1); bfloat16 and float32, odd lengths.
func TestSampleGreedyParts(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	r := loomtest.Rand(77)
	for _, v := range []int{151936, 40001} {
		for ci, place := range []func(x []float32){
			func(x []float32) { x[0] = 9 },
			func(x []float32) { x[len(x)-1] = 9 },
			func(x []float32) { x[len(x)/2], x[len(x)/2-1] = 9, 9 },
			func(x []float32) { x[len(x)/3], x[2*len(x)/3+1], x[len(x)-1] = 9, 9, 9 },
			func(x []float32) { x[5], x[len(x)-2] = nan, 9 },
			func(x []float32) { x[len(x)-7], x[len(x)/2] = inf, inf },
			func(x []float32) {
				for i := range x {
					x[i] = float32(math.Inf(-1))
					if i%3 == 0 {
						x[i] = nan
					}
				}
			},
		} {
			for _, dt := range []graph.DType{graph.BFloat16, graph.Float32} {
				c := sampleCase{dt: dt, w: 1, counters: []int32{3}, window: []int32{-1}, settings: []ops.Sampling{{}}}
				c.logits = loomtest.Float32s(r, v, -4, 4)
				place(c.logits)
				for i, x := range loomtest.Round(dt, c.logits) {
					c.logits[i] = float32(x)
				}
				want, _ := c.want(0)
				for _, w := range []int{1, 2, 3, 7} {
					if got := drawTokens(t, cpuRuntime(t, w), c); int(got[0]) != want {
						t.Fatalf("V %d case %d %s, %d workers: token %d, want %d", v, ci, dt, w, got[0], want)
					}
				}
			}
		}
	}
}

// TestSampleDistribution checks that the draws over many counters follow
// the filtered softmax: within 5 standard deviations for every token, and
// never a filtered one.
func TestSampleDistribution(t *testing.T) {
	rt := cpuRuntime(t, 0)
	logits := loomtest.Float32s(loomtest.Rand(3), 11, -2, 2)
	const n, temp, topP = 40000, 0.7, 0.9
	got := counts(drawTokens(t, rt, repeated(logits, ops.Sampling{Temperature: temp, TopP: topP, Seed: 5}, n)), len(logits))
	p := make([]float64, len(logits))
	order := make([]int, len(logits))
	z := 0.0
	for i, v := range logits {
		p[i] = math.Exp(float64(v) / temp)
		z += p[i]
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return int(math.Copysign(1, p[b]-p[a])) })
	kept, run := 0.0, 0.0
	keep := map[int]bool{}
	for _, i := range order {
		keep[i] = true
		run += p[i] / z
		kept += p[i]
		if run >= topP {
			break
		}
	}
	for i := range logits {
		want := 0.0
		if keep[i] {
			want = p[i] / kept
		}
		sd := math.Sqrt(n * want * (1 - want))
		if d := math.Abs(float64(got[i]) - n*want); d > 5*sd+1 {
			t.Errorf("token %d drawn %d times, expected %.0f ± %.0f", i, got[i], n*want, sd)
		}
	}
}

// TestPhilox checks the generator against the known-answer vectors of
// Random123 (kat_vectors, philox4x32_10).
func TestPhilox(t *testing.T) {
	for _, c := range []struct {
		ctr  [4]uint32
		key  [2]uint32
		want [4]uint32
	}{
		{[4]uint32{}, [2]uint32{}, [4]uint32{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
		{[4]uint32{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, [2]uint32{0xffffffff, 0xffffffff}, [4]uint32{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
		{[4]uint32{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, [2]uint32{0xa4093822, 0x299f31d0}, [4]uint32{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
	} {
		if got := primitives.Philox4x32(c.ctr, c.key); got != c.want {
			t.Errorf("Philox4x32(%x, %x) = %x, want %x", c.ctr, c.key, got, c.want)
		}
	}
}

func TestSampleErrors(t *testing.T) {
	logits := graph.FromFloat32s(make([]float32, 6), 2, 3)
	ctr := graph.FromInt32s([]int32{0, 1})
	two := func(o ops.Sampling) []ops.Sampling { return []ops.Sampling{{}, o} }
	for _, c := range []struct {
		got  *graph.Array
		want string
	}{
		{ops.Sample(logits, ctr, nil, two(ops.Sampling{Temperature: -1})), "settings[1]: temperature -1 must be a finite number ≥ 0"},
		{ops.Sample(logits, ctr, nil, two(ops.Sampling{Temperature: float32(math.NaN())})), "temperature NaN"},
		{ops.Sample(logits, ctr, nil, two(ops.Sampling{Temperature: float32(math.Inf(1))})), "temperature +Inf"},
		{ops.Sample(logits, ctr, nil, two(ops.Sampling{TopK: -2})), "top-k -2 must lie in [0, 2^32)"},
		{ops.Sample(logits, ctr, nil, two(ops.Sampling{TopP: 1.5})), "top-p 1.5 must lie in (0, 1]"},
		{ops.Sample(logits, ctr, nil, two(ops.Sampling{TopP: -0.1})), "top-p -0.1"},
		{ops.Sample(logits, ctr, nil, two(ops.Sampling{MinP: 2})), "min-p 2 must lie in [0, 1]"},
		{ops.Sample(logits, ctr, nil, two(ops.Sampling{RepetitionPenalty: -1})), "repetition penalty -1 must be a finite number > 0"},
		{ops.Sample(logits, ctr, nil, two(ops.Sampling{PresencePenalty: float32(math.NaN())})), "presence penalty NaN must be a finite number"},
		{ops.Sample(logits, ctr, nil, two(ops.Sampling{FrequencyPenalty: float32(math.Inf(-1))})), "frequency penalty -Inf must be a finite number"},
		{ops.Sample(logits, ctr, nil, []ops.Sampling{{}}), "1 settings for 2 rows of logits float32[2 3]"},
		{ops.Sample(graph.FromFloat32s(make([]float32, 3)), graph.FromInt32s([]int32{0}), nil, []ops.Sampling{{}}), "logits must be [S, V], got float32[3]"},
		{ops.Sample(graph.FromInt32s(make([]int32, 6), 2, 3), ctr, nil, two(ops.Sampling{})), "logits dtype int32 is unsupported"},
		{ops.Sample(graph.FromFloat32s(nil, 2, 0), ctr, nil, two(ops.Sampling{})), "logits must be [S, V] with V ≥ 1"},
		{ops.Sample(logits, graph.FromUint32s([]uint32{0, 1}), nil, two(ops.Sampling{})), "counters must be int32, got uint32"},
		{ops.Sample(logits, graph.FromInt32s([]int32{0}), nil, two(ops.Sampling{})), "counters have shape [1], want [2]"},
		{ops.Sample(logits, ctr, graph.FromInt32s([]int32{0, 1, 2}), two(ops.Sampling{})), "window has shape [3], want [2, W]"},
		{ops.Sample(logits, ctr, graph.FromInt32s([]int32{0, -1, 2, 3}, 2, 2), two(ops.Sampling{})), "window[1 1] = 3 is out of range [0, 3)"},
		{ops.Sample(logits, ctr, graph.FromInt32s([]int32{0, -4, -5, 2}, 2, 2), two(ops.Sampling{})), "window[1 0] = -5 names token 3 (repetition penalty only), out of range [0, 3)"},
		{ops.Sample(logits, nil, nil, two(ops.Sampling{})), "input 1 is nil"},
	} {
		err := c.got.Err()
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "sample") {
			t.Errorf("error %v, want one with %q", err, c.want)
		}
	}
	// A window id past the vocabulary that is computed, not a constant,
	// is an error of the evaluation on every target.
	for _, tg := range loomtest.Targets(t) {
		window := ops.Add(graph.FromInt32s([]int32{0, -1, 2, 0}, 2, 2), graph.FromInt32s([]int32{0, 0, 0, 7}, 2, 2))
		got := ops.Sample(graph.FromFloat32s(make([]float32, 6), 2, 3), graph.FromInt32s([]int32{0, 1}), window, two(ops.Sampling{RepetitionPenalty: 1.2}))
		err := tg.RT.Eval(got)
		if err == nil || !strings.Contains(err.Error(), "window[3] = 7 is out of range [0, 3)") {
			t.Errorf("%s: error %v, want window[3] = 7 out of range", tg.Name, err)
		}
		// −5 names token 3 for the repetition penalty only (a GPU's report
		// gives the token).
		window = ops.Add(graph.FromInt32s([]int32{0, -1, 2, -4}, 2, 2), graph.FromInt32s([]int32{0, 0, 0, -1}, 2, 2))
		got = ops.Sample(graph.FromFloat32s(make([]float32, 6), 2, 3), graph.FromInt32s([]int32{0, 1}), window, two(ops.Sampling{RepetitionPenalty: 1.2}))
		err = tg.RT.Eval(got)
		if err == nil || !strings.Contains(err.Error(), "window[3] = ") || !strings.Contains(err.Error(), "out of range [0, 3)") {
			t.Errorf("%s: error %v, want window[3] naming token 3 out of range", tg.Name, err)
		}
	}
}

// TestSampleWith: the settings as SamplingArrays lays them out (the
// constants a compiled step binds) draw the tokens Sample draws; arrays of
// the wrong shape, or settings out of range, are errors.
func TestSampleWith(t *testing.T) {
	r := loomtest.Rand(31)
	settings := []ops.Sampling{{}, {Temperature: 0.8, TopK: 5, RepetitionPenalty: 1.4, PresencePenalty: 0.5, FrequencyPenalty: -0.25, Seed: 3 << 33}, {Temperature: 1.1, TopP: 0.7, MinP: 0.05, Seed: 9}}
	logits := loomtest.Float32s(r, 3*37, -3, 3)
	counters := []int32{4, 17, 2}
	window := []int32{-1, 5, 5, 36, 0, 1}
	params, keys := ops.SamplingArrays(settings)
	p, err := params.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	kb := keys.HostBytes()
	k := []uint32{uint32(kb[12]) | uint32(kb[13])<<8, uint32(kb[16]), uint32(kb[20]) | uint32(kb[21])<<8} // row 1, little-endian
	if !slices.Equal(p[6:12], []float32{0.8, 0, 0, 1.4, 0.5, -0.25}) || !slices.Equal(k, []uint32{5, 0, 3 << 1}) {
		t.Fatalf("params %v, keys %v", p, k)
	}
	for _, tg := range loomtest.Targets(t) {
		draw := func(with bool) []int32 {
			l, c, w := graph.FromFloat32s(logits, 3, 37), graph.FromInt32s(counters), graph.FromInt32s(window, 3, 2)
			var got *graph.Array
			if with {
				params, keys := ops.SamplingArrays(settings)
				got = ops.SampleWith(l, c, w, params, keys)
			} else {
				got = ops.Sample(l, c, w, settings)
			}
			if err := tg.RT.Eval(got); err != nil {
				t.Fatal(err)
			}
			v, err := got.Int32s()
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		if a, b := draw(true), draw(false); !slices.Equal(a, b) {
			t.Fatalf("%s: SampleWith drew %v, Sample %v", tg.Name, a, b)
		}
	}
	l, c := graph.FromFloat32s(logits, 3, 37), graph.FromInt32s(counters)
	p1, k1 := ops.SamplingArrays(settings[:1])
	if err := ops.SampleWith(l, c, nil, p1, k1).Err(); err == nil || !strings.Contains(err.Error(), "settings") {
		t.Errorf("one row of settings for 3 rows of logits: error %v", err)
	}
	pb, kbad := ops.SamplingArrays([]ops.Sampling{{}, {TopP: 2}})
	if err := ops.SampleWith(l, c, nil, pb, kbad).Err(); err == nil || !strings.Contains(err.Error(), "settings[1]: top-p 2") {
		t.Errorf("settings out of range: error %v", err)
	}
}

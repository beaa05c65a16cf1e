package model

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
)

// TestStepSample checks StepSample's tokens against a host loop over the
// same model (Step's logits, penalized in float32 on the host, drawn by
// the float64 reference with the same counter, the position), with one
// prompt fed in two chunks on the StepSample side (the token after the
// first chunk is ignored) and every prompt in one piece on the reference
// side; and the log-probs asked for against a float64 log-softmax of
// Step's logits. On a GPU a token may differ only where the reference's
// margin is within rounding, and then the sequence is not compared
// further.
func TestStepSample(t *testing.T) {
	draws := []Draw{
		{Penalties: Penalties{Repetition: 1.3, Presence: 0.5, Frequency: 0.7}, Logprobs: true, TopLogprobs: 5},
		{Sampling: ops.Sampling{Temperature: 0.9, TopK: 20, Seed: 7}, Penalties: Penalties{Repetition: 0.8, Presence: -0.5}, Logprobs: true},
		{Sampling: ops.Sampling{Temperature: 1.2, TopP: 0.8, MinP: 0.02, Seed: 1 << 40}},
	}
	const steps = 8
	for _, tg := range loomtest.Targets(t) {
		e := loadTiny(t, tg, graph.Float32)
		seqs, ref := []int{0, 1, 2}, []int{10, 11, 12}
		for i := range seqs {
			if err := e.Cache.Add(seqs[i]); err != nil {
				t.Fatal(err)
			}
			if err := e.Cache.Add(ref[i]); err != nil {
				t.Fatal(err)
			}
		}
		history := make([][]int32, len(seqs))
		for i, p := range decodePrompts {
			history[i] = slices.Clone(p)
		}
		// draw is sequence i's Draw, its penalties seeing its history.
		draw := func(i int) Draw {
			d := draws[i]
			n := len(decodePrompts[i])
			d.Penalties.Prompt, d.Penalties.Output = history[i][:n], history[i][n:]
			return d
		}
		// Sequence 2's prompt is fed in two chunks, the first beside
		// sequence 0's whole prompt.
		p2 := decodePrompts[2]
		pre, err := e.StepSample([]int{0, 2}, [][]int32{decodePrompts[0], p2[:3]}, []Draw{draw(0), draw(2)})
		if err != nil {
			t.Fatal(err)
		}
		next := [][]int32{nil, decodePrompts[1], p2[3:]}
		refNext := slices.Clone(decodePrompts)
		parted := make([]bool, len(seqs))
		for step := range steps {
			var ss []int
			var ts [][]int32
			var ds []Draw
			for i := range seqs {
				if next[i] != nil {
					ss, ts, ds = append(ss, seqs[i]), append(ts, next[i]), append(ds, draw(i))
				}
			}
			got, err := e.StepSample(ss, ts, ds)
			if err != nil {
				t.Fatal(err)
			}
			if step == 0 { // sequence 0 drew its first token in the step before
				got = append([]Drawn{pre[0]}, got...)
			}
			r, err := e.Step(ref, refNext)
			if err != nil {
				t.Fatal(err)
			}
			for i := range seqs {
				d := draw(i)
				want, margin := loomtest.SampleRef(penalizeRef(r.Logits[i], d.Penalties), d.Sampling, int32(len(history[i])), nil)
				if !parted[i] && int(got[i].Token) != want {
					if tg.Exact || margin >= 1e-5 {
						t.Fatalf("%s: sequence %d step %d: token %d, want %d (margin %.3g)", tg.Name, i, step, got[i].Token, want, margin)
					}
					parted[i] = true
				}
				checkLogprobs(t, fmt.Sprintf("%s: sequence %d step %d", tg.Name, i, step), got[i], d, f64(r.Logits[i]))
				history[i] = append(history[i], int32(want))
				next[i], refNext[i] = []int32{int32(want)}, []int32{int32(want)}
			}
		}
		for _, c := range []struct {
			d    Draw
			want string
		}{
			{Draw{Sampling: ops.Sampling{RepetitionPenalty: 1.2}}, "unsupported"},
			{Draw{Sampling: ops.Sampling{PresencePenalty: 0.1}}, "unsupported"},
			{Draw{Sampling: ops.Sampling{FrequencyPenalty: -0.1}}, "unsupported"},
			{Draw{Penalties: Penalties{Repetition: -1}}, "repetition penalty -1"},
			{Draw{Penalties: Penalties{Presence: float32(math.NaN())}}, "must be finite"},
			{Draw{Penalties: Penalties{Frequency: 1, Output: []int32{3, 5000}}}, "penalized token 1 is 5000"},
			{Draw{Logprobs: true, TopLogprobs: 5000}, "5000 top log-probs"},
			{Draw{TopLogprobs: 2}, "without Logprobs"},
		} {
			if _, err := e.StepSample([]int{0}, [][]int32{{1}}, []Draw{c.d}); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %+v: error %v, want %q", tg.Name, c.d, err, c.want)
			}
		}
		tg.NoHazards(t)
	}
}

// penalizeRef applies p to logits as StepSample's sampling kernel does, in
// float32, presence and frequency penalties one subtraction each.
func penalizeRef(logits []float32, p Penalties) []float64 {
	x := slices.Clone(logits)
	count := map[int32]int{}
	for _, t := range p.Output {
		count[t]++
	}
	seen := map[int32]bool{}
	for _, t := range slices.Concat(p.Prompt, p.Output) {
		if seen[t] {
			continue
		}
		seen[t] = true
		if r := p.Repetition; r != 0 {
			if x[t] > 0 {
				x[t] /= r
			} else {
				x[t] *= r
			}
		}
		if count[t] > 0 {
			x[t] -= p.Presence
			for range count[t] {
				x[t] -= p.Frequency
			}
		}
	}
	return f64(x)
}

// checkLogprobs checks got's log-probs against a float64 log-softmax of
// logits: the drawn token's, and the top ones' values in order (ties may
// come in either order).
func checkLogprobs(t *testing.T, where string, got Drawn, d Draw, logits []float64) {
	t.Helper()
	if !d.Logprobs {
		if got.Logprob != 0 || got.Top != nil {
			t.Errorf("%s: log-probs %v %v not asked for", where, got.Logprob, got.Top)
		}
		return
	}
	m := slices.Max(logits)
	var sum float64
	for _, x := range logits {
		sum += math.Exp(x - m)
	}
	lp := make([]float64, len(logits))
	for i, x := range logits {
		lp[i] = x - m - math.Log(sum)
	}
	const tol = 1e-4
	if diff := math.Abs(float64(got.Logprob) - lp[got.Token]); !(diff <= tol) {
		t.Errorf("%s: token %d log-prob %v, want %v", where, got.Token, got.Logprob, lp[got.Token])
	}
	sorted := slices.Clone(lp)
	slices.SortFunc(sorted, func(a, b float64) int { return cmp.Compare(b, a) })
	if len(got.Top) != d.TopLogprobs {
		t.Fatalf("%s: %d top log-probs, want %d", where, len(got.Top), d.TopLogprobs)
	}
	for j, tl := range got.Top {
		if math.Abs(float64(tl.Logprob)-lp[tl.Token]) > tol || math.Abs(float64(tl.Logprob)-sorted[j]) > tol {
			t.Errorf("%s: top %d is token %d at %v; its reference %v, the %d-th largest %v", where, j, tl.Token, tl.Logprob, lp[tl.Token], j, sorted[j])
		}
	}
}

// TestPenaltyWindow checks the penalties as StepSample hands them to the
// sampling kernel (penaltyWindow): rows of float32 [3, 50] logits of both
// signs (penalties above and below 1, negative presence, repeated tokens,
// prompt tokens also in the output, a row without penalties) drawn greedy
// and at temperature 1 with 64 counters each, against the float64
// reference drawing from penalizeRef's logits: exactly on the CPU targets,
// and on a GPU wherever the reference's margin is above rounding. The
// window is padded to a multiple of penaltyPad.
func TestPenaltyWindow(t *testing.T) {
	const s, v, draws = 3, 50, 64
	r := loomtest.Rand(5)
	logits := make([]float32, s*v)
	for i := range logits {
		logits[i] = float32(r.NormFloat64() * 2)
	}
	rows := []Draw{
		{Penalties: Penalties{Repetition: 1.5, Presence: -0.5, Frequency: 0.3, Prompt: []int32{1, 2, 2, 49}, Output: []int32{2, 7, 7, 7, 0}}},
		{},
		{Penalties: Penalties{Repetition: 0.7, Frequency: 1.1, Prompt: []int32{4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, Output: []int32{13, 13, 20}}},
	}
	for _, temp := range []float32{0, 1} {
		// Each row drawn draws times, counter c in the c-th copy.
		var all []Draw
		var rep []float32
		counters := make([]int32, 0, s*draws)
		for c := range draws {
			for i, d := range rows {
				d.Sampling = ops.Sampling{Temperature: temp, Seed: uint64(i)}
				all = append(all, d)
				rep = append(rep, logits[i*v:(i+1)*v]...)
				counters = append(counters, int32(c))
			}
		}
		for _, tg := range loomtest.Targets(t) {
			sampling := make([]ops.Sampling, len(all))
			for i, d := range all {
				sampling[i] = d.Sampling
			}
			window := penaltyWindow(all, sampling)
			if w := window.Shape()[1]; w == 0 || w%penaltyPad != 0 {
				t.Fatalf("window width %d, want a positive multiple of %d", w, penaltyPad)
			}
			ids := ops.Sample(graph.FromFloat32s(rep, len(all), v), graph.FromInt32s(counters), window, sampling)
			if err := tg.RT.Eval(ids); err != nil {
				t.Fatal(err)
			}
			got, err := ids.Int32s()
			if err != nil {
				t.Fatal(err)
			}
			for k, d := range all {
				i := k % s
				want, margin := loomtest.SampleRef(penalizeRef(logits[i*v:(i+1)*v], d.Penalties), d.Sampling, counters[k], nil)
				if int(got[k]) != want && (tg.Exact || margin >= 1e-5) {
					t.Errorf("%s: temperature %v, row %d, counter %d: token %d, want %d (margin %.3g)", tg.Name, temp, i, counters[k], got[k], want, margin)
				}
			}
		}
	}
}

// TestStepSamplePrev runs steps whose decode rows append the previous
// step's draws on the device (Row.Prev), each step submitted before the
// one before it is read back, beside prompt chunks and a decode fed the
// host's token, and requires each step's draws to be those of the same
// steps fed every token from the host (StepSample, on other sequences of
// the same engine): the same rows, so the same logits; the penalties see
// the appended token through the window's device column. Exact on the CPU
// targets; on a GPU a sequence is compared up to its first difference.
// The device-fed steps are padded to one size a doubling (the padding's
// tokens beside the device's). The steps of one structure are replayed by the plan cache from their
// third on, though each reads the draws of the one before.
func TestStepSamplePrev(t *testing.T) {
	draws := []Draw{
		{Penalties: Penalties{Repetition: 1.3, Presence: 0.5, Frequency: 0.7}, Logprobs: true, TopLogprobs: 3},
		{Sampling: ops.Sampling{Temperature: 0.9, TopK: 20, Seed: 7}, Penalties: Penalties{Repetition: 0.8, Presence: -0.5, Frequency: 1.5}},
		{Sampling: ops.Sampling{Temperature: 1.2, TopP: 0.8, MinP: 0.02, Seed: 1 << 40}, Logprobs: true},
	}
	// A row: sequence i's prompt tokens [from, to), or (to == 0) a decode.
	type part struct{ i, from, to int }
	const steady = 10 // steps of three decodes at the end
	p := decodePrompts
	steps := [][]part{
		{{0, 0, len(p[0])}, {1, 0, 2}},
		{{0, 0, 0}, {1, 2, len(p[1])}},
		{{2, 0, len(p[2])}, {0, 0, 0}, {1, 0, 0}},
		{{0, 0, 0}, {1, 0, 0}, {2, 0, 0}},
		{{0, 0, 0}, {1, 0, 0}, {2, 0, 0}}, // read back before: the host's tokens
	}
	const hostStep = 4
	for range steady {
		steps = append(steps, []part{{0, 0, 0}, {1, 0, 0}, {2, 0, 0}})
	}
	for _, tg := range loomtest.Targets(t) {
		e := loadTiny(t, tg, graph.Float32)
		// run feeds the steps to sequences base+i, and returns each step's
		// draws and whether each was replayed.
		run := func(base int, pipelined bool) ([][]Drawn, []bool) {
			out := make([][]int32, len(p)) // tokens read back
			for i := range p {
				if err := e.Cache.Add(base + i); err != nil {
					t.Fatal(err)
				}
			}
			got := make([][]Drawn, len(steps))
			replayed := make([]bool, len(steps))
			var flight *Sampled
			flightStep, pendingRow := -1, map[int]int{} // sequence → its row in flight
			read := func() {
				d, err := flight.Wait()
				if err != nil {
					t.Fatal(err)
				}
				got[flightStep] = d
				replayed[flightStep] = flight.p.Stats().CacheHits == 1
				for j, pt := range steps[flightStep] {
					if pt.to == 0 || pt.to == len(p[pt.i]) {
						out[pt.i] = append(out[pt.i], d[j].Token)
					}
				}
				flight, pendingRow = nil, map[int]int{}
			}
			for k, parts := range steps {
				if flight != nil && (!pipelined || k == hostStep) {
					read()
				}
				rows := make([]Row, len(parts))
				next := map[int]int{}
				for j, pt := range parts {
					d := draws[pt.i]
					d.Penalties.Prompt, d.Penalties.Output = p[pt.i], out[pt.i]
					r := Row{Seq: base + pt.i, Draw: d}
					switch {
					case pt.to != 0:
						r.Tokens = p[pt.i][pt.from:pt.to]
						if pt.to < len(p[pt.i]) {
							r.Draw = Draw{Sampling: d.Sampling} // not wanted
						}
					case flight != nil:
						r.Prev, r.PrevRow = flight, pendingRow[pt.i]
					default:
						r.Tokens = out[pt.i][len(out[pt.i])-1:]
					}
					rows[j] = r
					next[pt.i] = j
				}
				s, err := e.StartStepSample(rows)
				if err != nil {
					t.Fatalf("%s: step %d: %v", tg.Name, k, err)
				}
				if flight != nil {
					read()
				}
				flight, flightStep, pendingRow = s, k, next
			}
			read()
			for i := range p {
				if err := e.Cache.Free(base + i); err != nil {
					t.Fatal(err)
				}
			}
			return got, replayed
		}
		// The pipelined steps are padded (Engine.StepBuckets), the host's
		// not: the padding rows change no draw.
		e.StepBuckets = 1
		got, replayed := run(0, true)
		e.StepBuckets = 0
		want, _ := run(10, false)
		differ := map[int]bool{}
		for k, parts := range steps {
			for j, pt := range parts {
				if differ[pt.i] || (pt.to != 0 && pt.to < len(p[pt.i])) {
					continue
				}
				g, w := got[k][j], want[k][j]
				if g.Token != w.Token || g.Logprob != w.Logprob && !(math.IsNaN(float64(g.Logprob)) && math.IsNaN(float64(w.Logprob))) || !slices.Equal(g.Top, w.Top) {
					if tg.Exact {
						t.Errorf("%s: step %d, sequence %d: drew %d (%v %v), fed from the host %d (%v %v)", tg.Name, k, pt.i, g.Token, g.Logprob, g.Top, w.Token, w.Logprob, w.Top)
					}
					differ[pt.i] = true
				}
			}
		}
		for k := len(steps) - steady + 2; k < len(steps); k++ {
			if !replayed[k] {
				t.Errorf("%s: steady step %d was not replayed", tg.Name, k)
			}
		}
		if free := e.Cache.FreeBlocks() + e.Cache.CachedBlocks(); free != e.Cache.Config().NumBlocks {
			t.Errorf("%s: %d of %d blocks free or cached after", tg.Name, free, e.Cache.Config().NumBlocks)
		}
		tg.NoHazards(t)
	}
}

// TestStepSamplePrevErrors checks Row.Prev's errors: a step that is not
// the latest, tokens beside it, a row out of range; each leaves the
// engine as it was, so that the latest step's draws still feed the next.
func TestStepSamplePrevErrors(t *testing.T) {
	tg := loomtest.Targets(t)[0]
	e := loadTiny(t, tg, graph.Float32)
	for _, id := range []int{0, 1} {
		if err := e.Cache.Add(id); err != nil {
			t.Fatal(err)
		}
	}
	first, err := e.StartStepSample([]Row{{Seq: 0, Tokens: decodePrompts[0]}, {Seq: 1, Tokens: decodePrompts[1]}})
	if err != nil {
		t.Fatal(err)
	}
	latest, err := e.StartStepSample([]Row{{Seq: 0, Prev: first, PrevRow: 0}, {Seq: 1, Prev: first, PrevRow: 1}})
	if err != nil {
		t.Fatal(err)
	}
	lens := []int{e.Cache.Len(0), e.Cache.Len(1)}
	for _, c := range []struct {
		row  Row
		want string
	}{
		{Row{Seq: 0, Prev: first, PrevRow: 0}, "not the engine's latest sampled step"},
		{Row{Seq: 0, Prev: latest, PrevRow: 0, Tokens: []int32{5}}, "1 tokens and a previous step's draw"},
		{Row{Seq: 0, Prev: latest, PrevRow: 2}, "appends row 2 of a step of 2 rows"},
		{Row{Seq: 0, Prev: latest, PrevRow: -1}, "appends row -1"},
		{Row{Seq: 7, Prev: latest, PrevRow: 0}, "no sequence 7"},
	} {
		if _, err := e.StartStepSample([]Row{c.row}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.row, err, c.want)
		}
		if l := []int{e.Cache.Len(0), e.Cache.Len(1)}; !slices.Equal(l, lens) {
			t.Fatalf("%+v: sequence lengths %v after the error, want %v", c.row, l, lens)
		}
	}
	// The latest step's draws still feed the next: row 1 of it is
	// sequence 1's token, which the host reads back to check.
	after, err := e.StartStepSample([]Row{{Seq: 1, Prev: latest, PrevRow: 1}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := latest.Wait()
	if err != nil {
		t.Fatal(err)
	}
	a, err := after.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Cache.Truncate(1, e.Cache.Len(1)-1); err != nil {
		t.Fatal(err)
	}
	ref, err := e.StepSample([]int{1}, [][]int32{{d[1].Token}}, []Draw{{}})
	if err != nil {
		t.Fatal(err)
	}
	if a[0].Token != ref[0].Token {
		t.Errorf("after appending the latest step's row 1 (token %d) on the device: drew %d; fed from the host: %d", d[1].Token, a[0].Token, ref[0].Token)
	}
}

// TestStepSamplePrevNoToken checks a prev row whose previous draw was −1
// (every logit NaN, here from an LM head of NaNs): the step still
// evaluates, appending token 0, and draws −1 again, rather than failing
// on an embedding index of −1.
func TestStepSamplePrevNoToken(t *testing.T) {
	tg := loomtest.Targets(t)[0]
	e := loadTiny(t, tg, graph.Float32)
	head := e.Model.Weights.LMHead
	e.Model.Weights.LMHead = graph.Full(head.DType(), math.NaN(), head.Shape()...)
	if err := e.Cache.Add(0); err != nil {
		t.Fatal(err)
	}
	first, err := e.StartStepSample([]Row{{Seq: 0, Tokens: decodePrompts[0]}})
	if err != nil {
		t.Fatal(err)
	}
	next, err := e.StartStepSample([]Row{{Seq: 0, Prev: first, PrevRow: 0}})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range []*Sampled{first, next} {
		d, err := s.Wait()
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if d[0].Token != -1 {
			t.Errorf("step %d drew %d, want -1", i, d[0].Token)
		}
	}
}

// TestStepBucket checks the padded sizes: n itself up to 2k, then k sizes
// per doubling, never below n.
func TestStepBucket(t *testing.T) {
	for _, c := range []struct{ n, k, want int }{
		{1, 1, 1}, {2, 1, 2}, {3, 1, 4}, {5, 1, 8}, {129, 1, 256},
		{8, 4, 8}, {9, 4, 10}, {17, 4, 20}, {31, 4, 32}, {33, 4, 40}, {100, 4, 112}, {257, 4, 320},
	} {
		if got := stepBucket(c.n, c.k); got != c.want {
			t.Errorf("stepBucket(%d, %d) = %d, want %d", c.n, c.k, got, c.want)
		}
	}
	for k := 1; k <= 8; k++ {
		for n := 1; n < 2000; n++ {
			b := stepBucket(n, k)
			if b < n || stepBucket(b, k) != b || (n > 2*k && (b-n)*k >= n) {
				t.Fatalf("stepBucket(%d, %d) = %d: want at least n, a fixed point, under 1/k padding", n, k, b)
			}
		}
	}
}

// TestStepSamplePadding runs steps whose batch changes every step (prompt
// chunks of odd lengths beside decodes, with penalties and log-probs)
// unpadded and padded (Engine.StepBuckets 1 and 4): the draws are the
// same, and padded to a few sizes the steps replay where unpadded they are
// planned.
func TestStepSamplePadding(t *testing.T) {
	r := loomtest.Rand(3)
	const seqs, steps = 7, 14
	prompts := make([][]int32, seqs)
	for i := range prompts {
		for range 3 + r.IntN(20) {
			prompts[i] = append(prompts[i], int32(r.IntN(3000)))
		}
	}
	draw := func(i int) Draw {
		switch i % 3 {
		case 0:
			return Draw{Penalties: Penalties{Repetition: 1.3, Presence: 0.5}, Logprobs: true, TopLogprobs: 2}
		case 1:
			return Draw{Sampling: ops.Sampling{Temperature: 0.9, TopK: 20, Seed: uint64(i)}}
		}
		return Draw{Sampling: ops.Sampling{Temperature: 1.1, TopP: 0.9, Seed: uint64(i)}, Logprobs: true}
	}
	// Sequence i joins at step 2i and feeds its prompt in chunks of up
	// to 1 + (i+step)%5 tokens, then decodes.
	for _, tg := range loomtest.Targets(t) {
		run := func(buckets int) (out [][]int32, lps [][]float32, replays int) {
			e := loadTiny(t, tg, graph.Float32)
			e.StepBuckets = buckets
			out, lps = make([][]int32, seqs), make([][]float32, seqs)
			fed := make([]int, seqs)
			for step := range steps {
				var rows []Row
				var who []int
				for i := range seqs {
					if step < 2*i {
						continue
					}
					if step == 2*i {
						if err := e.Cache.Add(i); err != nil {
							t.Fatal(err)
						}
					}
					all := append(slices.Clone(prompts[i]), out[i]...)
					n := min(len(all)-fed[i], 1+(i+step)%5)
					d := draw(i)
					if d.Penalties.Active() {
						d.Penalties.Prompt, d.Penalties.Output = prompts[i], out[i]
					}
					rows = append(rows, Row{Seq: i, Tokens: all[fed[i] : fed[i]+n], Draw: d})
					who = append(who, i)
					fed[i] += n
				}
				s, err := e.StartStepSample(rows)
				if err != nil {
					t.Fatalf("%s: buckets %d step %d: %v", tg.Name, buckets, step, err)
				}
				got, err := s.Wait()
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(rows) {
					t.Fatalf("%s: buckets %d step %d: %d draws for %d rows", tg.Name, buckets, step, len(got), len(rows))
				}
				replays += s.p.Stats().CacheHits
				for j, i := range who {
					if fed[i] == len(prompts[i])+len(out[i]) { // the token after all it has
						out[i] = append(out[i], got[j].Token)
						lps[i] = append(lps[i], got[j].Logprob)
					}
				}
			}
			tg.NoHazards(t)
			return out, lps, replays
		}
		want, wantLps, plain := run(0)
		for _, k := range []int{1, 4} {
			got, lps, replays := run(k)
			for i := range want {
				if !slices.Equal(got[i], want[i]) {
					t.Errorf("%s: buckets %d: sequence %d drew %v, unpadded %v", tg.Name, k, i, got[i], want[i])
				} else if tg.Exact && !slices.EqualFunc(lps[i], wantLps[i], func(a, b float32) bool { return a == b || a != a && b != b }) {
					t.Errorf("%s: buckets %d: sequence %d log-probs %v, unpadded %v", tg.Name, k, i, lps[i], wantLps[i])
				}
			}
			if k == 1 && replays <= plain {
				t.Errorf("%s: padded to one size a doubling, %d steps replayed, unpadded %d", tg.Name, replays, plain)
			}
			t.Logf("%s: buckets %d: %d of %d steps replayed (unpadded %d)", tg.Name, k, replays, steps, plain)
		}
	}
}

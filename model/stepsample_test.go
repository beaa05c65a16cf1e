package model

import (
	"slices"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
)

// TestStepSample checks StepSample's tokens against a host loop over the
// same model (Step's logits drawn by the float64 reference with the same
// counter, the position), with one prompt fed in two chunks on the
// StepSample side (the token after the first chunk is ignored) and every
// prompt in one piece on the reference side. On a GPU a token may differ
// only where the reference's margin is within rounding, and then the
// sequence is not compared further.
func TestStepSample(t *testing.T) {
	sampling := []ops.Sampling{
		{},
		{Temperature: 0.9, TopK: 20, Seed: 7},
		{Temperature: 1.2, TopP: 0.8, MinP: 0.02, Seed: 1 << 40},
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
		// Sequence 2's prompt is fed in two chunks, the first beside
		// sequence 0's whole prompt.
		p2 := decodePrompts[2]
		pre, err := e.StepSample([]int{0, 2}, [][]int32{decodePrompts[0], p2[:3]}, []ops.Sampling{sampling[0], sampling[2]})
		if err != nil {
			t.Fatal(err)
		}
		next := [][]int32{nil, decodePrompts[1], p2[3:]}
		history := make([][]int32, len(seqs))
		for i, p := range decodePrompts {
			history[i] = slices.Clone(p)
		}
		refNext := slices.Clone(decodePrompts)
		parted := make([]bool, len(seqs))
		for step := range steps {
			var ss []int
			var ts [][]int32
			var sm []ops.Sampling
			for i := range seqs {
				if next[i] != nil {
					ss, ts, sm = append(ss, seqs[i]), append(ts, next[i]), append(sm, sampling[i])
				}
			}
			got, err := e.StepSample(ss, ts, sm)
			if err != nil {
				t.Fatal(err)
			}
			if step == 0 { // sequence 0 drew its first token in the step before
				got = append([]int32{pre[0]}, got...)
			}
			r, err := e.Step(ref, refNext)
			if err != nil {
				t.Fatal(err)
			}
			for i := range seqs {
				want, margin := loomtest.SampleRef(f64(r.Logits[i]), sampling[i], int32(len(history[i])), nil)
				if !parted[i] && int(got[i]) != want {
					if tg.Exact || margin >= 1e-5 {
						t.Fatalf("%s: sequence %d step %d: token %d, want %d (margin %.3g)", tg.Name, i, step, got[i], want, margin)
					}
					parted[i] = true
				}
				history[i] = append(history[i], int32(want))
				next[i], refNext[i] = []int32{int32(want)}, []int32{int32(want)}
			}
		}
		for _, o := range []ops.Sampling{{RepetitionPenalty: 1.2}, {PresencePenalty: 0.1}, {FrequencyPenalty: -0.1}} {
			if _, err := e.StepSample([]int{0}, [][]int32{{1}}, []ops.Sampling{o}); err == nil || !strings.Contains(err.Error(), "unsupported") {
				t.Errorf("%s: penalties %+v: error %v", tg.Name, o, err)
			}
		}
		tg.NoHazards(t)
	}
}

package model

import (
	"fmt"
	"math"
	"slices"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/ops"
)

// Draw is how StepSample draws one sequence's next token.
type Draw struct {
	// Sampling draws the token; its RepetitionPenalty must be off (the
	// penalties below replace it, over the whole sequence).
	Sampling  ops.Sampling
	Penalties Penalties
	// Logprobs asks for the drawn token's log-probability, and
	// TopLogprobs (≤ the vocabulary) for those of the most likely tokens.
	Logprobs    bool
	TopLogprobs int
}

// Penalties change a sequence's logits before its token is drawn, in
// vLLM's order: the logit of each distinct token of Prompt and Output is
// divided by Repetition if positive, else multiplied by it (Hugging Face's
// and vLLM's repetition_penalty; 0 or 1 is off); then OpenAI's
// frequency_penalty times its count in Output, and presence_penalty once
// if it occurs there, are subtracted.
type Penalties struct {
	Repetition, Presence, Frequency float32
	Prompt, Output                  []int32
}

// Active reports whether p changes any logit.
func (p Penalties) Active() bool {
	return (p.Repetition != 0 && p.Repetition != 1) || p.Presence != 0 || p.Frequency != 0
}

// Drawn is one sequence's result of StepSample.
type Drawn struct {
	// Token is the drawn token, −1 where none could be drawn (every logit
	// −Inf or NaN).
	Token int32
	// Logprobs are the token's and the TopLogprobs most likely tokens',
	// when the Draw asked.
	Logprobs
}

// Logprobs are log-probabilities under the model's logits (before
// penalties, temperature and filters: vLLM's raw log-probs; see
// ops.SampleLogprobs): Logprob the drawn token's (NaN for none), Top the
// most likely tokens' (most likely first; ties in token order).
type Logprobs struct {
	Logprob float32
	Top     []TokenLogprob
}

// TokenLogprob is a token and its log-probability.
type TokenLogprob struct {
	Token   int32
	Logprob float32
}

// StepSample is Step with each sequence's next token drawn on the device
// as draws[i] says (ops.Sample, counter: the position the token will
// take, as the Decoder's), so that only the token ids, and the
// log-probabilities asked for, come back. It is for schedulers that
// change the batch every step; a sequence in the middle of its prompt
// gets a token the caller ignores.
func (e *Engine) StepSample(seqs []int, tokens [][]int32, draws []Draw) ([]Drawn, error) {
	if len(draws) != len(seqs) {
		return nil, fmt.Errorf("step: %d sequences but %d draws", len(seqs), len(draws))
	}
	flat, counts, err := e.checkTokens(seqs, tokens)
	if err != nil {
		return nil, err
	}
	v := e.Model.Config.VocabSize
	sampling := make([]ops.Sampling, len(draws))
	penalties, topK, logprobs := false, 0, false
	for i, d := range draws {
		if err := e.CheckDraw(d); err != nil {
			return nil, fmt.Errorf("step: sequence %d: %w", seqs[i], err)
		}
		sampling[i] = d.Sampling
		penalties = penalties || d.Penalties.Active()
		logprobs = logprobs || d.Logprobs
		topK = max(topK, d.TopLogprobs)
	}
	st, err := e.schedule(seqs, counts)
	if err != nil {
		return nil, err
	}
	in := e.Model.newStepInputs(st)
	logits := e.Model.forward(graph.FromInt32s(flat), st, in, e.Cache)
	scores := logits
	if penalties {
		scores = penalize(ops.Cast(logits, graph.Float32), draws, v)
	}
	// The log-probs are of the raw logits (of the scores' dtype), before
	// the penalties.
	var ids, lpIDs, lps *graph.Array
	outs := []*graph.Array{}
	if logprobs {
		params, keys := ops.SamplingArrays(sampling)
		ids, lpIDs, lps = ops.SampleLogprobs(scores, in.seqLens, nil, params, keys, ops.Cast(logits, scores.DType()), topK)
		outs = append(outs, ids, lpIDs, lps)
	} else {
		ids = ops.Sample(scores, in.seqLens, nil, sampling)
		outs = append(outs, ids)
	}
	if err := e.Model.rt.Eval(outs...); err != nil {
		return nil, fmt.Errorf("step: %w", err)
	}
	tok, err := ids.Int32s()
	if err != nil {
		return nil, fmt.Errorf("step: reading tokens: %w", err)
	}
	res := make([]Drawn, len(seqs))
	for i := range res {
		res[i].Token = tok[i]
	}
	if !logprobs {
		return res, nil
	}
	top := make([]int, len(draws))
	for i, d := range draws {
		top[i] = -1
		if d.Logprobs {
			top[i] = d.TopLogprobs
		}
	}
	lp, err := readLogprobs(lpIDs, lps, top)
	if err != nil {
		return nil, fmt.Errorf("step: %w", err)
	}
	for i := range res {
		res[i].Logprobs = lp[i]
	}
	return res, nil
}

// readLogprobs reads back what ops.SampleLogprobs reported (ids and lps
// [S, 1+N]): row i's drawn token's log-probability and top[i] (≤ N) most
// likely tokens', nothing where top[i] < 0.
func readLogprobs(ids, lps *graph.Array, top []int) ([]Logprobs, error) {
	tids, err := ids.Int32s()
	if err != nil {
		return nil, fmt.Errorf("reading log-probs: %w", err)
	}
	tlp, err := lps.Float32s()
	if err != nil {
		return nil, fmt.Errorf("reading log-probs: %w", err)
	}
	cols := ids.Shape()[1]
	out := make([]Logprobs, len(top))
	for i, n := range top {
		if n < 0 {
			continue
		}
		row := i * cols
		out[i].Logprob = tlp[row]
		out[i].Top = make([]TokenLogprob, n)
		for j := range n {
			out[i].Top[j] = TokenLogprob{tids[row+1+j], tlp[row+1+j]}
		}
	}
	return out, nil
}

// CheckDraw returns an error that names d's first setting out of range.
func (e *Engine) CheckDraw(d Draw) error {
	v := e.Model.Config.VocabSize
	finite := func(x float32) bool { return !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0) }
	p := d.Penalties
	if err := d.Sampling.Validate(); err != nil {
		return err
	}
	switch {
	case d.Sampling.Penalized():
		return fmt.Errorf("Sampling's repetition, presence and frequency penalties are unsupported by StepSample (it keeps no window): use Penalties")
	case !(p.Repetition >= 0) || !finite(p.Repetition):
		return fmt.Errorf("repetition penalty %v must be a finite number > 0 (or 0 for 1)", p.Repetition)
	case !finite(p.Presence) || !finite(p.Frequency):
		return fmt.Errorf("presence penalty %v and frequency penalty %v must be finite", p.Presence, p.Frequency)
	case d.TopLogprobs < 0 || d.TopLogprobs > min(v, ops.MaxTopLogprobs):
		return fmt.Errorf("%d top log-probs: want 0 to %d (at most the vocabulary's %d)", d.TopLogprobs, ops.MaxTopLogprobs, v)
	case d.TopLogprobs > 0 && !d.Logprobs:
		return fmt.Errorf("%d top log-probs without Logprobs", d.TopLogprobs)
	}
	for _, ts := range [][]int32{p.Prompt, p.Output} {
		for j, id := range ts {
			if id < 0 || int(id) >= v {
				return fmt.Errorf("penalized token %d is %d, outside the vocabulary [0, %d)", j, id, v)
			}
		}
	}
	return nil
}

// penalize applies each row's penalties to logits (float32 [S, V]): the
// logits of the tokens they touch are gathered, changed and scattered
// back, so only those cross to the device.
func penalize(logits *graph.Array, draws []Draw, v int) *graph.Array {
	var idx []int32
	var div, sub []float32
	for s, d := range draws {
		p := d.Penalties
		if !p.Active() {
			continue
		}
		count := map[int32]int{}
		for _, t := range p.Output {
			count[t]++
		}
		seen := map[int32]bool{}
		for _, ts := range [][]int32{p.Prompt, p.Output} {
			for _, t := range ts {
				seen[t] = true
			}
		}
		rep := p.Repetition
		if rep == 0 {
			rep = 1
		}
		ids := make([]int32, 0, len(seen))
		for t := range seen {
			ids = append(ids, t)
		}
		slices.Sort(ids)
		for _, t := range ids {
			c := count[t]
			d := p.Frequency * float32(c)
			if c > 0 {
				d += p.Presence
			}
			idx, div, sub = append(idx, int32(s*v)+t), append(div, rep), append(sub, d)
		}
	}
	if len(idx) == 0 {
		return logits
	}
	n, s := len(idx), len(draws)
	flat := ops.Reshape(logits, s*v, 1)
	at := graph.FromInt32s(idx)
	x := ops.GatherRows(flat, at)
	r := graph.FromFloat32s(div, n, 1)
	x = ops.Where(ops.Greater(x, graph.FromFloat32s([]float32{0}, 1, 1)), ops.Div(x, r), ops.Mul(x, r))
	x = ops.Sub(x, graph.FromFloat32s(sub, n, 1))
	return ops.Reshape(ops.ScatterRows(flat, at, x), s, v)
}

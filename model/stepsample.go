package model

import (
	"fmt"
	"math"
	"slices"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
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
// if it occurs there, are subtracted. They are the sampling kernel's
// penalties (ops.Sample) over a window of the whole sequence: Output's
// tokens, and Prompt's others for the repetition penalty only.
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
	// Logprob is Token's log-probability under the model's logits (before
	// penalties, temperature and filters: vLLM's raw log-probs), and Top
	// the TopLogprobs most likely tokens' (most likely first; ties in
	// token order), when the Draw asked.
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
	s, err := e.StartStepSample(seqs, tokens, draws)
	if err != nil {
		return nil, err
	}
	return s.Wait()
}

// Sampled is a step StartStepSample submitted, to be read back by Wait.
type Sampled struct {
	p                          *runtime.Pending
	draws                      []Draw
	topK                       int
	ids, chosen, topIDs, topLP *graph.Array // chosen: nil without log-probs
}

// StartStepSample is StepSample without the wait: it submits the step and
// returns, so that the host can do other work (a server hands out the
// previous step's tokens) while the device runs it, and Wait reads its
// draws. Bad arguments are errors that leave the engine unchanged; from
// the submission on, the cache holds the step's tokens.
func (e *Engine) StartStepSample(seqs []int, tokens [][]int32, draws []Draw) (*Sampled, error) {
	if len(draws) != len(seqs) {
		return nil, fmt.Errorf("step: %d sequences but %d draws", len(seqs), len(draws))
	}
	flat, counts, err := e.checkTokens(seqs, tokens)
	if err != nil {
		return nil, err
	}
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
	var window *graph.Array
	if penalties {
		window = penaltyWindow(draws, sampling)
	}
	in := e.Model.newStepInputs(st)
	logits := e.Model.forward(graph.FromInt32s(flat), st, in, e.Cache)
	ids := ops.Sample(logits, in.seqLens, window, sampling)
	outs := []*graph.Array{ids}
	var chosen, topIDs, topLP *graph.Array
	if logprobs {
		chosen, topIDs, topLP = logprobArrays(ops.Cast(logits, graph.Float32), ids, topK)
		outs = append(outs, chosen)
		if topK > 0 {
			outs = append(outs, topIDs, topLP)
		}
	}
	p, err := e.Model.rt.EvalAsync(outs...)
	if err != nil {
		return nil, fmt.Errorf("step: %w", err)
	}
	return &Sampled{p: p, draws: draws, topK: topK, ids: ids, chosen: chosen, topIDs: topIDs, topLP: topLP}, nil
}

// Wait waits for the step and returns each sequence's draw. An error of
// the evaluation leaves the cache spent, as Step's.
func (s *Sampled) Wait() ([]Drawn, error) {
	if err := s.p.Wait(); err != nil {
		return nil, fmt.Errorf("step: %w", err)
	}
	tok, err := s.ids.Int32s()
	if err != nil {
		return nil, fmt.Errorf("step: reading tokens: %w", err)
	}
	res := make([]Drawn, len(tok))
	for i := range res {
		res[i].Token = tok[i]
	}
	if s.chosen == nil {
		return res, nil
	}
	topK := s.topK
	lp, err := s.chosen.Float32s()
	if err != nil {
		return nil, fmt.Errorf("step: reading log-probs: %w", err)
	}
	var tids []int32
	var tlp []float32
	if topK > 0 {
		if tids, err = s.topIDs.Int32s(); err == nil {
			tlp, err = s.topLP.Float32s()
		}
		if err != nil {
			return nil, fmt.Errorf("step: reading top log-probs: %w", err)
		}
	}
	for i, d := range s.draws {
		if !d.Logprobs {
			continue
		}
		res[i].Logprob = lp[i]
		for j := range d.TopLogprobs {
			res[i].Top = append(res[i].Top, TokenLogprob{tids[i*topK+j], tlp[i*topK+j]})
		}
	}
	return res, nil
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
		return fmt.Errorf("Sampling's repetition, presence and frequency penalties are unsupported by StepSample (they see a window of latest tokens): use Penalties, which see the whole sequence")
	case !(p.Repetition >= 0) || !finite(p.Repetition):
		return fmt.Errorf("repetition penalty %v must be a finite number > 0 (or 0 for 1)", p.Repetition)
	case !finite(p.Presence) || !finite(p.Frequency):
		return fmt.Errorf("presence penalty %v and frequency penalty %v must be finite", p.Presence, p.Frequency)
	case d.TopLogprobs < 0 || d.TopLogprobs > v:
		return fmt.Errorf("%d top log-probs: want 0 to the vocabulary's %d", d.TopLogprobs, v)
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

// penaltyPad is the multiple of entries a penalty window is padded to,
// so that a step's structure, and so its plan, changes once per penaltyPad
// tokens a penalized sequence draws.
const penaltyPad = 64

// penaltyWindow returns the sampling window of the draws' penalties, and
// sets each penalized row's penalties in sampling: the row's Output
// tokens, then its Prompt's other distinct tokens for the repetition
// penalty only (primitives.RepetitionOnly), padded with −1.
func penaltyWindow(draws []Draw, sampling []ops.Sampling) *graph.Array {
	rows := make([][]int32, len(draws))
	w := 0
	for i, d := range draws {
		p := d.Penalties
		if !p.Active() {
			continue
		}
		sampling[i].RepetitionPenalty, sampling[i].PresencePenalty, sampling[i].FrequencyPenalty = p.Repetition, p.Presence, p.Frequency
		seen := make(map[int32]bool, len(p.Output))
		for _, t := range p.Output {
			seen[t] = true
		}
		row := slices.Clone(p.Output)
		for _, t := range p.Prompt {
			if !seen[t] {
				seen[t] = true
				row = append(row, primitives.RepetitionOnly(t))
			}
		}
		rows[i] = row
		w = max(w, len(row))
	}
	w = (w + penaltyPad - 1) / penaltyPad * penaltyPad
	win := slices.Repeat([]int32{-1}, len(draws)*w)
	for i, row := range rows {
		copy(win[i*w:], row)
	}
	return graph.FromInt32s(win, len(draws), w)
}

// logprobArrays returns, from logits (float32 [S, V]) and the drawn ids
// ([S], −1 for none), the drawn tokens' log-probabilities ([S, 1]; a row
// without a token gets token 0's), and the k most likely tokens ([S, k])
// and their log-probabilities ([S, k, 1]), found by k rounds of Argmax
// that each mask the maximum found (so ties come in token order).
func logprobArrays(logits, ids *graph.Array, k int) (chosen, topIDs, topLP *graph.Array) {
	s, v := logits.Shape()[0], logits.Shape()[1]
	m := ops.Max(logits, 1, true)
	shifted := ops.Sub(logits, m)
	lp := ops.Sub(shifted, ops.Log(ops.Sum(ops.Exp(shifted), 1, true)))
	flat := ops.Reshape(lp, s*v, 1)
	rowStart := make([]int32, s)
	for i := range rowStart {
		rowStart[i] = int32(i * v)
	}
	offsets := graph.FromInt32s(rowStart, s, 1)
	safe := ops.Maximum(ops.Reshape(ids, s, 1), graph.FromInt32s([]int32{0}, 1, 1))
	chosen = ops.Reshape(ops.GatherRows(flat, ops.Add(safe, offsets)), s, 1)
	if k == 0 {
		return chosen, nil, nil
	}
	iota := make([]int32, v)
	for i := range iota {
		iota[i] = int32(i)
	}
	cols := graph.FromInt32s(iota, 1, v)
	negInf := graph.FromFloat32s([]float32{float32(math.Inf(-1))}, 1, 1)
	cur := lp
	var found []*graph.Array
	for r := range k {
		am := ops.Reshape(ops.Argmax(cur, 1, false), s, 1)
		found = append(found, am)
		if r < k-1 {
			cur = ops.Where(ops.Equal(cols, am), negInf, cur)
		}
	}
	topIDs = ops.Concatenate(1, found...)
	topLP = ops.GatherRows(flat, ops.Add(topIDs, offsets))
	return chosen, topIDs, topLP
}

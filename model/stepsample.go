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
	if len(tokens) != len(seqs) || len(draws) != len(seqs) {
		return nil, fmt.Errorf("step: %d sequences, %d token lists and %d draws", len(seqs), len(tokens), len(draws))
	}
	rows := make([]Row, len(seqs))
	for i := range rows {
		rows[i] = Row{Seq: seqs[i], Tokens: tokens[i], Draw: draws[i]}
	}
	s, err := e.StartStepSample(rows)
	if err != nil {
		return nil, err
	}
	return s.Wait()
}

// A Row is one sequence's part of a sampled step (StartStepSample): the
// tokens it appends, and how its next token is drawn.
type Row struct {
	Seq    int
	Tokens []int32
	// Prev, if not nil, is the latest step StartStepSample submitted on
	// the engine, and the row appends the one token Prev drew at its row
	// PrevRow instead of Tokens (which must be empty): the step reads it
	// on the device, so it can be submitted before Prev's tokens are read
	// back (a scheduler keeps a step in flight as the Decoder does). The
	// token is in the row's penalty window without being in
	// Draw.Penalties.Output, which holds the output before it. Where Prev
	// drew no token (−1), the row appends token 0: its draws are for the
	// caller to discard.
	Prev    *Sampled
	PrevRow int
	Draw    Draw
}

// Sampled is a step StartStepSample submitted, to be read back by Wait.
type Sampled struct {
	p               *runtime.Pending
	draws           []Draw
	ids, lpIDs, lps *graph.Array // lpIDs, lps: nil without log-probs
}

// StartStepSample is StepSample without the wait, over rows: it submits
// the step and returns, so that the host can do other work (a server
// hands out the previous step's tokens, and builds and submits the next
// step, whose rows may append this one's draws: Row.Prev) while the device
// runs it, and Wait reads its draws. Bad arguments are errors that leave
// the engine unchanged; from the submission on, the cache holds the
// step's tokens. An error of the evaluation leaves the cache spent, and
// so the draws a next step would read.
//
// The engine keeps the latest step's draws on the device (drawn: row i's
// token at i), updated in place by every step, so that the plan cache
// sees the same buffer every step and replays a step that reads them as
// any other (runtime.Eval keys an evaluated input by its buffer).
func (e *Engine) StartStepSample(rows []Row) (*Sampled, error) {
	seqs := make([]int, len(rows))
	tokens := make([][]int32, len(rows))
	draws := make([]Draw, len(rows))
	prev, prevPenalized := false, false
	for i, r := range rows {
		seqs[i], tokens[i], draws[i] = r.Seq, r.Tokens, r.Draw
		if r.Prev == nil {
			continue
		}
		switch {
		case r.Prev != e.latest:
			return nil, fmt.Errorf("step: row %d (sequence %d) appends a draw of a step that is not the engine's latest sampled step", i, r.Seq)
		case len(r.Tokens) > 0:
			return nil, fmt.Errorf("step: row %d (sequence %d) has %d tokens and a previous step's draw: want one or the other", i, r.Seq, len(r.Tokens))
		case r.PrevRow < 0 || r.PrevRow >= len(r.Prev.draws):
			return nil, fmt.Errorf("step: row %d (sequence %d) appends row %d of a step of %d rows", i, r.Seq, r.PrevRow, len(r.Prev.draws))
		}
		tokens[i] = drawnPlaceholder
		prev = true
		prevPenalized = prevPenalized || r.Draw.Penalties.Active()
	}
	// flat holds a prev row's placeholder, which the gather below skips.
	flat, counts, err := e.checkTokens(seqs, tokens)
	if err != nil {
		return nil, err
	}
	if n := e.Cache.Config().NumBlocks; len(rows) > n {
		// Every row writes a block of its own, so a step that schedules
		// has at most this many.
		return nil, fmt.Errorf("step: %d rows: unsupported beyond the cache's %d blocks", len(rows), n)
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
	if e.drawn == nil {
		// Row n is never written: −1, the penalty window's padding.
		d := graph.FromInt32s(slices.Repeat([]int32{-1}, e.Cache.Config().NumBlocks+1))
		if err := e.Model.rt.Eval(d); err != nil {
			return nil, fmt.Errorf("step: %w", err)
		}
		e.drawn = d
	}
	none := int32(e.Cache.Config().NumBlocks) // drawn's −1
	st, err := e.schedule(seqs, counts)
	if err != nil {
		return nil, err
	}
	// Padding rows draw greedily and are not read back.
	n := e.padStep(st)
	flat = append(flat, make([]int32, st.Tokens()-len(flat))...)
	sampling = append(sampling, make([]ops.Sampling, n-len(rows))...)
	ids := graph.FromInt32s(flat)
	if prev {
		// The step's tokens are a gather from the latest draws followed
		// by the host's tokens (and the padding's).
		idx, fromPrev := make([]int32, len(flat)), 0
		for t := range idx {
			idx[t] = none + 1 + int32(t)
		}
		for i, r := range rows {
			if r.Prev != nil {
				idx[st.CuSeqlensQ[i]] = int32(r.PrevRow)
				fromPrev++
			}
		}
		table := e.drawn
		if len(flat) > fromPrev {
			table = ops.Concatenate(0, e.drawn, ids)
		}
		ids = ops.GatherRows(table, graph.FromInt32s(idx))
	}
	var window *graph.Array
	if penalties {
		window = penaltyWindow(append(draws[:len(draws):len(draws)], make([]Draw, n-len(rows))...), sampling)
		if prevPenalized {
			// A prev row's window also holds the token it appends.
			col := slices.Repeat([]int32{none}, n)
			for i, r := range rows {
				if r.Prev != nil && r.Draw.Penalties.Active() {
					col[i] = int32(r.PrevRow)
				}
			}
			window = ops.Concatenate(1, window, ops.Reshape(ops.GatherRows(e.drawn, graph.FromInt32s(col)), n, 1))
		}
	}
	in := e.Model.newStepInputs(st)
	logits := e.Model.forward(ids, st, in, e.Cache)
	// The log-probs are of the raw logits, before the penalties (which
	// the sampling kernel applies from the window).
	res := &Sampled{draws: draws}
	var outs []*graph.Array
	if logprobs {
		params, keys := ops.SamplingArrays(sampling)
		res.ids, res.lpIDs, res.lps = ops.SampleLogprobs(logits, in.seqLens, window, params, keys, logits, topK)
		outs = append(outs, res.ids, res.lpIDs, res.lps)
	} else {
		res.ids = ops.Sample(logits, in.seqLens, window, sampling)
		outs = append(outs, res.ids)
	}
	// A −1 (no token) is kept as 0, so that a row appending it reads a
	// token of the vocabulary.
	order := make([]int32, n)
	for i := range order {
		order[i] = int32(i)
	}
	drawn := ops.ScatterRows(e.drawn, graph.FromInt32s(order), ops.Maximum(res.ids, graph.Scalar(graph.Int32, 0)))
	outs = append(outs, drawn)
	// The old draws are consumed by the scatter: a failed submission
	// leaves none, and the next step starts a new buffer.
	e.drawn, e.latest = nil, nil
	if res.p, err = e.Model.rt.EvalAsync(outs...); err != nil {
		return nil, fmt.Errorf("step: %w", err)
	}
	e.drawn, e.latest = drawn, res
	return res, nil
}

// padStep pads st, if Engine.StepBuckets > 0, with rows of padding
// tokens (position 0 on, slot −1: written nowhere; block tables of block
// 0), to stepBucket's rows and tokens, and returns its rows. It pads
// nothing where the padding rows would pass the cache's blocks (the
// draws' array has a row for each) or a padding row its tables' span. A
// row's results do not depend on the padding rows beside it, as on the
// other rows of a batch.
func (e *Engine) padStep(st *Step) int {
	k := e.StepBuckets
	S, T := len(st.Seqs), st.Tokens()
	if k <= 0 {
		return S
	}
	// Every padding row has a token: pad rows until the tokens' bucket
	// needs no more tokens than they have, or they have some to take.
	S2 := stepBucket(S, k)
	T2 := stepBucket(T+S2-S, k)
	for T2 > T && S2 == S {
		S2 = stepBucket(S2+1, k)
		T2 = stepBucket(T+S2-S, k)
	}
	rows, extra := S2-S, T2-T
	if rows == 0 || S2 > e.Cache.Config().NumBlocks || (extra+rows-1)/rows > st.MaxBlocks*e.Cache.Config().BlockSize {
		return S
	}
	// The slices share one allocation (KVCache.schedule): clipped, each
	// grows into memory of its own.
	w := st.MaxBlocks
	st.BlockTables = append(slices.Clip(st.BlockTables), make([]int32, rows*w)...)
	st.Seqs, st.Positions, st.SlotMapping = slices.Clip(st.Seqs), slices.Clip(st.Positions), slices.Clip(st.SlotMapping)
	st.SeqLens, st.CuSeqlensQ, st.LastTokens = slices.Clip(st.SeqLens), slices.Clip(st.CuSeqlensQ), slices.Clip(st.LastTokens)
	for r := range rows {
		q := extra / rows
		if r < extra%rows {
			q++
		}
		for p := range q {
			st.Positions = append(st.Positions, int32(p))
			st.SlotMapping = append(st.SlotMapping, -1)
		}
		st.Seqs = append(st.Seqs, -1)
		st.SeqLens = append(st.SeqLens, int32(q))
		st.CuSeqlensQ = append(st.CuSeqlensQ, int32(len(st.Positions)))
		st.LastTokens = append(st.LastTokens, int32(len(st.Positions)-1))
	}
	return S2
}

// stepBucket is the size a step of n rows or tokens is padded to, with k
// sizes per doubling: n itself up to 2k, then the next multiple of 2, up
// to 4k, of 4 up to 8k, and so on.
func stepBucket(n, k int) int {
	step := 1
	for n > 2*k*step {
		step *= 2
	}
	return (n + step - 1) / step * step
}

// drawnPlaceholder stands for a prev row's token in the host's tokens.
var drawnPlaceholder = []int32{0}

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
	res := make([]Drawn, len(s.draws)) // without the padding rows
	for i := range res {
		res[i].Token = tok[i]
	}
	if s.lps == nil {
		return res, nil
	}
	top := make([]int, len(s.draws))
	for i, d := range s.draws {
		top[i] = -1
		if d.Logprobs {
			top[i] = d.TopLogprobs
		}
	}
	lp, err := readLogprobs(s.lpIDs, s.lps, top)
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
		return fmt.Errorf("Sampling's repetition, presence and frequency penalties are unsupported by StepSample (they see a window of latest tokens): use Penalties, which see the whole sequence")
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

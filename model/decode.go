package model

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

// DefaultPenaltyWindow is how many of a sequence's latest tokens the
// repetition penalty sees when no window is given.
const DefaultPenaltyWindow = 64

// Decoder decodes a batch of sequences with the tokens drawn on the device,
// one step ahead of its caller (as mlx-lm's generate loop): step k+1 takes
// step k's token array, still on the device, as its input, and is built
// and submitted (runtime.EvalAsync) before step k's tokens are read back.
// So the host builds and encodes a step while the device runs the one
// before, and waits once per step; only the token ids come back.
//
// Each Next delivers one step's tokens. A step submitted because the
// caller asked for more and not delivered (the caller stopped at an EOS)
// is waited for and taken back out of the cache by Close: afterwards each
// sequence holds its prompt and the tokens delivered, except the last one.
type Decoder struct {
	e        *Engine
	seqs     []int
	sampling []ops.Sampling
	// window holds each sequence's latest tokens for the repetition
	// penalty, oldest first and −1 where there are fewer; nil when no
	// sequence has a penalty.
	window *graph.Array
	flight *flight // the step submitted and not yet delivered
	last   time.Time
}

// flight is a submitted step.
type flight struct {
	tokens *graph.Array // int32 [S], drawn on the device
	p      *runtime.Pending
	decode bool // it appended one drawn token per sequence (not a prompt)
}

// NewDecoder appends prompts[i] (at least one token) to sequence seqs[i],
// submits that step, and returns a decoder whose first Next delivers the
// first token of each sequence, drawn with sampling[i]. penaltyWindow is
// the number of latest tokens the repetition penalty sees (0:
// DefaultPenaltyWindow). Bad arguments are errors that leave the engine
// unchanged.
func (e *Engine) NewDecoder(seqs []int, prompts [][]int32, sampling []ops.Sampling, penaltyWindow int) (*Decoder, error) {
	if len(sampling) != len(seqs) {
		return nil, fmt.Errorf("decoder: %d sequences but %d sampling settings", len(seqs), len(sampling))
	}
	for i, o := range sampling {
		if err := o.Validate(); err != nil {
			return nil, fmt.Errorf("decoder: sequence %d: %w", seqs[i], err)
		}
	}
	if penaltyWindow < 0 {
		return nil, fmt.Errorf("decoder: penalty window %d must be ≥ 0", penaltyWindow)
	}
	flat, counts, err := e.checkTokens(seqs, prompts)
	if err != nil {
		return nil, err
	}
	for i, n := range counts {
		if n == 0 {
			return nil, fmt.Errorf("decoder: sequence %d has an empty prompt", seqs[i])
		}
	}
	d := &Decoder{e: e, seqs: slices.Clone(seqs), sampling: slices.Clone(sampling), last: time.Now()}
	if slices.ContainsFunc(sampling, func(o ops.Sampling) bool { return o.RepetitionPenalty != 0 && o.RepetitionPenalty != 1 }) {
		w := penaltyWindow
		if w == 0 {
			w = DefaultPenaltyWindow
		}
		win := slices.Repeat([]int32{-1}, len(seqs)*w)
		for i, p := range prompts {
			tail := p[max(0, len(p)-w):]
			copy(win[(i+1)*w-len(tail):], tail)
		}
		d.window = graph.FromInt32s(win, len(seqs), w)
	}
	if d.flight, err = d.submit(graph.FromInt32s(flat), counts, false); err != nil {
		return nil, err
	}
	return d, nil
}

// submit schedules and submits the step that appends ids (counts[i] of
// them to sequence i) and draws the next token of each sequence. A decode
// step's ids are the tokens the previous step drew; they join the window.
func (d *Decoder) submit(ids *graph.Array, counts []int, decode bool) (*flight, error) {
	e := d.e
	st, err := e.Cache.Schedule(d.seqs, counts)
	if err != nil {
		return nil, err
	}
	window := d.window
	if decode && window != nil {
		s, w := window.Shape()[0], window.Shape()[1]
		window = ops.Concatenate(1, ops.Slice(window, []int{0, 1}, []int{s, w}), ops.Reshape(ids, s, 1))
	}
	// The draw's counter is the position the drawn token will take.
	tokens := ops.Sample(e.Model.ForwardIDs(ids, st, e.Cache), graph.FromInt32s(st.SeqLens), window, d.sampling)
	outs := []*graph.Array{tokens}
	if window != nil {
		outs = append(outs, window)
	}
	p, err := e.Model.rt.EvalAsync(outs...)
	if err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	d.window = window
	return &flight{tokens: tokens, p: p, decode: decode}, nil
}

// Next delivers the tokens of the step in flight. With more, it first
// submits the step that appends them to the cache and draws the next
// ones, so that the device has work while the host reads these; without,
// nothing follows and the decoder is done. An error to submit the next
// step (too few free blocks, a sequence at the model's positions) leaves
// the step in flight for a Next(false); an error of the evaluation leaves
// the cache spent, as Step's.
func (d *Decoder) Next(more bool) (*StepResult, error) {
	cur := d.flight
	if cur == nil {
		return nil, errors.New("decoder: no step in flight")
	}
	if more {
		for _, id := range d.seqs {
			if err := d.e.checkLength(id, 1); err != nil {
				return nil, err
			}
		}
		next, err := d.submit(cur.tokens, slices.Repeat([]int{1}, len(d.seqs)), true)
		if err != nil {
			return nil, err
		}
		d.flight = next
	} else {
		d.flight = nil
	}
	ids, err := cur.tokens.Int32s()
	if err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	now := time.Now()
	r := &StepResult{Tokens: ids, Stats: cur.p.Stats(), Time: now.Sub(d.last)}
	d.last = now
	return r, nil
}

// Close waits for a step still in flight and, if it appended drawn tokens,
// takes them back out of the cache. It returns that step's error.
func (d *Decoder) Close() error {
	f := d.flight
	d.flight = nil
	if f == nil {
		return nil
	}
	err := f.p.Wait()
	if f.decode {
		for _, id := range d.seqs {
			if terr := d.e.Cache.Truncate(id, d.e.Cache.Len(id)-1); err == nil {
				err = terr
			}
		}
	}
	return err
}

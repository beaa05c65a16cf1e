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
// penalties (repetition, presence, frequency) see when no window is given.
const DefaultPenaltyWindow = 64

// Decoder decodes a batch of sequences with the tokens drawn on the device,
// one step ahead of its caller (as mlx-lm's generate loop): step k+1 takes
// step k's token array, still on the device, as its input, and is
// submitted before step k's tokens are read back. So the host prepares a
// step while the device runs the one before, and waits once per step;
// only the token ids come back.
//
// The first step (the prompts) is built with ops and evaluated with
// EvalAsync. Every decode step (one token per sequence) is the engine's
// compiled step (runtime.Compiled): traced once per structure (the batch,
// the padded block tables' width, the penalty window's width), then
// replayed without building its graph, binding step k's token array and
// penalty window (on the device) and the step's metadata and sampling
// settings (uploaded) as its inputs.
//
// Each Next delivers one step's tokens. A step submitted because the
// caller asked for more and not delivered (the caller stopped at an EOS)
// is waited for and taken back out of the cache by Close: afterwards each
// sequence holds its prompt and the tokens delivered, except the last one.
//
// Log-probs, when asked for (DecoderOptions.Logprobs, SetLogprobs), are
// computed by the draw's kernel (ops.SampleLogprobs, of the raw logits)
// and come back with the tokens: 2·(1+N) numbers a sequence. A step with
// log-probs is a structure of its own (N is part of its key), compiled
// and replayed as the others: steps that ask alike replay, and a change
// of what is asked traces once more, as any change of structure (the KV
// cache's state passes from one trace to the other).
type Decoder struct {
	e            *Engine
	seqs         []int
	sampling     []ops.Sampling
	params, keys []byte // the sampling settings' bytes (ops.SamplingArrays)
	// logprobs is each sequence's number of top log-probs for the steps
	// submitted next, −1 for none; nil when no sequence asks.
	logprobs []int
	// window holds each sequence's latest tokens for the penalties, oldest
	// first and −1 where there are fewer; nil when no sequence has a
	// penalty.
	window *graph.Array
	flight *flight // the step submitted and not yet delivered
	last   time.Time
	// What every decode step would otherwise allocate again: the token
	// counts (one a sequence), the compiled step's args (Call keeps
	// none), the flight that the last Next delivered, and the key.
	ones  []int
	args  []runtime.Input
	spare *flight
	key   any // the decode step's structure (decodeKey), boxed
}

// flight is a submitted step.
type flight struct {
	tokens *graph.Array // int32 [S], drawn on the device
	p      *runtime.Pending
	// mem holds the step's metadata, which its uploads read until it
	// completes; then a later step's may take it over.
	mem    stepMemory
	decode bool // it appended one drawn token per sequence (not a prompt)
	// lpIDs and lps are ops.SampleLogprobs' reports when logprobs (the
	// decoder's at submission) asked for them.
	lpIDs, lps *graph.Array
	logprobs   []int
}

// decodeKey identifies a decode step's structure: with padded tables,
// MaxSeqLen follows from their width; top is the log-probs' N, −1 for
// none.
type decodeKey struct{ seqs, tableWidth, window, top int }

// DecoderOptions are a Decoder's settings besides the sampling.
type DecoderOptions struct {
	// PenaltyWindow is the number of latest tokens the penalties see (0:
	// DefaultPenaltyWindow).
	PenaltyWindow int
	// Logprobs asks for log-probs from the first step on, as SetLogprobs.
	Logprobs []int
}

// NewDecoder appends prompts[i] (at least one token) to sequence seqs[i],
// submits that step, and returns a decoder whose first Next delivers the
// first token of each sequence, drawn with sampling[i]. penaltyWindow is
// the number of latest tokens the penalties see (0:
// DefaultPenaltyWindow). Bad arguments are errors that leave the engine
// unchanged.
func (e *Engine) NewDecoder(seqs []int, prompts [][]int32, sampling []ops.Sampling, penaltyWindow int) (*Decoder, error) {
	return e.NewDecoderWith(seqs, prompts, sampling, DecoderOptions{PenaltyWindow: penaltyWindow})
}

// NewDecoderWith is NewDecoder with options: the penalty window and the
// log-probs of the first step.
func (e *Engine) NewDecoderWith(seqs []int, prompts [][]int32, sampling []ops.Sampling, o DecoderOptions) (*Decoder, error) {
	penaltyWindow := o.PenaltyWindow
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
	d := &Decoder{e: e, seqs: slices.Clone(seqs), sampling: slices.Clone(sampling), last: time.Now(), ones: slices.Repeat([]int{1}, len(seqs))}
	if err := d.SetLogprobs(o.Logprobs); err != nil {
		return nil, err
	}
	params, keys := ops.SamplingArrays(sampling)
	d.params, d.keys = params.HostBytes(), keys.HostBytes()
	if slices.ContainsFunc(sampling, ops.Sampling.Penalized) {
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
	st, err := e.schedule(seqs, counts)
	if err != nil {
		return nil, err
	}
	outs, _ := d.graph(graph.FromInt32s(flat), st, false)
	p, err := e.Model.rt.EvalAsync(outs...)
	if err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	d.flight = d.newFlight(new(flight), outs, p, false)
	return d, nil
}

// SetLogprobs asks for log-probs in the steps submitted from now on (by
// the next Next(true)): for sequence i, with logprobs[i] ≥ 0, its drawn
// token's log-probability and its logprobs[i] (≤ ops.MaxTopLogprobs) most
// likely tokens', in StepResult.Logprobs; none where logprobs[i] < 0, or
// for any sequence with nil.
func (d *Decoder) SetLogprobs(logprobs []int) error {
	if logprobs != nil && len(logprobs) != len(d.seqs) {
		return fmt.Errorf("decoder: %d log-probs settings for %d sequences", len(logprobs), len(d.seqs))
	}
	v := d.e.Model.Config.VocabSize
	for i, n := range logprobs {
		if n > min(v, ops.MaxTopLogprobs) {
			return fmt.Errorf("decoder: sequence %d: %d top log-probs: want at most %d (and the vocabulary's %d)", d.seqs[i], n, ops.MaxTopLogprobs, v)
		}
	}
	d.logprobs = nil
	if slices.ContainsFunc(logprobs, func(n int) bool { return n >= 0 }) {
		d.logprobs = slices.Clone(logprobs)
	}
	return nil
}

// top is the log-probs' N of the steps submitted next: the most any
// sequence asks for, −1 for none.
func (d *Decoder) top() int {
	if d.logprobs == nil {
		return -1
	}
	return slices.Max(d.logprobs)
}

// newFlight makes f the flight of a step submitted with graph's outputs;
// f.mem holds the step's metadata, if it was scheduled there.
func (d *Decoder) newFlight(f *flight, outs []*graph.Array, p *runtime.Pending, decode bool) *flight {
	*f = flight{tokens: outs[0], p: p, decode: decode, mem: f.mem}
	if d.logprobs != nil {
		f.lpIDs, f.lps, f.logprobs = outs[len(outs)-2], outs[len(outs)-1], d.logprobs
	}
	return f
}

// graph builds a step's graph: the forward pass over ids and the draw of
// each sequence's next token; a decode step's ids (one a sequence) join
// the penalty window first. It returns the outputs, the tokens, the
// window if any and the log-probs' ids and values if asked for, and the
// inputs that decodeArgs binds, in its order.
func (d *Decoder) graph(ids *graph.Array, st *Step, decode bool) (outs, inputs []*graph.Array) {
	in := d.e.Model.newStepInputs(st)
	params, keys := ops.SamplingArrays(d.sampling)
	inputs = append(append([]*graph.Array{ids}, in.list()...), params, keys)
	window := d.window
	if window != nil {
		inputs = append(inputs, window)
		if decode {
			s, w := window.Shape()[0], window.Shape()[1]
			window = ops.Concatenate(1, ops.Slice(window, []int{0, 1}, []int{s, w}), ops.Reshape(ids, s, 1))
		}
	}
	// The draw's counter is the position the drawn token will take.
	logits := d.e.Model.forward(ids, st, in, d.e.Cache)
	if top := d.top(); top >= 0 {
		tokens, lpIDs, lps := ops.SampleLogprobs(logits, in.seqLens, window, params, keys, logits, top)
		outs = []*graph.Array{tokens}
		if window != nil {
			outs = append(outs, window)
		}
		return append(outs, lpIDs, lps), inputs
	}
	outs = []*graph.Array{ops.SampleWith(logits, in.seqLens, window, params, keys)}
	if window != nil {
		outs = append(outs, window)
	}
	return outs, inputs
}

// decodeArgs are a decode step's data for the inputs graph returns, in
// d.args.
func (d *Decoder) decodeArgs(ids *graph.Array, st *Step) []runtime.Input {
	args := appendStepArgs(append(d.args[:0], runtime.Array(ids)), st)
	args = append(args, runtime.Bytes(d.params), runtime.Bytes(d.keys))
	if d.window != nil {
		args = append(args, runtime.Array(d.window))
	}
	d.args = args
	return args
}

// decode schedules and submits the decode step that appends ids, the
// tokens the previous step drew, and draws the next ones.
func (d *Decoder) decode(ids *graph.Array) (*flight, error) {
	e := d.e
	// This step's flight and metadata take the memory of the spare
	// flight, whose step has completed.
	f := d.spare
	if f == nil {
		f = new(flight)
	}
	st, err := e.scheduleInto(&f.mem, d.seqs, d.ones)
	if err != nil {
		return nil, err
	}
	d.spare = nil
	key := decodeKey{seqs: len(d.seqs), tableWidth: st.MaxBlocks, top: d.top()}
	if d.window != nil {
		key.window = d.window.Shape()[1]
	}
	if k, ok := d.key.(decodeKey); !ok || k != key {
		d.key = key // boxed once a structure, not every step
	}
	if e.decodeStep == nil {
		e.decodeStep = e.Model.rt.Compile()
	}
	build := func() (outs, inputs []*graph.Array) { return d.graph(ids, st, true) }
	outs, p, err := e.decodeStep.Call(d.key, build, d.decodeArgs(ids, st)...)
	if err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	if d.window != nil {
		d.window = outs[1]
	}
	return d.newFlight(f, outs, p, true), nil
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
		next, err := d.decode(cur.tokens)
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
	r := &StepResult{Tokens: ids, Stats: cur.p.Stats()}
	if cur.lpIDs != nil {
		if r.Logprobs, err = readLogprobs(cur.lpIDs, cur.lps, cur.logprobs); err != nil {
			return nil, fmt.Errorf("decoder: %w", err)
		}
	}
	now := time.Now()
	r.Time = now.Sub(d.last)
	d.last = now
	*cur = flight{mem: cur.mem}
	d.spare = cur
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

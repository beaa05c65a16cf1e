package ops

import (
	"fmt"
	"math"
	"slices"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// Sampling is how one sequence's next token is drawn (see
// primitives.Sample for the exact algorithm). The zero value is greedy.
type Sampling struct {
	// Temperature divides the logits; 0 is greedy (the first maximum).
	Temperature float32
	// TopK keeps the K most likely tokens (and any tied with the K-th);
	// 0 keeps all.
	TopK int
	// TopP keeps the most likely tokens down to the first whose running
	// total reaches TopP of the kept probability (and any tied with it);
	// 0 or 1 keeps all.
	TopP float32
	// MinP keeps the tokens at least MinP times as likely as the most
	// likely one; 0 keeps all.
	MinP float32
	// RepetitionPenalty divides the positive logits, and multiplies the
	// negative ones, of the tokens in the sequence's window (Hugging Face's
	// repetition_penalty); 0 or 1 is off.
	RepetitionPenalty float32
	// PresencePenalty is subtracted from the logit of each token in the
	// window, and FrequencyPenalty once for each time it occurs there
	// (OpenAI's presence_penalty and frequency_penalty, over the window as
	// llama.cpp's); after the repetition penalty; 0 is off, < 0 favours
	// repeats.
	PresencePenalty, FrequencyPenalty float32
	// Seed keys the sequence's stream of random numbers; the draw at
	// counter c of a seed is the same on every run.
	Seed uint64
}

// Validate returns an error that names the first setting out of range.
func (s Sampling) Validate() error {
	finite := func(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }
	switch {
	case !(s.Temperature >= 0) || !finite(s.Temperature):
		return fmt.Errorf("temperature %v must be a finite number ≥ 0", s.Temperature)
	case s.TopK < 0 || int64(s.TopK) > math.MaxUint32:
		return fmt.Errorf("top-k %d must lie in [0, 2^32)", s.TopK)
	case !(s.TopP >= 0 && s.TopP <= 1):
		return fmt.Errorf("top-p %v must lie in (0, 1] (or be 0 for 1)", s.TopP)
	case !(s.MinP >= 0 && s.MinP <= 1):
		return fmt.Errorf("min-p %v must lie in [0, 1]", s.MinP)
	case !(s.RepetitionPenalty >= 0) || !finite(s.RepetitionPenalty):
		return fmt.Errorf("repetition penalty %v must be a finite number > 0 (or 0 for 1)", s.RepetitionPenalty)
	case !finite(s.PresencePenalty):
		return fmt.Errorf("presence penalty %v must be a finite number", s.PresencePenalty)
	case !finite(s.FrequencyPenalty):
		return fmt.Errorf("frequency penalty %v must be a finite number", s.FrequencyPenalty)
	}
	return nil
}

// Penalized reports whether any penalty is on, so that the draw needs a
// window of previous tokens.
func (s Sampling) Penalized() bool {
	return s.RepetitionPenalty != 0 && s.RepetitionPenalty != 1 || s.PresencePenalty != 0 || s.FrequencyPenalty != 0
}

// Sample draws one token per row of logits ([S, V], a float dtype) with
// settings[s] for row s; counters (int32 [S]) select each draw in its
// seed's stream (a sequence's position, say), and window (int32 [S, W], or
// nil for none) holds the previous token ids the penalties apply to,
// padded with −1. The result is int32 [S]: the tokens, −1 for
// a row without a finite or +Inf logit. Greedy rows give the first
// maximum, with NaN read as −Inf. A window id ≥ V is an error of the
// evaluation.
func Sample(logits, counters, window *graph.Array, settings []Sampling) *graph.Array {
	pc := graph.Caller(0)
	if logits.Err() == nil && logits.Ndim() == 2 && len(settings) != logits.Shape()[0] {
		return fail(pc, "sample", "%d settings for %d rows of logits %s", len(settings), logits.Shape()[0], logits.Spec())
	}
	params, keys := samplingArrays(pc, settings)
	return sample(pc, logits, counters, window, params, keys)
}

// SamplingArrays returns settings as the constants the sample primitive
// reads: params, float32 [S, primitives.SampleSettings], and keys, uint32
// [S, primitives.SampleKeys]. A compiled step makes them inputs
// (runtime.Compiled) and binds their bytes every call. Settings out of
// range give failed arrays.
func SamplingArrays(settings []Sampling) (params, keys *graph.Array) {
	return samplingArrays(graph.Caller(0), settings)
}

func samplingArrays(pc uintptr, settings []Sampling) (params, keys *graph.Array) {
	s := len(settings)
	set := make([]float32, 0, s*primitives.SampleSettings)
	ks := make([]uint32, 0, s*primitives.SampleKeys)
	for i, o := range settings {
		if err := o.Validate(); err != nil {
			f := fail(pc, "sample", "settings[%d]: %v", i, err)
			return f, f
		}
		pen := o.RepetitionPenalty
		if pen == 0 {
			pen = 1
		}
		set = append(set, o.Temperature, o.TopP, o.MinP, pen, o.PresencePenalty, o.FrequencyPenalty)
		ks = append(ks, uint32(o.TopK), uint32(o.Seed), uint32(o.Seed>>32))
	}
	return graph.FromFloat32s(set, s, primitives.SampleSettings), graph.FromUint32s(ks, s, primitives.SampleKeys)
}

// SampleWith is Sample with the settings given as the arrays
// SamplingArrays makes.
func SampleWith(logits, counters, window, params, keys *graph.Array) *graph.Array {
	return sample(graph.Caller(0), logits, counters, window, params, keys)
}

func sample(pc uintptr, logits, counters, window, params, keys *graph.Array) *graph.Array {
	return sampleNode(pc, primitives.Sample{}, logits, counters, window, params, keys, nil)[0]
}

// MaxTopLogprobs bounds SampleLogprobs' top (OpenAI's top_logprobs).
const MaxTopLogprobs = primitives.SampleMaxTop

// SampleLogprobs is SampleWith that also reports log-probabilities of
// dist (the logits' dtype and shape): ids, int32 [S, 1+top], and
// logprobs, float32 [S, 1+top], hold in column 0 each row's drawn token
// and its log-probability under softmax(dist), then the top (≤
// MaxTopLogprobs) most likely tokens of dist, most likely first
// and ties by lower id, and theirs (primitives.Sample has the
// definition). A drawn token of −1 has a NaN log-probability. dist is the
// caller's choice: Loom's decoders pass the raw model logits, before
// penalties, temperature and filters, as vLLM reports (its default
// raw_logprobs) and as OpenAI's log-probabilities behave, which do not
// change with the temperature. The draw costs one dispatch, as without
// log-probs; only the 2·S·(1+top) values cross back to the host.
func SampleLogprobs(logits, counters, window, params, keys, dist *graph.Array, top int) (tokens, ids, logprobs *graph.Array) {
	pc := graph.Caller(0)
	if top < 0 || top > MaxTopLogprobs {
		f := fail(pc, "sample", "%d top log-probs: want 0 to %d", top, MaxTopLogprobs)
		return f, f, f
	}
	if dist == nil {
		f := fail(pc, "sample", "dist is nil: log-probs need the logits they are of")
		return f, f, f
	}
	outs := sampleNode(pc, primitives.Sample{Logprobs: true, Top: top}, logits, counters, window, params, keys, dist)
	return outs[0], outs[1], outs[2]
}

// sampleNode builds prim's node after the checks the sample ops share;
// dist is nil without log-probs.
func sampleNode(pc uintptr, prim primitives.Sample, logits, counters, window, params, keys, dist *graph.Array) []*graph.Array {
	failed := func(a *graph.Array) []*graph.Array {
		return slices.Repeat([]*graph.Array{a}, primitives.NumOutputs(prim))
	}
	if err := inputErr(pc, "sample", logits, counters, params, keys); err != nil {
		return failed(graph.Failed(err, graph.Spec{}))
	}
	if logits.Ndim() != 2 {
		return failed(fail(pc, "sample", "logits must be [S, V], got %s", logits.Spec()))
	}
	s := logits.Shape()[0]
	if window == nil {
		window = graph.FromInt32s(nil, s, 0)
	}
	if window.HostBytes() != nil && window.Ndim() == 2 { // a constant: check its ids now
		v := logits.Shape()[1]
		for i, id := range hostIndices(window) {
			if id >= int64(v) {
				return failed(fail(pc, "sample", "window%v = %d is out of range [0, %d) (logits %s)", unravel(i, window.Shape()), id, v, logits.Spec()))
			}
		}
	}
	inputs := []*graph.Array{logits, params, keys, counters, window}
	if prim.Logprobs {
		inputs = append(inputs, dist)
	}
	return apply(pc, prim, inputs...)
}

package model

import (
	"fmt"
	"slices"
	"time"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
	"github.com/loomrt/loom/tokenizer"
)

// Engine runs steps of a model over a paged KV cache: each step, prefill
// or decode for any mix of sequences, is one graph and one Eval for all
// layers.
type Engine struct {
	Model *Model
	Cache *KVCache
	// PadBlocks pads every step's block tables to a multiple of this many
	// blocks (KVCache.Pad), so that a decode loop keeps one structure, and
	// so one plan or compiled trace, for PadBlocks·block_size tokens; 0
	// means DefaultPadTokens' worth.
	PadBlocks int
	// StepBuckets, if > 0, pads StartStepSample's steps: their rows and
	// tokens up to one of StepBuckets sizes per doubling (stepBucket, so
	// less than 1/StepBuckets of either is padding), so that a server
	// whose batch changes every step keeps a few structures, whose plans
	// replay. Off by default: on an H100 the padded tokens cost the
	// serving benchmark more GPU time than the replays saved host time
	// (docs/SERVE.md).
	StepBuckets int

	decodeStep *runtime.Compiled // the Decoders' decode step, made on first use
	// drawn is the latest sampled step's tokens on the device (int32
	// [cache blocks + 1]: row i's at i, the last entry −1), and latest
	// that step; see StartStepSample.
	drawn  *graph.Array
	latest *Sampled
}

// DefaultPadTokens is the span of sequence lengths that share one decode
// structure when Engine.PadBlocks is 0.
const DefaultPadTokens = 256

// NewEngine returns an engine with a fresh cache of numBlocks blocks of
// blockSize tokens; blockSize must be one paged attention supports
// (primitives.AttentionBlockSizes).
func NewEngine(m *Model, numBlocks, blockSize int) (*Engine, error) {
	if !slices.Contains(primitives.AttentionBlockSizes, blockSize) {
		return nil, fmt.Errorf("engine: block size %d is not supported (supported: %v)", blockSize, primitives.AttentionBlockSizes)
	}
	c, err := NewKVCache(m.rt, m.CacheConfig(numBlocks, blockSize), nil)
	if err != nil {
		return nil, err
	}
	return &Engine{Model: m, Cache: c}, nil
}

// StepResult is what one step returns.
type StepResult struct {
	// Logits are, from Step, each sequence's last token's logits.
	Logits [][]float32
	// Tokens are, from a Decoder, each sequence's drawn token (−1 where
	// no token could be drawn: every logit −Inf or NaN).
	Tokens []int32
	// Logprobs are, from a Decoder step that asked for them
	// (Decoder.SetLogprobs), each sequence's; the zero value for a
	// sequence that did not ask.
	Logprobs []Logprobs
	Stats    runtime.Stats
	// Time is, from Step, the time to build, evaluate and read back the
	// logits; from a Decoder, the time since it returned the previous
	// step's tokens (or since it started), which includes the building
	// and submitting of the next step.
	Time time.Duration
}

// Step appends tokens[i] to sequence seqs[i] (a prompt or a part of one, or
// one decoded token) and returns the logits that follow each sequence.
// Bad arguments (unknown sequences, token ids outside the vocabulary, too
// long a sequence, too few free blocks) are errors that leave the engine
// unchanged; an error of the evaluation itself leaves the cache spent.
func (e *Engine) Step(seqs []int, tokens [][]int32) (*StepResult, error) {
	start := time.Now()
	flat, counts, err := e.checkTokens(seqs, tokens)
	if err != nil {
		return nil, err
	}
	st, err := e.schedule(seqs, counts)
	if err != nil {
		return nil, err
	}
	logits := e.Model.Forward(flat, st, e.Cache)
	rt := e.Model.rt
	if err := rt.Eval(logits); err != nil {
		return nil, fmt.Errorf("step: %w", err)
	}
	vals, err := logits.Float32s()
	if err != nil {
		return nil, fmt.Errorf("step: reading logits: %w", err)
	}
	res := &StepResult{Stats: rt.LastStats()}
	v := e.Model.Config.VocabSize
	for i := range seqs {
		res.Logits = append(res.Logits, vals[i*v:(i+1)*v])
	}
	res.Time = time.Since(start)
	return res, nil
}

// schedule schedules a step (KVCache.Schedule) and pads its block tables.
func (e *Engine) schedule(seqs []int, counts []int) (*Step, error) {
	return e.scheduleInto(nil, seqs, counts)
}

// scheduleInto is schedule in into's memory, if not nil (see
// KVCache.schedule).
func (e *Engine) scheduleInto(into *stepMemory, seqs []int, counts []int) (*Step, error) {
	blocks := e.PadBlocks
	if blocks == 0 {
		blocks = max(1, DefaultPadTokens/e.Cache.Config().BlockSize)
	}
	if blocks < 0 {
		return nil, fmt.Errorf("engine: PadBlocks %d must be ≥ 0", blocks)
	}
	return e.Cache.schedule(into, seqs, counts, blocks, e.Model.Config.MaxPositionEmbeddings)
}

// checkTokens checks that tokens[i] are ids of the vocabulary and returns
// them flattened, with their counts (scheduling checks that they fit the
// sequences).
func (e *Engine) checkTokens(seqs []int, tokens [][]int32) ([]int32, []int, error) {
	c := e.Model.Config
	if len(seqs) != len(tokens) {
		return nil, nil, fmt.Errorf("step: %d sequences but %d token lists", len(seqs), len(tokens))
	}
	counts := make([]int, len(seqs))
	var flat []int32
	for i, ts := range tokens {
		for j, id := range ts {
			if id < 0 || int(id) >= c.VocabSize {
				return nil, nil, fmt.Errorf("step: token %d of sequence %d is %d, outside the vocabulary [0, %d)", j, seqs[i], id, c.VocabSize)
			}
		}
		counts[i] = len(ts)
		flat = append(flat, ts...)
	}
	return flat, counts, nil
}

// GenerateOptions control Generate.
type GenerateOptions struct {
	MaxTokens int
	// Sampling is how tokens are drawn (on the device); the zero value is
	// greedy.
	Sampling ops.Sampling
	// PenaltyWindow is how many of the latest tokens (prompt included) the
	// penalties see; 0 means DefaultPenaltyWindow.
	PenaltyWindow int
	// StopAtEOS ends generation at one of the config's EOS tokens (which is
	// still reported).
	StopAtEOS bool
	// OnToken, if set, sees each generated token as soon as it is read back
	// and the step that drew it; an error stops generation.
	OnToken func(token int32, r *StepResult) error
	// Tokenizer, if set, decodes the generated tokens (all but an EOS that
	// ends generation) for Stop and OnText.
	Tokenizer tokenizer.Tokenizer
	// Stop ends generation once the decoded text contains one of these
	// strings (which needs Tokenizer); the token that completes it is the
	// last one returned.
	Stop []string
	// OnText, if set, receives the decoded text as it becomes final, never
	// half a UTF-8 character and never any part of a stop string: the
	// pieces join to the generated text up to the first stop string.
	OnText func(text string) error
}

// Generate adds a sequence with the prompt, prefills it in one step, then
// decodes one token per step with a Decoder (each step submitted while the
// one before it runs), and frees the sequence. It returns the generated
// tokens.
func (e *Engine) Generate(id int, prompt []int32, o GenerateOptions) (out []int32, err error) {
	if len(prompt) == 0 {
		return nil, fmt.Errorf("generate: empty prompt")
	}
	if o.MaxTokens <= 0 {
		return nil, nil
	}
	if o.Tokenizer == nil && (len(o.Stop) > 0 || o.OnText != nil) {
		return nil, fmt.Errorf("generate: stop strings and OnText need a Tokenizer")
	}
	if slices.Contains(o.Stop, "") {
		return nil, fmt.Errorf("generate: an empty stop string")
	}
	var text *textStream
	if o.Tokenizer != nil {
		text = &textStream{tokenizer.NewStreamDecoder(o.Tokenizer), tokenizer.NewStopFilter(o.Stop), o.OnText}
	}
	if err := e.Cache.Add(id); err != nil {
		return nil, err
	}
	defer e.Cache.Free(id)
	d, err := e.NewDecoder([]int{id}, [][]int32{prompt}, []ops.Sampling{o.Sampling}, o.PenaltyWindow)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := d.Close(); err == nil {
			err = cerr
		}
	}()
	for len(out) < o.MaxTokens {
		r, err := d.Next(len(out)+1 < o.MaxTokens)
		if err != nil {
			return out, err
		}
		tok := r.Tokens[0]
		if tok < 0 {
			return out, fmt.Errorf("generate: no token can be drawn after %d tokens: every logit is -Inf or NaN", len(out))
		}
		out = append(out, tok)
		if o.OnToken != nil {
			if err := o.OnToken(tok, r); err != nil {
				return out, err
			}
		}
		if o.StopAtEOS && e.Model.Config.IsEOS(int(tok)) {
			break
		}
		if text != nil {
			if stopped, err := text.add(tok); stopped || err != nil {
				return out, err
			}
		}
	}
	if text != nil {
		return out, text.flush()
	}
	return out, nil
}

// textStream decodes generated tokens, watches for stop strings and
// passes the final text on.
type textStream struct {
	dec    *tokenizer.StreamDecoder
	stop   *tokenizer.StopFilter
	onText func(string) error
}

// add decodes tok and reports whether a stop string is reached.
func (t *textStream) add(tok int32) (bool, error) {
	s, stopped := t.stop.Add(t.dec.Add(tok))
	return stopped, t.emit(s)
}

// flush passes on what the decoder and filter hold at the end.
func (t *textStream) flush() error {
	s, stopped := t.stop.Add(t.dec.Flush())
	if !stopped {
		s += t.stop.Flush()
	}
	return t.emit(s)
}

func (t *textStream) emit(s string) error {
	if s == "" || t.onText == nil {
		return nil
	}
	return t.onText(s)
}

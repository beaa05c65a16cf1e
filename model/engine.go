package model

import (
	"fmt"
	"slices"
	"time"

	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// Engine runs steps of a model over a paged KV cache: each step, prefill
// or decode for any mix of sequences, is one graph and one Eval for all
// layers.
type Engine struct {
	Model *Model
	Cache *KVCache
}

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
	Logits [][]float32 // per sequence of the step, the last token's logits
	Stats  runtime.Stats
	Time   time.Duration // building, evaluating and reading back the logits
	// Sample is the time Generate took to sample the step's token (not in
	// Time); zero from Step.
	Sample time.Duration
}

// Step appends tokens[i] to sequence seqs[i] (a prompt or a part of one, or
// one decoded token) and returns the logits that follow each sequence.
// Bad arguments (unknown sequences, token ids outside the vocabulary, too
// long a sequence, too few free blocks) are errors that leave the engine
// unchanged; an error of the evaluation itself leaves the cache spent.
func (e *Engine) Step(seqs []int, tokens [][]int32) (*StepResult, error) {
	start := time.Now()
	c := e.Model.Config
	if len(seqs) != len(tokens) {
		return nil, fmt.Errorf("step: %d sequences but %d token lists", len(seqs), len(tokens))
	}
	counts := make([]int, len(seqs))
	var flat []int32
	for i, ts := range tokens {
		for j, id := range ts {
			if id < 0 || int(id) >= c.VocabSize {
				return nil, fmt.Errorf("step: token %d of sequence %d is %d, outside the vocabulary [0, %d)", j, seqs[i], id, c.VocabSize)
			}
		}
		if n := e.Cache.Len(seqs[i]) + len(ts); n > c.MaxPositionEmbeddings {
			return nil, fmt.Errorf("step: sequence %d would reach %d tokens, beyond max_position_embeddings %d", seqs[i], n, c.MaxPositionEmbeddings)
		}
		counts[i] = len(ts)
		flat = append(flat, ts...)
	}
	st, err := e.Cache.Schedule(seqs, counts)
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
	for i := range seqs {
		res.Logits = append(res.Logits, vals[i*c.VocabSize:(i+1)*c.VocabSize])
	}
	res.Time = time.Since(start)
	return res, nil
}

// GenerateOptions control Generate.
type GenerateOptions struct {
	MaxTokens int
	Sampler   *Sampler
	// StopAtEOS ends generation at one of the config's EOS tokens (which is
	// still reported).
	StopAtEOS bool
	// OnToken, if set, sees each generated token as soon as it is sampled
	// and the step that produced it; an error stops generation.
	OnToken func(token int32, r *StepResult) error
}

// Generate adds a sequence with the prompt, prefills it in one step, then
// decodes one token per step, and frees the sequence. It returns the
// generated tokens.
func (e *Engine) Generate(id int, prompt []int32, o GenerateOptions) ([]int32, error) {
	if len(prompt) == 0 {
		return nil, fmt.Errorf("generate: empty prompt")
	}
	if o.Sampler == nil {
		return nil, fmt.Errorf("generate: no sampler")
	}
	if err := e.Cache.Add(id); err != nil {
		return nil, err
	}
	defer e.Cache.Free(id)
	var out []int32
	next := prompt
	for len(out) < o.MaxTokens {
		r, err := e.Step([]int{id}, [][]int32{next})
		if err != nil {
			return out, err
		}
		sampled := time.Now()
		tok, err := o.Sampler.Sample(r.Logits[0])
		r.Sample = time.Since(sampled)
		if err != nil {
			return out, err
		}
		out = append(out, int32(tok))
		if o.OnToken != nil {
			if err := o.OnToken(int32(tok), r); err != nil {
				return out, err
			}
		}
		if o.StopAtEOS && e.Model.Config.IsEOS(tok) {
			break
		}
		next = []int32{int32(tok)}
	}
	return out, nil
}

package primitives

import (
	"fmt"
	"math/bits"

	"github.com/loomrt/loom/graph"
)

// SampleParams describe a sampling of S sequences over a vocabulary of V
// tokens, with a repetition window of W previous tokens per sequence.
type SampleParams struct {
	S, V, W uint32
}

// SampleThreads is the threadgroup size of the sampling kernels: one
// threadgroup draws one sequence's token.
const SampleThreads = 512

// The columns of Sample's settings (float32 [S, SampleSettings]) and keys
// (uint32 [S, SampleKeys]) inputs.
const (
	SettingTemperature = iota
	SettingTopP
	SettingMinP
	SettingRepetitionPenalty
	SettingPresencePenalty
	SettingFrequencyPenalty
	SampleSettings
)
const (
	KeyTopK = iota
	KeySeedLow
	KeySeedHigh
	SampleKeys
)

// WeightBits is the fixed-point scale of sampling weights: the most likely
// token weighs 2^WeightBits.
const WeightBits = 31

// WindowToken is the token a Sample window entry e names (step 1 below):
// e itself if e ≥ 0, −2 − e if e ≤ −2 (the repetition penalty only), −1
// for padding (e = −1).
func WindowToken(e int32) int32 {
	if e >= -1 {
		return e
	}
	return -2 - e
}

// RepetitionOnly is the window entry that names token id for the
// repetition penalty only.
func RepetitionOnly(id int32) int32 { return -2 - id }

// Sample draws one token per sequence from logits. Its inputs:
//
//	logits   [S, V] float           the scores of the next token
//	settings float32 [S, 6]        temperature, top_p, min_p, repetition, presence and frequency penalties
//	keys     uint32 [S, 3]          top_k, seed (low 32 bits), seed (high 32 bits)
//	counters int32 [S]              the draw's counter (position) in the seed's stream
//	window   int32 [S, W]           the tokens the penalties see: id ≥ 0 every penalty, −2 − id the repetition penalty only, −1 padding
//
// and its output is int32 [S]: each sequence's token, or −1 where no token
// can be drawn (every logit −Inf or NaN). Sequence s is drawn as follows,
// identically on every backend except for the exponentials of step 3, whose
// last bits differ between backends (so a draw near a boundary may too):
//
//  1. x = logits[s] as float32, NaN read as −Inf. Penalties: an entry e of
//     window[s] names token e if e ≥ 0 and token −2 − e if e ≤ −2 (a
//     token only the repetition penalty sees: vLLM's repetition_penalty
//     takes the prompt, its presence and frequency penalties only the
//     output); −1 is padding; a token ≥ V is an error of the evaluation.
//     For each distinct token id named, c its number of entries e = id:
//     the repetition penalty (Hugging Face's repetition_penalty) divides
//     x[id] if x[id] > 0, else multiplies it; then, if c > 0, the presence
//     penalty is subtracted once and the frequency penalty c times, one
//     float32 subtraction each (no product, which a backend could fuse
//     into a multiply-add and round differently). So x[id] −= presence +
//     c·frequency, as llama.cpp's penalties over its last tokens and
//     OpenAI's presence_penalty and frequency_penalty. m = max x.
//  2. m = −Inf: the token is −1. Temperature ≤ 0: greedy, the token is the
//     first index with x = m.
//  3. Weights: q[i] = 2^31 where x[i] = m, else trunc(e^d · 2^31) with d =
//     (x[i] − m) / T in float32 and e^d in float32 on the GPUs, float64 on
//     the CPU (0 for NaN). Tokens below 2^−31 of the most likely one's
//     probability thus weigh 0 and are never drawn.
//  4. Filters are thresholds on q, applied in Hugging Face's order; ties at a
//     threshold are all kept, so a filter may keep more tokens than asked:
//     top-k (0 < k < V): t_k = the k-th largest q (with multiplicity);
//     top-p (0 < p < 1): over K1 = {q ≥ t_k} with total Σ1, pq = ceil(p·2^32)
//     and goal = ceil(Σ1·pq / 2^32) computed exactly in integers, t_p = the
//     largest t with Σ{q ∈ K1, q ≥ t} ≥ goal;
//     min-p (p_min > 0): t_m = ceil(min(p_min, 1)·2^31).
//     Kept: the tokens with q ≥ T = max(t_k, t_p, t_m, 1); Σ = their total.
//  5. Draw: u = word 0 of Philox4x32-10 with key (seed low, seed high) and
//     counter (counters[s], 0, 0, 0); r = floor(u·Σ / 2^32); the token is the
//     first kept index j (in index order) whose running total of kept
//     weights up to and including j exceeds r.
//
// All sums are integer, so no result depends on the order of a reduction or
// the number of workers. Out-of-range settings (which ops.Sample rejects)
// are read as: temperature NaN or ≤ 0 greedy; top_p outside (0, 1), min_p
// ≤ 0 (or NaN), a repetition penalty ≤ 0 (or NaN) and a presence or
// frequency penalty that is not finite off; min_p > 1 as 1.
type Sample struct{}

func (Sample) Name() string { return "sample" }

func (Sample) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 5 {
		return nil, fmt.Errorf("needs 5 inputs (logits, settings, keys, counters, window), got %d", len(in))
	}
	logits := in[0]
	if !hasDType(FloatDTypes, logits.DType) {
		return nil, fmt.Errorf("logits dtype %s is unsupported (supported: %v)", logits.DType, FloatDTypes)
	}
	if len(logits.Shape) != 2 || logits.Shape[1] == 0 {
		return nil, fmt.Errorf("logits must be [S, V] with V ≥ 1, got shape %v", logits.Shape)
	}
	s := logits.Shape[0]
	for _, c := range []struct {
		name string
		spec graph.Spec
		dt   graph.DType
		cols int // −1: a vector of S
	}{
		{"settings", in[1], graph.Float32, SampleSettings},
		{"keys", in[2], graph.Uint32, SampleKeys},
		{"counters", in[3], graph.Int32, -1},
		{"window", in[4], graph.Int32, -2},
	} {
		if c.spec.DType != c.dt {
			return nil, fmt.Errorf("%s must be %s, got %s", c.name, c.dt, c.spec.DType)
		}
		sh := c.spec.Shape
		switch {
		case c.cols == -1 && (len(sh) != 1 || sh[0] != s):
			return nil, fmt.Errorf("%s have shape %v, want [%d]", c.name, sh, s)
		case c.cols == -2 && (len(sh) != 2 || sh[0] != s):
			return nil, fmt.Errorf("%s has shape %v, want [%d, W]", c.name, sh, s)
		case c.cols >= 0 && (len(sh) != 2 || sh[0] != s || sh[1] != c.cols):
			return nil, fmt.Errorf("%s has shape %v, want [%d, %d]", c.name, sh, s, c.cols)
		}
	}
	return []graph.Spec{{DType: graph.Int32, Shape: []int{s}}}, nil
}

func (Sample) Lower(l *Lowering) error {
	logits := l.Inputs[0]
	s, v, w := logits.Shape[0], logits.Shape[1], l.Inputs[4].Shape[1]
	if err := checkElements(s * v); err != nil {
		return err
	}
	if s == 0 {
		return nil
	}
	weights := l.NewScratch(int64(s) * int64(v) * 4)
	l.Dispatch(SampleKernel(logits.DType), Dim3{s, 1, 1}, // a group per sequence
		Dim3{SampleThreads, 1, 1}, &SampleParams{S: uint32(s), V: uint32(v), W: uint32(w)},
		In(0), In(1), In(2), In(3), In(4), weights, Out(0))
	return nil
}

// SampleKernel is Sample's kernel for logits of dtype dt.
func SampleKernel(dt graph.DType) string { return KernelName("sample", dt) }

// Philox4x32 returns the four words of Philox4x32-10 (Salmon et al., 2011)
// for a counter and a key: the counter-based generator of Sample.
func Philox4x32(ctr [4]uint32, key [2]uint32) [4]uint32 {
	for i := range 10 {
		if i > 0 {
			key[0] += 0x9E3779B9
			key[1] += 0xBB67AE85
		}
		hi0, lo0 := bits.Mul32(0xD2511F53, ctr[0])
		hi1, lo1 := bits.Mul32(0xCD9E8D57, ctr[2])
		ctr = [4]uint32{hi1 ^ ctr[1] ^ key[0], lo1, hi0 ^ ctr[3] ^ key[1], lo0}
	}
	return ctr
}

// MulShift32 returns floor(a·b / 2^32) for a < 2^49 and b ≤ 2^32 without
// overflowing 64 bits (the kernels' formula): a = hi·2^32 + lo.
func MulShift32(a, b uint64) uint64 {
	return (a>>32)*b + ((a&0xffffffff)*b)>>32
}

// TopPGoal returns ceil(total·pq / 2^32) for total < 2^49 and pq ≤ 2^32,
// the weight top-p must keep.
func TopPGoal(total, pq uint64) uint64 {
	return (total>>32)*pq + ((total&0xffffffff)*pq+0xffffffff)>>32
}

func init() {
	for _, dt := range FloatDTypes {
		register(KernelSpec{Name: SampleKernel(dt), Args: []ArgSpec{R("logits"), R("settings"), R("keys"), R("counters"), R("window"), W("weights"), W("out")},
			Params: (*SampleParams)(nil)})
	}
}

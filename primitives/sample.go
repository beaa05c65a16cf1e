package primitives

import (
	"fmt"
	"math/bits"
	"slices"

	"github.com/loomrt/loom/graph"
)

// SampleParams describe a sampling of S sequences over a vocabulary of V
// tokens, with a repetition window of W previous tokens per sequence, and
// (for the log-probs kernel) Top most likely tokens reported per sequence.
// Pass is SampleWhole, or one of the two passes of the split form (see
// Caps.SampleSplit), whose first pass has Groups groups per sequence.
type SampleParams struct {
	S, V, W, Top uint32
	Pass, Groups uint32
}

// SampleMaxTop bounds Sample.Top (OpenAI's top_logprobs goes to 20): the
// GPU kernels keep that many candidates per thread.
const SampleMaxTop = 20

// The passes of a sampling dispatch (SampleParams.Pass).
const (
	// SampleWhole: a threadgroup per sequence does every step.
	SampleWhole = iota
	// SampleFirst: Groups threadgroups per sequence (grid Groups × S), each
	// over SampleGroupElems tokens, do step 1 and the first maximum of their
	// share; each writes its maximum and index after the weights scratch.
	SampleFirst
	// SampleFinal: a threadgroup per sequence takes the first maximum of the
	// first pass's candidates (in group order, so ties still go to the
	// lower index) and does steps 2 to 5 on the first pass's x.
	SampleFinal
)

// SampleThreads is the threadgroup size of the sampling kernels: one
// threadgroup draws one sequence's token.
const SampleThreads = 512

// SampleGroupElems is the share of a sequence's tokens that a threadgroup of
// the split form's first pass converts and searches: a few per thread, so
// that a vocabulary of 151,936 spreads over some 75 threadgroups.
const SampleGroupElems = 4 * SampleThreads

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

// Sample draws one token per sequence from logits. Its inputs:
//
//	logits   [S, V] float           the scores of the next token
//	settings float32 [S, 6]        temperature, top_p, min_p, repetition, presence and frequency penalties
//	keys     uint32 [S, 3]          top_k, seed (low 32 bits), seed (high 32 bits)
//	counters int32 [S]              the draw's counter (position) in the seed's stream
//	window   int32 [S, W]           previous token ids for the penalties; < 0 is padding
//
// and its output is int32 [S]: each sequence's token, or −1 where no token
// can be drawn (every logit −Inf or NaN). Sequence s is drawn as follows,
// identically on every backend except for the exponentials of step 3, whose
// last bits differ between backends (so a draw near a boundary may too):
//
//  1. x = logits[s] as float32, NaN read as −Inf. Penalties, for each
//     distinct id in window[s] (≥ 0; an id ≥ V is an error of the
//     evaluation), c its number of occurrences there: the repetition
//     penalty (Hugging Face's repetition_penalty) divides x[id] if x[id] > 0,
//     else multiplies it; then the presence penalty is subtracted once and
//     the frequency penalty c times, one float32 subtraction each (no
//     product, which a backend could fuse into a multiply-add and round
//     differently). So x[id] −= presence + c·frequency, as llama.cpp's
//     penalties over its last tokens and OpenAI's presence_penalty and
//     frequency_penalty. m = max x.
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
//
// With Logprobs, a sixth input, dist [S, V] (logits' dtype), is the
// distribution the log-probabilities are of: the caller's choice, the raw
// model logits for vLLM's and OpenAI's log-probs (before penalties,
// temperature and filters), which may be logits itself. Two more outputs,
// ids int32 [S, 1+Top] and logprobs float32 [S, 1+Top], hold in column 0
// the drawn token and its log-probability, then the Top largest values of
// dist (as float32, NaN read as −Inf), largest first, ties by lower id,
// with theirs. With x = dist[s] and m = max x, a token's log-probability
// is d − log Z with d = 0 where x = m, else x − m, and Z the total over
// the row of 1 where x = m, else e^(x−m) (float64 on the CPU, float32 on
// the GPUs): so tokens tied at m = +Inf share the probability. A row with
// m = −Inf, and a drawn token of −1, have a NaN log-probability. The ids
// are the same on every backend (comparisons only); the log-probabilities
// differ in the last bits of their sums and logarithms.
type Sample struct {
	Logprobs bool
	// Top is the number of most likely tokens reported (≤ SampleMaxTop
	// and ≤ V; 0 without Logprobs).
	Top int
}

func (Sample) Name() string { return "sample" }

// NumOutputs is 1, or 3 with Logprobs: the tokens, ids and logprobs.
func (p Sample) NumOutputs() int {
	if p.Logprobs {
		return 3
	}
	return 1
}

func (p Sample) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	want := 5
	if p.Logprobs {
		want = 6
	}
	switch {
	case len(in) != want && p.Logprobs:
		return nil, fmt.Errorf("needs 6 inputs (logits, settings, keys, counters, window, dist), got %d", len(in))
	case len(in) != want:
		return nil, fmt.Errorf("needs 5 inputs (logits, settings, keys, counters, window), got %d", len(in))
	case p.Top < 0 || p.Top > SampleMaxTop || p.Top > 0 && !p.Logprobs:
		return nil, fmt.Errorf("%d top log-probs: want 0 to %d, with Logprobs", p.Top, SampleMaxTop)
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
	tokens := graph.Spec{DType: graph.Int32, Shape: []int{s}}
	if !p.Logprobs {
		return []graph.Spec{tokens}, nil
	}
	if dist := in[5]; dist.DType != logits.DType || !slices.Equal(dist.Shape, logits.Shape) {
		return nil, fmt.Errorf("dist %s must have the logits' dtype and shape %s", dist, logits)
	}
	if v := logits.Shape[1]; p.Top > v {
		return nil, fmt.Errorf("%d top log-probs exceed the vocabulary of %d", p.Top, v)
	}
	return []graph.Spec{tokens, {DType: graph.Int32, Shape: []int{s, 1 + p.Top}}, {DType: graph.Float32, Shape: []int{s, 1 + p.Top}}}, nil
}

func (prim Sample) Lower(l *Lowering) error {
	logits := l.Inputs[0]
	s, v, w := logits.Shape[0], logits.Shape[1], l.Inputs[4].Shape[1]
	if err := checkElements(s * v); err != nil {
		return err
	}
	if s == 0 {
		return nil
	}
	p := SampleParams{S: uint32(s), V: uint32(v), W: uint32(w), Top: uint32(prim.Top)}
	group := Dim3{SampleThreads, 1, 1}
	if prim.Logprobs {
		// The log-probs kernel is the whole form only: a threadgroup per
		// sequence.
		weights := l.NewScratch(int64(s) * int64(v) * 4)
		l.Dispatch(SampleLogprobsKernel(logits.DType), Dim3{s, 1, 1}, group, &p,
			In(0), In(1), In(2), In(3), In(4), In(5), weights, Out(0), Out(1), Out(2))
		return nil
	}
	groups := min(Groups(v, SampleGroupElems), SampleThreads) // the final pass reads a candidate per thread
	if !l.Caps.SampleSplit || groups < 2 {
		weights := l.NewScratch(int64(s) * int64(v) * 4)
		l.Dispatch(SampleKernel(logits.DType), Dim3{s, 1, 1}, // a group per sequence
			group, &p, In(0), In(1), In(2), In(3), In(4), weights, Out(0))
		return nil
	}
	// The weights, then a candidate (float32 maximum, uint32 index) per
	// group of the first pass.
	weights := l.NewScratch(int64(s)*int64(v)*4 + int64(s)*int64(groups)*8)
	first, final := p, p
	first.Pass, first.Groups = SampleFirst, uint32(groups)
	final.Pass, final.Groups = SampleFinal, uint32(groups)
	l.Dispatch(SampleKernel(logits.DType), Dim3{groups, s, 1}, group, &first,
		In(0), In(1), In(2), In(3), In(4), weights, Out(0))
	l.Dispatch(SampleKernel(logits.DType), Dim3{s, 1, 1}, group, &final,
		In(0), In(1), In(2), In(3), In(4), weights, Out(0))
	l.Count("sample.split", 1)
	return nil
}

// SampleKernel is Sample's kernel for logits of dtype dt.
func SampleKernel(dt graph.DType) string { return KernelName("sample", dt) }

// SampleLogprobsKernel is Sample's kernel with Logprobs.
func SampleLogprobsKernel(dt graph.DType) string { return KernelName("sample_logprobs", dt) }

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
		register(KernelSpec{Name: SampleLogprobsKernel(dt), Args: []ArgSpec{R("logits"), R("settings"), R("keys"), R("counters"), R("window"), R("dist"),
			W("weights"), W("out"), W("lp_ids"), W("lp")}, Params: (*SampleParams)(nil)})
	}
}

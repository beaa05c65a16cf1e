// Package model runs Qwen3- and Llama-family language models on Loom: the
// configuration and weights of a Hugging Face model directory (config.json
// and safetensors), the transformer's forward pass built from Loom's ops, a
// paged KV cache manager (block allocator, block tables, slot mapping), a
// byte-level tokenizer and host-side sampling.
package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/loomrt/loom/primitives"
)

// Family is an architecture family: the forward pass a Config describes.
type Family int

const (
	// Qwen3 is Qwen3ForCausalLM: RMSNorm of each head of q and k before
	// RoPE.
	Qwen3 Family = iota
	// Llama is LlamaForCausalLM (Llama 2 and 3.x, SmolLM2, TinyLlama) and
	// MistralForCausalLM without a sliding window: no q/k norm.
	Llama
)

func (f Family) String() string {
	if f == Llama {
		return "Llama"
	}
	return "Qwen3"
}

// Config is the architecture of a model, read from a Hugging Face
// config.json.
type Config struct {
	Family                Family
	VocabSize             int
	HiddenSize            int
	IntermediateSize      int
	NumLayers             int
	NumHeads              int // query heads
	NumKVHeads            int
	HeadDim               int
	MaxPositionEmbeddings int
	RMSNormEps            float32
	RopeTheta             float32
	// RopeScaling is Llama 3.1's frequency scaling (rope_type llama3);
	// nil is plain RoPE.
	RopeScaling       *RopeScaling
	AttentionBias     bool // q, k, v and o projections have biases
	TieWordEmbeddings bool
	BOSTokenID        int   // -1 if the config names none
	EOSTokenIDs       []int // generation stops at any of these: config.json's, then generation_config.json's
	TorchDType        string
	Generation        GenerationConfig // generation_config.json's settings, by LoadConfig
	Quantization      *Quantization    // the quantized format of the checkpoint, nil if it is not quantized
}

// Qwen3_0_6B is the configuration of Qwen/Qwen3-0.6B, built in so that
// benchmarks need no download.
var Qwen3_0_6B = Config{
	VocabSize:             151936,
	HiddenSize:            1024,
	IntermediateSize:      3072,
	NumLayers:             28,
	NumHeads:              16,
	NumKVHeads:            8,
	HeadDim:               128,
	MaxPositionEmbeddings: 40960,
	RMSNormEps:            1e-6,
	RopeTheta:             1e6,
	TieWordEmbeddings:     true,
	BOSTokenID:            151643,
	EOSTokenIDs:           []int{151645},
	TorchDType:            "bfloat16",
}

// RopeScaling holds rope_type llama3's parameters: transformers'
// _compute_llama3_parameters scales the inverse frequencies of RoPE (see
// primitives.RoPEScaling).
type RopeScaling struct {
	Factor, LowFreqFactor, HighFreqFactor float64
	OriginalMaxPositionEmbeddings         float64
}

// rope is s as the RoPE primitive takes it; nil is no scaling.
func (s *RopeScaling) rope() primitives.RoPEScaling {
	if s == nil {
		return primitives.RoPEScaling{}
	}
	return primitives.RoPEScaling{Factor: float32(s.Factor), LowFreqFactor: float32(s.LowFreqFactor),
		HighFreqFactor: float32(s.HighFreqFactor), OriginalMaxPositions: float32(s.OriginalMaxPositionEmbeddings)}
}

// rawConfig mirrors the config.json fields Loom reads. Pointers tell a
// missing field from a zero one.
type rawConfig struct {
	Architectures         []string        `json:"architectures"`
	ModelType             string          `json:"model_type"`
	VocabSize             *int            `json:"vocab_size"`
	HiddenSize            *int            `json:"hidden_size"`
	IntermediateSize      *int            `json:"intermediate_size"`
	NumHiddenLayers       *int            `json:"num_hidden_layers"`
	NumAttentionHeads     *int            `json:"num_attention_heads"`
	NumKeyValueHeads      *int            `json:"num_key_value_heads"`
	HeadDim               *int            `json:"head_dim"`
	MaxPositionEmbeddings *int            `json:"max_position_embeddings"`
	RMSNormEps            *float64        `json:"rms_norm_eps"`
	RopeTheta             *float64        `json:"rope_theta"`
	RopeScaling           json.RawMessage `json:"rope_scaling"`
	RopeParameters        *ropeParameters `json:"rope_parameters"`
	TieWordEmbeddings     *bool           `json:"tie_word_embeddings"`
	HiddenAct             *string         `json:"hidden_act"`
	AttentionBias         *bool           `json:"attention_bias"`
	MLPBias               *bool           `json:"mlp_bias"`
	UseSlidingWindow      *bool           `json:"use_sliding_window"`
	SlidingWindow         *int            `json:"sliding_window"`
	BOSTokenID            json.RawMessage `json:"bos_token_id"`
	EOSTokenID            json.RawMessage `json:"eos_token_id"`
	TorchDType            string          `json:"torch_dtype"`
	DType                 string          `json:"dtype"`
	Quantization          json.RawMessage `json:"quantization"`
}

// ropeParameters is transformers 5's form of the RoPE settings
// (rope_parameters) and the older rope_scaling, which names the type
// "type" in some configs.
type ropeParameters struct {
	RopeType                      string   `json:"rope_type"`
	Type                          string   `json:"type"`
	RopeTheta                     *float64 `json:"rope_theta"`
	Factor                        *float64 `json:"factor"`
	LowFreqFactor                 *float64 `json:"low_freq_factor"`
	HighFreqFactor                *float64 `json:"high_freq_factor"`
	OriginalMaxPositionEmbeddings *float64 `json:"original_max_position_embeddings"`
}

// scaling returns the RoPE scaling p describes: nil for the default RoPE,
// llama3's parameters, or an error for any other type.
func (p *ropeParameters) scaling(field string) (*RopeScaling, error) {
	t := p.RopeType
	if t == "" {
		t = p.Type
	}
	switch t {
	case "", "default":
		return nil, nil
	case "llama3":
	default:
		return nil, fmt.Errorf("%s rope_type %q is unsupported (the default RoPE and llama3 are implemented)", field, t)
	}
	s := &RopeScaling{}
	for _, f := range []struct {
		name string
		src  *float64
		dst  *float64
	}{
		{"factor", p.Factor, &s.Factor},
		{"low_freq_factor", p.LowFreqFactor, &s.LowFreqFactor},
		{"high_freq_factor", p.HighFreqFactor, &s.HighFreqFactor},
		{"original_max_position_embeddings", p.OriginalMaxPositionEmbeddings, &s.OriginalMaxPositionEmbeddings},
	} {
		if f.src == nil || !(*f.src > 0) || math.IsInf(*f.src, 0) {
			return nil, fmt.Errorf("%s llama3: %s must be a finite number > 0", field, f.name)
		}
		*f.dst = *f.src
	}
	if !(s.HighFreqFactor > s.LowFreqFactor) {
		return nil, fmt.Errorf("%s llama3: high_freq_factor %v must exceed low_freq_factor %v", field, s.HighFreqFactor, s.LowFreqFactor)
	}
	return s, nil
}

// LoadConfig reads and validates dir/config.json, and
// dir/generation_config.json when there is one.
func LoadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("model config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("model config %s: %w", path, err)
	}
	g, err := LoadGenerationConfig(dir)
	if err != nil {
		return Config{}, fmt.Errorf("model config: %w", err)
	}
	c = c.withGeneration(g)
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("model config %s: %w", filepath.Join(dir, GenerationFile), err)
	}
	return c, nil
}

// families maps the model_type values and architectures Loom runs to
// their family.
var families = []struct {
	modelType, arch string
	family          Family
}{
	{"qwen3", "Qwen3ForCausalLM", Qwen3},
	{"llama", "LlamaForCausalLM", Llama},
	{"mistral", "MistralForCausalLM", Llama},
}

// ParseConfig parses and validates the contents of a config.json. Fields
// Loom does not implement (MLP biases, sliding windows, RoPE scalings other
// than llama3, activations other than SiLU) give an error that says they
// are unsupported rather than a silently different model.
func ParseConfig(b []byte) (Config, error) {
	var r rawConfig
	if err := json.Unmarshal(b, &r); err != nil {
		return Config{}, fmt.Errorf("invalid JSON: %v", err)
	}
	c := Config{TorchDType: r.DType, BOSTokenID: -1}
	found := false
	for _, f := range families {
		if r.ModelType == f.modelType || r.ModelType == "" && slices.Contains(r.Architectures, f.arch) {
			c.Family, found = f.family, true
			break
		}
	}
	if !found {
		return Config{}, fmt.Errorf("model_type %q (architectures %q) is unsupported: Loom runs qwen3, llama and mistral models", r.ModelType, r.Architectures)
	}
	if c.TorchDType == "" {
		c.TorchDType = r.TorchDType
	}
	for _, f := range []struct {
		name string
		src  *int
		dst  *int
	}{
		{"vocab_size", r.VocabSize, &c.VocabSize},
		{"hidden_size", r.HiddenSize, &c.HiddenSize},
		{"intermediate_size", r.IntermediateSize, &c.IntermediateSize},
		{"num_hidden_layers", r.NumHiddenLayers, &c.NumLayers},
		{"num_attention_heads", r.NumAttentionHeads, &c.NumHeads},
		{"max_position_embeddings", r.MaxPositionEmbeddings, &c.MaxPositionEmbeddings},
	} {
		if f.src == nil {
			return Config{}, fmt.Errorf("%s is missing", f.name)
		}
		*f.dst = *f.src
	}
	c.NumKVHeads = c.NumHeads // multi-head attention unless the config says otherwise
	if r.NumKeyValueHeads != nil {
		c.NumKVHeads = *r.NumKeyValueHeads
	}
	if r.HeadDim != nil {
		c.HeadDim = *r.HeadDim
	} else if c.NumHeads > 0 {
		c.HeadDim = c.HiddenSize / c.NumHeads
	}
	c.RMSNormEps = 1e-6
	if r.RMSNormEps != nil {
		c.RMSNormEps = float32(*r.RMSNormEps)
	}
	theta, scaling, err := ropeTheta(&r)
	if err != nil {
		return Config{}, err
	}
	c.RopeTheta, c.RopeScaling = float32(theta), scaling
	if scaling != nil && c.Family == Qwen3 {
		return Config{}, fmt.Errorf("llama3 RoPE scaling of a qwen3 model is unsupported")
	}
	if r.TieWordEmbeddings != nil {
		c.TieWordEmbeddings = *r.TieWordEmbeddings
	}
	if r.HiddenAct != nil && *r.HiddenAct != "silu" {
		return Config{}, fmt.Errorf("hidden_act %q is unsupported (only silu is implemented)", *r.HiddenAct)
	}
	c.AttentionBias = r.AttentionBias != nil && *r.AttentionBias
	if r.MLPBias != nil && *r.MLPBias {
		return Config{}, fmt.Errorf("mlp_bias true is unsupported")
	}
	if r.UseSlidingWindow != nil && *r.UseSlidingWindow {
		return Config{}, fmt.Errorf("use_sliding_window true is unsupported")
	}
	// Qwen3 configs carry a sliding_window that only use_sliding_window
	// turns on; Mistral's applies whenever it is set.
	if c.Family == Llama && r.SlidingWindow != nil && *r.SlidingWindow < c.MaxPositionEmbeddings {
		return Config{}, fmt.Errorf("sliding_window %d (below max_position_embeddings %d) is unsupported", *r.SlidingWindow, c.MaxPositionEmbeddings)
	}
	if c.BOSTokenID, err = tokenID("bos_token_id", r.BOSTokenID); err != nil {
		return Config{}, err
	}
	if c.EOSTokenIDs, err = tokenIDs("eos_token_id", r.EOSTokenID); err != nil {
		return Config{}, err
	}
	if c.Quantization, err = parseQuantization(r.Quantization); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

// ropeTheta returns the RoPE base and scaling of rope_theta and
// rope_scaling (transformers 4) or rope_parameters (transformers 5).
func ropeTheta(r *rawConfig) (float64, *RopeScaling, error) {
	var scaling *RopeScaling
	if s := bytes.TrimSpace(r.RopeScaling); len(s) > 0 && !bytes.Equal(s, []byte("null")) {
		var rs ropeParameters
		if err := json.Unmarshal(s, &rs); err != nil {
			return 0, nil, fmt.Errorf("rope_scaling %s is unsupported: %v", s, err)
		}
		var err error
		if scaling, err = rs.scaling("rope_scaling"); err != nil {
			return 0, nil, err
		}
	}
	theta := 10000.0 // transformers' default
	if p := r.RopeParameters; p != nil {
		s, err := p.scaling("rope_parameters")
		if err != nil {
			return 0, nil, err
		}
		if s != nil {
			scaling = s
		}
		if p.RopeTheta != nil {
			theta = *p.RopeTheta
		}
	}
	if r.RopeTheta != nil {
		theta = *r.RopeTheta
	}
	if !(theta > 1) || math.IsInf(theta, 0) || theta > math.MaxFloat32 {
		return 0, nil, fmt.Errorf("rope_theta %v is not a finite number above 1", theta)
	}
	return theta, scaling, nil
}

// tokenID parses an optional token id field: absent or null is -1.
func tokenID(field string, raw json.RawMessage) (int, error) {
	ids, err := tokenIDs(field, raw)
	switch {
	case err != nil:
		return 0, err
	case len(ids) == 0:
		return -1, nil
	case len(ids) > 1:
		return 0, fmt.Errorf("%s: one id expected, got %v", field, ids)
	}
	return ids[0], nil
}

// tokenIDs parses a token id field that may be absent, null, one id or a
// list of ids.
func tokenIDs(field string, raw json.RawMessage) ([]int, error) {
	s := bytes.TrimSpace(raw)
	if len(s) == 0 || bytes.Equal(s, []byte("null")) {
		return nil, nil
	}
	var one int
	if err := json.Unmarshal(s, &one); err == nil {
		return []int{one}, nil
	}
	var list []int
	if err := json.Unmarshal(s, &list); err != nil {
		return nil, fmt.Errorf("%s: %s is neither a token id nor a list of them", field, s)
	}
	return list, nil
}

// Validate checks that the sizes describe a model Loom can build.
func (c Config) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{
		{"vocab_size", c.VocabSize},
		{"hidden_size", c.HiddenSize},
		{"intermediate_size", c.IntermediateSize},
		{"num_hidden_layers", c.NumLayers},
		{"num_attention_heads", c.NumHeads},
		{"num_key_value_heads", c.NumKVHeads},
		{"head_dim", c.HeadDim},
		{"max_position_embeddings", c.MaxPositionEmbeddings},
	} {
		// The upper bound keeps every product of two sizes inside int32 range
		// checks of the kernels and every allocation sane.
		if f.v <= 0 || f.v > 1<<24 {
			return fmt.Errorf("%s = %d is out of range [1, %d]", f.name, f.v, 1<<24)
		}
	}
	if c.NumHeads%c.NumKVHeads != 0 {
		return fmt.Errorf("num_attention_heads %d is not a multiple of num_key_value_heads %d", c.NumHeads, c.NumKVHeads)
	}
	if c.HeadDim%2 != 0 {
		return fmt.Errorf("head_dim %d is odd; rotary embeddings rotate pairs", c.HeadDim)
	}
	if !(c.RMSNormEps > 0) || math.IsInf(float64(c.RMSNormEps), 0) {
		return fmt.Errorf("rms_norm_eps %v is not a positive finite number", c.RMSNormEps)
	}
	if !(c.RopeTheta > 1) || math.IsInf(float64(c.RopeTheta), 0) {
		return fmt.Errorf("rope_theta %v is not a finite number above 1", c.RopeTheta)
	}
	if c.BOSTokenID < -1 || c.BOSTokenID >= c.VocabSize {
		return fmt.Errorf("bos_token_id %d is outside the vocabulary [0, %d)", c.BOSTokenID, c.VocabSize)
	}
	for _, id := range c.EOSTokenIDs {
		if id < 0 || id >= c.VocabSize {
			return fmt.Errorf("eos_token_id %d is outside the vocabulary [0, %d)", id, c.VocabSize)
		}
	}
	return nil
}

// IsEOS reports whether generation stops at token id.
func (c Config) IsEOS(id int) bool { return slices.Contains(c.EOSTokenIDs, id) }

// Params is the number of parameters of the model's weights.
func (c Config) Params() int64 {
	h, q, kv := int64(c.HiddenSize), int64(c.NumHeads*c.HeadDim), int64(c.NumKVHeads*c.HeadDim)
	layer := h*q + 2*h*kv + q*h + 3*h*int64(c.IntermediateSize) + 2*h
	if c.Family == Qwen3 {
		layer += 2 * int64(c.HeadDim) // q and k norms
	}
	if c.AttentionBias {
		layer += q + 2*kv + h
	}
	n := int64(c.NumLayers)*layer + int64(c.VocabSize)*h + h
	if !c.TieWordEmbeddings {
		n += int64(c.VocabSize) * h
	}
	return n
}

package model

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// qwen3Config06B is Qwen/Qwen3-0.6B's config.json in transformers 4's form.
const qwen3Config06B = `{
  "architectures": ["Qwen3ForCausalLM"],
  "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 151643, "eos_token_id": 151645,
  "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024,
  "initializer_range": 0.02, "intermediate_size": 3072,
  "max_position_embeddings": 40960, "max_window_layers": 28,
  "model_type": "qwen3", "num_attention_heads": 16, "num_hidden_layers": 28,
  "num_key_value_heads": 8, "rms_norm_eps": 1e-06, "rope_scaling": null,
  "rope_theta": 1000000, "sliding_window": null, "tie_word_embeddings": true,
  "torch_dtype": "bfloat16", "transformers_version": "4.51.0",
  "use_cache": true, "use_sliding_window": false, "vocab_size": 151936
}`

func TestLoadConfigTiny(t *testing.T) {
	c, err := LoadConfig(tinyModelDir)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{VocabSize: 3259, HiddenSize: 128, IntermediateSize: 344, NumLayers: 4, NumHeads: 2, NumKVHeads: 1, HeadDim: 64,
		MaxPositionEmbeddings: 2048, RMSNormEps: 1e-6, RopeTheta: 10000, TieWordEmbeddings: true, BOSTokenID: 3256, EOSTokenIDs: []int{3256, 3258}, TorchDType: "float32",
		Generation: GenerationConfig{EOSTokenIDs: []int{3256, 3258}}} // generation_config.json adds <|im_end|>
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("config %+v\nwant %+v", c, want)
	}
	if got := c.Params(); got != 1143808 {
		t.Errorf("Params() = %d, want 1143808 (the count the training script printed)", got)
	}
}

func TestParseConfigQwen3_0_6B(t *testing.T) {
	c, err := ParseConfig([]byte(qwen3Config06B))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Qwen3_0_6B) {
		t.Fatalf("config %+v\nwant the built-in %+v", c, Qwen3_0_6B)
	}
}

func TestParseConfigErrors(t *testing.T) {
	edit := func(old, new string) string {
		if !strings.Contains(qwen3Config06B, old) {
			t.Fatalf("test config lacks %q", old)
		}
		return strings.Replace(qwen3Config06B, old, new, 1)
	}
	cases := []struct{ name, json, want string }{
		{"not json", `{"model_type": "qwen3",`, "invalid JSON"},
		{"other model", edit(`"model_type": "qwen3"`, `"model_type": "gemma2"`), `model_type "gemma2"`},
		{"missing hidden", edit(`"hidden_size": 1024,`, ``), "hidden_size is missing"},
		{"zero layers", edit(`"num_hidden_layers": 28`, `"num_hidden_layers": 0`), "num_hidden_layers = 0 is out of range"},
		{"gqa mismatch", edit(`"num_key_value_heads": 8`, `"num_key_value_heads": 5`), "not a multiple of num_key_value_heads 5"},
		{"odd head dim", edit(`"head_dim": 128`, `"head_dim": 127`), "head_dim 127 is odd"},
		{"activation", edit(`"hidden_act": "silu"`, `"hidden_act": "gelu"`), `hidden_act "gelu" is unsupported`},
		{"mlp bias", edit(`"attention_bias": false`, `"mlp_bias": true`), "mlp_bias true is unsupported"},
		{"sliding", edit(`"use_sliding_window": false`, `"use_sliding_window": true`), "use_sliding_window true is unsupported"},
		{"rope scaling", edit(`"rope_scaling": null`, `"rope_scaling": {"rope_type": "yarn", "factor": 4}`), "rope_scaling"},
		{"rope type", edit(`"rope_scaling": null`, `"rope_parameters": {"rope_type": "longrope"}`), `rope_type "longrope" is unsupported`},
		{"llama3 factor", edit(`"rope_scaling": null`, `"rope_parameters": {"rope_type": "llama3"}`), "llama3: factor must be a finite number > 0"},
		{"llama3 bounds", edit(`"rope_scaling": null`, `"rope_scaling": {"type": "llama3", "factor": 8, "low_freq_factor": 4, "high_freq_factor": 1, "original_max_position_embeddings": 8192}`),
			"high_freq_factor 1 must exceed low_freq_factor 4"},
		{"qwen3 llama3", edit(`"rope_scaling": null`, `"rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 8192}`),
			"llama3 RoPE scaling of a qwen3 model is unsupported"},
		{"mistral window", strings.NewReplacer(`"model_type": "qwen3"`, `"model_type": "mistral"`, `"sliding_window": null`, `"sliding_window": 4096`).Replace(qwen3Config06B),
			"sliding_window 4096"},
		{"theta", edit(`"rope_theta": 1000000`, `"rope_theta": -1`), "rope_theta -1"},
		{"eps", edit(`"rms_norm_eps": 1e-06`, `"rms_norm_eps": 0`), "rms_norm_eps 0"},
		{"eos range", edit(`"eos_token_id": 151645`, `"eos_token_id": 151936`), "eos_token_id 151936 is outside"},
		{"eos type", edit(`"eos_token_id": 151645`, `"eos_token_id": "x"`), "eos_token_id"},
		{"size type", edit(`"hidden_size": 1024`, `"hidden_size": "big"`), "invalid JSON"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(c.json))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// llama32Config is meta-llama/Llama-3.2-1B's config.json (as released).
const llama32Config = `{
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu",
  "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
  "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
  "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
    "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256
}`

func TestParseConfigLlama(t *testing.T) {
	c, err := ParseConfig([]byte(llama32Config))
	if err != nil {
		t.Fatal(err)
	}
	want := RopeScaling{Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}
	if c.Family != Llama || c.RopeScaling == nil || *c.RopeScaling != want || c.RopeTheta != 500000 || c.HeadDim != 64 ||
		c.NumKVHeads != 8 || !c.TieWordEmbeddings || c.AttentionBias || c.RMSNormEps != 1e-5 || c.BOSTokenID != 128000 {
		t.Fatalf("config %+v (scaling %+v)", c, c.RopeScaling)
	}
	// 1.24 billion parameters (1,235,814,400), as the released model.
	if p := c.Params(); p != 1235814400 {
		t.Errorf("Params %d, want 1235814400", p)
	}
	// transformers 5's form, architectures only, and Mistral without a window.
	v5 := strings.NewReplacer(`"model_type": "llama",`, ``, `"rope_scaling"`, `"rope_parameters"`, `"rope_type": "llama3"}`, `"rope_type": "llama3", "rope_theta": 500000}`,
		`"rope_theta": 500000.0,`, ``).Replace(llama32Config)
	if c2, err := ParseConfig([]byte(v5)); err != nil || c2.Family != Llama || c2.RopeScaling == nil || *c2.RopeScaling != want || c2.RopeTheta != 500000 {
		t.Fatalf("transformers 5 form: %+v, %v", c2, err)
	}
	mistral := strings.NewReplacer(`"model_type": "llama"`, `"model_type": "mistral", "sliding_window": null`, `"rope_scaling"`, `"unused"`).Replace(llama32Config)
	if c3, err := ParseConfig([]byte(mistral)); err != nil || c3.Family != Llama || c3.RopeScaling != nil {
		t.Fatalf("mistral: %+v, %v", c3, err)
	}
}

// TestInvFreq checks llama3's scaled frequencies (the RoPE primitive's
// scaling, as the model configures it) against the reference
// written from transformers' formula, over Llama 3.1's settings and the
// test model's, and that each regime occurs: high frequencies kept, low
// ones divided by the factor, the ones between blended.
func TestInvFreq(t *testing.T) {
	for _, c := range []struct {
		theta float64
		d     int
		s     RopeScaling
	}{
		{500000, 128, RopeScaling{Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}},
		{10000, 64, *smallLlama.RopeScaling},
	} {
		want, plain := refInvFreq(c.theta, c.d, &c.s), refInvFreq(c.theta, c.d, nil)
		got := make([]float64, len(plain))
		for i, f := range plain {
			got[i] = c.s.rope().Scale(f)
		}
		kept, divided, blended := 0, 0, 0
		for i := range got {
			if math.Abs(got[i]-want[i]) > 1e-15*want[i] {
				t.Fatalf("theta %v d %d: inv_freq[%d] = %v, want %v", c.theta, c.d, i, got[i], want[i])
			}
			switch r := got[i] / plain[i]; {
			case r == 1:
				kept++
			case math.Abs(r-1/c.s.Factor) < 1e-12:
				divided++
			case r > 1/c.s.Factor && r < 1:
				blended++
			default:
				t.Fatalf("theta %v d %d: inv_freq[%d] is %v of the plain one", c.theta, c.d, i, r)
			}
		}
		if kept == 0 || divided == 0 || blended == 0 {
			t.Errorf("theta %v d %d: %d kept, %d divided, %d blended: want each regime", c.theta, c.d, kept, divided, blended)
		}
	}
}

func TestParseConfigForms(t *testing.T) {
	// transformers 5 writes rope_parameters and dtype; eos may be a list.
	v5 := strings.NewReplacer(`"rope_theta": 1000000`, `"rope_parameters": {"rope_type": "default", "rope_theta": 500000}`,
		`"eos_token_id": 151645`, `"eos_token_id": [151645, 151643]`,
		`"torch_dtype": "bfloat16"`, `"dtype": "float16"`).Replace(qwen3Config06B)
	c, err := ParseConfig([]byte(v5))
	if err != nil {
		t.Fatal(err)
	}
	if c.RopeTheta != 500000 || len(c.EOSTokenIDs) != 2 || !c.IsEOS(151643) || c.IsEOS(151644) || c.TorchDType != "float16" {
		t.Fatalf("config %+v: want theta 500000, eos [151645 151643], dtype float16", c)
	}
	// Without head_dim and num_key_value_heads: hidden/heads and multi-head.
	mha := strings.NewReplacer(`"head_dim": 128,`, ``, `"num_key_value_heads": 8,`, ``).Replace(qwen3Config06B)
	if c, err = ParseConfig([]byte(mha)); err != nil || c.HeadDim != 64 || c.NumKVHeads != 16 {
		t.Fatalf("config %+v, %v: want head_dim 64 and 16 KV heads", c, err)
	}
}

func TestLoadConfigNamesFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadConfig(dir); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Fatalf("missing config: error %v should name config.json", err)
	}
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, []byte(`{"model_type":"qwen3"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(dir); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "vocab_size is missing") {
		t.Fatalf("error %v should name %s and the missing field", err, path)
	}
}

// FuzzParseConfig checks that no config.json makes the parser panic and
// that every config it accepts passes validation.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(qwen3Config06B))
	if b, err := os.ReadFile(filepath.Join(tinyModelDir, "config.json")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config fails validation: %v", err)
		}
		if c.NumHeads%c.NumKVHeads != 0 || c.HeadDim%2 != 0 {
			t.Fatalf("accepted config %+v has inconsistent heads", c)
		}
	})
}

package model

import (
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
	want := Config{VocabSize: 257, HiddenSize: 256, IntermediateSize: 688, NumLayers: 4, NumHeads: 4, NumKVHeads: 2, HeadDim: 64,
		MaxPositionEmbeddings: 2048, RMSNormEps: 1e-6, RopeTheta: 10000, TieWordEmbeddings: true, BOSTokenID: 256, EOSTokenIDs: []int{256}, TorchDType: "float32",
		Generation: GenerationConfig{EOSTokenIDs: []int{256}}} // its generation_config.json repeats the EOS id
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("config %+v\nwant %+v", c, want)
	}
	if got := c.Params(); got != 2968576 {
		t.Errorf("Params() = %d, want 2968576 (the count the training script printed)", got)
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
		{"other model", edit(`"model_type": "qwen3"`, `"model_type": "llama"`), `model_type "llama"`},
		{"missing hidden", edit(`"hidden_size": 1024,`, ``), "hidden_size is missing"},
		{"zero layers", edit(`"num_hidden_layers": 28`, `"num_hidden_layers": 0`), "num_hidden_layers = 0 is out of range"},
		{"gqa mismatch", edit(`"num_key_value_heads": 8`, `"num_key_value_heads": 5`), "not a multiple of num_key_value_heads 5"},
		{"odd head dim", edit(`"head_dim": 128`, `"head_dim": 127`), "head_dim 127 is odd"},
		{"activation", edit(`"hidden_act": "silu"`, `"hidden_act": "gelu"`), `hidden_act "gelu" is unsupported`},
		{"bias", edit(`"attention_bias": false`, `"attention_bias": true`), "attention_bias true is unsupported"},
		{"sliding", edit(`"use_sliding_window": false`, `"use_sliding_window": true`), "use_sliding_window true is unsupported"},
		{"rope scaling", edit(`"rope_scaling": null`, `"rope_scaling": {"rope_type": "yarn", "factor": 4}`), "rope_scaling"},
		{"rope type", edit(`"rope_scaling": null`, `"rope_parameters": {"rope_type": "llama3"}`), `rope_type "llama3" is unsupported`},
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

package model

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/loomrt/loom/ops"
)

func TestGenerationConfig(t *testing.T) {
	base := ops.Sampling{Temperature: 0.7, TopK: 40, TopP: 0.95, MinP: 0.01, RepetitionPenalty: 1, Seed: 9}
	for _, c := range []struct {
		file string // generation_config.json; "" for none
		eos  []int
		want ops.Sampling
	}{
		{"", []int{36}, base},
		{`{"do_sample": true, "temperature": 0.6, "top_k": 20, "top_p": 0.8, "eos_token_id": [5, 36, 7]}`, []int{36, 5, 7},
			ops.Sampling{Temperature: 0.6, TopK: 20, TopP: 0.8, MinP: 0.01, RepetitionPenalty: 1, Seed: 9}},
		{`{"min_p": 0.1, "repetition_penalty": 1.3, "eos_token_id": 3}`, []int{36, 3},
			ops.Sampling{Temperature: 0.7, TopK: 40, TopP: 0.95, MinP: 0.1, RepetitionPenalty: 1.3, Seed: 9}},
		{`{"do_sample": false, "temperature": 0.6}`, []int{36},
			ops.Sampling{Temperature: 0, TopK: 40, TopP: 0.95, MinP: 0.01, RepetitionPenalty: 1, Seed: 9}},
	} {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "config.json"), hfConfigJSON(smallConfig))
		if c.file != "" {
			writeFile(t, filepath.Join(dir, GenerationFile), []byte(c.file))
		}
		cfg, err := LoadConfig(dir)
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if !slices.Equal(cfg.EOSTokenIDs, c.eos) {
			t.Errorf("%s: EOS ids %v, want %v", c.file, cfg.EOSTokenIDs, c.eos)
		}
		if got := cfg.Generation.Apply(base); got != c.want {
			t.Errorf("%s: sampling %+v, want %+v", c.file, got, c.want)
		}
	}
	for _, c := range []struct{ file, want string }{
		{`{"temperature": `, "invalid JSON"},
		{`{"temperature": -1}`, "temperature"},
		{`{"top_p": 2}`, "top"},
		{`{"eos_token_id": "x"}`, "eos_token_id"},
		{`{"eos_token_id": [36, 99]}`, "eos_token_id 99 is outside the vocabulary"},
	} {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "config.json"), hfConfigJSON(smallConfig))
		writeFile(t, filepath.Join(dir, GenerationFile), []byte(c.file))
		if _, err := LoadConfig(dir); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), GenerationFile) {
			t.Errorf("%s: error %v, want one naming %s and %q", c.file, err, GenerationFile, c.want)
		}
	}
}

package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/loomrt/loom/ops"
)

// GenerationFile is the Hugging Face file of a model's generation defaults.
const GenerationFile = "generation_config.json"

// GenerationConfig is what a model's generation_config.json sets: sampling
// defaults (nil where the file gives none) and the token ids that end
// generation besides config.json's.
type GenerationConfig struct {
	DoSample          *bool // false means greedy, whatever the temperature
	Temperature       *float32
	TopK              *int
	TopP              *float32
	MinP              *float32
	RepetitionPenalty *float32
	EOSTokenIDs       []int
}

// LoadGenerationConfig reads dir/generation_config.json; a directory
// without one gives the zero GenerationConfig.
func LoadGenerationConfig(dir string) (GenerationConfig, error) {
	path := filepath.Join(dir, GenerationFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return GenerationConfig{}, nil
	}
	if err != nil {
		return GenerationConfig{}, err
	}
	g, err := ParseGenerationConfig(b)
	if err != nil {
		return GenerationConfig{}, fmt.Errorf("%s: %w", path, err)
	}
	return g, nil
}

// ParseGenerationConfig parses the contents of a generation_config.json.
func ParseGenerationConfig(b []byte) (GenerationConfig, error) {
	var r struct {
		DoSample          *bool           `json:"do_sample"`
		Temperature       *float32        `json:"temperature"`
		TopK              *int            `json:"top_k"`
		TopP              *float32        `json:"top_p"`
		MinP              *float32        `json:"min_p"`
		RepetitionPenalty *float32        `json:"repetition_penalty"`
		EOSTokenID        json.RawMessage `json:"eos_token_id"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return GenerationConfig{}, fmt.Errorf("invalid JSON: %v", err)
	}
	g := GenerationConfig{DoSample: r.DoSample, Temperature: r.Temperature, TopK: r.TopK, TopP: r.TopP, MinP: r.MinP,
		RepetitionPenalty: r.RepetitionPenalty}
	var err error
	if g.EOSTokenIDs, err = tokenIDs("eos_token_id", r.EOSTokenID); err != nil {
		return GenerationConfig{}, err
	}
	if err := g.Apply(ops.Sampling{}).Validate(); err != nil {
		return GenerationConfig{}, err
	}
	return g, nil
}

// Apply returns s with the settings g gives in place of s's.
func (g GenerationConfig) Apply(s ops.Sampling) ops.Sampling {
	set := func(dst *float32, v *float32) {
		if v != nil {
			*dst = *v
		}
	}
	set(&s.Temperature, g.Temperature)
	set(&s.TopP, g.TopP)
	set(&s.MinP, g.MinP)
	set(&s.RepetitionPenalty, g.RepetitionPenalty)
	if g.TopK != nil {
		s.TopK = *g.TopK
	}
	if g.DoSample != nil && !*g.DoSample {
		s.Temperature = 0
	}
	return s
}

// withGeneration returns c with g's EOS ids added to its own.
func (c Config) withGeneration(g GenerationConfig) Config {
	c.Generation = g
	eos := slices.Clone(c.EOSTokenIDs)
	for _, id := range g.EOSTokenIDs {
		if !slices.Contains(eos, id) {
			eos = append(eos, id)
		}
	}
	c.EOSTokenIDs = eos
	return c
}

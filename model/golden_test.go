package model

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/tokenizer"
)

// golden is testdata/tiny-qwen3/golden.json: transformers' greedy tokens
// and float32 logits for several prompts.
type golden struct {
	Cases []goldenCase `json:"cases"`
}

type goldenCase struct {
	Name      string      `json:"name"`
	Prompt    string      `json:"prompt"` // the text of PromptIDs after the BOS (tiny-qwen3's goldens)
	PromptIDs []int32     `json:"prompt_ids"`
	Tokens    []int32     `json:"tokens"`
	Logits    [][]float64 `json:"logits"`
}

func loadGolden(t testing.TB) *golden {
	t.Helper()
	return readGolden(t, filepath.Join(tinyModelDir, "golden.json"))
}

// readGolden reads a golden.json; a missing file fails the test.
func readGolden(t testing.TB, path string) *golden {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return &g
}

// TestReferenceMatchesTransformers checks the float64 reference forward
// pass against transformers' logits on the shipped model, so that the
// reference used for other tests is Qwen3 as transformers defines it.
func TestReferenceMatchesTransformers(t *testing.T) {
	cfg, err := LoadConfig(tinyModelDir)
	if err != nil {
		t.Fatal(err)
	}
	w, _, ck, err := loadWeights(tinyModelDir, cfg, graph.Float32)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.close()
	ref := newRefModel(t, cfg, w)
	g := loadGolden(t)
	for _, c := range g.Cases {
		if c.Name == "long" {
			continue // the float64 reference is quadratic and slow; the model test covers it
		}
		ids := append(append([]int32(nil), c.PromptIDs...), c.Tokens[:len(c.Tokens)-1]...)
		all := ref.logits(ids)
		for step := range c.Tokens {
			got := all[len(c.PromptIDs)-1+step]
			loomtest.Close(t, c.Name, got, c.Logits[step], 1e-4, 1e-4)
		}
	}
}

// TestGoldenPromptIDs checks that Loom's tokenizer gives the golden prompts'
// ids, which the goldens' script took from the reference tokenizer, after
// the config's BOS.
func TestGoldenPromptIDs(t *testing.T) {
	cfg, err := LoadConfig(tinyModelDir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(tinyModelDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range loadGolden(t).Cases {
		ids, err := tok.Encode(c.Prompt)
		if err != nil {
			t.Fatal(err)
		}
		if want := c.PromptIDs; len(want) == 0 || want[0] != int32(cfg.BOSTokenID) || !slices.Equal(ids, want[1:]) {
			t.Errorf("%s: Loom encodes %q as BOS %d + %v, the golden has %v", c.Name, c.Prompt, cfg.BOSTokenID, ids, want)
		}
	}
}

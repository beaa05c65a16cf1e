package model

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/tokenizer"
)

// tinyLlamaDir is the shipped tiny trained Llama checkpoint: attention
// biases, untied embeddings, llama3 RoPE scaling
// (testdata/tiny-llama/README.md).
const tinyLlamaDir = "../testdata/tiny-llama"

// tinyLlamaPrompt reaches past position 64, the checkpoint's
// original_max_position_embeddings, so that every frequency regime of its
// llama3 scaling turns.
var tinyLlamaPrompt = func() []int32 {
	ids := []int32{3256}
	for i := range 90 {
		ids = append(ids, int32((i*37+11)%3256))
	}
	return ids
}()

func loadTinyLlama(t *testing.T, tg loomtest.Target) (*Engine, *refModel) {
	t.Helper()
	m, err := Load(tg.RT, tinyLlamaDir, graph.Float32)
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.Family != Llama || !m.Config.AttentionBias || m.Config.RopeScaling == nil || m.Config.TieWordEmbeddings {
		t.Fatalf("tiny Llama config %+v: want Llama with biases, llama3 scaling, untied embeddings", m.Config)
	}
	e, err := NewEngine(m, 64, 16) // 1,024 tokens: the long golden prompt and its steps
	if err != nil {
		t.Fatal(err)
	}
	return e, newRefModel(t, m.Config, m.Weights)
}

// TestTinyLlamaMatchesReference checks the shipped Llama checkpoint against
// the float64 reference on every target: the prompt prefilled in one step,
// then decode steps fed the reference's greedy tokens.
func TestTinyLlamaMatchesReference(t *testing.T) {
	for _, tg := range loomtest.Targets(t) {
		e, ref := loadTinyLlama(t, tg)
		if err := e.Cache.Add(0); err != nil {
			t.Fatal(err)
		}
		ids := append([]int32(nil), tinyLlamaPrompt...)
		next := ids
		for step := range 4 {
			want := ref.logits(ids)
			r, err := e.Step([]int{0}, [][]int32{next})
			if err != nil {
				t.Fatal(err)
			}
			last := want[len(ids)-1]
			loomtest.Close(t, fmt.Sprintf("%s step %d", tg.Name, step), f64(r.Logits[0]), last, 1e-4, 1e-4)
			best := argmax(last)
			ids = append(ids, int32(best))
			next = []int32{int32(best)}
		}
		tg.NoHazards(t)
	}
}

// TestTinyLlamaGolden checks the shipped Llama checkpoint against
// golden.json, written by the plain-PyTorch Llama
// (testdata/tiny-llama/scripts/llama.py) through
// testdata/tiny-qwen3/scripts/make_goldens.py -impl plain.
func TestTinyLlamaGolden(t *testing.T) {
	checkTinyLlamaGolden(t, filepath.Join(tinyLlamaDir, "golden.json"))
}

// TestTinyLlamaTransformersGolden checks the shipped Llama checkpoint
// against transformers' own LlamaForCausalLM: golden_transformers.json from
// make_goldens.py's default -impl, run where transformers is installed.
func TestTinyLlamaTransformersGolden(t *testing.T) {
	path := filepath.Join(tinyLlamaDir, "golden_transformers.json")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		t.Skipf("%s is absent: make it where transformers is installed with "+
			"`python3 testdata/tiny-qwen3/scripts/make_goldens.py -model testdata/tiny-llama -o testdata/tiny-llama/golden_transformers.json`", path)
	}
	checkTinyLlamaGolden(t, path)
}

// checkTinyLlamaGolden checks a golden file of the tiny Llama: its prompt
// ids are Loom's tokenizer's (after the BOS); Loom's logits, fed the golden
// tokens step by step, match within goldenAtol and the float64 reference's
// within 1e-4; Generate's greedy tokens match exactly.
func checkTinyLlamaGolden(t *testing.T, path string) {
	g := readGolden(t, path)
	enc, err := tokenizer.Load(tinyLlamaDir)
	if err != nil {
		t.Fatal(err)
	}
	tg := loomtest.Targets(t)[0]
	e, ref := loadTinyLlama(t, tg)
	bos := int32(e.Model.Config.BOSTokenID)
	for id, c := range g.Cases {
		ids, err := enc.Encode(c.Prompt)
		if err != nil {
			t.Fatal(err)
		}
		if want := c.PromptIDs; len(want) == 0 || want[0] != bos || !slices.Equal(ids, want[1:]) {
			t.Fatalf("%s: Loom encodes %q as BOS %d + %v, the golden has %v", c.Name, c.Prompt, bos, ids, want)
		}
		if c.Name == "long" && raceEnabled {
			continue // the 873-token prefill and reference would take minutes under the race detector
		}
		all := ref.logits(append(append([]int32(nil), c.PromptIDs...), c.Tokens[:len(c.Tokens)-1]...))
		if err := e.Cache.Add(id); err != nil {
			t.Fatal(err)
		}
		next := c.PromptIDs
		for step, tok := range c.Tokens {
			r, err := e.Step([]int{id}, [][]int32{next})
			if err != nil {
				t.Fatal(err)
			}
			what := fmt.Sprintf("%s step %d", c.Name, step)
			loomtest.Close(t, what+" logits", f64(r.Logits[0]), c.Logits[step], goldenAtol, goldenRtol)
			loomtest.Close(t, what+" reference", all[len(c.PromptIDs)-1+step], c.Logits[step], 1e-4, 1e-4)
			next = []int32{tok}
		}
		if err := e.Cache.Free(id); err != nil {
			t.Fatal(err)
		}
		tokens, err := e.Generate(id, c.PromptIDs, GenerateOptions{MaxTokens: len(c.Tokens)})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(tokens, c.Tokens) {
			t.Fatalf("%s: tokens %v, want %v", c.Name, tokens, c.Tokens)
		}
	}
}

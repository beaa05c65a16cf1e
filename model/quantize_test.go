package model

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
)

// quantizedTiny writes the shipped tiny model quantized to bits bits in
// groups of groupSize to a temporary directory and returns it.
func quantizedTiny(t *testing.T, bits, groupSize int) string {
	t.Helper()
	dir := t.TempDir()
	if err := QuantizeCheckpoint(tinyModelDir, dir, bits, groupSize); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestQuantized8BitGreedy checks that the tiny model quantized to 8 bits
// (groups of 64, mlx-lm's default) generates the same greedy tokens as
// the float model for 64 steps after each golden prompt.
func TestQuantized8BitGreedy(t *testing.T) {
	dir := quantizedTiny(t, 8, 64)
	tg := loomtest.Targets(t)[0]
	full := loadTiny(t, tg, graph.Float32)
	m, err := Load(tg.RT, dir, graph.Invalid)
	if err != nil {
		t.Fatal(err)
	}
	if m.DType != graph.Float32 || len(m.Weights.Quant) != 1+2*m.Config.NumLayers+m.Config.NumLayers {
		t.Fatalf("dtype %s, %d quantized arrays: want float32 and the embedding, QKV, O and GateUp of every layer (down_proj's 688 inputs are no multiple of 64)", m.DType, len(m.Weights.Quant))
	}
	q, err := NewEngine(m, 128, 16)
	if err != nil {
		t.Fatal(err)
	}
	// Both models are fed the float model's greedy tokens. At each step the
	// 8-bit model must pick the float model's token, unless the float
	// model's logits of the two picks are closer than the 8-bit weights'
	// error can separate (the tiny model has near ties).
	const tie = 0.02
	for id, c := range loadGolden(t).Cases {
		if c.Name == "long" && raceEnabled {
			continue
		}
		for _, e := range []*Engine{full, q} {
			if err := e.Cache.Add(id); err != nil {
				t.Fatal(err)
			}
		}
		in, same, ties := c.PromptIDs, 0, 0
		for step := range 64 {
			var logits [2][]float32
			for i, e := range []*Engine{full, q} {
				r, err := e.Step([]int{id}, [][]int32{in})
				if err != nil {
					t.Fatal(err)
				}
				logits[i] = r.Logits[0]
			}
			a, b := argmax(logits[0]), argmax(logits[1])
			switch {
			case a == b:
				same++
			case logits[0][a]-logits[0][b] < tie:
				ties++
			default:
				t.Errorf("%s step %d: 8-bit token %d, float %d with a margin of %v", c.Name, step, b, a, logits[0][a]-logits[0][b])
			}
			in = []int32{int32(a)}
		}
		for _, e := range []*Engine{full, q} {
			e.Cache.Free(id)
		}
		t.Logf("%s: %d of 64 greedy tokens the same, %d near ties (float margin < %v)", c.Name, same, ties, tie)
	}
}

// argmax is the index of v's first maximum.
func argmax[T float32 | float64](v []T) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best

}

// TestQuantized4BitLogits checks the tiny model quantized to 4 bits in
// groups of 32 against the float64 reference forward pass with the same
// dequantised weights, step by step on the golden prompts and tokens, so
// that only Loom's float32 arithmetic differs.
func TestQuantized4BitLogits(t *testing.T) {
	dir := quantizedTiny(t, 4, 32)
	cfg, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	w, _, ck, err := loadWeights(dir, cfg, graph.Float32)
	if err != nil {
		t.Fatal(err)
	}
	ref := newRefModel(t, cfg, w)
	ck.close()
	tg := loomtest.Targets(t)[0]
	m, err := Load(tg.RT, dir, graph.Invalid)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(m, 128, 16)
	if err != nil {
		t.Fatal(err)
	}
	for id, c := range loadGolden(t).Cases {
		if c.Name == "long" {
			continue // the float64 reference is quadratic and slow
		}
		if err := e.Cache.Add(id); err != nil {
			t.Fatal(err)
		}
		all := ref.logits(append(slices.Clone(c.PromptIDs), c.Tokens[:len(c.Tokens)-1]...))
		next := c.PromptIDs
		for step, tok := range c.Tokens {
			r, err := e.Step([]int{id}, [][]int32{next})
			if err != nil {
				t.Fatal(err)
			}
			loomtest.Close(t, fmt.Sprintf("%s step %d logits", c.Name, step), f64(r.Logits[0]), all[len(c.PromptIDs)-1+step], quant4Atol, 0)
			next = []int32{tok}
		}
	}
}

// quant4Atol bounds the 4-bit tiny model's float32 logits against the
// float64 reference with the same dequantised weights: float32
// accumulation and the CPU matmul's rounding of x to 16-bit fixed point
// per group (docs/QUANT.md); the worst difference measured was 1.03e-3.
const quant4Atol = 2e-3

func TestParseQuantization(t *testing.T) {
	q, err := parseQuantization([]byte(`{"group_size": 64, "bits": 4, "mode": "affine",
		"model.layers.0.mlp.down_proj": {"group_size": 32, "bits": 8},
		"model.layers.1.mlp.down_proj": {"bits": 8},
		"lm_head": false, "model.embed_tokens": true}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		module   string
		gs, bits int
		on       bool
	}{
		{"model.layers.0.mlp.down_proj", 32, 8, true},
		{"model.layers.1.mlp.down_proj", 64, 8, true},
		{"model.layers.2.mlp.down_proj", 64, 4, true},
		{"lm_head", 64, 4, false},
		{"model.embed_tokens", 64, 4, true},
	} {
		if gs, bits, on := q.Module(c.module); gs != c.gs || bits != c.bits || on != c.on {
			t.Errorf("%s: group size %d, %d bits, quantized %v; want %d, %d, %v", c.module, gs, bits, on, c.gs, c.bits, c.on)
		}
	}
	if q, err := parseQuantization([]byte(" null ")); q != nil || err != nil {
		t.Errorf("null: %v, %v; want nil, nil", q, err)
	}
	for _, c := range []struct{ json, want string }{
		{`{"group_size": 64}`, "group_size and bits are both required"},
		{`{"group_size": 64, "bits": 3}`, "3 bits, group size 64: unsupported"},
		{`{"group_size": 16, "bits": 4}`, "group size 16: unsupported"},
		{`{"group_size": 64, "bits": 4, "mode": "mxfp4"}`, `mode "mxfp4" is unsupported`},
		{`{"group_size": 64, "bits": 4, "lm_head": {"bits": 5}}`, "quantization.lm_head: 5 bits"},
		{`{"group_size": 64, "bits": 4, "lm_head": 7}`, "quantization.lm_head: 7 is neither a boolean nor an object"},
		{`[1]`, "is not an object"},
	} {
		if _, err := parseQuantization([]byte(c.json)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.json, err, c.want)
		}
	}
}

// TestQuantizedCheckpointErrors edits a quantized tiny model: every
// problem must be an error naming it, from Load and from CheckWeights.
func TestQuantizedCheckpointErrors(t *testing.T) {
	src := quantizedTiny(t, 4, 64)
	cfg, err := LoadConfig(src)
	if err != nil {
		t.Fatal(err)
	}
	if problems := CheckWeights(src, cfg); len(problems) != 0 {
		t.Fatalf("CheckWeights of the quantized model: %v", problems)
	}
	rt := loomtest.Targets(t)[0].RT
	for _, c := range []struct {
		name string
		edit func(cfg map[string]any)
		want string
	}{
		{"no config", func(cfg map[string]any) { delete(cfg, "quantization") },
			`model.embed_tokens.scales is in`},
		{"override off", func(cfg map[string]any) {
			cfg["quantization"].(map[string]any)["model.layers.0.self_attn.o_proj"] = false
		}, "says model.layers.0.self_attn.o_proj is not quantized"},
		{"stacked formats differ", func(cfg map[string]any) {
			cfg["quantization"].(map[string]any)["model.layers.1.self_attn.k_proj"] = map[string]any{"bits": 8}
		}, "model.layers.1.self_attn.q_proj.weight and model.layers.1.self_attn.k_proj.weight are quantized differently"},
		{"group size", func(cfg map[string]any) {
			cfg["quantization"].(map[string]any)["group_size"] = 32
		}, "tensor model.embed_tokens.scales in"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range []string{"model.safetensors", "generation_config.json"} {
				b, err := os.ReadFile(filepath.Join(src, f))
				if err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Join(dir, f), b)
			}
			var raw map[string]any
			b, err := os.ReadFile(filepath.Join(src, "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &raw); err != nil {
				t.Fatal(err)
			}
			c.edit(raw)
			b, _ = json.Marshal(raw)
			writeFile(t, filepath.Join(dir, "config.json"), b)
			if _, err := Load(rt, dir, graph.Invalid); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Load: error %v, want one containing %q", err, c.want)
			}
			cfg, err := LoadConfig(dir)
			if err != nil {
				t.Fatal(err)
			}
			if c.name == "stacked formats differ" {
				return // each tensor is as the config says; only stacking them fails
			}
			if problems := CheckWeights(dir, cfg); len(problems) == 0 || !strings.Contains(fmt.Sprint(problems), c.want) {
				t.Errorf("CheckWeights: %v, want a problem containing %q", problems, c.want)
			}
		})
	}
}

// TestQuantizeWeights checks that quantizing loaded float weights gives
// the arrays loading the quantized checkpoint gives.
func TestQuantizeWeights(t *testing.T) {
	dir := quantizedTiny(t, 4, 64)
	cfg, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	loaded, _, ck, err := loadWeights(dir, cfg, graph.Float32)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.close()
	float, _, fck, err := loadWeights(tinyModelDir, cfg, graph.Float32)
	if err != nil {
		t.Fatal(err)
	}
	defer fck.close()
	q, err := QuantizeWeights(float, 4, 64)
	if err != nil {
		t.Fatal(err)
	}
	if q.LMHead != q.Embed || len(q.Quant) != len(loaded.Quant) {
		t.Fatalf("tied %v, %d quantized arrays; want tied and %d", q.LMHead == q.Embed, len(q.Quant), len(loaded.Quant))
	}
	got, want := q.Arrays(), loaded.Arrays()
	for i := range want {
		gb, err1 := got[i].Bytes()
		wb, err2 := want[i].Bytes()
		if err1 != nil || err2 != nil || !slices.Equal(gb, wb) {
			t.Fatalf("array %d (%v): differs from the quantized checkpoint's (%v)", i, want[i], got[i])
		}
	}
}

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
)

// smallConfig is a random test model's configuration: GQA 2:1, an odd
// vocabulary and sizes that are not multiples of 8.
var smallConfig = Config{VocabSize: 37, HiddenSize: 24, IntermediateSize: 44, NumLayers: 2, NumHeads: 4, NumKVHeads: 2, HeadDim: 64,
	MaxPositionEmbeddings: 256, RMSNormEps: 1e-6, RopeTheta: 10000, TieWordEmbeddings: false, BOSTokenID: -1, EOSTokenIDs: []int{36}}

// smallLlama is a Llama of the same sizes with attention biases and
// llama3 RoPE scaling whose wavelength bounds (16 and 64 positions) put
// head_dim 64's frequencies in all three of its regimes.
var smallLlama = func() Config {
	c := smallConfig
	c.Family, c.AttentionBias = Llama, true
	c.RopeScaling = &RopeScaling{Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 64}
	return c
}()

// hfConfigJSON returns cfg as a Hugging Face config.json.
func hfConfigJSON(cfg Config) []byte {
	fields := map[string]any{
		"architectures": []string{"Qwen3ForCausalLM"}, "model_type": "qwen3",
		"vocab_size": cfg.VocabSize, "hidden_size": cfg.HiddenSize, "intermediate_size": cfg.IntermediateSize,
		"num_hidden_layers": cfg.NumLayers, "num_attention_heads": cfg.NumHeads, "num_key_value_heads": cfg.NumKVHeads,
		"head_dim": cfg.HeadDim, "max_position_embeddings": cfg.MaxPositionEmbeddings, "rms_norm_eps": cfg.RMSNormEps,
		"rope_theta": cfg.RopeTheta, "tie_word_embeddings": cfg.TieWordEmbeddings, "hidden_act": "silu",
		"eos_token_id": cfg.EOSTokenIDs, "attention_bias": cfg.AttentionBias,
	}
	if cfg.Family == Llama {
		fields["architectures"], fields["model_type"] = []string{"LlamaForCausalLM"}, "llama"
	}
	if s := cfg.RopeScaling; s != nil {
		fields["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": s.Factor, "low_freq_factor": s.LowFreqFactor,
			"high_freq_factor": s.HighFreqFactor, "original_max_position_embeddings": s.OriginalMaxPositionEmbeddings}
	}
	b, err := json.Marshal(fields)
	if err != nil {
		panic(err)
	}
	return b
}

// checkpointTensors returns random weights of cfg as Hugging Face named
// tensors stored as dt.
func checkpointTensors(t *testing.T, cfg Config, dt graph.DType, seed uint64) []testTensor {
	t.Helper()
	w := RandomWeights(cfg, dt, seed)
	names := map[graph.DType]string{graph.Float32: "F32", graph.Float16: "F16", graph.BFloat16: "BF16"}
	var ts []testTensor
	add := func(name string, a *graph.Array) {
		b, err := a.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, testTensor{name, names[dt], a.Shape(), b})
	}
	add("model.embed_tokens.weight", w.Embed)
	add("model.norm.weight", w.Norm)
	if !cfg.TieWordEmbeddings {
		add("lm_head.weight", w.LMHead)
	}
	q, kv := cfg.NumHeads*cfg.HeadDim, cfg.NumKVHeads*cfg.HeadDim
	for i, l := range w.Layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		qkv := splitRows(t, l.QKV, q, kv, kv)
		gateUp := splitRows(t, l.GateUp, cfg.IntermediateSize, cfg.IntermediateSize)
		for _, x := range []struct {
			n string
			a *graph.Array
		}{{"input_layernorm", l.InputNorm}, {"post_attention_layernorm", l.PostAttnNorm}, {"self_attn.q_norm", l.QNorm},
			{"self_attn.k_norm", l.KNorm}, {"self_attn.q_proj", qkv[0]}, {"self_attn.k_proj", qkv[1]}, {"self_attn.v_proj", qkv[2]},
			{"self_attn.o_proj", l.O}, {"mlp.gate_proj", gateUp[0]}, {"mlp.up_proj", gateUp[1]}, {"mlp.down_proj", l.Down}} {
			if x.a != nil {
				add(p+x.n+".weight", x.a)
			}
		}
		if l.QKVBias != nil {
			b := splitRows(t, graph.FromBytes(dt, must(l.QKVBias.Bytes()), q+2*kv, 1), q, kv, kv)
			for j, n := range []string{"q_proj", "k_proj", "v_proj"} {
				add(p+"self_attn."+n+".bias", graph.FromBytes(dt, must(b[j].Bytes()), b[j].Shape()[0]))
			}
			add(p+"self_attn.o_proj.bias", l.OBias)
		}
	}
	return ts
}

// writeCheckpoint writes config.json and the tensors, split over two
// safetensors files, into a new directory.
func writeCheckpoint(t *testing.T, cfg Config, ts []testTensor) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "config.json"), hfConfigJSON(cfg))
	half := len(ts) / 2
	writeFile(t, filepath.Join(dir, "model-00001-of-00002.safetensors"), encodeSafetensors(ts[:half]))
	writeFile(t, filepath.Join(dir, "model-00002-of-00002.safetensors"), encodeSafetensors(ts[half:]))
	return dir
}

func TestLoadShardedAndConverted(t *testing.T) {
	ts := checkpointTensors(t, smallConfig, graph.BFloat16, 1)
	dir := writeCheckpoint(t, smallConfig, ts)
	rt := newTestRuntime(t)
	m, err := Load(rt, dir, graph.Invalid)
	if err != nil {
		t.Fatal(err)
	}
	if m.DType != graph.BFloat16 || m.Weights.LMHead == m.Weights.Embed {
		t.Fatalf("dtype %s, lm head tied %v: want bfloat16, untied", m.DType, m.Weights.LMHead == m.Weights.Embed)
	}
	got, err := m.Weights.Layers[1].Down.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(ts, func(x testTensor) bool { return x.name == "model.layers.1.mlp.down_proj.weight" })
	if string(got) != string(ts[i].data) {
		t.Fatal("loaded weight bytes differ from the file's")
	}
	// Loading as float32 converts exactly (bfloat16 widens without rounding).
	m32, err := Load(rt, dir, graph.Float32)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := m.Weights.Layers[0].QKV.Float64s()
	b, _ := m32.Weights.Layers[0].QKV.Float64s()
	if !slices.Equal(a, b) || m32.Weights.Layers[0].QKV.DType() != graph.Float32 {
		t.Fatal("float32 conversion of bfloat16 weights changed values")
	}
	// The stacked weights are the checkpoint's, in order.
	for _, c := range []struct {
		got   *graph.Array
		layer string
		parts []string
	}{
		{m.Weights.Layers[1].QKV, "model.layers.1.", []string{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}},
		{m.Weights.Layers[0].GateUp, "model.layers.0.", []string{"mlp.gate_proj", "mlp.up_proj"}},
	} {
		var want []byte
		for _, n := range c.parts {
			i := slices.IndexFunc(ts, func(x testTensor) bool { return x.name == c.layer+n+".weight" })
			want = append(want, ts[i].data...)
		}
		if got, err := c.got.Bytes(); err != nil || string(got) != string(want) {
			t.Fatalf("%s%v stacked: bytes differ from the file's (err %v)", c.layer, c.parts, err)
		}
	}
	if want := smallConfig.Params() * 4; m32.WeightBytes() != want {
		t.Fatalf("WeightBytes() = %d, want %d", m32.WeightBytes(), want)
	}
}

func TestLoadErrors(t *testing.T) {
	rt := newTestRuntime(t)
	good := func() []testTensor { return checkpointTensors(t, smallConfig, graph.Float32, 2) }
	replace := func(ts []testTensor, name string, f func(*testTensor)) []testTensor {
		i := slices.IndexFunc(ts, func(x testTensor) bool { return x.name == name })
		if i < 0 {
			t.Fatalf("no tensor %s", name)
		}
		f(&ts[i])
		return ts
	}
	cases := []struct {
		name    string
		tensors []testTensor
		want    []string
	}{
		{"missing", slices.DeleteFunc(good(), func(x testTensor) bool { return x.name == "model.layers.1.mlp.up_proj.weight" }),
			[]string{"tensor model.layers.1.mlp.up_proj.weight is missing from"}},
		{"shape", replace(good(), "model.layers.0.self_attn.k_proj.weight", func(x *testTensor) { x.shape = []int{24, 128} }),
			[]string{"tensor model.layers.0.self_attn.k_proj.weight in", ".safetensors has shape [24 128], the config needs [128 24]"}},
		{"dtype", replace(good(), "model.norm.weight", func(x *testTensor) { x.dtype, x.shape = "I32", []int{24} }),
			[]string{"tensor model.norm.weight in", "dtype I32 is unsupported"}},
		{"extra", append(good(), testTensor{"model.layers.0.self_attn.q_proj.bias", "F32", []int{1}, make([]byte, 4)}),
			[]string{"1 tensors a Qwen3 model of this config does not have (unsupported)", "q_proj.bias"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeCheckpoint(t, smallConfig, c.tensors)
			_, err := Load(rt, dir, graph.Invalid)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range append(c.want, dir) {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q should contain %q", err, w)
				}
			}
			if p := CheckWeights(dir, smallConfig); len(p) != 1 || !strings.HasSuffix(err.Error(), p[0].Error()) {
				t.Fatalf("CheckWeights: %v, want the one problem Load found", p)
			}
		})
	}
	// A corrupt file is named with its path.
	dir := writeCheckpoint(t, smallConfig, good())
	bad := filepath.Join(dir, "model-00002-of-00002.safetensors")
	if err := os.Truncate(bad, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(rt, dir, graph.Invalid); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("truncated file: error %v", err)
	}
	if _, err := Load(rt, t.TempDir(), graph.Invalid); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Fatalf("empty directory: error %v", err)
	}
}

// splitRows returns the row blocks of the given sizes of a constant matrix,
// as constants.
func splitRows(t testing.TB, a *graph.Array, rows ...int) []*graph.Array {
	t.Helper()
	b, err := a.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	cols, es := a.Shape()[1], a.DType().Size()
	var out []*graph.Array
	for _, r := range rows {
		out = append(out, graph.FromBytes(a.DType(), b[:r*cols*es], r, cols))
		b = b[r*cols*es:]
	}
	if len(b) != 0 {
		t.Fatalf("%v has %d bytes past rows %v", a, len(b), rows)
	}
	return out
}

// writeIndex writes model.safetensors.index.json mapping every tensor of
// the two shards writeCheckpoint wrote to its file.
func writeIndex(t *testing.T, dir string, ts []testTensor) {
	t.Helper()
	m := map[string]string{}
	half := len(ts) / 2
	for i, x := range ts {
		m[x.name] = "model-00001-of-00002.safetensors"
		if i >= half {
			m[x.name] = "model-00002-of-00002.safetensors"
		}
	}
	b, err := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 0}, "weight_map": m})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, IndexFile), b)
}

// TestLoadIndex checks that an index names the files that are read: a
// stale single file beside the shards is ignored, a missing shard is named,
// and a tensor the index maps to a file that lacks it is an error.
func TestLoadIndex(t *testing.T) {
	rt := newTestRuntime(t)
	ts := checkpointTensors(t, smallConfig, graph.Float32, 3)
	dir := writeCheckpoint(t, smallConfig, ts)
	writeIndex(t, dir, ts)
	// A stale single-file checkpoint of other weights: with the glob it is a duplicate.
	stale := checkpointTensors(t, smallConfig, graph.Float32, 4)
	writeFile(t, filepath.Join(dir, "model.safetensors"), encodeSafetensors(stale))
	m, err := Load(rt, dir, graph.Invalid)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := m.Weights.Norm.Bytes()
	i := slices.IndexFunc(ts, func(x testTensor) bool { return x.name == "model.norm.weight" })
	if string(got) != string(ts[i].data) {
		t.Fatal("model.norm.weight was not read from the shard the index names")
	}

	if err := os.Remove(filepath.Join(dir, "model-00002-of-00002.safetensors")); err != nil {
		t.Fatal(err)
	}
	_, err = Load(rt, dir, graph.Invalid)
	if err == nil || !strings.Contains(err.Error(), "model-00002-of-00002.safetensors") || !strings.Contains(err.Error(), IndexFile) {
		t.Fatalf("missing shard: error %v, want one naming the shard and the index", err)
	}

	// Every missing shard is named.
	if err := os.Remove(filepath.Join(dir, "model-00001-of-00002.safetensors")); err != nil {
		t.Fatal(err)
	}
	if p := CheckWeights(dir, smallConfig); len(p) != 2 || !strings.Contains(p[0].Error(), "model-00001-of-00002") || !strings.Contains(p[1].Error(), "model-00002-of-00002") {
		t.Fatalf("two missing shards: problems %v, want one naming each", p)
	}

	// The index maps a tensor to a shard that does not hold it.
	dir = writeCheckpoint(t, smallConfig, ts)
	moved := slices.Clone(ts)
	moved[0], moved[len(moved)-1] = moved[len(moved)-1], moved[0]
	writeIndex(t, dir, moved)
	_, err = Load(rt, dir, graph.Invalid)
	if err == nil || !strings.Contains(err.Error(), "does not hold it") {
		t.Fatalf("wrong shard: error %v", err)
	}

	// Bad indexes.
	for _, c := range []struct{ index, want string }{
		{`{"weight_map": `, "invalid JSON"},
		{`{"metadata": {}}`, "no weight_map"},
		{`{"weight_map": {"model.norm.weight": "../x.safetensors"}}`, "not a file in the model directory"},
	} {
		dir := writeCheckpoint(t, smallConfig, ts)
		writeFile(t, filepath.Join(dir, IndexFile), []byte(c.index))
		if _, err := Load(rt, dir, graph.Invalid); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), IndexFile) {
			t.Errorf("index %s: error %v, want %q", c.index, err, c.want)
		}
	}
}

// TestCheckWeights checks that every problem of a checkpoint is reported,
// not only the first.
func TestCheckWeights(t *testing.T) {
	ts := checkpointTensors(t, smallConfig, graph.BFloat16, 5)
	if p := CheckWeights(writeCheckpoint(t, smallConfig, ts), smallConfig); p != nil {
		t.Fatalf("good checkpoint: %v", p)
	}
	ts = slices.DeleteFunc(ts, func(x testTensor) bool { return x.name == "model.layers.0.self_attn.q_norm.weight" })
	for i := range ts {
		switch ts[i].name {
		case "model.layers.1.mlp.up_proj.weight":
			ts[i].shape = []int{ts[i].shape[1], ts[i].shape[0]}
		case "model.norm.weight":
			ts[i].dtype = "I16"
		}
	}
	ts = append(ts, testTensor{"model.extra", "F32", []int{1}, make([]byte, 4)})
	p := CheckWeights(writeCheckpoint(t, smallConfig, ts), smallConfig)
	want := []string{"model.norm.weight in", "model.layers.0.self_attn.q_norm.weight is missing", "model.layers.1.mlp.up_proj.weight in", "model.extra"}
	if len(p) != len(want) {
		t.Fatalf("%d problems %v, want %d", len(p), p, len(want))
	}
	for _, w := range want {
		if !slices.ContainsFunc(p, func(e error) bool { return strings.Contains(e.Error(), w) }) {
			t.Errorf("no problem names %q: %v", w, p)
		}
	}
}

// must returns v, panicking on err (for host arrays that cannot fail).
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

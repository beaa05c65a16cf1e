package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const tinyModel = "../../" + defaultModel

func TestGenerateTinyModel(t *testing.T) {
	for _, args := range [][]string{
		{"-model", tinyModel, "-max-tokens", "4"},
		{"-model", tinyModel, "-max-tokens", "3", "-temperature", "0", "-dtype", "bfloat16", "-check"},
	} {
		if err := runGenerate(args); err != nil {
			t.Fatalf("generate %v: %v", args, err)
		}
	}
}

// TestGenerateWithoutTokenizer checks that a model directory without a
// tokenizer asks for token ids, and runs with them.
func TestGenerateWithoutTokenizer(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"config.json", "model.safetensors"} {
		b, err := os.ReadFile(filepath.Join(tinyModel, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	err := runGenerate([]string{"-model", dir, "-max-tokens", "2"})
	if err == nil || !strings.Contains(err.Error(), "no tokenizer") || !strings.Contains(err.Error(), "-prompt-ids") {
		t.Fatalf("error %v, want one that says there is no tokenizer and to use -prompt-ids", err)
	}
	// The tokenizer is checked before the weights are read.
	if err := os.Rename(filepath.Join(dir, "model.safetensors"), filepath.Join(dir, "x")); err != nil {
		t.Fatal(err)
	}
	if err := runGenerate([]string{"-model", dir, "-prompt", "hi"}); err == nil || !strings.Contains(err.Error(), "no tokenizer") {
		t.Fatalf("no tokenizer or weights: error %v, want one that says there is no tokenizer", err)
	}
	if err := os.Rename(filepath.Join(dir, "x"), filepath.Join(dir, "model.safetensors")); err != nil {
		t.Fatal(err)
	}
	if err := runGenerate([]string{"-model", dir, "-max-tokens", "2", "-prompt-ids", "3256, 112, 97"}); err != nil {
		t.Fatal(err)
	}
	if err := runGenerate([]string{"-model", dir, "-prompt-ids", "3256,3259"}); err == nil || !strings.Contains(err.Error(), `"3259" is not a token id`) {
		t.Fatalf("bad id: error %v", err)
	}
}

func TestGenerateDeviceFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-model", tinyModel, "-device", "cuda", "-check"}, "-check runs on the CPU device only"},
		{[]string{"-model", tinyModel, "-device", "tpu"}, `-device "tpu": want cpu, cuda or metal`},
		{[]string{"-model", tinyModel, "-temperature", "-1"}, "temperature"},
		{[]string{"-model", tinyModel, "-max-tokens", "0"}, "-max-tokens 0"},
		{[]string{"-model", tinyModel, "-block-size", "0"}, "-block-size 0: supported sizes are [8 16 32]"},
		{[]string{"-model", tinyModel, "-block-size", "5"}, "-block-size 5: supported sizes are [8 16 32]"},
		{[]string{"-model", tinyModel, "-block-size", "64"}, "-block-size 64: supported sizes are [8 16 32]"},
		{[]string{"-model", tinyModel, "-block-size", "-1"}, "-block-size -1: supported sizes are [8 16 32]"},
	} {
		if err := runGenerate(c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("generate %v: error %v, want %q", c.args, err, c.want)
		}
	}
}

func TestInfo(t *testing.T) {
	if err := runInfo([]string{"-model", tinyModel}); err != nil {
		t.Fatal(err)
	}
	if err := runInfo([]string{"-model", t.TempDir()}); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Fatalf("empty directory: error %v", err)
	}
}

// copyTinyModel copies the shipped model's files into a new directory,
// each passed through edit (keyed by file name) when given.
func copyTinyModel(t *testing.T, edit map[string]func([]byte) []byte) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} {
		b, err := os.ReadFile(filepath.Join(tinyModel, f))
		if err != nil {
			t.Fatal(err)
		}
		if e := edit[f]; e != nil {
			b = e(b)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// replaceOnce returns an edit that replaces the first old in a file by new.
func replaceOnce(old, new string) func([]byte) []byte {
	return func(b []byte) []byte { return []byte(strings.Replace(string(b), old, new, 1)) }
}

// TestInfoProblems checks that loom info reports every problem of a
// checkpoint and fails.
func TestInfoProblems(t *testing.T) {
	for _, c := range []struct {
		name string
		edit map[string]func([]byte) []byte
		want []string
	}{
		{"missing", map[string]func([]byte) []byte{"model.safetensors": replaceOnce(`"model.norm.weight"`, `"model.norx.weight"`)},
			[]string{"tensor model.norm.weight is missing", "1 tensors a Qwen3 model of this config does not have (unsupported), such as model.norx.weight"}},
		{"dtype", map[string]func([]byte) []byte{"model.safetensors": replaceOnce(`"model.norm.weight":{"dtype":"F32"`, `"model.norm.weight":{"dtype":"I32"`)},
			[]string{"tensor model.norm.weight in", "dtype I32 is unsupported"}},
		{"shape", map[string]func([]byte) []byte{"config.json": replaceOnce(`"intermediate_size": 344`, `"intermediate_size": 346`)},
			[]string{"model.layers.0.mlp.down_proj.weight in", "has shape [128 344], the config needs [128 346]", "model.layers.3.mlp.up_proj.weight in"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := copyTinyModel(t, c.edit)
			stdout, stderr, err := capture(func() error { return runInfo([]string{"-model", dir}) })
			if err == nil || !strings.Contains(err.Error(), "problems with the weights") {
				t.Fatalf("error %v, want one about problems with the weights", err)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not contain %q", stderr, w)
				}
			}
			if strings.Contains(stdout, "every tensor present") {
				t.Errorf("stdout says the weights are fine: %s", stdout)
			}
		})
	}
	// A missing shard named by the index.
	dir := copyTinyModel(t, nil)
	index := `{"weight_map": {"model.embed_tokens.weight": "model.safetensors", "model.norm.weight": "model-00002-of-00002.safetensors"}}`
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), []byte(index), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := capture(func() error { return runInfo([]string{"-model", dir}) })
	if err == nil || !strings.Contains(stderr, "shard model-00002-of-00002.safetensors named by") {
		t.Fatalf("missing shard: error %v, stderr %q", err, stderr)
	}
}

func TestBenchDecodeFlags(t *testing.T) {
	for _, args := range [][]string{{"-batch", "0"}, {"-steps", "0"}, {"-context", "50000"}} {
		if err := benchDecode(args); err == nil {
			t.Errorf("bench decode %v: no error", args)
		}
	}
	for _, bs := range []string{"0", "5", "-1"} {
		if err := benchDecode([]string{"-block-size", bs}); err == nil || !strings.Contains(err.Error(), "-block-size "+bs+": supported sizes are [8 16 32]") {
			t.Errorf("bench decode -block-size %s: error %v", bs, err)
		}
	}
	for _, n := range []string{"21", "-2"} {
		if err := benchDecode([]string{"-logprobs", n}); err == nil || !strings.Contains(err.Error(), "-logprobs "+n+": want -1 (none) to 20") {
			t.Errorf("bench decode -logprobs %s: error %v", n, err)
		}
	}
}

// TestBenchDecodeModel runs loom bench decode on the tiny model's
// directory (-model): its own float32 weights and KV cache, the step
// figures filled in; quantizing them is refused.
func TestBenchDecodeModel(t *testing.T) {
	out, err := captureStdout(func() error {
		return benchDecode([]string{"-model", tinyModel, "-batch", "3", "-context", "20", "-steps", "6", "-json"})
	})
	if err != nil {
		t.Fatal(err)
	}
	var r decodeResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if r.Model != "tiny-qwen3" || r.Weights != "float32" || r.DType != "float32" || r.Batch != 3 || r.Steps != 6 ||
		!(r.TokensPerSecond > 0 && r.MeanTokensPerS > 0) || r.ReplayedSteps < 1 || r.WeightBytes < 1e6 {
		t.Errorf("result %+v", r)
	}
	// The host phases the CPU device has (the CUDA driver's classes are
	// CUDA's): the step's host time splits into the Call and the rest.
	got := map[string]hostPhase{}
	for _, p := range r.HostPhases {
		got[p.Name] = p
		if !(p.MedianUs <= p.MaxUs && p.MeanUs <= p.MaxUs) {
			t.Errorf("phase %+v: median or mean above the max", p)
		}
	}
	// A step that is done before the host waits for it waits 0 µs, so on a
	// loaded machine the wait's median may be 0: the phase must be there.
	if len(got) != 4 || got["host"].MedianUs != r.HostUsPerStep || !(got["call"].MaxUs > 0) || got["wait"].Name == "" || got["rest"].Name == "" {
		t.Errorf("host phases %+v, want host (= host_us_per_step %v), call, rest, wait", r.HostPhases, r.HostUsPerStep)
	}
	if len(r.SlowSteps) != 3 || r.SlowSteps[0].PhasesUs["host"] != got["host"].MaxUs || r.SlowSteps[0].PhasesUs["host"] < r.SlowSteps[2].PhasesUs["host"] {
		t.Errorf("slow steps %+v, want 3, slowest first", r.SlowSteps)
	}
	if err := benchDecode([]string{"-model", tinyModel, "-weights", "q4"}); err == nil || !strings.Contains(err.Error(), "unsupported") {
		t.Errorf("-model with -weights q4: error %v, want unsupported", err)
	}
}

// TestTokenize runs loom tokenize on a Hugging Face tokenizer.json (a model
// directory with nothing else) and checks the ids against the reference's
// goldens.
func TestTokenize(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile("../../testdata/tokenizer/qwen2.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	var g struct {
		Texts      []string
		Tokenizers map[string][]struct{ IDs []int32 }
	}
	b, err = os.ReadFile("../../testdata/tokenizer/goldens.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	const text = 14 // special tokens, CJK and newlines
	out, err := captureStdout(func() error { return runTokenize([]string{"-model", dir, "-json", g.Texts[text]}) })
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(g.Tokenizers["qwen2"][text].IDs)
	if strings.TrimSpace(out) != string(want) {
		t.Fatalf("loom tokenize -json %q printed %s, want %s", g.Texts[text], out, want)
	}
	for _, args := range [][]string{{"-model", dir}, {"-model", dir, "a", "b"}} {
		if err := runTokenize(args); err == nil || !strings.Contains(err.Error(), "want one TEXT") {
			t.Errorf("tokenize %v: error %v, want one about the TEXT argument", args, err)
		}
	}
	if err := runTokenize([]string{"-model", t.TempDir(), "x"}); err == nil || !strings.Contains(err.Error(), "token ids") {
		t.Errorf("no tokenizer: error %v", err)
	}
}

// captureStdout returns what f prints to os.Stdout.
func captureStdout(f func() error) (string, error) {
	out, _, err := capture(f)
	return out, err
}

// capture returns what f prints to os.Stdout and os.Stderr.
func capture(f func() error) (stdout, stderr string, err error) {
	read := func(r *os.File, into *string, done chan<- struct{}) {
		b, _ := io.ReadAll(r)
		*into = string(b)
		close(done)
	}
	or, ow, err := os.Pipe()
	if err != nil {
		return "", "", err
	}
	er, ew, err := os.Pipe()
	if err != nil {
		return "", "", err
	}
	outDone, errDone := make(chan struct{}), make(chan struct{})
	go read(or, &stdout, outDone)
	go read(er, &stderr, errDone)
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = ow, ew
	err = f()
	os.Stdout, os.Stderr = oldOut, oldErr
	ow.Close()
	ew.Close()
	<-outDone
	<-errDone
	return stdout, stderr, err
}

// TestHostPhaseNames: the CUDA device's classes (cudaHostClasses) and the
// bench's own phases are distinct names, each explained: a class named
// like a bench phase would add a second figure to each of its steps.
func TestHostPhaseNames(t *testing.T) {
	own := []string{"host", "busy", "call", "rest", "wait", "retire"}
	for _, c := range cudaHostClasses {
		if slices.Contains(own, c) {
			t.Errorf("CUDA class %q is a phase of the bench's own", c)
		}
	}
	for _, name := range append(own, cudaHostClasses...) {
		if phaseHelp(name) == "" {
			t.Errorf("phase %q has no help", name)
		}
	}
}

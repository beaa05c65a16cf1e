package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
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
	if err := runGenerate([]string{"-model", dir, "-max-tokens", "2", "-prompt-ids", "256, 112, 97"}); err != nil {
		t.Fatal(err)
	}
	if err := runGenerate([]string{"-model", dir, "-prompt-ids", "256,999"}); err == nil || !strings.Contains(err.Error(), `"999" is not a token id`) {
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
	r, w, err := os.Pipe()
	if err != nil {
		return "", err
	}
	old := os.Stdout
	os.Stdout = w
	ferr := f()
	os.Stdout = old
	w.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	return string(b), ferr
}

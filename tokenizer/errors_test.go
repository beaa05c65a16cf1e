package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadHFErrors checks that settings outside byte-level BPE and broken
// files give errors naming what is wrong.
func TestLoadHFErrors(t *testing.T) {
	base, err := os.ReadFile(filepath.Join(testdata, "qwen2.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		change func(f map[string]any)
		want   string
	}{
		{"normalizer", func(f map[string]any) { f["normalizer"] = map[string]any{"type": "NFKC"} }, `normalizer "NFKC" is unsupported`},
		{"regex", func(f map[string]any) {
			f["pre_tokenizer"].(map[string]any)["pretokenizers"].([]any)[0].(map[string]any)["pattern"] = map[string]any{"Regex": `\s+`}
		}, `regex "\\s+" is unsupported`},
		{"no ByteLevel", func(f map[string]any) { f["pre_tokenizer"] = map[string]any{"type": "Whitespace"} }, `pre_tokenizer "Whitespace" is unsupported`},
		{"no regex", func(f map[string]any) {
			f["pre_tokenizer"] = map[string]any{"type": "ByteLevel", "use_regex": false}
		}, "without a Split regex is unsupported"},
		{"decoder", func(f map[string]any) { f["decoder"] = nil }, "decoder null is unsupported"},
		{"model", func(f map[string]any) { f["model"].(map[string]any)["type"] = "WordPiece" }, `model type "WordPiece" is unsupported`},
		{"byte_fallback", func(f map[string]any) { f["model"].(map[string]any)["byte_fallback"] = true }, "byte_fallback with the ByteLevel decoder is unsupported"},
		{"missing byte", func(f map[string]any) { delete(f["model"].(map[string]any)["vocab"].(map[string]any), "Ā") }, "vocab lacks byte 0x00"},
		{"merge token", func(f map[string]any) { f["model"].(map[string]any)["merges"].([]any)[3] = []any{"x", "zzz"} }, `merge 3 ("x" "zzz"): "zzz" is not in the vocab`},
		{"merge form", func(f map[string]any) { f["model"].(map[string]any)["merges"].([]any)[3] = "a b c" }, `merge 3 "a b c": want two tokens`},
		{"duplicate merge", func(f map[string]any) {
			m := f["model"].(map[string]any)["merges"].([]any)
			m[5] = m[4]
		}, "merge 5 ("},
		{"lstrip", func(f map[string]any) { f["added_tokens"].([]any)[0].(map[string]any)["lstrip"] = true }, `added token "<|endoftext|>": single_word, lstrip and rstrip are unsupported`},
	} {
		var f map[string]any
		if err := json.Unmarshal(base, &f); err != nil {
			t.Fatal(err)
		}
		c.change(f)
		b, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseHF(b); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	testSPMErrors(t)
	if _, err := parseHF([]byte(`{"model":`)); err == nil || !strings.Contains(err.Error(), "invalid JSON") {
		t.Errorf("truncated file: error %v", err)
	}
	tok, err := parseHF(base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.Encode("ab\xffc"); err == nil || !strings.Contains(err.Error(), "not valid UTF-8 (at byte 2)") {
		t.Errorf("invalid UTF-8: error %v", err)
	}
}

// testSPMErrors checks the errors of SentencePiece-style settings.
func testSPMErrors(t *testing.T) {
	base, err := os.ReadFile(filepath.Join(testdata, "mistral.json"))
	if err != nil {
		t.Fatal(err)
	}
	model := func(f map[string]any) map[string]any { return f["model"].(map[string]any) }
	decoders := func(f map[string]any) []any { return f["decoder"].(map[string]any)["decoders"].([]any) }
	for _, c := range []struct {
		name   string
		change func(f map[string]any)
		want   string
	}{
		{"scheme", func(f map[string]any) { f["pre_tokenizer"].(map[string]any)["prepend_scheme"] = "sometimes" }, `pre_tokenizer Metaspace: prepend_scheme "sometimes" is unsupported`},
		{"replacement", func(f map[string]any) { f["pre_tokenizer"].(map[string]any)["replacement"] = "__" }, `replacement "__" is unsupported`},
		{"pre_tokenizer", func(f map[string]any) { f["pre_tokenizer"] = map[string]any{"type": "Whitespace"} }, `pre_tokenizer "Whitespace" with a Sequence decoder is unsupported`},
		{"decoder step", func(f map[string]any) { decoders(f)[2] = map[string]any{"type": "CTC"} }, `decoder Sequence: "CTC" at 2 is unsupported`},
		{"strip", func(f map[string]any) { decoders(f)[3].(map[string]any)["stop"] = 2 }, `decoder Strip(" ", 1, 2) is unsupported`},
		{"replace regex", func(f map[string]any) { decoders(f)[0].(map[string]any)["pattern"] = map[string]any{"Regex": "x"} }, `decoder Replace: pattern {"Regex":"x"} is unsupported`},
		{"normalizer regex", func(f map[string]any) {
			f["normalizer"] = map[string]any{"type": "Replace", "pattern": map[string]any{"Regex": " +"}, "content": "▁"}
		}, `normalizer Replace: pattern {"Regex":" +"} is unsupported`},
		{"byte token", func(f map[string]any) { delete(model(f)["vocab"].(map[string]any), "<0x41>") }, "byte_fallback: vocab lacks byte token <0x41>"},
		{"unk", func(f map[string]any) { model(f)["unk_token"] = "<nope>" }, `unk_token "<nope>" is not in the vocab`},
		{"no fallback", func(f map[string]any) { model(f)["byte_fallback"] = false; model(f)["unk_token"] = nil }, "neither byte_fallback nor unk_token is unsupported"},
	} {
		var f map[string]any
		if err := json.Unmarshal(base, &f); err != nil {
			t.Fatal(err)
		}
		c.change(f)
		b, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseHF(b); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("SentencePiece %s: error %v, want %q", c.name, err, c.want)
		}
	}
}

package model

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestByteTokenizer(t *testing.T) {
	tok, err := LoadTokenizer(tinyModelDir)
	if err != nil {
		t.Fatal(err)
	}
	text := "func main() {\n\tπ := 3.14 // ü\n}"
	ids := tok.Encode(text)
	if len(ids) != len(text) {
		t.Fatalf("%d ids for %d bytes", len(ids), len(text))
	}
	if got := tok.Decode(ids); got != text {
		t.Fatalf("Decode(Encode(%q)) = %q", text, got)
	}
	if got := tok.Decode([]int32{'a', 256, 300}); got != "a<|endoftext|><|token 300|>" {
		t.Fatalf("Decode with specials = %q", got)
	}
}

func TestLoadTokenizerErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadTokenizer(dir); !errors.Is(err, ErrNoTokenizer) || !strings.Contains(err.Error(), "token ids") {
		t.Fatalf("no tokenizer file: error %v, want ErrNoTokenizer that says to give token ids", err)
	}
	for _, c := range []struct{ json, want string }{
		{`{"type": "bpe"}`, `type "bpe" is unsupported`},
		{`{"type": "bytes", "vocab_size": 257, "special_tokens": {"<x>": 12}}`, "outside [256, 257)"},
		{`{"type":`, "invalid JSON"},
	} {
		if err := os.WriteFile(filepath.Join(dir, TokenizerFile), []byte(c.json), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadTokenizer(dir); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.json, err, c.want)
		}
	}
}

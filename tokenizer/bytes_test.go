package tokenizer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBytes(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, BytesFile), []byte(`{"type": "bytes", "vocab_size": 257, "special_tokens": {"<|endoftext|>": 256}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tok.(*Bytes); !ok {
		t.Fatalf("Load(%s) gave a %T, want *Bytes", dir, tok)
	}
	text := "func main() {\n\tπ := 3.14 // ü\n}"
	ids, err := tok.Encode(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != len(text) {
		t.Fatalf("%d ids for %d bytes", len(ids), len(text))
	}
	if got := tok.Decode(ids); got != text {
		t.Fatalf("Decode(Encode(%q)) = %q", text, got)
	}
	if got := tok.Decode([]int32{'a', 256, 300}); got != "a<|endoftext|><|token 300|>" {
		t.Fatalf("Decode with specials = %q", got)
	}
	if got := tok.Decode([]int32{'a', 0xCF}); got != "a\uFFFD" {
		t.Fatalf("Decode of half a character = %q, want a and U+FFFD", got)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); !errors.Is(err, ErrNoTokenizer) || !strings.Contains(err.Error(), "token ids") {
		t.Fatalf("no tokenizer file: error %v, want ErrNoTokenizer that says to give token ids", err)
	}
	for _, c := range []struct{ json, want string }{
		{`{"type": "bpe"}`, `type "bpe" is unsupported`},
		{`{"type": "bytes", "vocab_size": 257, "special_tokens": {"<x>": 12}}`, "outside [256, 257)"},
		{`{"type":`, "invalid JSON"},
	} {
		if err := os.WriteFile(filepath.Join(dir, BytesFile), []byte(c.json), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.json, err, c.want)
		}
	}
}

package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// TokenizerFile is the file that marks a model directory as using Loom's
// byte-level tokenizer.
const TokenizerFile = "loom_tokenizer.json"

// ByteTokenizer maps each byte of UTF-8 text to the token of the same value
// (0–255); ids from 256 up are special tokens.
type ByteTokenizer struct {
	VocabSize int
	Specials  map[string]int // such as "<|endoftext|>": 256
	names     map[int]string
}

// ErrNoTokenizer says a model directory has no tokenizer Loom implements.
var ErrNoTokenizer = errors.New("no byte-level tokenizer")

// LoadTokenizer reads dir/loom_tokenizer.json. A directory without it
// (a model with a BPE tokenizer.json, say) gives an error wrapping
// ErrNoTokenizer: Loom implements only the byte-level tokenizer, and such a
// model takes token ids instead of text.
func LoadTokenizer(dir string) (*ByteTokenizer, error) {
	path := filepath.Join(dir, TokenizerFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s (no %s): Loom implements only byte-level tokenization; give the prompt as token ids", ErrNoTokenizer, dir, TokenizerFile)
	}
	if err != nil {
		return nil, err
	}
	var f struct {
		Type      string         `json:"type"`
		VocabSize int            `json:"vocab_size"`
		Specials  map[string]int `json:"special_tokens"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("tokenizer %s: invalid JSON: %v", path, err)
	}
	if f.Type != "bytes" {
		return nil, fmt.Errorf("tokenizer %s: type %q is unsupported (want \"bytes\")", path, f.Type)
	}
	t := &ByteTokenizer{VocabSize: f.VocabSize, Specials: f.Specials, names: map[int]string{}}
	for name, id := range f.Specials {
		if id < 256 || id >= f.VocabSize {
			return nil, fmt.Errorf("tokenizer %s: special token %q has id %d outside [256, %d)", path, name, id, f.VocabSize)
		}
		t.names[id] = name
	}
	return t, nil
}

// Encode returns the bytes of text as token ids.
func (t *ByteTokenizer) Encode(text string) []int32 {
	ids := make([]int32, len(text))
	for i := range len(text) {
		ids[i] = int32(text[i])
	}
	return ids
}

// Decode returns the text of ids: bytes as themselves, special tokens by
// name. A sequence cut inside a UTF-8 character decodes to its bytes, so
// streaming output token by token prints the same text.
func (t *ByteTokenizer) Decode(ids []int32) string {
	var b strings.Builder
	for _, id := range ids {
		switch {
		case id >= 0 && id < 256:
			b.WriteByte(byte(id))
		case t.names[int(id)] != "":
			b.WriteString(t.names[int(id)])
		default:
			fmt.Fprintf(&b, "<|token %d|>", id)
		}
	}
	return b.String()
}

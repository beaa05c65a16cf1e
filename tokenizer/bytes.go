package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
)

// BytesFile is the file of Loom's byte tokenizer.
const BytesFile = "loom_tokenizer.json"

// Bytes maps each byte of UTF-8 text to the token of the same value
// (0–255); ids from 256 up are special tokens.
type Bytes struct {
	VocabSize int
	Specials  map[string]int // such as "<|endoftext|>": 256
	names     map[int]string
}

// LoadBytes reads a loom_tokenizer.json.
func LoadBytes(path string) (*Bytes, error) {
	b, err := os.ReadFile(path)
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
	t := &Bytes{VocabSize: f.VocabSize, Specials: f.Specials, names: map[int]string{}}
	for name, id := range f.Specials {
		if id < 256 || id >= f.VocabSize {
			return nil, fmt.Errorf("tokenizer %s: special token %q has id %d outside [256, %d)", path, name, id, f.VocabSize)
		}
		t.names[id] = name
	}
	return t, nil
}

// Encode returns the bytes of text as token ids; it never fails.
func (t *Bytes) Encode(text string) ([]int32, error) {
	ids := make([]int32, len(text))
	for i := range len(text) {
		ids[i] = int32(text[i])
	}
	return ids, nil
}

// Decode returns the text of ids: bytes as themselves, special tokens by
// name, an unknown id as "<|token N|>".
func (t *Bytes) Decode(ids []int32) string {
	return validUTF8(string(t.appendBytes(nil, ids)))
}

func (t *Bytes) appendBytes(b []byte, ids []int32) []byte {
	for _, id := range ids {
		switch {
		case id >= 0 && id < 256:
			b = append(b, byte(id))
		case t.names[int(id)] != "":
			b = append(b, t.names[int(id)]...)
		default:
			b = fmt.Appendf(b, "<|token %d|>", id)
		}
	}
	return b
}

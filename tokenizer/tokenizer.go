// Package tokenizer turns text into token ids and back: Hugging Face's
// BPE (tokenizer.json: byte-level as in GPT-2, Qwen2/Qwen3 and Llama 3, or
// SentencePiece-style as in Llama 2, Mistral and TinyLlama) and Loom's
// own byte tokenizer (loom_tokenizer.json, the shipped tiny model's).
package tokenizer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"unicode/utf8"
)

// Tokenizer encodes text to token ids and decodes ids to text.
type Tokenizer interface {
	// Encode returns the ids of text, without special tokens such as a
	// BOS that a model expects around it.
	Encode(text string) ([]int32, error)
	// Decode returns the text of ids, valid UTF-8: a byte sequence that is
	// not UTF-8 reads U+FFFD.
	Decode(ids []int32) string
	// appendBytes appends the bytes of ids, which need not be UTF-8.
	appendBytes(b []byte, ids []int32) []byte
}

// ErrNoTokenizer says a model directory has no tokenizer Loom implements.
var ErrNoTokenizer = errors.New("no tokenizer")

// Load returns the tokenizer of a model directory: Loom's byte tokenizer
// (loom_tokenizer.json) or a Hugging Face tokenizer.json. A directory with
// neither gives an error wrapping ErrNoTokenizer.
func Load(dir string) (Tokenizer, error) {
	for _, name := range []string{BytesFile, HFFile} {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if name == BytesFile {
			return LoadBytes(path)
		}
		return LoadHF(path)
	}
	return nil, fmt.Errorf("%w in %s (neither %s nor %s): give the prompt as token ids", ErrNoTokenizer, dir, BytesFile, HFFile)
}

// StreamDecoder decodes ids one at a time, as a model generates them, and
// never returns part of a UTF-8 character: bytes that may begin one wait
// for the next token. The pieces it returns join to Decode of all the ids.
type StreamDecoder struct {
	t       Tokenizer
	buf     []byte
	strip   bool // drop a leading space, as Decode does
	started bool // a byte has come
}

// NewStreamDecoder returns a StreamDecoder for t.
func NewStreamDecoder(t Tokenizer) *StreamDecoder {
	s, ok := t.(interface{ stripsLeadingSpace() bool })
	return &StreamDecoder{t: t, strip: ok && s.stripsLeadingSpace()}
}

// Add takes the next id and returns the text it completes (often "").
func (d *StreamDecoder) Add(id int32) string {
	d.buf = d.t.appendBytes(d.buf, []int32{id})
	if !d.started && len(d.buf) > 0 {
		d.started = true
		if d.strip && d.buf[0] == ' ' {
			d.buf = d.buf[1:]
		}
	}
	keep := incompleteTail(d.buf)
	out := validUTF8(string(d.buf[:len(d.buf)-keep]))
	d.buf = append(d.buf[:0], d.buf[len(d.buf)-keep:]...)
	return out
}

// Flush returns what is held back (an unfinished character reads U+FFFD)
// and empties the decoder.
func (d *StreamDecoder) Flush() string {
	out := validUTF8(string(d.buf))
	d.buf = d.buf[:0]
	return out
}

// seqRange returns the length of the UTF-8 sequence that lead byte b begins
// and the range of its second byte; n is 0 for a byte that begins none.
func seqRange(b byte) (n int, lo, hi byte) {
	switch {
	case b >= 0xC2 && b <= 0xDF:
		return 2, 0x80, 0xBF
	case b == 0xE0:
		return 3, 0xA0, 0xBF
	case b == 0xED:
		return 3, 0x80, 0x9F
	case b >= 0xE1 && b <= 0xEF:
		return 3, 0x80, 0xBF
	case b == 0xF0:
		return 4, 0x90, 0xBF
	case b >= 0xF1 && b <= 0xF3:
		return 4, 0x80, 0xBF
	case b == 0xF4:
		return 4, 0x80, 0x8F
	}
	return 0, 0, 0
}

// prefixLen returns how many bytes of s, which begins with a byte that does
// not start a valid character, form one maximal ill-formed subpart (Unicode
// §3.9, the rule WHATWG's and Rust's lossy decoders follow).
func prefixLen(s string) int {
	want, lo, hi := seqRange(s[0])
	n := 1
	for n < want && n < len(s) && s[n] >= lo && s[n] <= hi {
		n++
		lo, hi = 0x80, 0xBF
	}
	return n
}

// incompleteTail returns the length of the end of b that begins a UTF-8
// character but stops before its end.
func incompleteTail(b []byte) int {
	for k := 1; k <= 3 && k <= len(b); k++ {
		p := len(b) - k
		if b[p] < 0x80 {
			return 0
		}
		if b[p] >= 0xC0 {
			s := string(b[p:])
			if want, _, _ := seqRange(b[p]); want > k && prefixLen(s) == k {
				return k
			}
			return 0
		}
	}
	return 0
}

// validUTF8 replaces each maximal ill-formed subpart of s by U+FFFD.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	b := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
			i += prefixLen(s[i:])
			continue
		}
		b = append(b, s[i:i+n]...)
		i += n
	}
	return string(b)
}

// TokenBytes returns the bytes of one token, which need not be UTF-8 (a
// token may hold part of a character), as a log-prob's "bytes" shows.
func TokenBytes(t Tokenizer, id int32) []byte { return t.appendBytes(nil, []int32{id}) }

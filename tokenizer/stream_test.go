package tokenizer

import (
	"math/rand"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestStreamDecoder feeds random ids one at a time: every piece is valid
// UTF-8 (no half character), and the pieces join to Decode of all the ids
// (for Llama 2's form, without the leading space; single bytes are <0xXX>).
func TestStreamDecoder(t *testing.T) {
	for _, name := range []string{"qwen2", "llama2sp"} {
		t.Run(name, func(t *testing.T) { testStreamDecoder(t, name) })
	}
}

func testStreamDecoder(t *testing.T, name string) {
	tok, err := LoadHF(filepath.Join(testdata, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	for trial := range 300 {
		ids := make([]int32, 1+rng.Intn(20))
		for i := range ids {
			if rng.Intn(3) == 0 { // a single byte, often part of a character
				ids[i] = tok.byteID[0x80+rng.Intn(0x80)]
			} else {
				ids[i] = int32(rng.Intn(len(tok.pieces)))
			}
		}
		d := NewStreamDecoder(tok)
		var b strings.Builder
		for _, id := range ids {
			s := d.Add(id)
			if !utf8.ValidString(s) {
				t.Fatalf("trial %d: Add gave invalid UTF-8 %q", trial, s)
			}
			b.WriteString(s)
		}
		b.WriteString(d.Flush())
		if want := tok.Decode(ids); b.String() != want {
			t.Fatalf("trial %d: streamed %q, Decode %q", trial, b.String(), want)
		}
	}
	// A character split over tokens comes out whole once complete.
	d := NewStreamDecoder(tok)
	const euro = "€" // E2 82 AC
	for i := range 2 {
		if s := d.Add(tok.byteID[euro[i]]); s != "" {
			t.Fatalf("byte %d of €: got %q, want nothing yet", i, s)
		}
	}
	if s := d.Add(tok.byteID[euro[2]]); s != euro {
		t.Fatalf("last byte of €: got %q", s)
	}
}

// TestValidUTF8 checks the replacement of ill-formed sequences against the
// examples of Unicode §3.9 (U+FFFD substitution of maximal subparts), which
// the reference's decoders follow.
func TestValidUTF8(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"ok", "ok"},
		{"a\xE2\x82b", "a\uFFFDb"}, // one truncated sequence, one U+FFFD
		{"\xC0\xAF\xE0\x80\xBF\xF0\x81\x82\x41", "\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\x41"},
		{"\xED\xA0\x80\x41", "\uFFFD\uFFFD\uFFFD\x41"}, // surrogate
		{"\xF4\x91\x92\x93\xFF\x41\x80\xBF\x42", "\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\x41\uFFFD\uFFFD\x42"},
		{"\xE1\x80\xE2\xF0\x91\x92\xF1\xBF\x41", "\uFFFD\uFFFD\uFFFD\uFFFD\x41"},
	} {
		if got := validUTF8(c.in); got != c.want {
			t.Errorf("validUTF8(%+q) = %+q, want %+q", c.in, got, c.want)
		}
	}
}

package tokenizer

import (
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzEncode checks that any text encodes without panicking, that invalid
// UTF-8 is an error, and that without a normalizer decoding gives the text
// back (the pieces cover the text and BPE loses no byte); with NFC, the
// text's NFC form. For Llama 2's SentencePiece-style form (byte fallback)
// that holds for text without "▁" and added tokens.
func FuzzEncode(f *testing.F) {
	for _, s := range readGoldens(f).Texts {
		f.Add(s)
	}
	var toks []*BPE
	for _, name := range []string{"llama3", "gpt2", "qwen2", "llama2sp"} {
		tok, err := LoadHF(filepath.Join(testdata, name+".json"))
		if err != nil {
			f.Fatal(err)
		}
		toks = append(toks, tok)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, tok := range toks {
			ids, err := tok.Encode(s)
			if !utf8.ValidString(s) {
				if err == nil {
					t.Fatalf("invalid UTF-8 %q: no error", s)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			want := s
			if !tok.byteLevel && strings.ContainsAny(s, "<▁") {
				continue
			}
			if len(tok.norm) > 0 && tok.byteLevel {
				if strings.Contains(s, "<|") { // NFC applies between added tokens
					continue
				}
				want = nfc(s)
				if nfc(want) != want {
					t.Fatalf("nfc is not idempotent on %+q", s)
				}
			}
			if got := tok.Decode(ids); got != want {
				t.Fatalf("Decode(Encode(%+q)) = %+q, want %+q", s, got, want)
			}
		}
	})
}

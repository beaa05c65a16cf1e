package tokenizer

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// SentencePiece-style BPE (Llama 2, Mistral, TinyLlama): spaces are "▁",
// BPE starts from characters, and a character outside the vocabulary is
// its UTF-8 bytes as <0xXX> tokens (byte_fallback) or the unk token (one
// for a run of them with fuse_unk).

// metaspace is the Metaspace pre-tokenizer.
type metaspace struct {
	mark   string // the replacement of " ", usually "▁"
	scheme string // prepend_scheme: always, first or never
	split  bool   // split before each mark, the mark going with what follows
}

// pieces replaces spaces by the mark, prepends one as the scheme says
// (unless s begins with one; first: s begins the text) and passes on the
// pieces.
func (m *metaspace) pieces(s string, first bool, piece func(string)) {
	s = strings.ReplaceAll(s, " ", m.mark)
	if !strings.HasPrefix(s, m.mark) && (m.scheme == "always" || m.scheme == "first" && first) {
		s = m.mark + s
	}
	if !m.split {
		piece(s)
		return
	}
	for s != "" {
		i := strings.Index(s[1:], m.mark) + 1
		if i == 0 {
			i = len(s)
		}
		piece(s[:i])
		s = s[i:]
	}
}

// words passes on p whole, or, when no merge joins other text to a mark
// after it (true of SentencePiece vocabularies, where "▁" begins words),
// in words that each begin where a run of marks follows other text: BPE
// of the words gives the same tokens as BPE of p, and the piece cache
// then works on words rather than on whole lines or texts.
func (t *BPE) words(p string, piece func(string)) {
	if !t.wordBreaks {
		piece(p)
		return
	}
	start := 0
	for i := 1; i < len(p); {
		j := strings.Index(p[i:], t.mark)
		if j < 0 {
			break
		}
		i += j
		if !strings.HasSuffix(p[:i], t.mark) {
			piece(p[start:i])
			start = i
		}
		i += len(t.mark)
	}
	piece(p[start:])
}

// spmDecoder is what a SentencePiece-style decoder does to each token.
type spmDecoder struct {
	mark         string // read as a space
	byteFallback bool   // <0xXX> is that byte
}

// piece returns the text that token tok decodes to.
func (d spmDecoder) piece(tok string) string {
	if d.byteFallback {
		if b, ok := fallbackByte(tok); ok {
			return string([]byte{b})
		}
	}
	return strings.ReplaceAll(tok, d.mark, " ")
}

// fallbackByte returns the byte of a token <0xXX>.
func fallbackByte(tok string) (byte, bool) {
	if len(tok) != 6 || !strings.HasPrefix(tok, "<0x") || tok[5] != '>' {
		return 0, false
	}
	b, err := strconv.ParseUint(tok[3:5], 16, 8)
	return byte(b), err == nil
}

// setSentencePiece sets up the pre-tokenizer (null or Metaspace) and reads
// the decoder: Metaspace, or Sequence of Replace("▁" → " "), ByteFallback,
// Fuse and Strip(" ", 1, 0) as Llama 2's and Mistral's files have it.
func (t *BPE) setSentencePiece(p, d *hfComponent) (spmDecoder, error) {
	if p != nil {
		if p.Type != "Metaspace" {
			return spmDecoder{}, fmt.Errorf("pre_tokenizer %q with a %s decoder is unsupported (want null or Metaspace)", p.Type, d.Type)
		}
		m, err := newMetaspace(p, "pre_tokenizer")
		if err != nil {
			return spmDecoder{}, err
		}
		t.meta = &m
	}
	if d.Type == "Metaspace" {
		m, err := newMetaspace(d, "decoder")
		if err != nil {
			return spmDecoder{}, err
		}
		t.stripSpace = m.scheme != "never"
		return spmDecoder{mark: m.mark}, nil
	}
	var dec spmDecoder
	fused := false
	for i, c := range d.Decoders {
		switch {
		case c.Type == "Replace" && i == 0:
			from, err := stringPattern(&c)
			if err != nil {
				return dec, fmt.Errorf("decoder %w", err)
			}
			if *c.Content != " " {
				return dec, fmt.Errorf("decoder Replace %q by %q is unsupported (want a space)", from, *c.Content)
			}
			dec.mark = from
		case c.Type == "ByteFallback" && i == 1:
			dec.byteFallback = true
		case c.Type == "Fuse" && !fused:
			fused = true
		case c.Type == "Strip" && fused && i == len(d.Decoders)-1:
			if c.Content == nil || *c.Content != " " || c.Start > 1 || c.Stop != 0 {
				return dec, fmt.Errorf("decoder Strip(%q, %d, %d) is unsupported (want Strip(\" \", 1, 0))", deref(c.Content), c.Start, c.Stop)
			}
			t.stripSpace = c.Start == 1
		default:
			return dec, fmt.Errorf("decoder Sequence: %q at %d is unsupported (want Replace, ByteFallback, Fuse, Strip)", c.Type, i)
		}
	}
	if dec.mark == "" {
		return dec, fmt.Errorf("decoder Sequence without a first Replace of \"▁\" by \" \" is unsupported")
	}
	return dec, nil
}

func newMetaspace(c *hfComponent, where string) (metaspace, error) {
	m := metaspace{mark: c.Replacement, scheme: c.PrependScheme, split: c.Split == nil || *c.Split}
	if utf8.RuneCountInString(m.mark) != 1 {
		return m, fmt.Errorf("%s Metaspace: replacement %q is unsupported (want one character)", where, m.mark)
	}
	if m.scheme == "" && c.AddPrefixSpace != nil { // the form before prepend_scheme
		m.scheme = map[bool]string{true: "always", false: "never"}[*c.AddPrefixSpace]
	}
	switch m.scheme {
	case "always", "first", "never":
		return m, nil
	}
	return m, fmt.Errorf("%s Metaspace: prepend_scheme %q is unsupported (want always, first or never)", where, m.scheme)
}

// stringPattern returns the string of a Replace whose pattern is
// {"String": s}; a Regex pattern is unsupported.
func stringPattern(c *hfComponent) (string, error) {
	var pat struct{ String *string }
	if err := json.Unmarshal(c.Pattern, &pat); err != nil || pat.String == nil || *pat.String == "" {
		return "", fmt.Errorf("Replace: pattern %s is unsupported (want a non-empty String)", c.Pattern)
	}
	if c.Content == nil {
		return "", fmt.Errorf("Replace: no content")
	}
	return *pat.String, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// setFallback finds the byte tokens (byte_fallback) and the unk token; a
// character outside the vocabulary needs one or the other.
func (t *BPE) setFallback(unk *string) error {
	if unk != nil {
		id, ok := t.vocab[*unk]
		if !ok {
			return fmt.Errorf("unk_token %q is not in the vocab", *unk)
		}
		t.unk = id
	}
	if t.byteFallback {
		for b := range 256 {
			tok := fmt.Sprintf("<0x%02X>", b)
			id, ok := t.vocab[tok]
			if !ok {
				return fmt.Errorf("byte_fallback: vocab lacks byte token %s", tok)
			}
			t.byteID[b] = id
		}
	} else if t.unk < 0 {
		return fmt.Errorf("SentencePiece-style BPE with neither byte_fallback nor unk_token is unsupported")
	}
	return nil
}

// charSymbols appends the symbols BPE starts from for p: each character's
// token, else its byte tokens, else unk (one for a run with fuse_unk).
func (t *BPE) charSymbols(syms []int32, p string) []int32 {
	unkRun := false
	for i := 0; i < len(p); {
		_, n := utf8.DecodeRuneInString(p[i:])
		ch := p[i : i+n]
		i += n
		if id, ok := t.vocab[ch]; ok {
			syms, unkRun = append(syms, id), false
			continue
		}
		if t.byteFallback {
			for k := range len(ch) {
				syms = append(syms, t.byteID[ch[k]])
			}
			unkRun = false
			continue
		}
		if !unkRun || !t.fuseUnk {
			syms = append(syms, t.unk)
		}
		unkRun = true
	}
	return syms
}

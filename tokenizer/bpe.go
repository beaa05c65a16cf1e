package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// HFFile is the Hugging Face tokenizer file of a model directory.
const HFFile = "tokenizer.json"

// BPE is a Hugging Face BPE tokenizer (tokenizer.json) in one of two
// forms. Byte-level (GPT-2, Qwen2/Qwen3, Llama 3): optional NFC normalizer,
// split regex, bytes to tokens, ByteLevel decoder. SentencePiece-style
// (Llama 2, Mistral, TinyLlama; spm.go): spaces become "▁" (a Prepend and
// Replace normalizer or the Metaspace pre-tokenizer), characters to tokens
// with byte_fallback or unk_token for those outside the vocabulary. Both
// merge by rank and match added tokens first, never splitting them. Encode
// applies no post-processor: special tokens such as a BOS are the caller's
// to add.
type BPE struct {
	norm         []normStep
	byteLevel    bool
	split        splitter   // byte-level pieces
	meta         *metaspace // SentencePiece-style pieces; nil for none (pre_tokenizer null)
	ignoreMerges bool
	vocab        map[string]int32 // a token's raw bytes (byte-level) or text (SentencePiece-style) → id
	byteID       [256]int32       // a byte's token: byte-level, or <0xXX> with byte fallback
	byteFallback bool
	fuseUnk      bool
	unk          int32             // -1 for none
	stripSpace   bool              // decoding drops one leading space
	mark         string            // SentencePiece-style: the decoder's space mark
	wordBreaks   bool              // no merge crosses into a mark from other text (spm.go)
	merges       map[uint64]uint64 // left<<32 | right → rank<<32 | merged id
	pieces       []string          // id → raw bytes (or an added token's text)
	known        []bool            // pieces[id] is set
	raw          addedSet          // added tokens matched before normalizing
	normalized   addedSet          // added tokens matched after normalizing

	mu    sync.Mutex
	cache map[string][]int32 // ids of pieces up to cachePiece bytes long
}

// The piece cache: text repeats its words, and BPE of a word costs far more
// than a map lookup. It is emptied when it reaches cacheMax entries.
const (
	cachePiece = 64
	cacheMax   = 1 << 16
)

// addedSet finds added tokens leftmost-longest.
type addedSet struct {
	byFirst *[256][]addedToken // by first byte, longest first; nil for none
}

type addedToken struct {
	text string
	id   int32
}

// LoadHF reads a tokenizer.json. Anything outside byte-level BPE is an
// error that says "unsupported" and names the setting.
func LoadHF(path string) (*BPE, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := parseHF(b)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	return t, nil
}

type hfComponent struct {
	Type           string          `json:"type"`
	Normalizers    []hfComponent   `json:"normalizers"`
	Pretokenizers  []hfComponent   `json:"pretokenizers"`
	Pattern        json.RawMessage `json:"pattern"`
	Behavior       string          `json:"behavior"`
	Invert         bool            `json:"invert"`
	AddPrefixSpace *bool           `json:"add_prefix_space"`
	UseRegex       *bool           `json:"use_regex"`
	Prepend        string          `json:"prepend"`
	Content        *string         `json:"content"`
	Replacement    string          `json:"replacement"`
	PrependScheme  string          `json:"prepend_scheme"`
	Split          *bool           `json:"split"`
	Decoders       []hfComponent   `json:"decoders"`
	Start, Stop    int
}

func parseHF(b []byte) (*BPE, error) {
	var f struct {
		AddedTokens []struct {
			ID         int32  `json:"id"`
			Content    string `json:"content"`
			SingleWord bool   `json:"single_word"`
			LStrip     bool   `json:"lstrip"`
			RStrip     bool   `json:"rstrip"`
			Normalized bool   `json:"normalized"`
		} `json:"added_tokens"`
		Normalizer   *hfComponent `json:"normalizer"`
		PreTokenizer *hfComponent `json:"pre_tokenizer"`
		Decoder      *hfComponent `json:"decoder"`
		Model        struct {
			Type                    string            `json:"type"`
			Vocab                   map[string]int32  `json:"vocab"`
			Merges                  []json.RawMessage `json:"merges"`
			IgnoreMerges            bool              `json:"ignore_merges"`
			Dropout                 *float64          `json:"dropout"`
			ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
			EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
			ByteFallback            bool              `json:"byte_fallback"`
			FuseUnk                 bool              `json:"fuse_unk"`
			UnkToken                *string           `json:"unk_token"`
		} `json:"model"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("invalid JSON: %v", err)
	}
	m := &f.Model
	switch {
	case m.Type != "BPE":
		return nil, fmt.Errorf("model type %q is unsupported (want BPE)", m.Type)
	case m.Dropout != nil && *m.Dropout != 0:
		return nil, fmt.Errorf("BPE dropout is unsupported")
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "",
		m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return nil, fmt.Errorf("BPE subword prefixes and suffixes are unsupported")
	}
	t := &BPE{ignoreMerges: m.IgnoreMerges, vocab: map[string]int32{}, merges: map[uint64]uint64{}, cache: map[string][]int32{},
		byteFallback: m.ByteFallback, fuseUnk: m.FuseUnk, unk: -1}
	if err := t.setNormalizer(f.Normalizer); err != nil {
		return nil, err
	}
	var dec spmDecoder
	switch d := f.Decoder; {
	case d != nil && d.Type == "ByteLevel":
		t.byteLevel = true
		if m.ByteFallback {
			return nil, fmt.Errorf("BPE byte_fallback with the ByteLevel decoder is unsupported")
		}
		if err := t.setPreTokenizer(f.PreTokenizer); err != nil {
			return nil, err
		}
	case d != nil && (d.Type == "Sequence" || d.Type == "Metaspace"):
		var err error
		if dec, err = t.setSentencePiece(f.PreTokenizer, d); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("decoder %s is unsupported (want ByteLevel, Metaspace, or Sequence of Replace, ByteFallback, Fuse, Strip)", describe(d))
	}

	// The vocabulary, by raw bytes.
	maxID := int32(-1)
	for _, a := range f.AddedTokens {
		maxID = max(maxID, a.ID)
	}
	for _, id := range m.Vocab {
		maxID = max(maxID, id)
	}
	if maxID >= 1<<30 {
		return nil, fmt.Errorf("token id %d is too large", maxID)
	}
	t.pieces = make([]string, maxID+1)
	t.known = make([]bool, maxID+1)
	for tok, id := range m.Vocab {
		if id < 0 {
			return nil, fmt.Errorf("vocab: token %q has negative id %d", tok, id)
		}
		if t.known[id] {
			return nil, fmt.Errorf("vocab: id %d is given to %q and %q", id, t.pieces[id], tok)
		}
		t.known[id] = true
		if !t.byteLevel {
			t.vocab[tok], t.pieces[id] = id, dec.piece(tok)
			continue
		}
		raw, ok := byteLevelDecode(tok)
		t.pieces[id] = raw
		if ok {
			t.vocab[raw] = id
		}
	}
	if t.byteLevel {
		for b := range 256 {
			id, ok := t.vocab[string([]byte{byte(b)})]
			if !ok {
				return nil, fmt.Errorf("vocab lacks byte 0x%02X (%q): not a byte-level vocabulary", b, byteToRune[b])
			}
			t.byteID[b] = id
		}
	} else if err := t.setFallback(m.UnkToken); err != nil {
		return nil, err
	}
	t.mark, t.wordBreaks = dec.mark, !t.byteLevel

	// Merges, by rank.
	for rank, raw := range m.Merges {
		var pair [2]string
		var s string
		if json.Unmarshal(raw, &s) == nil {
			parts := strings.Split(s, " ")
			if len(parts) != 2 {
				return nil, fmt.Errorf("merge %d %q: want two tokens separated by one space", rank, s)
			}
			pair = [2]string{parts[0], parts[1]}
		} else if err := json.Unmarshal(raw, &pair); err != nil {
			return nil, fmt.Errorf("merge %d: %s is neither \"a b\" nor [\"a\", \"b\"]", rank, raw)
		}
		var ids [3]int32
		for k, tok := range []string{pair[0], pair[1], pair[0] + pair[1]} {
			id, ok := m.Vocab[tok]
			if !ok {
				return nil, fmt.Errorf("merge %d (%q %q): %q is not in the vocab", rank, pair[0], pair[1], tok)
			}
			ids[k] = id
		}
		key := uint64(ids[0])<<32 | uint64(ids[1])
		if _, dup := t.merges[key]; dup {
			return nil, fmt.Errorf("merge %d (%q %q) repeats an earlier merge", rank, pair[0], pair[1])
		}
		t.merges[key] = uint64(rank)<<32 | uint64(ids[2])
		if !t.byteLevel && strings.HasPrefix(pair[1], t.mark) && !strings.HasSuffix(pair[0], t.mark) {
			t.wordBreaks = false
		}
	}

	// Added tokens.
	var raws, norms []addedToken
	for _, a := range f.AddedTokens {
		switch {
		case a.Content == "":
			return nil, fmt.Errorf("added token %d has no content", a.ID)
		case a.ID < 0:
			return nil, fmt.Errorf("added token %q has negative id %d", a.Content, a.ID)
		case a.SingleWord || a.LStrip || a.RStrip:
			return nil, fmt.Errorf("added token %q: single_word, lstrip and rstrip are unsupported", a.Content)
		}
		t.pieces[a.ID], t.known[a.ID] = a.Content, true
		if a.Normalized && len(t.norm) > 0 {
			norms = append(norms, addedToken{t.normalize(a.Content), a.ID})
		} else {
			raws = append(raws, addedToken{a.Content, a.ID})
		}
	}
	t.raw, t.normalized = newAddedSet(raws), newAddedSet(norms)
	return t, nil
}

func describe(c *hfComponent) string {
	if c == nil {
		return "null"
	}
	return fmt.Sprintf("%q", c.Type)
}

// normStep is one normalizer: NFC, Prepend(text) or Replace(from, to).
type normStep struct {
	kind     string
	from, to string
}

func (t *BPE) normalize(s string) string {
	for _, n := range t.norm {
		switch n.kind {
		case "NFC":
			s = nfc(s)
		case "Prepend":
			if s != "" {
				s = n.to + s
			}
		case "Replace":
			s = strings.ReplaceAll(s, n.from, n.to)
		}
	}
	return s
}

func (t *BPE) setNormalizer(n *hfComponent) error {
	if n == nil {
		return nil
	}
	switch n.Type {
	case "NFC":
		t.norm = append(t.norm, normStep{kind: "NFC"})
		return nil
	case "Prepend":
		if n.Prepend == "" {
			return fmt.Errorf("normalizer Prepend: no prepend text")
		}
		t.norm = append(t.norm, normStep{kind: "Prepend", to: n.Prepend})
		return nil
	case "Replace":
		from, err := stringPattern(n)
		if err != nil {
			return fmt.Errorf("normalizer %w", err)
		}
		t.norm = append(t.norm, normStep{kind: "Replace", from: from, to: *n.Content})
		return nil
	case "Sequence":
		for i := range n.Normalizers {
			if err := t.setNormalizer(&n.Normalizers[i]); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("normalizer %q is unsupported (Loom has NFC, Prepend, Replace and Sequence)", n.Type)
}

// setPreTokenizer accepts Sequence[Split(regex), ByteLevel(use_regex
// false)] (Qwen2, Llama 3) and ByteLevel(use_regex true) (GPT-2).
func (t *BPE) setPreTokenizer(p *hfComponent) error {
	seq := []hfComponent{}
	switch {
	case p == nil:
		return fmt.Errorf("pre_tokenizer null is unsupported (want ByteLevel)")
	case p.Type == "Sequence":
		seq = p.Pretokenizers
	default:
		seq = append(seq, *p)
	}
	byteLevel := false
	for _, c := range seq {
		switch {
		case byteLevel:
			return fmt.Errorf("pre_tokenizer %q after ByteLevel is unsupported", c.Type)
		case c.Type == "Split":
			var re struct{ Regex string }
			if err := json.Unmarshal(c.Pattern, &re); err != nil || re.Regex == "" {
				return fmt.Errorf("pre_tokenizer Split: pattern %s is unsupported (want a Regex)", c.Pattern)
			}
			s, ok := newSplitter(re.Regex)
			if !ok {
				return fmt.Errorf("pre_tokenizer Split: regex %q is unsupported (Loom has Qwen2's, Llama 3's and GPT-2's)", re.Regex)
			}
			if c.Behavior != "Isolated" || c.Invert {
				return fmt.Errorf("pre_tokenizer Split: behavior %q, invert %v is unsupported (want Isolated, false)", c.Behavior, c.Invert)
			}
			if t.split.pattern != "" {
				return fmt.Errorf("pre_tokenizer: a second Split is unsupported")
			}
			t.split = s
		case c.Type == "ByteLevel":
			byteLevel = true
			if c.AddPrefixSpace != nil && *c.AddPrefixSpace {
				return fmt.Errorf("pre_tokenizer ByteLevel: add_prefix_space true is unsupported")
			}
			if c.UseRegex == nil || *c.UseRegex { // the default is true
				if t.split.pattern != "" {
					return fmt.Errorf("pre_tokenizer ByteLevel: use_regex after a Split is unsupported")
				}
				t.split, _ = newSplitter(patternGPT2)
			}
		default:
			return fmt.Errorf("pre_tokenizer %q is unsupported", c.Type)
		}
	}
	if !byteLevel {
		return fmt.Errorf("pre_tokenizer without ByteLevel is unsupported")
	}
	if t.split.pattern == "" {
		return fmt.Errorf("pre_tokenizer ByteLevel(use_regex false) without a Split regex is unsupported")
	}
	return nil
}

func newAddedSet(toks []addedToken) addedSet {
	if len(toks) == 0 {
		return addedSet{}
	}
	s := addedSet{byFirst: new([256][]addedToken)}
	for _, a := range toks {
		s.byFirst[a.text[0]] = append(s.byFirst[a.text[0]], a)
	}
	for _, l := range s.byFirst {
		slices.SortStableFunc(l, func(a, b addedToken) int { return len(b.text) - len(a.text) })
	}
	return s
}

// each calls text for each stretch of s between added tokens and added for
// each added token, in order.
func (s addedSet) each(str string, text func(string), added func(int32)) {
	start := 0
	for i := 0; i < len(str) && s.byFirst != nil; i++ {
		for _, a := range s.byFirst[str[i]] {
			if strings.HasPrefix(str[i:], a.text) {
				if start < i {
					text(str[start:i])
				}
				added(a.id)
				start = i + len(a.text)
				i = start - 1
				break
			}
		}
	}
	if start < len(str) {
		text(str[start:])
	}
}

// Encode returns the token ids of text. It fails only for text that is not
// valid UTF-8.
func (t *BPE) Encode(text string) ([]int32, error) {
	if !utf8.ValidString(text) {
		return nil, fmt.Errorf("text is not valid UTF-8 (at byte %d)", invalidAt(text))
	}
	var w bpeWork
	ids := make([]int32, 0, len(text)/3)
	add := func(id int32) { ids = append(ids, id) }
	piece := func(p string) { ids = t.word(&w, p, ids) }
	// first: the stretch begins the text (Metaspace's prepend_scheme first).
	first := true
	added := func(id int32) { first = false; add(id) }
	t.raw.each(text, func(s string) {
		t.normalized.each(t.normalize(s), func(s string) {
			switch {
			case t.byteLevel:
				t.split.split(s, piece)
			case t.meta != nil:
				t.meta.pieces(s, first, func(p string) { t.words(p, piece) })
			default:
				t.words(s, piece)
			}
			first = false
		}, added)
		first = false
	}, added)
	return ids, nil
}

func invalidAt(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return i
			}
		}
	}
	return len(s)
}

// bpeWork is the scratch space of word.
type bpeWork struct {
	id         []int32
	prev, next []int32
	heap       []uint64 // rank<<32 | left symbol index
}

// word appends the tokens of one piece to ids: with ignore_merges the
// piece's own token if it has one, else its BPE tokens (cached).
func (t *BPE) word(w *bpeWork, p string, ids []int32) []int32 {
	if len(p) == 1 && t.byteLevel {
		return append(ids, t.byteID[p[0]])
	}
	if t.ignoreMerges {
		if id, ok := t.vocab[p]; ok {
			return append(ids, id)
		}
	}
	if len(p) <= cachePiece {
		t.mu.Lock()
		c, ok := t.cache[p]
		t.mu.Unlock()
		if ok {
			return append(ids, c...)
		}
	}
	start := len(ids)
	ids = t.merge(w, p, ids)
	if len(p) <= cachePiece {
		t.mu.Lock()
		if len(t.cache) >= cacheMax {
			clear(t.cache)
		}
		t.cache[strings.Clone(p)] = slices.Clone(ids[start:]) // p would keep all of text alive
		t.mu.Unlock()
	}
	return ids
}

// merge appends the tokens of p: its symbols (bytes, or characters for
// SentencePiece-style BPE), merged pair by pair, lowest rank first and
// leftmost first among equal ranks (the order of the reference
// implementations). A heap keeps this O(n log n) in the piece's length.
func (t *BPE) merge(w *bpeWork, p string, ids []int32) []int32 {
	w.prev, w.next, w.heap = w.prev[:0], w.next[:0], w.heap[:0]
	if t.byteLevel {
		w.id = w.id[:0]
		for i := range len(p) {
			w.id = append(w.id, t.byteID[p[i]])
		}
	} else {
		w.id = t.charSymbols(w.id[:0], p)
	}
	n := len(w.id)
	for i := range n {
		w.prev = append(w.prev, int32(i-1))
		w.next = append(w.next, int32(i+1))
	}
	w.next[n-1] = -1
	push := func(i int32) {
		j := w.next[i]
		if j < 0 {
			return
		}
		if m, ok := t.merges[uint64(w.id[i])<<32|uint64(w.id[j])]; ok {
			w.heap = heapPush(w.heap, m&^0xFFFFFFFF|uint64(i))
		}
	}
	for i := range int32(n - 1) {
		push(i)
	}
	for len(w.heap) > 0 {
		var top uint64
		top, w.heap = heapPop(w.heap)
		i := int32(top & 0xFFFFFFFF)
		j := w.next[i]
		if w.id[i] < 0 || j < 0 {
			continue
		}
		m, ok := t.merges[uint64(w.id[i])<<32|uint64(w.id[j])]
		if !ok || m>>32 != top>>32 { // stale: the pair changed since
			continue
		}
		w.id[i] = int32(m & 0xFFFFFFFF)
		w.id[j] = -1
		w.next[i] = w.next[j]
		if k := w.next[j]; k >= 0 {
			w.prev[k] = i
		}
		if k := w.prev[i]; k >= 0 {
			push(k)
		}
		push(i)
	}
	for i := int32(0); i >= 0; i = w.next[i] {
		ids = append(ids, w.id[i])
	}
	return ids
}

func heapPush(h []uint64, x uint64) []uint64 {
	h = append(h, x)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if h[p] <= h[i] {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
	return h
}

func heapPop(h []uint64) (uint64, []uint64) {
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	for i := 0; ; {
		l, s := 2*i+1, i
		if l < n && h[l] < h[s] {
			s = l
		}
		if l+1 < n && h[l+1] < h[s] {
			s = l + 1
		}
		if s == i {
			break
		}
		h[i], h[s] = h[s], h[i]
		i = s
	}
	return top, h
}

// Decode returns the text of ids: the bytes of each token (added tokens,
// special ones included, as their text), with each invalid UTF-8 sequence
// replaced by U+FFFD as the reference does, and without the leading space
// that a SentencePiece-style decoder strips. An id outside the vocabulary
// reads "<|token N|>".
func (t *BPE) Decode(ids []int32) string {
	s := validUTF8(string(t.appendBytes(nil, ids)))
	if t.stripSpace {
		s = strings.TrimPrefix(s, " ")
	}
	return s
}

func (t *BPE) stripsLeadingSpace() bool { return t.stripSpace }

func (t *BPE) appendBytes(b []byte, ids []int32) []byte {
	for _, id := range ids {
		if id >= 0 && int(id) < len(t.pieces) && t.known[id] {
			b = append(b, t.pieces[id]...)
		} else {
			b = fmt.Appendf(b, "<|token %d|>", id)
		}
	}
	return b
}

// byteToRune is GPT-2's bytes_to_unicode: printable bytes stand for
// themselves, the others for U+0100 upwards in byte order.
var byteToRune [256]rune

var runeToByte = map[rune]byte{}

func init() {
	n := rune(0)
	for b := range 256 {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = 256 + n
			n++
		}
		runeToByte[byteToRune[b]] = byte(b)
	}
}

// byteLevelDecode returns the bytes that a byte-level token stands for, and
// false if it has a rune outside the byte alphabet.
func byteLevelDecode(tok string) (string, bool) {
	b := make([]byte, 0, len(tok))
	for _, r := range tok {
		c, ok := runeToByte[r]
		if !ok {
			return tok, false
		}
		b = append(b, c)
	}
	return string(b), true
}

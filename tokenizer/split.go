package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// The split regexes Loom implements, as they appear in tokenizer.json. Go's
// regexp has no look-ahead (\s+(?!\S)), so each is matched by hand below;
// the matcher follows the regex's leftmost-first alternation and
// backtracking exactly. \s is Unicode White_Space (Oniguruma's meaning, and
// the reference's), \p{L} and \p{N} are Go's unicode.Letter and
// unicode.Number.
const (
	// Qwen2 and Qwen3.
	patternQwen2 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// Llama 3: digits in runs of up to three.
	patternLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// GPT-2: the ByteLevel pre-tokenizer's own regex (use_regex true).
	patternGPT2 = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
)

// splitter matches one of the patterns above.
type splitter struct {
	pattern   string
	maxDigits int  // longest run of \p{N} in one piece (0: unbounded, GPT-2's \p{N}+)
	gpt2      bool // GPT-2's simpler alternatives
}

func newSplitter(pattern string) (splitter, bool) {
	switch pattern {
	case patternQwen2:
		return splitter{pattern: pattern, maxDigits: 1}, true
	case patternLlama3:
		return splitter{pattern: pattern, maxDigits: 3}, true
	case patternGPT2:
		return splitter{pattern: pattern, gpt2: true}, true
	}
	return splitter{}, false
}

// Classes of a rune, for the ASCII fast path and the rest.
const (
	clsOther  = iota // [^\s\p{L}\p{N}]
	clsLetter        // \p{L}
	clsNumber        // \p{N}
	clsSpace         // \s
)

var asciiClass [128]uint8

func init() {
	for r := rune(0); r < 128; r++ {
		asciiClass[r] = classOfSlow(r)
	}
}

func classOfSlow(r rune) uint8 {
	switch {
	case unicode.IsLetter(r):
		return clsLetter
	case unicode.IsNumber(r):
		return clsNumber
	case unicode.IsSpace(r): // White_Space
		return clsSpace
	}
	return clsOther
}

// at returns the rune at s[i], its width and its class; at the end of s it
// returns width 0 and the class -1.
func at(s string, i int) (rune, int, int) {
	if i >= len(s) {
		return 0, 0, -1
	}
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1, int(asciiClass[c])
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	return r, n, int(classOfSlow(r))
}

// split calls emit with each piece of s in order; the pieces cover s.
func (p splitter) split(s string, emit func(string)) {
	for i := 0; i < len(s); {
		n := p.match(s, i)
		emit(s[i : i+n])
		i += n
	}
}

// match returns the length of the regex's match at s[i:] (never 0: every
// rune is matched by some alternative).
func (p splitter) match(s string, i int) int {
	r, w, c := at(s, i)
	if r == '\'' {
		if n := p.contraction(s, i+1); n > 0 {
			return 1 + n
		}
	}
	if p.gpt2 {
		j, c0 := i, c
		if r == ' ' {
			if _, _, c1 := at(s, i+w); c1 == clsLetter || c1 == clsNumber || c1 == clsOther {
				j, c0 = i+w, c1
			}
		}
		if c0 != clsSpace {
			return p.run(s, j, c0, 0) - i
		}
		return p.spaces(s, i, false)
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if c == clsLetter {
		return p.run(s, i, clsLetter, 0) - i
	}
	if r != '\r' && r != '\n' && c != clsNumber {
		if _, _, c1 := at(s, i+w); c1 == clsLetter {
			return p.run(s, i+w, clsLetter, 0) - i
		}
	}
	// \p{N} or \p{N}{1,3}
	if c == clsNumber {
		return p.run(s, i, clsNumber, p.maxDigits) - i
	}
	//  ?[^\s\p{L}\p{N}]+[\r\n]*
	j := i
	if r == ' ' {
		if _, _, c1 := at(s, i+w); c1 == clsOther {
			j = i + w
		}
	}
	if _, _, cj := at(s, j); cj == clsOther {
		j = p.run(s, j, clsOther, 0)
		for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
			j++
		}
		return j - i
	}
	return p.spaces(s, i, true)
}

// contraction returns the length of the contraction suffix ('s, 're, ...)
// at s[i:], just after the apostrophe, or 0. Qwen2's and Llama 3's are
// case-insensitive in ASCII only, as in the reference (its 'ſ is no
// contraction).
func (p splitter) contraction(s string, i int) int {
	fold := func(b byte) byte {
		if !p.gpt2 && b >= 'A' && b <= 'Z' {
			return b + 'a' - 'A'
		}
		return b
	}
	if i >= len(s) {
		return 0
	}
	switch fold(s[i]) {
	case 's', 't', 'm', 'd':
		return 1
	case 'r', 'v':
		if i+1 < len(s) && fold(s[i+1]) == 'e' {
			return 2
		}
	case 'l':
		if i+1 < len(s) && fold(s[i+1]) == 'l' {
			return 2
		}
	}
	return 0
}

// run returns the end of the run of class c that starts at s[i:], at most
// max runes long (0: unbounded).
func (p splitter) run(s string, i, c, max int) int {
	for k := 0; max == 0 || k < max; k++ {
		_, w, ci := at(s, i)
		if ci != c {
			break
		}
		i += w
	}
	return i
}

// spaces matches the whitespace alternatives at s[i:], where s[i] is
// White_Space: \s*[\r\n]+ (when newlines is set), then \s+(?!\S), then \s+.
func (p splitter) spaces(s string, i int, newlines bool) int {
	end, lastNL, lastStart, runes := i, -1, i, 0
	for {
		r, w, c := at(s, end)
		if c != clsSpace {
			break
		}
		if r == '\r' || r == '\n' {
			lastNL = end + w
		}
		lastStart = end
		end += w
		runes++
	}
	switch {
	case newlines && lastNL >= 0:
		return lastNL - i
	case end == len(s) || runes == 1:
		return end - i
	}
	return lastStart - i // leave the last space to the next piece
}

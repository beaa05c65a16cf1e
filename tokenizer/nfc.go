package tokenizer

//go:generate python3 gen_nfc.py

import (
	"unicode/utf8"
)

// Hangul syllables compose and decompose by arithmetic (Unicode §3.12).
const (
	hangulS      = 0xAC00
	hangulL      = 0x1100
	hangulV      = 0x1161
	hangulT      = 0x11A7
	hangulLCount = 19
	hangulVCount = 21
	hangulTCount = 28
	hangulNCount = hangulVCount * hangulTCount
	hangulSCount = hangulLCount * hangulNCount
)

// nfcInert reports whether NFC leaves r and its neighbours alone: r has no
// decomposition, is a starter, and is never the second of a composition.
// Everything below U+0300 is inert.
func nfcInert(r rune) bool {
	if r < 0x300 {
		return true
	}
	if r >= hangulL && r < 0x1200 { // conjoining jamo
		return false
	}
	if _, ok := nfcDecomp[r]; ok {
		return false
	}
	return nfcCCC[r] == 0 && !nfcSecond[r]
}

// nfc returns the Unicode Normalization Form C of s, which must be valid
// UTF-8. Only the stretches around runes that are not inert are normalized:
// an inert rune is a starter that nothing before it joins, so a stretch can
// end just before one; it begins at the starter before its first rune,
// which may compose with what follows. Text of inert runes (all ASCII, say)
// comes back as is.
func nfc(s string) string {
	var b []byte
	done := 0 // s[:done] is in b (once b is in use)
	prev := 0 // start of the rune before i
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			prev = i
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if nfcInert(r) {
			prev = i
			i += n
			continue
		}
		start := prev
		if start == i { // no rune before
			start = i
		}
		end := i + n
		for end < len(s) {
			r, n := utf8.DecodeRuneInString(s[end:])
			if nfcInert(r) {
				break
			}
			end += n
		}
		if b == nil {
			b = make([]byte, 0, len(s)+8)
		}
		b = append(b, s[done:start]...)
		b = nfcStretch(b, s[start:end])
		done, prev, i = end, end, end
	}
	if b == nil {
		return s
	}
	return string(append(b, s[done:]...))
}

// nfcStretch appends the NFC form of s to b: the full algorithm of UAX #15.
func nfcStretch(b []byte, s string) []byte {
	// Canonical decomposition.
	rs := make([]rune, 0, len(s))
	for _, r := range s {
		switch d, ok := nfcDecomp[r]; {
		case r >= hangulS && r < hangulS+hangulSCount:
			si := r - hangulS
			rs = append(rs, hangulL+si/hangulNCount, hangulV+(si%hangulNCount)/hangulTCount)
			if t := si % hangulTCount; t != 0 {
				rs = append(rs, hangulT+t)
			}
		case ok:
			rs = append(rs, d...)
		default:
			rs = append(rs, r)
		}
	}
	// Canonical ordering: a stable sort of each run of non-starters by class.
	for i := 1; i < len(rs); i++ {
		c := nfcCCC[rs[i]]
		if c == 0 {
			continue
		}
		for j := i; j > 0 && nfcCCC[rs[j-1]] > c; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
	// Canonical composition: each rune joins the last starter unless a rune
	// between them is a starter or has a class not below its own.
	out := rs[:0]
	starter, last := -1, -1 // index in out of the last starter; class of the last rune kept after it
	for _, r := range rs {
		c := int(nfcCCC[r])
		if starter >= 0 && (starter == len(out)-1 || (last != 0 && last < c)) {
			if p, ok := nfcPair(out[starter], r); ok {
				out[starter] = p
				continue
			}
		}
		if c == 0 {
			starter, last = len(out), -1
		} else {
			last = c
		}
		out = append(out, r)
	}
	for _, r := range out {
		b = utf8.AppendRune(b, r)
	}
	return b
}

// nfcPair returns the primary composite of a and b, if there is one.
func nfcPair(a, b rune) (rune, bool) {
	switch {
	case a >= hangulL && a < hangulL+hangulLCount && b >= hangulV && b < hangulV+hangulVCount:
		return hangulS + ((a-hangulL)*hangulVCount+b-hangulV)*hangulTCount, true
	case a >= hangulS && a < hangulS+hangulSCount && (a-hangulS)%hangulTCount == 0 && b > hangulT && b < hangulT+hangulTCount:
		return a + b - hangulT, true
	}
	p, ok := nfcCompose[uint64(a)<<21|uint64(b)]
	return p, ok
}

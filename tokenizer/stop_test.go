package tokenizer

import (
	"strings"
	"testing"
)

// TestStopFilter feeds texts in every split into pieces of one to three
// bytes and checks that what is passed on is the text up to the first stop
// string (all of it when there is none).
func TestStopFilter(t *testing.T) {
	stops := []string{"\n\n", "END", "éé", "ab"}
	for _, c := range []struct{ text, want string }{
		{"hello", "hello"},
		{"one\ntwo\n\nthree", "one\ntwo"},
		{"xxEN", "xxEN"},
		{"xxENDyy\n\n", "xx"},
		{"café", "café"},
		{"caféé!", "caf"},
		{"aaab", "aa"},
		{"END", ""},
		{"EEND", "E"},
		{"a\n", "a\n"},
	} {
		for size := 1; size <= 3; size++ {
			f := NewStopFilter(stops)
			var out strings.Builder
			stopped := false
			for i := 0; i < len(c.text) && !stopped; i += size {
				var s string
				s, stopped = f.Add(c.text[i:min(len(c.text), i+size)])
				out.WriteString(s)
			}
			if !stopped {
				out.WriteString(f.Flush())
			}
			if out.String() != c.want {
				t.Errorf("%q in pieces of %d: passed %q, want %q", c.text, size, out.String(), c.want)
			}
			if wantStop := c.want != c.text; stopped != wantStop {
				t.Errorf("%q in pieces of %d: stopped %v, want %v", c.text, size, stopped, wantStop)
			}
		}
	}
}

package tokenizer

import "testing"

// TestNFC checks the normalizer on cases whose NFC forms are known: Python's
// unicodedata.normalize("NFC", ...) gives each want.
func TestNFC(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain ASCII", "plain ASCII"},
		{"xe\u0301y\u212bz\u0301\u0301ü", "x\u00e9y\u00c5\u017a\u0301ü"}, // stretches between inert runes
		{"e\u0301", "\u00e9"},
		{"A\u030a", "\u00c5"},
		{"\u212b", "\u00c5"},              // singleton decomposition
		{"\u1100\u1161\u11a8", "\uac01"},  // conjoining jamo L V T
		{"\uac00\u11a8", "\uac01"},        // LV syllable + T
		{"a\u0323\u0302", "\u1ead"},       // ậ → ậ (dot below first)
		{"a\u0302\u0323", "\u1ead"},       // reordered by class, then composed
		{"e\u0301\u0301", "\u00e9\u0301"}, // second acute is blocked
		{"a\u0316\u0301", "\u00e1\u0316"}, // grave below (220) does not block acute (230)
		{"\u0301e", "\u0301e"},            // leading non-starter
		{"\u0344", "\u0308\u0301"},        // non-starter decomposition
		{"\u0958", "\u0915\u093c"},        // composition exclusion
		{"\u00e9\u0328", "\u0119\u0301"},  // é + ogonek: ogonek (202) comes before acute (230)
		{"नमस्ते", "नमस्ते"},
		{"\U0001d15e", "\U0001d157\U0001d165"}, // musical symbol, excluded
	} {
		if got := nfc(c.in); got != c.want {
			t.Errorf("nfc(%+q) = %+q, want %+q", c.in, got, c.want)
		}
	}
}

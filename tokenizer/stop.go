package tokenizer

import "strings"

// StopFilter passes streamed text on until it contains one of its stop
// strings, holding back any tail that may begin one, so that no part of a
// stop string is ever passed on.
type StopFilter struct {
	stops   []string
	pending string
	stopped bool
}

// NewStopFilter returns a StopFilter for the given non-empty stop strings.
func NewStopFilter(stops []string) *StopFilter { return &StopFilter{stops: stops} }

// Add takes the next piece of text and returns the text that may be passed
// on, and whether a stop string has been reached: then the text is what
// came before it, and the filter passes nothing more.
func (f *StopFilter) Add(s string) (string, bool) {
	if f.stopped {
		return "", true
	}
	f.pending += s
	cut := -1
	for _, stop := range f.stops {
		if i := strings.Index(f.pending, stop); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut >= 0 {
		out := f.pending[:cut]
		f.pending, f.stopped = "", true
		return out, true
	}
	keep := 0 // the longest tail that is a proper prefix of a stop string
	for _, stop := range f.stops {
		for n := min(len(stop)-1, len(f.pending)); n > keep; n-- {
			if strings.HasSuffix(f.pending, stop[:n]) {
				keep = n
				break
			}
		}
	}
	out := f.pending[:len(f.pending)-keep]
	f.pending = f.pending[len(f.pending)-keep:]
	return out, false
}

// Flush returns the text held back at the end of the stream.
func (f *StopFilter) Flush() string {
	out := f.pending
	f.pending = ""
	return out
}

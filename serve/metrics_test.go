package serve

import (
	"strings"
	"testing"
	"time"
)

// TestTokensPerSecond checks the throughput gauge: the tokens of the 10
// whole seconds before the current one, over 10; older seconds forgotten
// (their buckets reused from zero); the gauge in /metrics' text.
func TestTokensPerSecond(t *testing.T) {
	m := newMetrics()
	now := time.Unix(1000, 0)
	m.now = func() time.Time { return now }
	at := func(sec float64, n int) {
		now = time.Unix(0, int64(sec*1e9))
		m.addTokens(n, now)
	}
	at(989.2, 1000) // before every window below
	at(995.5, 5)
	at(996.2, 10)
	at(996.9, 1)
	at(1000.1, 20) // the current second at 1000.5: not counted yet
	for _, c := range []struct {
		now  float64
		want float64
	}{
		{1000.5, 1.6}, // 990–999: 995 and 996, 16 tokens
		{1001.0, 3.6}, // 991–1000: 36
		{1006.0, 3.1}, // 996–1005: 31
		{1007.0, 2.0}, // 997–1006: 1000 alone
		{1011.0, 0},   // 1001–1010: none
	} {
		now = time.Unix(0, int64(c.now*1e9))
		if got := m.Snapshot().TokensPerSecond; got != c.want {
			t.Errorf("at %.2f: %g tokens/s, want %g", c.now, got, c.want)
		}
	}
	// Second 1006 takes 995's bucket, which starts again from zero.
	at(1006.5, 7)
	now = time.Unix(1007, 0)
	if got := m.Snapshot().TokensPerSecond; got != 2.7 {
		t.Errorf("after reuse: %g tokens/s, want 2.7 (1000 and 1006)", got)
	}
	var b strings.Builder
	m.Write(&b)
	if !strings.Contains(b.String(), "# TYPE loom_generated_tokens_per_second gauge\nloom_generated_tokens_per_second 2.7\n") {
		t.Errorf("/metrics lacks the gauge:\n%s", b.String())
	}
}

package serve

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Metrics are the scheduler's figures, written in Prometheus' text format.
type Metrics struct {
	mu                     sync.Mutex
	running, waiting       int
	blocksUsed, blocksFree int
	blocksCached           int
	tokens                 int64
	promptTokens, reused   int64 // prompt tokens admitted, and those taken from the prefix cache
	preemptions            int64
	steps, rows, stepToks  int64      // engine steps, the sequences they fed, and the tokens
	stepSeconds            float64    // the time the steps took (Engine.StepSample)
	TTFT, TPOT             *Histogram // seconds

	// The tokens generated in each of the last whole seconds (bucket
	// i holds second recent[i] of the Unix clock), for the throughput
	// gauge; now is the clock it is read at (time.Now but in tests).
	recent, recentTokens [rateSeconds + 1]int64
	now                  func() time.Time
}

// rateSeconds is the window of loom_generated_tokens_per_second: the
// tokens generated in the last whole seconds, over that many seconds.
const rateSeconds = 10

func newMetrics() *Metrics {
	return &Metrics{
		TTFT: newHistogram(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
		TPOT: newHistogram(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
		now:  time.Now,
	}
}

func (m *Metrics) setQueue(running, waiting int) {
	m.mu.Lock()
	m.running, m.waiting = running, waiting
	m.mu.Unlock()
}

func (m *Metrics) setBlocks(used, free, cached int) {
	m.mu.Lock()
	m.blocksUsed, m.blocksFree, m.blocksCached = used, free, cached
	m.mu.Unlock()
}

func (m *Metrics) addPrompt(tokens, reused int) {
	m.mu.Lock()
	m.promptTokens += int64(tokens)
	m.reused += int64(reused)
	m.mu.Unlock()
}

func (m *Metrics) addPreemption() {
	m.mu.Lock()
	m.preemptions++
	m.mu.Unlock()
}

func (m *Metrics) addStep(rows, tokens int, d time.Duration) {
	m.mu.Lock()
	m.steps++
	m.stepSeconds += d.Seconds()
	m.rows += int64(rows)
	m.stepToks += int64(tokens)
	m.mu.Unlock()
}

// addTokens counts n tokens generated at time at (a step's, once a step).
func (m *Metrics) addTokens(n int, at time.Time) {
	m.mu.Lock()
	m.tokens += int64(n)
	sec := at.Unix()
	i := sec % int64(len(m.recent))
	if m.recent[i] != sec {
		m.recent[i], m.recentTokens[i] = sec, 0
	}
	m.recentTokens[i] += int64(n)
	m.mu.Unlock()
}

// tokensPerSecond is the tokens generated in the last rateSeconds whole
// seconds (the current one left out), over rateSeconds. m.mu is held.
func (m *Metrics) tokensPerSecond() float64 {
	sec := m.now().Unix()
	var n int64
	for i, s := range m.recent {
		if s >= sec-rateSeconds && s < sec {
			n += m.recentTokens[i]
		}
	}
	return float64(n) / rateSeconds
}

// Snapshot is a consistent copy of the gauges and counters.
type Snapshot struct {
	Running, Waiting, BlocksUsed, BlocksFree, BlocksCached int
	Tokens, PromptTokens, ReusedTokens, Preemptions        int64
	// Steps are the engine steps run; StepRows the sequences they fed
	// (a step's batch) and StepTokens the tokens (decodes and prompt
	// chunks).
	Steps, StepRows, StepTokens int64
	// StepSeconds is the time the steps took, from their submission to
	// their tokens on the host: the rest of the scheduler's time goes to
	// planning the steps and handing out their tokens.
	StepSeconds float64
	// TokensPerSecond is the tokens generated in the last 10 whole
	// seconds, over 10.
	TokensPerSecond float64
}

// HitRate is the share of admitted prompt tokens taken from the prefix
// cache (0 before any).
func (s Snapshot) HitRate() float64 {
	if s.PromptTokens == 0 {
		return 0
	}
	return float64(s.ReusedTokens) / float64(s.PromptTokens)
}

// Snapshot returns the gauges and counters.
func (m *Metrics) Snapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Snapshot{m.running, m.waiting, m.blocksUsed, m.blocksFree, m.blocksCached, m.tokens, m.promptTokens, m.reused, m.preemptions, m.steps, m.rows, m.stepToks, m.stepSeconds, m.tokensPerSecond()}
}

// Write writes the metrics in Prometheus' text exposition format.
func (m *Metrics) Write(w io.Writer) {
	s := m.Snapshot()
	for _, g := range []struct {
		name, typ, help string
		v               int64
	}{
		{"loom_requests_running", "gauge", "Requests admitted and generating.", int64(s.Running)},
		{"loom_requests_waiting", "gauge", "Requests queued for admission.", int64(s.Waiting)},
		{"loom_kv_blocks_used", "gauge", "KV cache blocks held by sequences.", int64(s.BlocksUsed)},
		{"loom_kv_blocks_free", "gauge", "KV cache blocks in the free pool.", int64(s.BlocksFree)},
		{"loom_kv_blocks_cached", "gauge", "KV cache blocks no sequence holds, kept for prefix reuse (evicted least recently used).", int64(s.BlocksCached)},
		{"loom_generated_tokens_total", "counter", "Tokens generated.", s.Tokens},
		{"loom_prompt_tokens_total", "counter", "Prompt tokens of admitted requests.", s.PromptTokens},
		{"loom_prefix_cache_hit_tokens_total", "counter", "Prompt tokens taken from the prefix cache instead of computed.", s.ReusedTokens},
		{"loom_preemptions_total", "counter", "Requests preempted for want of KV blocks (their tokens are computed again when they are admitted again).", s.Preemptions},
		{"loom_steps_total", "counter", "Engine steps (one forward pass and draw of a batch each).", s.Steps},
		{"loom_step_sequences_total", "counter", "Sequences fed by the engine steps: over loom_steps_total, the mean batch.", s.StepRows},
		{"loom_step_tokens_total", "counter", "Tokens fed by the engine steps (decodes and prompt chunks).", s.StepTokens},
	} {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", g.name, g.help, g.name, g.typ, g.name, g.v)
	}
	fmt.Fprintf(w, "# HELP loom_step_seconds_total Time the engine steps took, from submission to their tokens on the host.\n# TYPE loom_step_seconds_total counter\nloom_step_seconds_total %g\n", s.StepSeconds)
	fmt.Fprintf(w, "# HELP loom_generated_tokens_per_second Tokens generated in the last %d whole seconds, over %d.\n# TYPE loom_generated_tokens_per_second gauge\nloom_generated_tokens_per_second %g\n", rateSeconds, rateSeconds, s.TokensPerSecond)
	fmt.Fprintf(w, "# HELP loom_prefix_cache_hit_rate Prompt tokens taken from the prefix cache over prompt tokens admitted.\n# TYPE loom_prefix_cache_hit_rate gauge\nloom_prefix_cache_hit_rate %g\n", s.HitRate())
	m.TTFT.write(w, "loom_time_to_first_token_seconds", "Time from submission to the first token.")
	m.TPOT.write(w, "loom_time_per_output_token_seconds", "Time between a request's consecutive tokens.")
}

// Histogram is a Prometheus histogram with fixed bucket bounds.
type Histogram struct {
	mu     sync.Mutex
	bounds []float64
	counts []int64 // per bucket, not cumulative; one more for +Inf
	sum    float64
}

func newHistogram(bounds ...float64) *Histogram {
	return &Histogram{bounds: bounds, counts: make([]int64, len(bounds)+1)}
}

func (h *Histogram) observe(v float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i]++
	h.sum += v
}

// Count is the number of observations.
func (h *Histogram) Count() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var n int64
	for _, c := range h.counts {
		n += c
	}
	return n
}

func (h *Histogram) write(w io.Writer, name, help string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	var cum int64
	for i, b := range h.bounds {
		cum += h.counts[i]
		fmt.Fprintf(w, "%s_bucket{le=\"%g\"} %d\n", name, b, cum)
	}
	cum += h.counts[len(h.bounds)]
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %g\n%s_count %d\n", name, cum, name, h.sum, name, cum)
}

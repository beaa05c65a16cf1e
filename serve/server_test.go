package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loomrt/loom/chat"
	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/model"

	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
	"github.com/loomrt/loom/tokenizer"
)

const tinyModel = "../testdata/tiny-qwen3"

// newTestServer serves the tiny model on the CPU over 127.0.0.1 with a
// cache of blocks blocks of 16 tokens; chatTemplate, if not empty, is the
// chat template.
func newTestServer(t testing.TB, blocks int, cfg SchedulerConfig, chatTemplate string) (*httptest.Server, *Server) {
	t.Helper()
	rt, err := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return newTestServerOn(t, rt, blocks, cfg, chatTemplate)
}

// newTestServerOn is newTestServer on rt.
func newTestServerOn(t testing.TB, rt *runtime.Runtime, blocks int, cfg SchedulerConfig, chatTemplate string) (*httptest.Server, *Server) {
	t.Helper()
	m, err := model.Load(rt, tinyModel, graph.Invalid)
	if err != nil {
		t.Fatal(err)
	}
	e, err := model.NewEngine(m, blocks, 16)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(tinyModel)
	if err != nil {
		t.Fatal(err)
	}
	var tmpl *chat.Chat
	if chatTemplate != "" {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, chat.TemplateFile), []byte(chatTemplate), 0o644); err != nil {
			t.Fatal(err)
		}
		if tmpl, err = chat.Load(dir); err != nil {
			t.Fatal(err)
		}
	}
	sched, err := NewScheduler(e, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Sched: sched, Tok: tok, Chat: tmpl, Model: "tiny", Sampling: ops.Sampling{Temperature: 1}}
	for _, c := range []struct {
		r    Request
		want string
	}{
		{Request{Prompt: []int32{1}, MaxTokens: 1, Sampling: ops.Sampling{RepetitionPenalty: 1.1}}, "unsupported"},
		{Request{Prompt: []int32{1}, MaxTokens: 1, Sampling: ops.Sampling{FrequencyPenalty: 0.5}}, "unsupported"},
		{Request{Prompt: []int32{1, 3259}, MaxTokens: 1}, "prompt token 1 is 3259, outside the vocabulary"},
		{Request{Prompt: []int32{1}, MaxTokens: 1<<63 - 1}, "exceed the context"},
		{Request{Prompt: []int32{1}, MaxTokens: 1, Logprobs: true, TopLogprobs: 21}, "21 top log-probs: at most 20"},
		{Request{Prompt: []int32{1}, MaxTokens: 1, TopLogprobs: 2}, "without Logprobs"},
		{Request{Prompt: []int32{1}, MaxTokens: 1, Penalties: model.Penalties{Repetition: -1}}, "repetition penalty -1"},
	} {
		if _, err := sched.Submit(context.Background(), c.r); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("Submit %v: error %v, want %q", c.r, err, c.want)
		}
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := sched.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return ts, srv
}

// result is what a completion gave; Logprobs, the log-probs' JSON with
// every chunk's lists joined.
type result struct {
	Text, Finish, Logprobs string
	Usage                  usage
}

// joinLogprobs appends the lists of a choice's logprobs (chat's content,
// or a completion's tokens, token_logprobs, …) to all's.
func joinLogprobs(all map[string][]json.RawMessage, raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var lp map[string][]json.RawMessage
	if err := json.Unmarshal(raw, &lp); err != nil {
		return fmt.Errorf("logprobs %s: %v", raw, err)
	}
	for k, v := range lp {
		all[k] = append(all[k], v...)
	}
	return nil
}

func postJSON(t *testing.T, url string, body any) (int, http.Header, []byte) {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, out
}

// complete runs a completion (streaming if body["stream"]) and returns its
// text, finish reason and usage; chat completions' content is the text.
func complete(url string, body map[string]any) (result, error) {
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return result{}, fmt.Errorf("status %d: %s", resp.StatusCode, msg)
	}
	type choice struct {
		Text     string `json:"text"`
		Message  struct{ Content string }
		Delta    struct{ Content string }
		Finish   *string         `json:"finish_reason"`
		Logprobs json.RawMessage `json:"logprobs"`
	}
	lps := map[string][]json.RawMessage{}
	logprobs := func() string {
		if len(lps) == 0 {
			return ""
		}
		b, _ := json.Marshal(lps)
		return string(b)
	}
	type reply struct {
		Choices []choice
		Usage   *usage
	}
	var r result
	if body["stream"] != true {
		var rep reply
		if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
			return r, err
		}
		if len(rep.Choices) != 1 || rep.Choices[0].Finish == nil || rep.Usage == nil {
			return r, fmt.Errorf("incomplete reply %+v", rep)
		}
		c := rep.Choices[0]
		if err := joinLogprobs(lps, c.Logprobs); err != nil {
			return r, err
		}
		return result{c.Text + c.Message.Content, *c.Finish, logprobs(), *rep.Usage}, nil
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		return r, fmt.Errorf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	done := false
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || done {
			return r, fmt.Errorf("unexpected line %q", line)
		}
		if data == "[DONE]" {
			done = true
			continue
		}
		var rep reply
		if err := json.Unmarshal([]byte(data), &rep); err != nil || len(rep.Choices) != 1 {
			return r, fmt.Errorf("bad chunk %q: %v", data, err)
		}
		c := rep.Choices[0]
		r.Text += c.Text + c.Delta.Content
		if err := joinLogprobs(lps, c.Logprobs); err != nil {
			return r, err
		}
		if c.Finish != nil {
			r.Finish = *c.Finish
		}
		if rep.Usage != nil {
			r.Usage = *rep.Usage
		}
	}
	r.Logprobs = logprobs()
	if !done || r.Finish == "" {
		return r, fmt.Errorf("stream ended without [DONE] or a finish reason: %+v", r)
	}
	return r, sc.Err()
}

// waitIdle waits until no request runs or waits and every block is free
// or cached unreferenced (no block leaked).
func waitIdle(t *testing.T, s *Scheduler) {
	t.Helper()
	total := s.e.Cache.Config().NumBlocks
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := s.Metrics.Snapshot()
		if m.Running == 0 && m.Waiting == 0 && m.BlocksFree+m.BlocksCached == total && m.BlocksUsed == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not idle after 5 s: %+v of %d blocks", m, total)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// concurrentBodies are n completion requests with prompts of 23 to 108
// tokens and 6 to 16 output tokens, greedy and seeded (one in three),
// some with penalties (one in four) and log-probs (one in five).
func concurrentBodies(n int) []map[string]any {
	bodies := make([]map[string]any, n)
	for i := range bodies {
		b := map[string]any{
			"model":      "tiny",
			"prompt":     strings.Repeat(fmt.Sprintf("func f%d() { return %d }\n", i, i*i), 1+i%4),
			"max_tokens": 6 + i%11,
		}
		if i%3 == 2 {
			b["temperature"], b["top_p"], b["top_k"], b["min_p"], b["seed"] = 0.9, 0.95, 40, 0.02, i
		} else {
			b["temperature"] = 0
		}
		if i%4 == 1 {
			b["repetition_penalty"], b["presence_penalty"], b["frequency_penalty"] = 1.2, 0.4, 0.3
		}
		if i%5 == 3 {
			b["logprobs"] = i % 3
		}
		bodies[i] = b
	}
	return bodies
}

// aloneThenTogether runs each request alone, then all at once (every
// other one streaming), requires the same results, and returns them.
func aloneThenTogether(t *testing.T, ts *httptest.Server, srv *Server, bodies []map[string]any) []result {
	t.Helper()
	want := make([]result, len(bodies))
	for i, b := range bodies {
		r, err := complete(ts.URL+"/v1/completions", b)
		if err != nil {
			t.Fatalf("request %d alone: %v", i, err)
		}
		want[i] = r
	}
	waitIdle(t, srv.Sched)
	got := make([]result, len(bodies))
	errs := make([]error, len(bodies))
	var wg sync.WaitGroup
	for i, b := range bodies {
		wg.Go(func() {
			c := map[string]any{"stream": i%2 == 0}
			for k, v := range b {
				c[k] = v
			}
			got[i], errs[i] = complete(ts.URL+"/v1/completions", c)
		})
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil {
			t.Errorf("request %d together: %v", i, errs[i])
		} else if !sameResult(got[i], want[i]) {
			t.Errorf("request %d: together %+v, alone %+v", i, got[i], want[i])
		}
	}
	waitIdle(t, srv.Sched)
	return want
}

// sameResult reports whether a and b have the same text, finish reason,
// usage and log-probs' tokens, with log-probs within 1e-4: on the CPU a
// decode alone (a GEMV) and in a batch (the tiled matmul) sum in other
// orders, so the logits, and the log-probs, differ in their last bits.
func sameResult(a, b result) bool {
	if a.Text != b.Text || a.Finish != b.Finish || a.Usage != b.Usage || (a.Logprobs == "") != (b.Logprobs == "") {
		return false
	}
	if a.Logprobs == "" {
		return true
	}
	var x, y any
	if json.Unmarshal([]byte(a.Logprobs), &x) != nil || json.Unmarshal([]byte(b.Logprobs), &y) != nil {
		return false
	}
	return closeJSON(x, y)
}

// closeJSON compares decoded JSON values, numbers within 1e-4.
func closeJSON(x, y any) bool {
	switch x := x.(type) {
	case float64:
		y, ok := y.(float64)
		return ok && math.Abs(x-y) <= 1e-4
	case []any:
		y, ok := y.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !closeJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := y.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if !closeJSON(v, y[k]) {
				return false
			}
		}
		return true
	}
	return x == y
}

// TestConcurrent checks that concurrent clients, streaming and not, get
// exactly the output each request gets alone (greedy and seeded
// sampling), with prompts prefilled in chunks beside running decodes, and
// that every block is free afterwards.
func TestConcurrent(t *testing.T) {
	ts, srv := newTestServer(t, 64, SchedulerConfig{StepTokens: 24, MaxQueue: 64}, "")
	const clients = 32
	aloneThenTogether(t, ts, srv, concurrentBodies(clients))
	if n := srv.Sched.Metrics.TTFT.Count(); n != 2*clients {
		t.Errorf("TTFT observations %d, want %d", n, 2*clients)
	}
	if n := srv.Sched.Metrics.Snapshot().Preemptions; n != 0 {
		t.Errorf("%d preemptions with blocks to spare", n)
	}
}

// TestPreemption checks preemption by recompute: 64 concurrent requests
// on a cache of 10 blocks (160 tokens; a request takes up to 9) run out
// of blocks as they generate, the latest arrivals are preempted and
// computed again, and every request still gets the output it gets alone,
// with no block leaked.
func TestPreemption(t *testing.T) {
	ts, srv := newTestServer(t, 10, SchedulerConfig{StepTokens: 24, MaxQueue: 64}, "")
	bodies := concurrentBodies(64)
	for i, b := range bodies {
		b["max_tokens"] = 10 + i%19 // prompts of up to 108 tokens, outputs up to 28: 136 tokens, 9 blocks
	}
	results := aloneThenTogether(t, ts, srv, bodies)
	prompts := 0
	for _, r := range results {
		prompts += 2 * r.Usage.PromptTokens // alone and together
	}
	if n := metric(t, ts.URL, "loom_prompt_tokens_total"); n != float64(prompts) {
		t.Errorf("loom_prompt_tokens_total %g, want %d (a preempted request's prompt counts once)", n, prompts)
	}
	if n := metric(t, ts.URL, "loom_preemptions_total"); n == 0 {
		t.Error("no preemption")
	} else {
		t.Logf("%g preemptions", n)
	}
}

// metric reads a metric's value from /metrics.
func metric(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("/metrics: %q: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s:\n%s", name, b)
	return 0
}

// TestBadRequests checks that malformed requests get 4xx answers with
// OpenAI-style error bodies, and leave nothing running.
func TestBadRequests(t *testing.T) {
	ts, srv := newTestServer(t, 8, SchedulerConfig{StepTokens: 64, MaxQueue: 4}, "")
	long := strings.Repeat("x", 130) // the cache holds 128 tokens
	for _, c := range []struct {
		name, path string
		body       any
		status     int
		want       string // in the message
	}{
		{"malformed JSON", "/v1/completions", []byte(`{"prompt": "a",`), 400, "not a valid request"},
		{"trailing data", "/v1/completions", []byte(`{"prompt": "a"} {}`), 400, "after the JSON"},
		{"wrong type", "/v1/completions", []byte(`{"prompt": "a", "max_tokens": "3"}`), 400, "max_tokens"},
		{"unknown model", "/v1/completions", map[string]any{"model": "gpt-9", "prompt": "a"}, 404, `"gpt-9" does not exist`},
		{"negative max_tokens", "/v1/completions", map[string]any{"prompt": "a", "max_tokens": -1}, 400, "max_tokens -1"},
		{"zero max_tokens", "/v1/completions", map[string]any{"prompt": "a", "max_tokens": 0}, 400, "max_tokens 0"},
		{"huge max_tokens", "/v1/completions", map[string]any{"prompt": "a", "max_tokens": 1 << 40}, 400, "exceed the context of 128"},
		{"max_tokens at MaxInt64", "/v1/completions", []byte(`{"prompt": "a", "max_tokens": 9223372036854775807}`), 400, "exceed the context of 128"},
		{"prompt too long", "/v1/completions", map[string]any{"prompt": long, "max_tokens": 1}, 400, "130 tokens leave no room"},
		{"invalid UTF-8", "/v1/completions", []byte("{\"prompt\": \"a\xff\"}"), 400, "UTF-8"},
		{"empty prompt", "/v1/completions", map[string]any{"prompt": ""}, 400, "empty"},
		{"no prompt", "/v1/completions", map[string]any{"max_tokens": 2}, 400, "prompt must be a string"},
		{"prompt list", "/v1/completions", map[string]any{"prompt": []string{"a"}}, 400, "prompt must be a string"},
		{"negative temperature", "/v1/completions", map[string]any{"prompt": "a", "temperature": -1}, 400, "emperature"},
		{"bad top_p", "/v1/completions", map[string]any{"prompt": "a", "top_p": 2}, 400, "op"},
		{"bad stop", "/v1/completions", map[string]any{"prompt": "a", "stop": 3}, 400, "stop must be"},
		{"empty stop", "/v1/completions", map[string]any{"prompt": "a", "stop": []string{""}}, 400, "empty string"},
		{"n > 1", "/v1/completions", map[string]any{"prompt": "a", "n": 2}, 400, "unsupported"},
		{"presence_penalty 3", "/v1/completions", map[string]any{"prompt": "a", "presence_penalty": 3}, 400, "presence_penalty 3 must lie in [-2, 2]"},
		{"frequency_penalty -2.5", "/v1/completions", map[string]any{"prompt": "a", "frequency_penalty": -2.5}, 400, "frequency_penalty -2.5"},
		{"repetition_penalty 0", "/v1/completions", map[string]any{"prompt": "a", "repetition_penalty": 0}, 400, "repetition_penalty 0 must be"},
		{"logprobs 21", "/v1/completions", map[string]any{"prompt": "a", "logprobs": 21}, 400, "logprobs must be an integer from 0 to 20"},
		{"logprobs true", "/v1/completions", map[string]any{"prompt": "a", "logprobs": true}, 400, "logprobs must be an integer"},
		{"top_logprobs in a completion", "/v1/completions", map[string]any{"prompt": "a", "logprobs": 1, "top_logprobs": 1}, 400, "top_logprobs is for chat"},
		{"no chat template", "/v1/chat/completions", map[string]any{"messages": []map[string]string{{"role": "user", "content": "hi"}}}, 400, "model has no chat template"},
	} {
		status, _, body := postJSON(t, ts.URL+c.path, c.body)
		var e struct {
			Error struct {
				Message, Type string
				Param, Code   *string
			}
		}
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("%s: body %q: %v", c.name, body, err)
			continue
		}
		if status != c.status || !strings.Contains(e.Error.Message, c.want) || e.Error.Type == "" {
			t.Errorf("%s: got %d %s, want %d with %q", c.name, status, body, c.status, c.want)
		}
	}
	resp, err := http.Get(ts.URL + "/v1/completions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/completions: %d", resp.StatusCode)
	}
	waitIdle(t, srv.Sched)
	// The server still answers.
	if _, err := complete(ts.URL+"/v1/completions", map[string]any{"prompt": "a", "max_tokens": 2}); err != nil {
		t.Fatal(err)
	}
}

// TestPenaltiesAndLogprobs checks that the penalties change a greedy
// completion (and that off they do not), and the log-probs' form: one
// entry per completion token, streaming or not, the tokens joining to the
// text, and each top list led by the greedy token, within a probability
// of 1; and the chat log-probs' errors.
func TestPenaltiesAndLogprobs(t *testing.T) {
	const tpl = "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
	ts, srv := newTestServer(t, 64, SchedulerConfig{StepTokens: 64, MaxQueue: 4}, tpl)
	url := ts.URL + "/v1/completions"
	with := func(extra map[string]any) result {
		t.Helper()
		b := map[string]any{"prompt": "package ring\n\n", "max_tokens": 40, "temperature": 0}
		for k, v := range extra {
			b[k] = v
		}
		r, err := complete(url, b)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	base := with(nil)
	if off := with(map[string]any{"repetition_penalty": 1, "presence_penalty": 0, "frequency_penalty": 0}); off != base {
		t.Errorf("penalties off: %+v, want %+v", off, base)
	}
	for _, pen := range []map[string]any{{"repetition_penalty": 1.5}, {"presence_penalty": 1.5}, {"frequency_penalty": 1.5}} {
		if r := with(pen); r.Text == base.Text {
			t.Errorf("%v: the text %q is unchanged", pen, r.Text)
		}
	}

	type entry struct {
		Token   string
		Logprob float64
		Bytes   []int
		Top     []struct {
			Token   string
			Logprob float64
		} `json:"top_logprobs"`
	}
	for _, c := range []struct {
		k      int
		stream bool
	}{{3, false}, {3, true}, {0, false}} {
		stream := c.stream
		r := with(map[string]any{"logprobs": c.k, "stream": stream})
		var lp struct {
			Tokens        []string
			TokenLogprobs []float64            `json:"token_logprobs"`
			Top           []map[string]float64 `json:"top_logprobs"`
			Offsets       []int                `json:"text_offset"`
		}
		if err := json.Unmarshal([]byte(r.Logprobs), &lp); err != nil {
			t.Fatal(err)
		}
		n := r.Usage.CompletionTokens
		if len(lp.Tokens) != n || len(lp.TokenLogprobs) != n || len(lp.Top) != n || len(lp.Offsets) != n || strings.Join(lp.Tokens, "") != r.Text || r.Text != base.Text {
			t.Fatalf("stream %v: %d completion tokens, text %q; log-probs %+v", stream, n, r.Text, lp)
		}
		for i, top := range lp.Top {
			p := 0.0
			for tok, v := range top {
				p += math.Exp(v)
				if v > lp.TokenLogprobs[i] {
					t.Errorf("stream %v token %d: %q at %v is above the greedy %q at %v", stream, i, tok, v, lp.Tokens[i], lp.TokenLogprobs[i])
				}
			}
			if len(top) < max(c.k, 1) || len(top) > c.k+1 || top[lp.Tokens[i]] != lp.TokenLogprobs[i] || p > 1+1e-5 || lp.Offsets[i] != len(strings.Join(lp.Tokens[:i], "")) {
				t.Errorf("stream %v token %d (%q, %v): top %v, offset %d", stream, i, lp.Tokens[i], lp.TokenLogprobs[i], top, lp.Offsets[i])
			}
		}
	}

	msgs := []map[string]string{{"role": "user", "content": "hi"}}
	var first result
	for _, stream := range []bool{false, true} {
		r, err := complete(ts.URL+"/v1/chat/completions", map[string]any{"messages": msgs, "max_tokens": 12, "temperature": 0, "logprobs": true, "top_logprobs": 2, "stream": stream})
		if err != nil {
			t.Fatal(err)
		}
		var lp struct{ Content []entry }
		if err := json.Unmarshal([]byte(r.Logprobs), &lp); err != nil {
			t.Fatal(err)
		}
		var text strings.Builder
		for i, e := range lp.Content {
			text.WriteString(e.Token)
			if len(e.Top) != 2 || e.Top[0].Token != e.Token || e.Top[0].Logprob != e.Logprob || e.Top[1].Logprob > e.Logprob || !slices.Equal(e.Bytes, bytesOf(e.Token)) {
				t.Errorf("chat (stream %v) token %d: %+v", stream, i, e)
			}
		}
		if len(lp.Content) != r.Usage.CompletionTokens || text.String() != r.Text {
			t.Errorf("chat (stream %v): %d entries joining to %q, for %d tokens of %q", stream, len(lp.Content), text.String(), r.Usage.CompletionTokens, r.Text)
		}
		if stream && !sameResult(r, first) {
			t.Errorf("chat: streamed %+v, not %+v", r, first)
		}
		first = r
	}
	for _, c := range []struct {
		body map[string]any
		want string
	}{
		{map[string]any{"messages": msgs, "logprobs": 1}, "logprobs must be a boolean"},
		{map[string]any{"messages": msgs, "top_logprobs": 2}, "top_logprobs needs logprobs"},
		{map[string]any{"messages": msgs, "logprobs": true, "top_logprobs": 21}, "top_logprobs 21 must lie in [0, 20]"},
	} {
		if status, _, body := postJSON(t, ts.URL+"/v1/chat/completions", c.body); status != 400 || !strings.Contains(string(body), c.want) {
			t.Errorf("%v: %d %s, want 400 with %q", c.body, status, body, c.want)
		}
	}
	waitIdle(t, srv.Sched)
}

// startStream starts a streaming completion and returns once its first
// chunk has come, with the function that disconnects it.
func startStream(t *testing.T, url string, body map[string]any) (disconnect func()) {
	t.Helper()
	body["stream"] = true
	b, _ := json.Marshal(body)
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "data: {") {
		t.Fatalf("first line %q: %v", line, err)
	}
	return func() {
		cancel()
		resp.Body.Close()
	}
}

// TestCancelStream checks that a client that disconnects mid-stream has
// its request ended and its blocks freed at once, long before its
// max_tokens.
func TestCancelStream(t *testing.T) {
	ts, srv := newTestServer(t, 64, SchedulerConfig{StepTokens: 64, MaxQueue: 4}, "")
	disconnect := startStream(t, ts.URL+"/v1/completions", map[string]any{"prompt": "package main\n", "max_tokens": 1000, "temperature": 0.8, "seed": 1})
	if m := srv.Sched.Metrics.Snapshot(); m.Running != 1 || m.BlocksUsed == 0 {
		t.Fatalf("before the disconnect: %+v", m)
	}
	disconnect()
	waitIdle(t, srv.Sched)
	n := srv.Sched.Metrics.Snapshot().Tokens
	if n >= 1000 {
		t.Fatalf("%d tokens generated: the request ran to its end", n)
	}
	time.Sleep(50 * time.Millisecond)
	if m := srv.Sched.Metrics.Snapshot().Tokens; m != n {
		t.Fatalf("tokens still generated after the disconnect: %d then %d", n, m)
	}
}

// TestQueueFull checks the 429 with Retry-After when the queue is full,
// and that the queued request runs once blocks are free.
func TestQueueFull(t *testing.T) {
	ts, srv := newTestServer(t, 64, SchedulerConfig{StepTokens: 64, MaxQueue: 1}, "")
	url := ts.URL + "/v1/completions"
	// It holds a block or more while it runs, and the second request's
	// prompt needs all 64.
	disconnect := startStream(t, url, map[string]any{"prompt": "package main\n", "max_tokens": 1000, "temperature": 0.8, "seed": 1})
	queued := make(chan error, 1)
	go func() {
		_, err := complete(url, map[string]any{"prompt": strings.Repeat("x", 1010), "max_tokens": 2})
		queued <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); srv.Sched.Metrics.Snapshot().Waiting != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the second request is not queued: %+v", srv.Sched.Metrics.Snapshot())
		}
	}
	status, h, body := postJSON(t, url, map[string]any{"prompt": "a", "max_tokens": 1})
	if status != http.StatusTooManyRequests || h.Get("Retry-After") == "" || !strings.Contains(string(body), "rate_limit_error") {
		t.Fatalf("third request: %d, Retry-After %q, %s", status, h.Get("Retry-After"), body)
	}
	disconnect()
	if err := <-queued; err != nil {
		t.Fatal(err)
	}
	waitIdle(t, srv.Sched)
}

// TestStopAndChat checks stop strings (a string or a list; the text ends
// before the stop, finish_reason "stop") and that a chat completion is
// the completion of the rendered template.
func TestStopAndChat(t *testing.T) {
	const tpl = "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
	ts, srv := newTestServer(t, 64, SchedulerConfig{StepTokens: 64, MaxQueue: 4}, tpl)
	base := map[string]any{"prompt": "package ring\n\n", "max_tokens": 40, "temperature": 0}
	full, err := complete(ts.URL+"/v1/completions", base)
	if err != nil {
		t.Fatal(err)
	}
	if full.Finish != "length" || len(full.Text) < 20 {
		t.Fatalf("full: %+v", full)
	}
	stop := full.Text[10:13]
	want := full.Text[:strings.Index(full.Text, stop)]
	for _, s := range []any{stop, []string{"\x00never", stop}} {
		for _, stream := range []bool{false, true} {
			b := map[string]any{"stop": s, "stream": stream}
			for k, v := range base {
				b[k] = v
			}
			r, err := complete(ts.URL+"/v1/completions", b)
			if err != nil {
				t.Fatal(err)
			}
			if r.Text != want || r.Finish != "stop" || r.Usage.CompletionTokens >= 40 {
				t.Errorf("stop %q, stream %v: %+v, want text %q", s, stream, r, want)
			}
		}
	}
	msgs := []map[string]string{{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}}
	direct, err := complete(ts.URL+"/v1/completions", map[string]any{"prompt": "<system>be brief\n<user>hi\n<assistant>", "max_tokens": 12, "temperature": 0})
	if err != nil {
		t.Fatal(err)
	}
	for _, stream := range []bool{false, true} {
		r, err := complete(ts.URL+"/v1/chat/completions", map[string]any{"messages": msgs, "max_tokens": 12, "temperature": 0, "stream": stream})
		if err != nil {
			t.Fatal(err)
		}
		if r != direct {
			t.Errorf("chat (stream %v): %+v, want %+v", stream, r, direct)
		}
	}
	waitIdle(t, srv.Sched)
}

// TestIgnoreEOS makes the 4th token of a greedy completion the model's
// EOS: the completion then stops there ("stop", the EOS counted), and with
// ignore_eos (vLLM's extension) runs to max_tokens, streaming and not.
func TestIgnoreEOS(t *testing.T) {
	ts, srv := newTestServer(t, 64, SchedulerConfig{StepTokens: 64, MaxQueue: 4}, "")
	prompt, err := srv.Tok.Encode("package ring\n\n")
	if err != nil {
		t.Fatal(err)
	}
	events, err := srv.Sched.Submit(context.Background(), Request{Prompt: prompt, MaxTokens: 8})
	if err != nil {
		t.Fatal(err)
	}
	var toks []int32
	for ev := range events {
		if ev.Err != nil {
			t.Fatal(ev.Err)
		}
		if !ev.Done {
			toks = append(toks, ev.Token)
		}
	}
	if i := slices.Index(toks, toks[3]); i != 3 {
		t.Fatalf("tokens %v: the 4th appeared before", toks)
	}
	// Set before any step reads it (Submit orders the loop after it).
	srv.Sched.e.Model.Config.EOSTokenIDs = []int{int(toks[3])}
	for _, stream := range []bool{false, true} {
		for _, ignore := range []bool{false, true} {
			r, err := complete(ts.URL+"/v1/completions", map[string]any{"prompt": "package ring\n\n", "max_tokens": 8, "temperature": 0, "stream": stream, "ignore_eos": ignore})
			if err != nil {
				t.Fatal(err)
			}
			want, n := "stop", 4
			if ignore {
				want, n = "length", 8
			}
			if r.Finish != want || r.Usage.CompletionTokens != n {
				t.Errorf("stream %v, ignore_eos %v: %+v, want finish %q after %d tokens", stream, ignore, r, want, n)
			}
		}
	}
	waitIdle(t, srv.Sched)
}

// TestMetricsAndShutdown checks /health, /v1/models and /metrics, and that
// Shutdown lets a running request finish and then refuses new ones.
func TestMetricsAndShutdown(t *testing.T) {
	ts, srv := newTestServer(t, 64, SchedulerConfig{StepTokens: 64, MaxQueue: 4}, "")
	get := func(path string) (int, string) {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if s, b := get("/health"); s != 200 || !strings.Contains(b, "ok") {
		t.Errorf("/health: %d %s", s, b)
	}
	if s, b := get("/v1/models"); s != 200 || !strings.Contains(b, `"id":"tiny"`) {
		t.Errorf("/v1/models: %d %s", s, b)
	}
	if _, err := complete(ts.URL+"/v1/completions", map[string]any{"prompt": "ab", "max_tokens": 5, "temperature": 0}); err != nil {
		t.Fatal(err)
	}
	prompt, err := srv.Tok.Encode("ab")
	if err != nil {
		t.Fatal(err)
	}
	_, b := get("/metrics")
	for _, want := range []string{"loom_requests_running 0", "loom_requests_waiting 0", "loom_kv_blocks_used 0", "loom_kv_blocks_free 64",
		"loom_generated_tokens_total 5", `loom_time_to_first_token_seconds_bucket{le="+Inf"} 1`, "loom_time_per_output_token_seconds_count 4",
		// One step for the prompt and one for each token but the last.
		"loom_steps_total 5", "loom_step_sequences_total 5", fmt.Sprintf("loom_step_tokens_total %d", len(prompt)+4)} {
		if !strings.Contains(b, want+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", want, b)
		}
	}

	done := make(chan result, 1)
	go func() {
		r, err := complete(ts.URL+"/v1/completions", map[string]any{"prompt": "ab", "max_tokens": 200, "temperature": 0.7, "seed": 3})
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	for srv.Sched.Metrics.Snapshot().Running == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Sched.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.Finish == "" {
		t.Errorf("the running request did not finish: %+v", r)
	}
	if s, _ := get("/health"); s != http.StatusServiceUnavailable {
		t.Errorf("/health after shutdown: %d", s)
	}
	if s, _, b := postJSON(t, ts.URL+"/v1/completions", map[string]any{"prompt": "a"}); s != http.StatusServiceUnavailable {
		t.Errorf("after shutdown: %d %s", s, b)
	}
}

// TestShutdownDeadline checks that a Shutdown whose deadline passes ends
// the running request with an error event and frees its blocks, and that
// a second Shutdown returns.
func TestShutdownDeadline(t *testing.T) {
	ts, srv := newTestServer(t, 64, SchedulerConfig{StepTokens: 64, MaxQueue: 4}, "")
	b, _ := json.Marshal(map[string]any{"prompt": "package main\n", "max_tokens": 1000, "temperature": 0.8, "seed": 1, "stream": true})
	resp, err := http.Post(ts.URL+"/v1/completions", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "data: {") {
		t.Fatalf("first line %q: %v", line, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if err := srv.Sched.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Shutdown: %v, want the deadline", err)
	}
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rest), `"error":{"message":"serve: the server is shutting down"`) || !strings.HasSuffix(string(rest), "data: [DONE]\n\n") {
		t.Fatalf("the rest of the stream: %s", rest)
	}
	waitIdle(t, srv.Sched)
	if err := srv.Sched.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkServe measures output tokens/s of concurrent greedy clients
// (streaming) on the tiny model over 127.0.0.1.
func BenchmarkServe(b *testing.B) {
	for _, clients := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			ts, _ := newTestServer(b, 512, SchedulerConfig{StepTokens: 256, MaxQueue: 64}, "")
			const maxTokens = 64
			b.ResetTimer()
			start := time.Now()
			var tokens atomic.Int64
			for range b.N {
				var wg sync.WaitGroup
				for i := range clients {
					wg.Go(func() {
						r, err := complete(ts.URL+"/v1/completions", map[string]any{"prompt": fmt.Sprintf("package p%d\n", i), "max_tokens": maxTokens, "temperature": 0, "stream": true})
						if err != nil {
							b.Error(err)
						}
						tokens.Add(int64(r.Usage.CompletionTokens))
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(tokens.Load())/time.Since(start).Seconds(), "tok/s")
		})
	}
}

// TestPrefixCache checks that requests whose prompts start with cached
// blocks skip them and still draw the tokens computed without the cache,
// greedy and seeded, and that the hit rate counts them.
func TestPrefixCache(t *testing.T) {
	ts, srv := newTestServer(t, 32, SchedulerConfig{StepTokens: 24, MaxQueue: 8}, "")
	fresh, _ := newTestServer(t, 32, SchedulerConfig{StepTokens: 24, MaxQueue: 8}, "")
	// Digits are one token each (the split regex isolates them). 64 tokens:
	// 3 full blocks cached, the 4th holds the last token, which is fed.
	prompt := strings.Repeat("0123456789", 7)[:64]
	other := prompt[:40] + strings.Repeat("9876543210", 3)[:28] // shares 2 full blocks, then registers its third
	reused := func() int64 { return srv.Sched.Metrics.Snapshot().ReusedTokens }
	for _, c := range []struct {
		prompt string
		seeded bool
		reuse  int64
	}{{prompt, false, 0}, {prompt, false, 48}, {prompt, true, 48}, {other, false, 32}, {other, true, 64}} {
		body := map[string]any{"prompt": c.prompt, "max_tokens": 12, "temperature": 0}
		if c.seeded {
			body["temperature"], body["seed"] = 0.8, 7
		}
		before := reused()
		got, err := complete(ts.URL+"/v1/completions", body)
		if err != nil {
			t.Fatal(err)
		}
		want, err := complete(fresh.URL+"/v1/completions", body)
		if err != nil {
			t.Fatal(err)
		}
		if d := reused() - before; d != c.reuse {
			t.Errorf("%q: %d prompt tokens reused, want %d", c.prompt, d, c.reuse)
		}
		if got != want {
			t.Errorf("%q (seeded %v): %+v with the prefix cache, %+v without", c.prompt, c.seeded, got, want)
		}
		waitIdle(t, srv.Sched)
	}
	m := srv.Sched.Metrics.Snapshot()
	if m.BlocksCached == 0 || m.PromptTokens != 64*3+68*2 || m.HitRate() != float64(48*2+32+64)/float64(64*3+68*2) {
		t.Errorf("metrics %+v, hit rate %g", m, m.HitRate())
	}
}

// TestBatchInvariance checks that a request's tokens do not depend on
// the batch: 24 requests (greedy, seeded, with penalties) run alone, then
// all submitted at once in three orders under step budgets that chunk
// their prompts differently (5, 24 and 256 tokens a step), and on a cache
// small enough to preempt, give the same tokens. It runs on the CPU and on
// any GPU this machine has (docs/SERVE.md says what holds where).
func TestBatchInvariance(t *testing.T) {
	for _, tg := range loomtest.Targets(t) {
		if tg.Exact && tg.Name != "cpu" {
			continue // the checking CPU devices run the same kernels, slowly
		}
		t.Run(tg.Name, func(t *testing.T) { batchInvariance(t, tg.RT) })
	}
}

func batchInvariance(t *testing.T, rt *runtime.Runtime) {
	bodies := concurrentBodies(24)
	reqs := make([]Request, len(bodies))
	_, srv := newTestServerOn(t, rt, 64, SchedulerConfig{StepTokens: 24, MaxQueue: 64}, "")
	for i, b := range bodies {
		r := Request{MaxTokens: b["max_tokens"].(int), StopAtEOS: true}
		var err error
		if r.Prompt, err = srv.Tok.Encode(b["prompt"].(string)); err != nil {
			t.Fatal(err)
		}
		if b["temperature"] != 0 {
			r.Sampling = ops.Sampling{Temperature: 0.9, TopP: 0.95, TopK: 40, MinP: 0.02, Seed: uint64(i)}
		}
		if i%4 == 1 {
			r.Penalties = model.Penalties{Repetition: 1.2, Presence: 0.4, Frequency: 0.3}
		}
		reqs[i] = r
	}
	run := func(s *Scheduler, order []int) [][]int32 {
		t.Helper()
		out := make([][]int32, len(reqs))
		chans := make([]<-chan Event, len(reqs))
		for _, i := range order {
			ch, err := s.Submit(context.Background(), reqs[i])
			if err != nil {
				t.Fatal(err)
			}
			chans[i] = ch
		}
		for _, i := range order {
			for ev := range chans[i] {
				if ev.Err != nil {
					t.Fatalf("request %d: %v", i, ev.Err)
				}
				if !ev.Done {
					out[i] = append(out[i], ev.Token)
				}
			}
		}
		return out
	}
	want := make([][]int32, len(reqs))
	for i := range reqs {
		want[i] = run(srv.Sched, []int{i})[i]
	}
	forward, reverse, interleaved := make([]int, len(reqs)), make([]int, len(reqs)), make([]int, 0, len(reqs))
	for i := range reqs {
		forward[i], reverse[i] = i, len(reqs)-1-i
		if i%2 == 0 {
			interleaved = append(interleaved, i)
		}
	}
	for i := 1; i < len(reqs); i += 2 {
		interleaved = append(interleaved, i)
	}
	for _, c := range []struct {
		blocks, budget int
		order          []int
	}{{64, 5, forward}, {64, 24, reverse}, {64, 256, interleaved}, {10, 24, forward}, {10, 7, reverse}} {
		_, srv := newTestServerOn(t, rt, c.blocks, SchedulerConfig{StepTokens: c.budget, MaxQueue: 64}, "")
		got := run(srv.Sched, c.order)
		for i := range got {
			if !slices.Equal(got[i], want[i]) {
				t.Errorf("%d blocks, budget %d, order %v: request %d drew %v, alone %v", c.blocks, c.budget, c.order, i, got[i], want[i])
			}
		}
		waitIdle(t, srv.Sched)
		t.Logf("%d blocks, budget %d: %d preemptions", c.blocks, c.budget, srv.Sched.Metrics.Snapshot().Preemptions)
	}
}

// bytesOf is s's bytes as OpenAI's log-prob entries list them.
func bytesOf(s string) []int {
	b := make([]int, len(s))
	for i := range len(s) {
		b[i] = int(s[i])
	}
	return b
}

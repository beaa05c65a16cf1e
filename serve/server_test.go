package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loomrt/loom/chat"
	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/model"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
	"github.com/loomrt/loom/tokenizer"
)

const tinyModel = "../testdata/tiny-qwen3"

// newTestServer serves the tiny model on the CPU over 127.0.0.1 with a
// cache of blocks blocks of 16 tokens; chatTemplate, if not empty, is the
// chat template.
func newTestServer(t *testing.T, blocks int, cfg SchedulerConfig, chatTemplate string) (*httptest.Server, *Server) {
	t.Helper()
	rt, err := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
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

// result is what a completion gave.
type result struct {
	Text, Finish string
	Usage        usage
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
		Text    string `json:"text"`
		Message struct{ Content string }
		Delta   struct{ Content string }
		Finish  *string `json:"finish_reason"`
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
		return result{c.Text + c.Message.Content, *c.Finish, *rep.Usage}, nil
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
		if c.Finish != nil {
			r.Finish = *c.Finish
		}
		if rep.Usage != nil {
			r.Usage = *rep.Usage
		}
	}
	if !done || r.Finish == "" {
		return r, fmt.Errorf("stream ended without [DONE] or a finish reason: %+v", r)
	}
	return r, sc.Err()
}

// waitIdle waits until no request runs or waits and every block is free.
func waitIdle(t *testing.T, s *Scheduler) {
	t.Helper()
	total := s.e.Cache.Config().NumBlocks
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := s.Metrics.Snapshot()
		if m.Running == 0 && m.Waiting == 0 && m.BlocksFree == total && m.BlocksUsed == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not idle after 5 s: %+v of %d blocks", m, total)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestConcurrent checks that concurrent clients, streaming and not, get
// exactly the output each request gets alone (greedy and seeded
// sampling), with prompts prefilled in chunks beside running decodes, and
// that every block is free afterwards.
func TestConcurrent(t *testing.T) {
	ts, srv := newTestServer(t, 64, SchedulerConfig{StepTokens: 24, MaxQueue: 64}, "")
	const clients = 20
	bodies := make([]map[string]any, clients)
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
		bodies[i] = b
	}
	want := make([]result, clients)
	for i, b := range bodies {
		r, err := complete(ts.URL+"/v1/completions", b)
		if err != nil {
			t.Fatalf("request %d alone: %v", i, err)
		}
		want[i] = r
	}
	waitIdle(t, srv.Sched)
	got := make([]result, clients)
	errs := make([]error, clients)
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
		} else if got[i] != want[i] {
			t.Errorf("request %d: together %+v, alone %+v", i, got[i], want[i])
		}
	}
	waitIdle(t, srv.Sched)
	if n := srv.Sched.Metrics.TTFT.Count(); n != 2*clients {
		t.Errorf("TTFT observations %d, want %d", n, 2*clients)
	}
}

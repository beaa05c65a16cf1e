package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServe runs loom serve on the tiny model over 127.0.0.1, asks for a
// completion and a chat completion (the model has no template: 400), and
// stops it with SIGTERM.
func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	served := make(chan error, 1)
	var banner string // what loom serve printed, read once it has ended
	go func() {
		out, errOut, err := capture(func() error { return runServe([]string{"-model", tinyModel, "-addr", addr, "-blocks", "32"}) })
		banner = out + errOut
		served <- err
	}()
	url := "http://" + addr
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		resp, err := http.Get(url + "/health")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case err := <-served:
			t.Fatalf("loom serve ended: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("loom serve did not come up in 10 s")
		}
	}
	post := func(path, body string) (int, map[string]any) {
		resp, err := http.Post(url+path, "application/json", bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, v
	}
	if s, v := post("/v1/completions", `{"model": "tiny-qwen3", "prompt": "package main", "max_tokens": 4, "temperature": 0}`); s != 200 || v["usage"].(map[string]any)["completion_tokens"] != 4.0 {
		t.Errorf("completion: %d %v", s, v)
	}
	// The shipped model's ChatML template renders the conversation. The
	// request samples with the model's defaults; its seed makes the draw
	// reproducible (without one, about one request in 60 draws the end of
	// the turn first and finishes after one token).
	if s, v := post("/v1/chat/completions", `{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "seed": 7}`); s != 200 || v["usage"].(map[string]any)["completion_tokens"] != 3.0 {
		t.Errorf("chat completion: %d %v", s, v)
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("loom serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("loom serve did not stop on SIGTERM")
	}
	// -step-tokens left to the device: the CPU's budget, in the banner too
	if !strings.Contains(banner, "step budget 128 tokens") {
		t.Errorf("the banner does not give the CPU's step budget of 128:\n%s", banner)
	}
}

// TestBenchServe runs loom bench serve against an in-process tiny model
// with a shared prompt prefix, and checks its JSON figures and its flag
// errors.
func TestBenchServe(t *testing.T) {
	out, _, err := capture(func() error {
		return benchServe([]string{"-model", tinyModel, "-blocks", "128", "-requests", "12", "-rate", "200", "-concurrency", "6",
			"-prompt-len", "24", "-output-len", "8", "-shared-prefix", "40", "-warmup", "3", "-ignore-eos", "-json"})
	})
	if err != nil {
		t.Fatal(err)
	}
	var r serveResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if r.Requests != 12 || r.Failed != 0 || r.OutputTokens < 12 || r.PromptTokens < 12*(40+12)/8 || r.OutputTokensPerS <= 0 ||
		!(0 < r.TTFTp50ms && r.TTFTp50ms <= r.TTFTp99ms) || !(0 < r.TPOTp50ms && r.TPOTp50ms <= r.TPOTp99ms) || r.PrefixHitRate <= 0 {
		t.Errorf("result %+v", r)
	}
	// The step counters cover the timed requests only: each of their
	// output tokens is drawn by a step, and a step feeds at most 6
	// sequences (the concurrency). Every step is an Eval, planned or
	// replayed.
	if r.Steps < int64(r.OutputTokens)/6 || r.Steps > int64(r.OutputTokens+r.PromptTokens) || !(1 <= r.MeanBatch && r.MeanBatch <= 6) ||
		r.StepTokens < r.MeanBatch || r.PlanCacheHits < 1 || int64(r.PlanCacheHits+r.PlanCacheMisses) != r.Steps {
		t.Errorf("step figures %+v", r)
	}
	for _, c := range []struct{ args, want string }{
		{"-requests 0", "-requests 0"}, {"-rate -1", "-rate -1"}, {"-spread 1", "-spread 1"}, {"-concurrency 0", "-concurrency 0"},
		{"-warmup -1", "-warmup -1"}, {"-shape qwen3-0.6b", "give one"}, {"-step-buckets -1", "-step-buckets -1"},
		{"-kernels", "needs the in-process server on the CUDA device"},
	} {
		if _, _, err := capture(func() error { return benchServe(append(strings.Fields(c.args), "-model", tinyModel)) }); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", c.args, err, c.want)
		}
	}
	if _, _, err := capture(func() error { return benchServe([]string{"-shape", "qwen3-7b"}) }); err == nil || !strings.Contains(err.Error(), `shape "qwen3-7b" is unsupported`) {
		t.Errorf("-shape qwen3-7b: %v, want an error naming the shape", err)
	}
}

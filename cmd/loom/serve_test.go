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
	go func() {
		_, _, err := capture(func() error { return runServe([]string{"-model", tinyModel, "-addr", addr, "-blocks", "32"}) })
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
	if s, v := post("/v1/chat/completions", `{"messages": [{"role": "user", "content": "hi"}]}`); s != 400 || !strings.Contains(v["error"].(map[string]any)["message"].(string), "no chat template") {
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
}

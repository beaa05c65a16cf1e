package model

import (
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/tokenizer"
)

// TestGenerateStop generates greedily from the tiny model, then again with
// a stop string taken from the middle of that text, and checks that
// generation ends at the token that completes it and that OnText passes on
// exactly the text before it.
func TestGenerateStop(t *testing.T) {
	rt := newTestRuntime(t)
	m, err := Load(rt, tinyModelDir, graph.Invalid)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(tinyModelDir)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(m, 8, 16)
	if err != nil {
		t.Fatal(err)
	}
	prompt, err := tok.Encode("// Copyright 2009 The Go Authors. All rights reserved.\n")
	if err != nil {
		t.Fatal(err)
	}
	prompt = append([]int32{int32(m.Config.BOSTokenID)}, prompt...)
	var all strings.Builder
	full, err := e.Generate(1, prompt, GenerateOptions{MaxTokens: 24, Tokenizer: tok, OnText: func(s string) error {
		all.WriteString(s)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if all.String() != tok.Decode(full) || len(all.String()) < 12 {
		t.Fatalf("OnText passed %q, the tokens decode to %q", all.String(), tok.Decode(full))
	}
	stop := all.String()[8:11]
	want := all.String()[:strings.Index(all.String(), stop)]
	var got strings.Builder
	out, err := e.Generate(1, prompt, GenerateOptions{MaxTokens: 24, Tokenizer: tok, Stop: []string{"never there", stop},
		OnText: func(s string) error {
			got.WriteString(s)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != want {
		t.Errorf("stop %q: OnText passed %q, want %q", stop, got.String(), want)
	}
	if !strings.Contains(tok.Decode(out), stop) || strings.Contains(tok.Decode(out[:len(out)-1]), stop) {
		t.Errorf("stop %q: generation ended with %q, want it to end at the token that completes the stop string", stop, tok.Decode(out))
	}
	for _, o := range []GenerateOptions{{MaxTokens: 2, Stop: []string{"x"}}, {MaxTokens: 2, Tokenizer: tok, Stop: []string{""}}} {
		if _, err := e.Generate(1, prompt, o); err == nil {
			t.Errorf("stop %q, tokenizer %v: no error", o.Stop, o.Tokenizer)
		}
	}
}

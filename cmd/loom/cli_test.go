package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGenerationConfigDefaults checks that generation_config.json's
// settings take the place of the flags' defaults, that a flag given wins,
// and that its EOS ids are used.
func TestGenerationConfigDefaults(t *testing.T) {
	dir := copyTinyModel(t, map[string]func([]byte) []byte{
		"generation_config.json": func([]byte) []byte {
			return []byte(`{"do_sample": true, "temperature": 0.25, "top_k": 7, "min_p": 0.05, "eos_token_id": [3256, 32]}`)
		}})
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "temperature 0.25, top-k 7, top-p 0.95, min-p 0.05, repetition penalty 1, presence penalty 0, frequency penalty 0 over 64 tokens"},
		{[]string{"-presence-penalty", "0.5", "-frequency-penalty", "-0.25", "-repetition-window", "9"}, "presence penalty 0.5, frequency penalty -0.25 over 9 tokens"},
		{[]string{"-temperature", "0.5", "-top-p", "0.9"}, "temperature 0.5, top-k 7, top-p 0.9, min-p 0.05,"},
		{[]string{"-top-k", "40"}, "temperature 0.25, top-k 40,"},
	} {
		_, stderr, err := capture(func() error { return runGenerate(append([]string{"-model", dir, "-max-tokens", "2"}, c.args...)) })
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(stderr, c.want) || !strings.Contains(stderr, "EOS ids [3256 32]") {
			t.Errorf("generate %v: stderr %q, want %q and EOS ids [3256 32]", c.args, stderr, c.want)
		}
	}
}

// TestGenerateOutput checks that stdout carries only the generated text
// (or one JSON object with -json), that -stop ends generation without
// printing the stop string, and that the rest goes to stderr.
func TestGenerateOutput(t *testing.T) {
	base := []string{"-model", tinyModel, "-max-tokens", "24", "-temperature", "0", "-prompt", "// Copyright 2009 The Go Authors. All rights reserved.\n"}
	run := func(args ...string) (string, string) {
		t.Helper()
		stdout, stderr, err := capture(func() error { return runGenerate(append(base[:len(base):len(base)], args...)) })
		if err != nil {
			t.Fatalf("generate %v: %v", args, err)
		}
		return stdout, stderr
	}
	decode := func(out string) generateResult {
		t.Helper()
		var r generateResult
		if strings.Count(out, "\n") != 1 {
			t.Fatalf("-json printed %d lines, want one: %q", strings.Count(out, "\n"), out)
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("-json output %q: %v", out, err)
		}
		return r
	}
	full := decode(first(run("-json")))
	if len(full.GeneratedIDs) != 24 || full.Stop != "max_tokens" || len(full.Text) < 12 || len(full.PromptIDs) < 10 || full.TotalMS <= 0 {
		t.Fatalf("-json: %+v", full)
	}
	stdout, stderr := run()
	if stdout != full.Text+"\n" {
		t.Errorf("stdout %q, want the generated text %q alone", stdout, full.Text)
	}
	for _, w := range []string{"model " + tinyModel, "sampling: temperature 0,", "prompt (", "continuation:", "TTFT"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr %q does not contain %q", stderr, w)
		}
	}
	stop := full.Text[8:11]
	want := full.Text[:strings.Index(full.Text, stop)]
	if stdout, _ := run("-stop", "never there", "-stop", stop); stdout != want+"\n" {
		t.Errorf("-stop %q: stdout %q, want %q", stop, stdout, want)
	}
	r := decode(first(run("-json", "-stop", stop)))
	if r.Text != want || r.Stop != "stop" || len(r.GeneratedIDs) >= 24 {
		t.Errorf("-json -stop %q: %+v, want text %q", stop, r, want)
	}
	// Ids in, ids out: the prompt's on stderr, the generated ones on stdout.
	ids := []string{"-model", tinyModel, "-max-tokens", "3", "-prompt-ids", "256,47,47"}
	stdout, stderr, err := capture(func() error { return runGenerate(ids) })
	if err != nil || len(strings.Fields(stdout)) != 3 || !strings.Contains(stderr, "prompt ids (3): 256 47 47") {
		t.Errorf("-prompt-ids: error %v, stdout %q, stderr %q", err, stdout, stderr)
	}
	if err := runGenerate(append(ids, "-stop", "x")); err == nil || !strings.Contains(err.Error(), "-stop needs a tokenizer") {
		t.Errorf("-stop with -prompt-ids: error %v", err)
	}
}

func first(a, _ string) string { return a }

// TestCLIConventions checks help, exit statuses, stray arguments and how
// the default model is found.
func TestCLIConventions(t *testing.T) {
	for _, c := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"help"}, 0, "usage: loom COMMAND", ""},
		{[]string{"-h"}, 0, "usage: loom COMMAND", ""},
		{[]string{"--help"}, 0, "usage: loom COMMAND", ""},
		{[]string{"generate", "-h"}, 0, "-max-tokens", ""},
		{[]string{"help", "generate"}, 0, "-stop", ""},
		{[]string{"tokenize", "--help"}, 0, "usage: loom tokenize [flags] TEXT", ""},
		{nil, 2, "", "usage: loom COMMAND"},
		{[]string{"nope"}, 2, "", `unknown command "nope"`},
		{[]string{"generate", "-nope"}, 2, "", "flag provided but not defined: -nope"},
		{[]string{"generate", "-model", tinyModel, "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"info", "-model", tinyModel, "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"info", "-model", t.TempDir()}, 1, "", "config.json"},
		{[]string{"generate", "-prompt", "a", "-prompt-ids", "1"}, 2, "", "-prompt and -prompt-ids: give one"},
	} {
		var code int
		stdout, stderr, _ := capture(func() error { code = runMain(c.args); return nil })
		if code != c.code || !strings.Contains(stdout, c.stdout) || !strings.Contains(stderr, c.stderr) {
			t.Errorf("loom %q: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				c.args, code, stdout, stderr, c.code, c.stdout, c.stderr)
		}
	}

	abs, err := filepath.Abs(tinyModel)
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	t.Setenv(modelEnv, "")
	if err := runGenerate([]string{"-max-tokens", "1"}); err == nil || !strings.Contains(err.Error(), "pass -model DIR or set "+modelEnv) {
		t.Errorf("no model anywhere: error %v", err)
	}
	t.Setenv(modelEnv, abs)
	if _, _, err := capture(func() error { return runGenerate([]string{"-max-tokens", "1"}) }); err != nil {
		t.Errorf("%s=%s: %v", modelEnv, abs, err)
	}
	// Beside the binary (here the test binary).
	t.Setenv(modelEnv, "")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	beside := filepath.Join(filepath.Dir(exe), filepath.Base(defaultModel))
	if err := os.Symlink(abs, beside); err != nil {
		t.Skipf("cannot place a model beside the test binary: %v", err)
	}
	defer os.Remove(beside)
	if _, _, err := capture(func() error { return runGenerate([]string{"-max-tokens", "1"}) }); err != nil {
		t.Errorf("model beside the binary: %v", err)
	}
}

// TestQuantizeCommand quantizes the tiny model, then checks it with loom
// info and generates from it; and checks the command line's errors.
func TestQuantizeCommand(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "q8")
	if _, stderr, err := capture(func() error {
		return runQuantize([]string{"-bits", "8", "-group-size", "32", tinyModel, dst})
	}); err != nil || !strings.Contains(stderr, "quantized to 8 bits in groups of 32") {
		t.Fatalf("quantize: error %v, stderr %q", err, stderr)
	}
	stdout, _, err := capture(func() error { return runInfo([]string{"-model", dst}) })
	if err != nil || !strings.Contains(stdout, "8 bits, groups of 32") || !strings.Contains(stdout, "every tensor present") {
		t.Fatalf("info of the quantized model: error %v, stdout %q", err, stdout)
	}
	if out, _, err := capture(func() error {
		return runGenerate([]string{"-model", dst, "-max-tokens", "4", "-prompt-ids", "256,47"})
	}); err != nil || len(strings.Fields(out)) != 4 {
		t.Fatalf("generate with the quantized model: error %v, stdout %q", err, out)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"quantize", tinyModel}, 2, "want a source and a destination directory, got 1"},
		{[]string{"quantize", "-bits", "5", tinyModel, t.TempDir()}, 1, "5 bits, group size 64: unsupported"},
		{[]string{"quantize", dst, t.TempDir()}, 1, "is already quantized"},
	} {
		var code int
		_, stderr, _ := capture(func() error { code = runMain(c.args); return nil })
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("loom %q: exit %d, stderr %q; want exit %d and %q", c.args, code, stderr, c.code, c.want)
		}
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loomrt/loom/chat"
	"github.com/loomrt/loom/tokenizer"
)

// TestTokenizeChat checks that loom tokenize -chat encodes TEXT as one user
// message of Qwen3's template with the generation prompt: the ids of
// @huggingface/jinja's rendering, special tokens included.
func TestTokenizeChat(t *testing.T) {
	dir := t.TempDir()
	tpl, err := os.ReadFile("../../testdata/chat/templates/qwen3.jinja")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]string{"chat_template": string(tpl)})
	tokJSON, err := os.ReadFile("../../testdata/tokenizer/qwen2.json")
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{chat.ConfigFile: cfg, tokenizer.HFFile: tokJSON} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var goldens struct {
		Results map[string]struct{ Text string } `json:"results"`
	}
	b, err := os.ReadFile("../../testdata/chat/goldens.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &goldens); err != nil {
		t.Fatal(err)
	}
	want := goldens.Results["qwen3/user"].Text // the user message "What is 2+2?"
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	wantIDs, err := tok.Encode(want)
	if err != nil {
		t.Fatal(err)
	}
	out, err := captureStdout(func() error { return runTokenize([]string{"-model", dir, "-chat", "-json", "What is 2+2?"}) })
	if err != nil {
		t.Fatal(err)
	}
	var ids []int32
	if err := json.Unmarshal([]byte(out), &ids); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if tok.Decode(ids) != want || len(ids) != len(wantIDs) || !strings.HasPrefix(want, "<|im_start|>user\n") {
		t.Fatalf("ids %v (%q), want %v (%q)", ids, tok.Decode(ids), wantIDs, want)
	}
	for i := range ids {
		if ids[i] != wantIDs[i] {
			t.Fatalf("ids %v, want %v", ids, wantIDs)
		}
	}
	// <|im_start|> is one added token, not its characters.
	if special, _ := tok.Encode("<|im_start|>"); len(special) != 1 || ids[0] != special[0] {
		t.Fatalf("first id %d, want <|im_start|>'s %v", ids[0], special)
	}
	// Without a template, -chat is an error that says so.
	os.Remove(filepath.Join(dir, chat.ConfigFile))
	if _, err := captureStdout(func() error { return runTokenize([]string{"-model", dir, "-chat", "x"}) }); err == nil || !strings.Contains(err.Error(), "no chat template") {
		t.Fatalf("no template: got %v", err)
	}
}

// TestGenerateChat checks that loom generate -chat prompts with the
// rendered template, with no BOS of Loom's own in front.
func TestGenerateChat(t *testing.T) {
	dir := copyTinyModel(t, nil)
	const tpl = "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
	if err := os.WriteFile(filepath.Join(dir, chat.TemplateFile), []byte(tpl), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := capture(func() error {
		return runGenerate([]string{"-model", dir, "-chat", "-prompt", "hi", "-max-tokens", "2", "-json"})
	})
	if err != nil {
		t.Fatal(err)
	}
	var r generateResult
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("output %q: %v", stdout, err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	want, err := tok.Encode("<user>hi\n<assistant>")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.PromptIDs) != len(want) || tok.Decode(r.PromptIDs) != "<user>hi\n<assistant>" {
		t.Fatalf("prompt ids %v (%q), want %v; stderr %s", r.PromptIDs, tok.Decode(r.PromptIDs), want, stderr)
	}
	if err := runGenerate([]string{"-model", dir, "-chat", "-prompt-ids", "1,2"}); err == nil || !strings.Contains(err.Error(), "-chat renders text") {
		t.Fatalf("-chat with -prompt-ids: got %v", err)
	}
}

// TestChat feeds loom chat two user lines, a blank one and /exit: each
// reply must be what generate gives (greedy) for the whole conversation so
// far rendered with the template, the first reply included in the second
// prompt, and nothing after /exit is read.
func TestChat(t *testing.T) {
	dir := copyTinyModel(t, nil)
	const tpl = "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
	if err := os.WriteFile(filepath.Join(dir, chat.TemplateFile), []byte(tpl), 0o644); err != nil {
		t.Fatal(err)
	}
	flags := []string{"-model", dir, "-temperature", "0", "-max-tokens", "6"}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tokens := func(text string) int {
		ids, err := tok.Encode(text)
		if err != nil {
			t.Fatal(err)
		}
		return len(ids)
	}
	reply := func(prompt string) string {
		t.Helper()
		ids, err := tok.Encode(prompt)
		if err != nil {
			t.Fatal(err)
		}
		list := strings.Trim(strings.Join(strings.Fields(fmt.Sprint(ids)), ","), "[]")
		out, _, err := capture(func() error { return runGenerate(append(flags, "-prompt-ids", list, "-json")) })
		if err != nil {
			t.Fatal(err)
		}
		var r generateResult
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("output %q: %v", out, err)
		}
		return tok.Decode(r.GeneratedIDs[:len(r.GeneratedIDs)-boolInt(r.Stop == "eos")])
	}
	prompt1 := "<system>be brief\n<user>package main\n<assistant>"
	first := reply(prompt1)
	prompt2 := prompt1 + first + "\n<user>func f() {\n<assistant>"
	second := reply(prompt2)

	in := filepath.Join(t.TempDir(), "stdin")
	if err := os.WriteFile(in, []byte("package main\n\nfunc f() {\r\n/exit\nnever read\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	old := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = old }()
	stdout, stderr, err := capture(func() error { return runChat(append(flags, "-system", "be brief")) })
	if err != nil {
		t.Fatal(err)
	}
	if want := first + "\n" + second + "\n"; stdout != want {
		t.Fatalf("stdout %q, want %q; stderr %s", stdout, want, stderr)
	}
	// The tiny model may answer both alike: the prompts' lengths show that
	// the second turn saw the whole conversation.
	if want := fmt.Sprintf("[%d prompt tokens, 6 generated", tokens(prompt1)); !strings.Contains(stderr, want) {
		t.Fatalf("stderr %s, want %q", stderr, want)
	}
	if want := fmt.Sprintf("[%d prompt tokens, 6 generated", tokens(prompt2)); !strings.Contains(stderr, want) || strings.Count(stderr, "prompt tokens") != 2 {
		t.Fatalf("stderr %s, want %q once after the first turn", stderr, want)
	}

	// Without a template (the shipped model's is in its tokenizer_config.json),
	// chat is an error that says so.
	os.Remove(filepath.Join(dir, chat.TemplateFile))
	os.Remove(filepath.Join(dir, chat.ConfigFile))
	if err := runChat([]string{"-model", dir}); err == nil || !strings.Contains(err.Error(), "no chat template") {
		t.Fatalf("no template: got %v", err)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

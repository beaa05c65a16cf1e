package chat

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Bad templates fail with an error naming the line and what is wrong; none panics.
func TestErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{"a\n{% macro f() %}{% endmacro %}", "line 2: unsupported statement {% macro %}"},
		{"a\nb\n{{ x | wordwrap }}", "line 3: filter wordwrap: unsupported filter"},
		{"{% if x %}\na", "line 2: {% if %} from line 1 has no {% endif %}"},
		{"{% for x in y %}{% endif %}", "{% for %} from line 1 has no {% endfor %}"},
		{"\n{{ 1 + }}", "line 2: unexpected \"}}\" in an expression"},
		{"{{ 'abc }}", "string is not closed"},
		{"{{ x ", "tag is not closed"},
		{"{# x", "comment is not closed"},
		{"{% endif %}", "unexpected {% endif %}"},
		{"\n\n{{ cycler() }}", "line 3: unsupported: function cycler is not defined"},
		{"{{ x is divisibleby(3) }}", "line 1: unsupported test \"divisibleby\""},
		{"{% set a, b = 1, 2 %}", "unsupported: {% set %} of several names"},
		{"{% set a %}x{% endset %}", "unsupported: block {% set %}"},
		{"{{ x.y }}", "x is undefined (getting .y)"},
		{"{{ 1 + 'a' }}", "unsupported operand types for +: integer and string"},
		{"{% set n = 3 %}{% set n.a = 1 %}", "n is not a namespace()"},
		{"{{ [1][::0] }}", "slice step cannot be zero"},
		{"{{ 1 // 0 }}", "division by zero"},
		{"{{ x ? y }}", "unsupported character '?'"},
		{"{{ caf\u00e9 }}", "unsupported character 'é'"},
		{"{% break %}", "outside a loop"},
		{"{{ strftime_now('%Q') }}", "unsupported directive %Q"},
		{"{{ 'a'.strip(1) }}", "strip: argument must be a string"},
		{"{% for a, b in [1] %}{% endfor %}", "cannot unpack integer into 2 names"},
	}
	for _, c := range cases {
		tpl, err := Parse(c.src)
		if err == nil {
			_, err = tpl.Render(map[string]any{})
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got error %v, want one containing %q", c.src, err, c.want)
		}
	}
}

// Where @huggingface/jinja departs from Python's Jinja (what transformers
// runs), Loom follows Python.
func TestPythonSemantics(t *testing.T) {
	cases := []struct{ src, want string }{
		{"{{ 'xxhixx'.strip('x') }}|{{ '--a-'.rstrip('-') }}", "hi|--a"},
		{"{{ [1, [2]] == [1, [2]] }} {{ {'a': 1} == {'a': 1} }} {{ [1] == [2] }}", "true true false"},
		{"{{ -7 // 2 }} {{ -7 % 3 }} {{ 7 // 2 }} {{ 7 / 2 }}", "-4 2 3 3.5"},
		{"{{ 'a' < 'b' }} {{ 3 | string }} {{ 'ab' | list | join('-') }}", "true 3 a-b"},
		{"{{ 'x' if false }}|{{ xs[5] is defined }}", "|false"},
	}
	for _, c := range cases {
		got := render(t, c.src, map[string]any{"xs": []any{1}})
		if got != c.want {
			t.Errorf("%q: got %q, want %q", c.src, got, c.want)
		}
	}
}

func render(t *testing.T, src string, vars map[string]any) string {
	t.Helper()
	tpl, err := Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tpl.Render(vars)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestStrftimeNow(t *testing.T) {
	got := render(t, `{{ strftime_now("%d %b %Y") }}`, nil)
	if _, err := time.Parse("02 Jan 2006", got); err != nil {
		t.Fatalf("strftime_now gave %q: %v", got, err)
	}
	s, err := strftime("%A %B %e %j %H:%M:%S %y %%", time.Date(2024, 7, 6, 9, 5, 3, 0, time.UTC))
	if err != nil || s != "Saturday July  6 188 09:05:03 24 %" {
		t.Fatalf("got %q, %v", s, err)
	}
}

func TestLoad(t *testing.T) {
	write := func(t *testing.T, files map[string]string) string {
		dir := t.TempDir()
		for name, text := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	msgs := []Message{{"user", "hi"}}
	t.Run("config string and added-token objects", func(t *testing.T) {
		dir := write(t, map[string]string{ConfigFile: `{"chat_template": "{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}{% endfor %}{% if add_generation_prompt %}>{% endif %}{{ eos_token }}",
			"bos_token": {"__type": "AddedToken", "content": "<s>"}, "eos_token": "</s>"}`})
		c, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Render(msgs, true, nil)
		if err != nil || got != "<s>user:hi></s>" {
			t.Fatalf("got %q, %v", got, err)
		}
	})
	t.Run("jinja file wins; named list", func(t *testing.T) {
		dir := write(t, map[string]string{TemplateFile: "J{{ messages[0].content }}{{ x }}\n",
			ConfigFile: `{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}], "bos_token": null}`})
		c, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Render(msgs, false, map[string]any{"x": 1})
		if err != nil || got != "Jhi1" {
			t.Fatalf("got %q, %v", got, err)
		}
		os.Remove(filepath.Join(dir, TemplateFile))
		if c, err = Load(dir); err != nil {
			t.Fatal(err)
		}
		if got, _ := c.Render(msgs, false, nil); got != "D" {
			t.Fatalf("named default: got %q", got)
		}
	})
	for name, files := range map[string]map[string]string{
		"none":       {},
		"no key":     {ConfigFile: `{"bos_token": "<s>"}`},
		"null":       {ConfigFile: `{"chat_template": null}`},
		"no default": {ConfigFile: `{"chat_template": [{"name": "rag", "template": "R"}]}`},
		"bad json":   {ConfigFile: `{"chat_template": `},
		"bad token":  {ConfigFile: `{"chat_template": "x", "eos_token": 3}`},
		"bad syntax": {TemplateFile: "a\n{% if %}"},
	} {
		_, err := Load(write(t, files))
		wantNone := name == "none" || name == "no key" || name == "null"
		if err == nil || errors.Is(err, ErrNoTemplate) != wantNone {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

package chat

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzTemplate checks that no template source, parsed and rendered with a
// small conversation, panics.
func FuzzTemplate(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "chat", "templates", "*.jinja"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("{{ xs[::-1] }}{% for a, b in d.items() if a %}{{ loop.index }}{% else %}{% endfor %}{{ 'a' ~ 1 | string }}")
	f.Add("{%- set ns = namespace(a=1) -%}{% set ns.a = ns.a // 0 %}{# c #}{{ raise_exception('x') }}")
	vars := map[string]any{
		"messages":              []any{map[string]any{"role": "system", "content": "s"}, map[string]any{"role": "user", "content": "u"}},
		"add_generation_prompt": true,
		"xs":                    []any{1, "two", nil},
		"d":                     map[string]any{"k": []any{}},
	}
	f.Fuzz(func(t *testing.T, src string) {
		tpl, err := Parse(src)
		if err != nil {
			return
		}
		tpl.Render(vars)
	})
}

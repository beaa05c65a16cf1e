package chat

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type goldenCase struct {
	Name     string          `json:"name"`
	Template string          `json:"template"` // a file of templates/
	Source   string          `json:"source"`   // or the template itself
	Vars     json.RawMessage `json:"vars"`
}

// TestGoldens renders every case of testdata/chat/cases.json and compares
// with @huggingface/jinja's rendering (goldens.json, made by goldens.js).
func TestGoldens(t *testing.T) {
	dir := filepath.Join("..", "testdata", "chat")
	var cases []goldenCase
	readJSON(t, filepath.Join(dir, "cases.json"), &cases)
	var goldens struct {
		Results map[string]struct {
			Text  *string `json:"text"`
			Error string  `json:"error"`
		} `json:"results"`
	}
	readJSON(t, filepath.Join(dir, "goldens.json"), &goldens)
	if len(cases) < 30 || len(goldens.Results) != len(cases) {
		t.Fatalf("%d cases, %d goldens", len(cases), len(goldens.Results))
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			src := c.Source
			if src == "" {
				b, err := os.ReadFile(filepath.Join(dir, "templates", c.Template+".jinja"))
				if err != nil {
					t.Fatal(err)
				}
				src = string(b)
			}
			tpl, err := Parse(src)
			if err != nil {
				t.Fatal(err)
			}
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(c.Vars, &raw); err != nil {
				t.Fatal(err)
			}
			m := map[string]any{}
			for k, v := range raw {
				m[k] = v
			}
			got, err := tpl.Render(m)
			want := goldens.Results[c.Name]
			if want.Text == nil {
				if !errors.Is(err, ErrRaised) || !strings.Contains(err.Error(), want.Error) {
					t.Fatalf("got %q, %v; want the exception %q", got, err, want.Error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != *want.Text {
				t.Errorf("rendering differs at byte %d:\ngot  %q\nwant %q", firstDiff(got, *want.Text), got, *want.Text)
			}
		})
	}
}

func firstDiff(a, b string) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

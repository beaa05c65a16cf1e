package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkEncode encodes about 1 MB of text on one goroutine: Loom's own Go
// sources (the runtime, model, ops and cpu packages) and the test corpus
// once. b.SetBytes makes it report MB/s.
func BenchmarkEncode(b *testing.B) {
	var text strings.Builder
	for _, dir := range []string{"../runtime", "../model", "../ops", "../cpu", "../graph", "../primitives"} {
		paths, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, p := range paths {
			if text.Len() >= 1<<20 {
				break
			}
			s, err := os.ReadFile(p)
			if err != nil {
				b.Fatal(err)
			}
			text.Write(s)
		}
	}
	text.WriteString(strings.Join(readGoldens(b).Texts, "\n"))
	for _, name := range []string{"qwen2", "llama3", "gpt2", "llama2sp", "mistral"} {
		b.Run(name, func(b *testing.B) {
			tok, err := LoadHF(filepath.Join(testdata, name+".json"))
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(text.Len()))
			for b.Loop() {
				if _, err := tok.Encode(text.String()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

const testdata = "../testdata/tokenizer"

type goldens struct {
	Package    string
	Texts      []string
	Tokenizers map[string][]struct {
		IDs     []int32
		Decoded string
	}
}

func readGoldens(t testing.TB) goldens {
	b, err := os.ReadFile(filepath.Join(testdata, "goldens.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g goldens
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestGoldens checks Encode and Decode against the reference implementation
// (testdata/tokenizer/goldens.js runs @huggingface/tokenizers) on the test
// corpus with three tokenizers: Qwen2's (NFC, its regex), Llama 3's
// (\p{N}{1,3}, ignore_merges) and GPT-2's (ByteLevel's regex).
func TestGoldens(t *testing.T) {
	g := readGoldens(t)
	for _, name := range []string{"qwen2", "llama3", "gpt2"} {
		tok, err := LoadHF(filepath.Join(testdata, name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		want := g.Tokenizers[name]
		if len(want) != len(g.Texts) {
			t.Fatalf("%s: %d goldens for %d texts", name, len(want), len(g.Texts))
		}
		for i, text := range g.Texts {
			ids, err := tok.Encode(text)
			if err != nil {
				t.Fatalf("%s: text %d: %v", name, i, err)
			}
			if !slices.Equal(ids, want[i].IDs) {
				t.Errorf("%s: text %d %.40q:\n got %v\nwant %v", name, i, text, ids, want[i].IDs)
			}
			if got := tok.Decode(want[i].IDs); got != want[i].Decoded {
				t.Errorf("%s: decode of text %d: got %q, want %q", name, i, got, want[i].Decoded)
			}
		}
	}
}

// TestEncodeConcurrent encodes from several goroutines at once (the piece
// cache is shared); run with -race.
func TestEncodeConcurrent(t *testing.T) {
	g := readGoldens(t)
	tok, err := LoadHF(filepath.Join(testdata, "qwen2.json"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 4*len(g.Texts))
	for range 4 {
		wg.Go(func() {
			for i, text := range g.Texts {
				if ids, err := tok.Encode(text); err != nil || !slices.Equal(ids, g.Tokenizers["qwen2"][i].IDs) {
					errs <- fmt.Sprintf("text %d: %v %v", i, ids, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

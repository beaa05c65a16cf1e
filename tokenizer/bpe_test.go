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
// corpus with three byte-level tokenizers: Qwen2's (NFC, its regex), Llama
// 3's (\p{N}{1,3}, ignore_merges) and GPT-2's (ByteLevel's regex); and three
// SentencePiece-style ones: Llama 2's (Prepend and Replace normalizer, byte
// fallback), Mistral's (Metaspace prepend_scheme first) and one with unk
// instead of byte fallback (fuse_unk, prepend_scheme always, Metaspace
// decoder).
func TestGoldens(t *testing.T) {
	g := readGoldens(t)
	for _, name := range []string{"qwen2", "llama3", "gpt2", "llama2sp", "mistral", "spmunk", "tiny-qwen3"} {
		file := filepath.Join(testdata, name+".json")
		if name == "tiny-qwen3" {
			file = filepath.Join(testdata, "..", "tiny-qwen3", "tokenizer.json") // the shipped model's
		}
		tok, err := LoadHF(file)
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

// TestMetaspacePieces checks the Metaspace pre-tokenizer's options that the
// goldens do not cover (the npm package ignores split): the pieces are
// those of the Rust implementation, the mark going with what follows it.
func TestMetaspacePieces(t *testing.T) {
	for _, c := range []struct {
		scheme string
		split  bool
		first  bool
		text   string
		want   []string
	}{
		{"first", true, true, "a  b", []string{"▁a", "▁", "▁b"}},
		{"first", true, false, "a  b ", []string{"a", "▁", "▁b", "▁"}},
		{"always", true, false, " x", []string{"▁x"}},
		{"always", false, false, "x y", []string{"▁x▁y"}},
		{"never", true, true, "x y", []string{"x", "▁y"}},
		{"never", false, true, "▁", []string{"▁"}},
	} {
		m := metaspace{mark: "▁", scheme: c.scheme, split: c.split}
		var got []string
		m.pieces(c.text, c.first, func(p string) { got = append(got, p) })
		if !slices.Equal(got, c.want) {
			t.Errorf("%s split %v first %v %q: got %q, want %q", c.scheme, c.split, c.first, c.text, got, c.want)
		}
	}
}

// TestWordBreaks checks that splitting SentencePiece-style text into words
// before BPE (for speed) gives the tokens of BPE over the whole text.
func TestWordBreaks(t *testing.T) {
	g := readGoldens(t)
	tok, err := LoadHF(filepath.Join(testdata, "llama2sp.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !tok.wordBreaks {
		t.Fatal("llama2sp: no word breaks")
	}
	whole, err := LoadHF(filepath.Join(testdata, "llama2sp.json"))
	if err != nil {
		t.Fatal(err)
	}
	whole.wordBreaks = false
	// A merge that joins text to a following "▁" turns the breaks off.
	var f map[string]any
	if err := json.Unmarshal(must(os.ReadFile(filepath.Join(testdata, "llama2sp.json"))), &f); err != nil {
		t.Fatal(err)
	}
	m := f["model"].(map[string]any)
	m["vocab"].(map[string]any)["e▁t"] = 5000
	m["merges"] = append(m["merges"].([]any), []any{"e", "▁t"})
	crossing, err := parseHF(must(json.Marshal(f)))
	if err != nil {
		t.Fatal(err)
	}
	if crossing.wordBreaks {
		t.Error("word breaks with the merge (e ▁t)")
	}
	if ids, _ := crossing.Encode("1e t"); !slices.Contains(ids, 5000) {
		t.Errorf("1e t: %v lacks e▁t", ids)
	}
	src, err := os.ReadFile("bpe.go")
	if err != nil {
		t.Fatal(err)
	}
	for i, text := range append(g.Texts, string(src)) {
		a, _ := tok.Encode(text)
		b, _ := whole.Encode(text)
		if !slices.Equal(a, b) {
			t.Errorf("text %d: by words %v, whole %v", i, a, b)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

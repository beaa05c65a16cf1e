package model

import (
	"slices"
	"strings"
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

// decodePrompts are three prompts of the tiny model's tokens after its
// BOS: "func (b *Buffer) Len", "// Copy", "package main\n\nimport \"fmt\"".
var decodePrompts = [][]int32{{3256, 362, 289, 98, 344, 66, 2499, 41, 776, 502}, {3256, 265, 445, 732}, {3256, 1163, 3055, 450, 1005, 357, 2663, 34}}

// TestDecoderMatchesHostLoop decodes a batch on the device, each sequence
// with its own sampling, and checks every token against a host loop over
// the same model: Step's logits drawn by the float64 reference with the
// same counter (the position) and window. On a GPU a token may differ only
// where the reference's margin is below 1e-5, after which the two loops
// part ways, so the comparison ends there.
func TestDecoderMatchesHostLoop(t *testing.T) {
	sampling := []ops.Sampling{
		{},
		{Temperature: 0.9, TopK: 20, RepetitionPenalty: 1.3, PresencePenalty: 0.4, FrequencyPenalty: 0.3, Seed: 7},
		{Temperature: 1.2, TopP: 0.8, MinP: 0.02, RepetitionPenalty: 0.8, Seed: 1 << 40},
	}
	const steps, window = 12, 6
	for _, tg := range loomtest.Targets(t) {
		e := loadTiny(t, tg, graph.Float32)
		seqs, ref := []int{0, 1, 2}, []int{10, 11, 12}
		for i := range seqs {
			if err := e.Cache.Add(seqs[i]); err != nil {
				t.Fatal(err)
			}
			if err := e.Cache.Add(ref[i]); err != nil {
				t.Fatal(err)
			}
		}
		d, err := e.NewDecoder(seqs, decodePrompts, sampling, window)
		if err != nil {
			t.Fatal(err)
		}
		history := make([][]int32, len(seqs))
		next := make([][]int32, len(seqs))
		for i, p := range decodePrompts {
			history[i] = slices.Clone(p)
			next[i] = p
		}
		parted := make([]bool, len(seqs))
		for step := range steps {
			got, err := d.Next(step+1 < steps)
			if err != nil {
				t.Fatal(err)
			}
			r, err := e.Step(ref, next)
			if err != nil {
				t.Fatal(err)
			}
			for i := range seqs {
				win := history[i][max(0, len(history[i])-window):]
				win = append(slices.Repeat([]int32{-1}, window-len(win)), win...)
				want, margin := loomtest.SampleRef(f64(r.Logits[i]), sampling[i], int32(len(history[i])), win)
				if parted[i] {
					continue
				}
				if int(got.Tokens[i]) != want {
					if tg.Exact || margin >= 1e-5 {
						t.Fatalf("%s: sequence %d step %d: token %d, want %d (margin %.3g)", tg.Name, i, step, got.Tokens[i], want, margin)
					}
					parted[i] = true
				}
				history[i] = append(history[i], int32(want))
				next[i] = []int32{int32(want)}
			}
			if got.Stats.HostWaits > 1 {
				t.Fatalf("%s step %d: %d host waits", tg.Name, step, got.Stats.HostWaits)
			}
		}
		if _, err := d.Next(false); err == nil || !strings.Contains(err.Error(), "no step in flight") {
			t.Fatalf("%s: Next after the last step: error %v", tg.Name, err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		for i := range seqs {
			if n, want := e.Cache.Len(seqs[i]), len(decodePrompts[i])+steps-1; n != want {
				t.Errorf("%s: sequence %d holds %d tokens, want %d (the prompt and the tokens but the last)", tg.Name, i, n, want)
			}
		}
		tg.NoHazards(t)
	}
}

// TestDecoderStop stops a decode after a step whose successor is already
// in flight (as at an EOS), then resumes the sequences: the tokens must be
// those of a decode that never stopped, so the step taken back corrupted
// nothing.
func TestDecoderStop(t *testing.T) {
	tg := loomtest.Targets(t)[1] // the checking device
	e := loadTiny(t, tg, graph.Float32)
	sampling := make([]ops.Sampling, len(decodePrompts))
	decode := func(seqs []int, prompts [][]int32, n int, last bool) [][]int32 {
		d, err := e.NewDecoder(seqs, prompts, sampling, 0)
		if err != nil {
			t.Fatal(err)
		}
		out := make([][]int32, len(seqs))
		for k := range n {
			r, err := d.Next(k+1 < n || !last)
			if err != nil {
				t.Fatal(err)
			}
			for i, tok := range r.Tokens {
				out[i] = append(out[i], tok)
			}
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	whole, parts := []int{0, 1, 2}, []int{3, 4, 5}
	for _, id := range append(whole, parts...) {
		if err := e.Cache.Add(id); err != nil {
			t.Fatal(err)
		}
	}
	want := decode(whole, decodePrompts, 10, true)
	free := e.Cache.FreeBlocks()
	first := decode(parts, decodePrompts, 4, false) // a fifth step was in flight
	for i, id := range parts {
		if n := e.Cache.Len(id); n != len(decodePrompts[i])+3 {
			t.Fatalf("sequence %d holds %d tokens after the stop, want %d", id, n, len(decodePrompts[i])+3)
		}
	}
	resume := make([][]int32, len(parts))
	for i := range parts {
		resume[i] = first[i][3:]
	}
	rest := decode(parts, resume, 6, true)
	for i := range parts {
		if got := append(first[i], rest[i]...); !slices.Equal(got, want[i]) {
			t.Errorf("sequence %d: stopped and resumed %v, want %v", i, got, want[i])
		}
	}
	for _, id := range append(whole, parts...) {
		if err := e.Cache.Free(id); err != nil {
			t.Fatal(err)
		}
	}
	if e.Cache.FreeBlocks() != e.Cache.Config().NumBlocks || free >= e.Cache.Config().NumBlocks {
		t.Fatalf("%d of %d blocks free at the end", e.Cache.FreeBlocks(), e.Cache.Config().NumBlocks)
	}
	tg.NoHazards(t)
}

func TestDecoderErrors(t *testing.T) {
	e := loadTiny(t, loomtest.Targets(t)[0], graph.Float32)
	if err := e.Cache.Add(1); err != nil {
		t.Fatal(err)
	}
	one := [][]int32{{256}}
	for _, c := range []struct {
		seqs     []int
		prompts  [][]int32
		sampling []ops.Sampling
		window   int
		want     string
	}{
		{[]int{1}, one, nil, 0, "1 sequences but 0 sampling settings"},
		{[]int{1}, one, []ops.Sampling{{TopP: 2}}, 0, "decoder: sequence 1: top-p 2"},
		{[]int{1}, one, []ops.Sampling{{}}, -1, "penalty window -1"},
		{[]int{1}, [][]int32{{}}, []ops.Sampling{{}}, 0, "sequence 1 has an empty prompt"},
		{[]int{1}, [][]int32{{3259}}, []ops.Sampling{{}}, 0, "outside the vocabulary"},
		{[]int{2}, one, []ops.Sampling{{}}, 0, "no sequence 2"},
	} {
		if _, err := e.NewDecoder(c.seqs, c.prompts, c.sampling, c.window); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewDecoder(%v, %v, %v, %d): error %v, want %q", c.seqs, c.prompts, c.sampling, c.window, err, c.want)
		}
	}
	e.PadBlocks = -1
	if _, err := e.NewDecoder([]int{1}, one, []ops.Sampling{{}}, 0); err == nil || !strings.Contains(err.Error(), "PadBlocks -1 must be ≥ 0") {
		t.Errorf("PadBlocks -1: error %v", err)
	}
	e.PadBlocks = 0
	if n := e.Cache.Len(1); n != 0 {
		t.Fatalf("the failed decoders left %d tokens in sequence 1", n)
	}
	// Out of room: the step that cannot be scheduled is an error, and
	// the step in flight still comes out with Next(false).
	small, err := NewEngine(e.Model, 1, 16)
	if err != nil {
		t.Fatal(err)
	}
	if err := small.Cache.Add(1); err != nil {
		t.Fatal(err)
	}
	d, err := small.NewDecoder([]int{1}, [][]int32{slices.Repeat([]int32{'a'}, 15)}, []ops.Sampling{{}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Next(true); err != nil { // appends token 16 of 16
		t.Fatal(err)
	}
	if _, err := d.Next(true); err == nil || !strings.Contains(err.Error(), "more than the whole cache") {
		t.Fatalf("a step past the cache: error %v, want one that says so", err)
	}
	if r, err := d.Next(false); err != nil || len(r.Tokens) != 1 {
		t.Fatalf("the step in flight after the error: %v, %v", r, err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// At the model's positions (16, in a cache of 64): the same, with the
	// cache unchanged.
	m := *e.Model
	m.Config.MaxPositionEmbeddings = 16
	short, err := NewEngine(&m, 4, 16)
	if err != nil {
		t.Fatal(err)
	}
	if err := short.Cache.Add(1); err != nil {
		t.Fatal(err)
	}
	if d, err = short.NewDecoder([]int{1}, [][]int32{slices.Repeat([]int32{'a'}, 15)}, []ops.Sampling{{}}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Next(true); err != nil { // appends token 16 of 16
		t.Fatal(err)
	}
	if _, err := d.Next(true); err == nil || !strings.Contains(err.Error(), "sequence 1 would reach 17 tokens, beyond max_position_embeddings 16") {
		t.Fatalf("a step past the model's positions: error %v, want one that says so", err)
	}
	if n := short.Cache.Len(1); n != 16 {
		t.Fatalf("the refused step left %d tokens in the cache, want 16", n)
	}
	if r, err := d.Next(false); err != nil || len(r.Tokens) != 1 {
		t.Fatalf("the step in flight after the error: %v, %v", r, err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

// decoderRun is what decoderScenario saw.
type decoderRun struct {
	tokens   []int32     // every delivered token, in order
	kv       [][]float32 // each layer's K and V cache at the end
	decodes  int         // decode steps delivered (not prompts)
	replayed int         // of them, the ones that replayed (Stats.CacheHits)
	traces   int         // the structures the decode steps should have traced
	err      error       // the first error, which ends the run
}

// decoderScenario decodes with the tiny model on rt through the life of a
// serving loop: block tables padded to 2 blocks of 8 tokens (a new decode
// structure every 16 tokens, so every decoder crosses a bucket boundary),
// batches of 3 and 1, greedy, sampled and penalised settings, a decoder
// closed with a step in flight and resumed, a sequence truncated mid-bucket.
func decoderScenario(t *testing.T, rt *runtime.Runtime) decoderRun {
	t.Helper()
	m, err := Load(rt, tinyModelDir, graph.Float32)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(m, 32, 8)
	if err != nil {
		t.Fatal(err)
	}
	e.PadBlocks = 2
	for id := range 4 {
		if err := e.Cache.Add(id); err != nil {
			t.Fatal(err)
		}
	}
	sampling := []ops.Sampling{
		{},
		{Temperature: 0.9, TopK: 20, RepetitionPenalty: 1.3, Seed: 7},
		{Temperature: 1.2, TopP: 0.8, MinP: 0.02, RepetitionPenalty: 0.8, Seed: 1 << 40},
	}
	var run decoderRun
	// decode runs n Nexts (the last without more if stop, else Close takes
	// the step in flight back) and returns each sequence's last token.
	decode := func(seqs []int, prompts [][]int32, sampling []ops.Sampling, n int, stop bool) []int32 {
		if run.err != nil {
			return nil
		}
		d, err := e.NewDecoder(seqs, prompts, sampling, 6)
		if err != nil {
			run.err = err
			return nil
		}
		var last []int32
		var widths []int // the table width of each decode step submitted
		for k := range n {
			more := k+1 < n || !stop
			if more {
				l := 0
				for _, id := range seqs {
					l = max(l, e.Cache.Len(id)+1)
				}
				widths = append(widths, ((l+7)/8+1)/2*2)
			}
			r, err := d.Next(more)
			if err != nil {
				run.err = err
				return nil
			}
			if k > 0 {
				run.decodes++
				run.replayed += r.Stats.CacheHits
			}
			run.tokens, last = append(run.tokens, r.Tokens...), r.Tokens
		}
		if err := d.Close(); err != nil {
			run.err = err
		}
		if !stop { // the step taken back was not delivered
			widths = widths[:len(widths)-1]
		}
		run.traces += len(slices.Compact(widths)) // the first step of each width traces
		return last
	}
	last := decode([]int{0, 1, 2}, decodePrompts, sampling, 9, false)
	decode([]int{3}, [][]int32{{256, 'a', 'b'}}, sampling[:1], 12, true)
	if err := e.Cache.Truncate(1, e.Cache.Len(1)-3); err != nil {
		t.Fatal(err)
	}
	if last != nil {
		decode([]int{0, 1, 2}, [][]int32{{last[0]}, {'x', 'y'}, {last[2]}}, sampling, 20, true)
	}
	decode([]int{1}, [][]int32{{'z'}}, sampling[1:2], 8, false)
	if run.err != nil {
		return run
	}
	for l := range e.Model.Config.NumLayers {
		for _, a := range []*graph.Array{e.Cache.K[l], e.Cache.V[l]} {
			v, err := a.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			run.kv = append(run.kv, v)
		}
	}
	return run
}

// TestDecoderCompiledIsBitIdentical: the Decoder's tokens, and the KV
// cache it leaves, are the same bit for bit with its decode steps compiled
// (the default), built and planned every step (NoCompile), and with no
// plan cache at all, on every CPU target, with no hazard; compiled, every
// decode step replays but the first of each structure.
func TestDecoderCompiledIsBitIdentical(t *testing.T) {
	want := decoderScenario(t, newRuntime(t, cpu.New(cpu.Options{}), runtime.Options{NoPlanCache: true}))
	if want.err != nil {
		t.Fatal(want.err)
	}
	if want.decodes < 40 || want.traces < 6 {
		t.Fatalf("the scenario ran %d decode steps of %d structures", want.decodes, want.traces)
	}
	for _, dev := range []struct {
		name string
		cpu  cpu.Options
		opts runtime.Options
	}{
		{"cpu", cpu.Options{}, runtime.Options{}},
		{"cpu-check", cpu.Options{Check: true}, runtime.Options{DispatchesPerCommandBuffer: 7}},
		{"cpu-adversarial", cpu.Options{Check: true, Seed: 5}, runtime.Options{DispatchesPerCommandBuffer: 3, DispatchesPerPass: 2}},
	} {
		for _, mode := range []string{"compiled", "nocompile", "noplancache"} {
			t.Run(dev.name+"/"+mode, func(t *testing.T) {
				opts := dev.opts
				opts.NoCompile, opts.NoPlanCache = mode == "nocompile", mode == "noplancache"
				d := cpu.New(dev.cpu)
				got := decoderScenario(t, newRuntime(t, d, opts))
				if got.err != nil {
					t.Fatal(got.err)
				}
				if !slices.Equal(got.tokens, want.tokens) {
					t.Fatalf("tokens differ:\n got %v\nwant %v", got.tokens, want.tokens)
				}
				for i := range want.kv {
					if !slices.Equal(got.kv[i], want.kv[i]) {
						t.Fatalf("the KV cache differs (layer %d, %s)", i/2, []string{"K", "V"}[i%2])
					}
				}
				if mode == "compiled" && got.replayed != got.decodes-got.traces || mode == "noplancache" && got.replayed != 0 {
					t.Fatalf("%d of %d decode steps replayed (%d structures)", got.replayed, got.decodes, got.traces)
				}
				if hz := d.Hazards(); len(hz) > 0 {
					t.Fatalf("%d hazards, first: %v", len(hz), hz[0])
				}
			})
		}
	}
}

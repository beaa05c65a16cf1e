package runtime_test

import (
	"slices"
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/model"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

// TestCompiledDecoderStaleInputIsCaught: the model's Decoder, whose decode
// steps are a compiled step, with one of the step's inputs left as the
// trace bound it (the stale-upload mutation) — the positions, the slot
// mapping, the block tables, the sequence lengths — decodes other tokens
// or leaves another KV cache (or fails); unbroken it matches planning every
// step. The Decoder binds, in order: the previous tokens, the positions,
// the slot mapping, the block tables, the sequence lengths, ...
func TestCompiledDecoderStaleInputIsCaught(t *testing.T) {
	run := func(opts runtime.Options, stale int) (tokens []int32, kv [][]float32, err error) {
		rt := newRT(t, cpu.New(cpu.Options{}), opts)
		if stale > 0 {
			runtime.SetMutation(rt, runtime.MutStaleUpload, stale)
		}
		m, err := model.Load(rt, "../testdata/tiny-qwen3", graph.Float32)
		if err != nil {
			t.Fatal(err)
		}
		e, err := model.NewEngine(m, 32, 8)
		if err != nil {
			t.Fatal(err)
		}
		e.PadBlocks = 4 // one structure for 32 tokens: the tables change within it
		seqs := []int{0, 1, 2}
		for _, id := range seqs {
			if err := e.Cache.Add(id); err != nil {
				t.Fatal(err)
			}
		}
		sampling := []ops.Sampling{{}, {Temperature: 0.9, RepetitionPenalty: 1.3, Seed: 7}, {Temperature: 1.2, TopP: 0.8, Seed: 9}}
		d, err := e.NewDecoder(seqs, [][]int32{{3256, 362, 289, 98}, {3256, 265}, {3256, 1163, 3055, 450, 1005, 357}}, sampling, 6)
		if err != nil {
			t.Fatal(err)
		}
		const steps = 16
		for k := range steps {
			r, err := d.Next(k+1 < steps)
			if err != nil {
				return nil, nil, err
			}
			tokens = append(tokens, r.Tokens...)
		}
		for l := range m.Config.NumLayers {
			for _, a := range []*graph.Array{e.Cache.K[l], e.Cache.V[l]} {
				v, err := a.Float32s()
				if err != nil {
					return nil, nil, err
				}
				kv = append(kv, v)
			}
		}
		return tokens, kv, nil
	}
	want, wantKV, err := run(runtime.Options{NoPlanCache: true}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for input, name := range map[int]string{0: "none", 2: "positions", 3: "slot mapping", 4: "block tables", 5: "sequence lengths"} {
		got, kv, err := run(runtime.Options{}, input)
		same := err == nil && slices.Equal(got, want) && slices.EqualFunc(kv, wantKV, slices.Equal)
		if same != (input == 0) {
			t.Errorf("stale %s: the decode matches planning every step: %v (error %v)", name, same, err)
		}
	}
}

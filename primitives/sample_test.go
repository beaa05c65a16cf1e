package primitives_test

import (
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// TestSampleLowering checks the two forms of Sample's lowering: a group per
// sequence, or with Caps.SampleSplit and a vocabulary of more than
// SampleGroupElems, the first pass over many groups per sequence (its
// candidates after the weights in the scratch) and the final pass.
func TestSampleLowering(t *testing.T) {
	for _, c := range []struct {
		split      bool
		s, v       int
		groups     int // 0: the single form
		scratchLen int64
	}{
		{false, 3, 151936, 0, 3 * 151936 * 4},
		{true, 3, primitives.SampleGroupElems, 0, 3 * primitives.SampleGroupElems * 4},
		{true, 3, primitives.SampleGroupElems + 1, 2, 3*(primitives.SampleGroupElems+1)*4 + 3*2*8},
		{true, 32, 151936, 75, 32*151936*4 + 32*75*8},
		{true, 1, 4 << 20, primitives.SampleThreads, 4<<20*4 + primitives.SampleThreads*8},
	} {
		in := []graph.Spec{spec(graph.BFloat16, c.s, c.v), spec(graph.Float32, c.s, primitives.SampleSettings),
			spec(graph.Uint32, c.s, primitives.SampleKeys), spec(graph.Int32, c.s), spec(graph.Int32, c.s, 4)}
		var p primitives.Sample
		out, err := p.Outputs(in)
		if err != nil {
			t.Fatal(err)
		}
		l := primitives.NewLowering(in, out, primitives.Caps{SampleSplit: c.split})
		if err := p.Lower(l); err != nil {
			t.Fatal(err)
		}
		checkCatalog(t, l)
		if len(l.Scratch) != 1 || l.Scratch[0] != c.scratchLen {
			t.Errorf("%+v: scratch %v, want [%d]", c, l.Scratch, c.scratchLen)
		}
		base := primitives.SampleParams{S: uint32(c.s), V: uint32(c.v), W: 4}
		if c.groups == 0 {
			if len(l.Dispatches) != 1 || *l.Dispatches[0].Params.(*primitives.SampleParams) != base ||
				l.Dispatches[0].Grid != (primitives.Dim3{c.s, 1, 1}) || l.Counters["sample.split"] != 0 {
				t.Errorf("%+v: dispatches %+v, want one of grid [%d 1 1] with %+v", c, l.Dispatches, c.s, base)
			}
			continue
		}
		first, final := base, base
		first.Pass, first.Groups = primitives.SampleFirst, uint32(c.groups)
		final.Pass, final.Groups = primitives.SampleFinal, uint32(c.groups)
		if len(l.Dispatches) != 2 || l.Counters["sample.split"] != 1 {
			t.Fatalf("%+v: %d dispatches (counters %v), want the two passes", c, len(l.Dispatches), l.Counters)
		}
		if d := l.Dispatches[0]; *d.Params.(*primitives.SampleParams) != first || d.Grid != (primitives.Dim3{c.groups, c.s, 1}) {
			t.Errorf("%+v: first pass %+v, grid %v", c, d.Params, d.Grid)
		}
		if d := l.Dispatches[1]; *d.Params.(*primitives.SampleParams) != final || d.Grid != (primitives.Dim3{c.s, 1, 1}) {
			t.Errorf("%+v: final pass %+v, grid %v", c, d.Params, d.Grid)
		}
	}
}

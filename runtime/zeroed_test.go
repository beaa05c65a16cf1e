package runtime_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// tZeroCopy copies its input through a zeroed scratch buffer of the input's
// size: its kernel fails if the scratch is not all zero, fills it, copies
// it out and clears it again, as a kernel with counters that its last
// threadgroup resets does.
type tZeroCopy struct{}

func (tZeroCopy) Name() string { return "test_zero_copy" }
func (tZeroCopy) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	return in, need(in, 1, func() error { return nil })
}
func (tZeroCopy) Lower(l *primitives.Lowering) error {
	z := l.NewZeroedScratch(l.Inputs[0].Bytes())
	l.Dispatch("test_zero_copy", one3, one3, nil, primitives.In(0), z, primitives.Out(0))
	return nil
}

func init() {
	err := primitives.Register(primitives.KernelSpec{Name: "test_zero_copy",
		Args: []primitives.ArgSpec{primitives.R("a"), primitives.RW("zeroed"), primitives.W("out")}})
	if err != nil {
		panic(err)
	}
	err = cpu.Register("test_zero_copy", func(c *cpu.Call) error {
		a, z, out := c.F32(0), c.F32(1), c.F32(2)
		for i, v := range z {
			if v != 0 {
				return fmt.Errorf("zeroed scratch holds %v at %d", v, i)
			}
		}
		copy(z, a)
		copy(out, z)
		clear(z)
		return nil
	})
	if err != nil {
		panic(err)
	}
}

// TestZeroedScratch runs steps in which scans leave their sums in pooled
// scratch of the size class of tZeroCopy's zeroed scratch, planned every
// time and recorded then replayed, on the checking device: the zeroed
// scratch must come in zero every time (the kernel fails otherwise), and
// the results must equal the scans alone.
func TestZeroedScratch(t *testing.T) {
	for _, opts := range []runtime.Options{{NoPlanCache: true}, {DispatchesPerCommandBuffer: 2}} {
		dev := cpu.New(cpu.Options{Check: true, Seed: 7})
		rt := newRT(t, dev, opts)
		ref := newRT(t, cpu.New(cpu.Options{}), runtime.Options{NoPlanCache: true})
		for step := range 6 {
			v := loomtest.Float32s(loomtest.Rand(uint64(step)), 64, -1, 1)
			chain := func(copies bool) *graph.Array {
				x := graph.FromFloat32s(v, 8, 8)
				for range 3 {
					x = ops.Apply(tScan{}, x)[0]
					if copies {
						x = ops.Apply(tZeroCopy{}, x)[0]
					}
				}
				return x
			}
			got, want := chain(true), chain(false)
			if err := rt.Eval(got); err != nil {
				t.Fatalf("%+v step %d: %v", opts, step, err)
			}
			if err := ref.Eval(want); err != nil {
				t.Fatal(err)
			}
			g, _ := got.Float32s()
			w, _ := want.Float32s()
			if !slices.Equal(g, w) {
				t.Fatalf("%+v step %d: the copies changed the result", opts, step)
			}
		}
		if hz := dev.Hazards(); len(hz) > 0 {
			t.Fatalf("%+v: %d hazards, first: %v", opts, len(hz), hz[0])
		}
		if opts.NoPlanCache {
			continue
		}
		if cs := rt.CacheStats(); cs.Hits < 4 {
			t.Fatalf("want the step replayed: %+v", cs)
		}
	}
}

package runtime_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// genGraph builds, step by step, a random program of elementwise ops with
// broadcasting, matmuls, in-place scatters (donations, some refused),
// multi-output and scratch-using primitives, over arrays that live across
// steps. The same seed always builds the same program.
type genGraph struct {
	r    *rand.Rand
	pool []*graph.Array
	outs []*graph.Array
}

var genShapes = [][]int{{4, 8}, {8, 8}, {8}, {1, 8}}

func (g *genGraph) constant() *graph.Array {
	s := genShapes[g.r.IntN(len(genShapes))]
	return graph.FromFloat32s(loomtest.Float32s(g.r, graph.NumElements(s), -1, 1), s...)
}

// pick returns a random pool array satisfying ok, or a new constant of the
// given shape if there is none.
func (g *genGraph) pick(shape []int, ok func(*graph.Array) bool) *graph.Array {
	var cands []*graph.Array
	for _, a := range g.pool {
		if ok(a) {
			cands = append(cands, a)
		}
	}
	if len(cands) == 0 {
		a := graph.FromFloat32s(loomtest.Float32s(g.r, graph.NumElements(shape), -1, 1), shape...)
		g.pool = append(g.pool, a)
		return a
	}
	return cands[g.r.IntN(len(cands))]
}

func shapeIs(s ...int) func(*graph.Array) bool {
	return func(a *graph.Array) bool { return fmt.Sprint(a.Shape()) == fmt.Sprint(s) }
}

func rank2(a *graph.Array) bool { return a.Ndim() == 2 }

func (g *genGraph) remove(a *graph.Array) {
	for i, x := range g.pool {
		if x == a {
			g.pool = append(g.pool[:i], g.pool[i+1:]...)
			return
		}
	}
}

var binOps = []func(a, b *graph.Array) *graph.Array{ops.Add, ops.Sub, ops.Mul, ops.Maximum, ops.Minimum}

// step adds n random ops and returns the arrays to evaluate.
func (g *genGraph) step(n int) []*graph.Array {
	for range n {
		switch g.r.IntN(7) {
		case 0:
			g.pool = append(g.pool, g.constant())
		case 1, 2:
			a := g.pick([]int{4, 8}, func(*graph.Array) bool { return true })
			b := g.pick(a.Shape(), func(b *graph.Array) bool {
				_, err := primitives.BroadcastShapes(a.Shape(), b.Shape())
				return err == nil
			})
			g.pool = append(g.pool, binOps[g.r.IntN(len(binOps))](a, b))
		case 3:
			a := g.pick([]int{4, 8}, func(a *graph.Array) bool { return rank2(a) && a.Shape()[1] == 8 })
			b := g.pick([]int{8, 8}, shapeIs(8, 8))
			g.pool = append(g.pool, ops.Apply(tMatMul{}, a, b)[0])
		case 4:
			a := g.pick([]int{4, 8}, func(*graph.Array) bool { return true })
			b := g.pick(a.Shape(), shapeIs(a.Shape()...))
			g.pool = append(g.pool, ops.Apply(tSplit{}, a, b)...)
		case 5:
			a := g.pick([]int{8, 8}, rank2)
			g.pool = append(g.pool, ops.Apply(tScan{}, a)[0])
		case 6:
			dst := g.pick([]int{8, 8}, rank2)
			rows := g.pick([]int{4, 8}, shapeIs(4, 8))
			idx := make([]int32, 4)
			for i := range idx {
				idx[i] = int32(g.r.IntN(dst.Shape()[0]+1)) - 1 // −1 skips
			}
			out := ops.Apply(tScatter{}, dst, graph.FromInt32s(idx), rows)[0]
			g.remove(dst)
			g.pool = append(g.pool, out)
		}
	}
	var outs []*graph.Array
	for _, a := range g.pool {
		if a.Primitive() != nil && g.r.IntN(3) == 0 {
			outs = append(outs, a)
		}
	}
	if len(outs) == 0 {
		outs = append(outs, g.pool[len(g.pool)-1])
	}
	g.outs = append(g.outs, outs...)
	return outs
}

// settle drops from the pool the arrays a step left unevaluated: their
// inputs may since have been overwritten in place.
func (g *genGraph) settle() {
	keep := g.pool[:0]
	for _, a := range g.pool {
		if a.Evaluated() || a.Primitive() == nil {
			keep = append(keep, a)
		}
	}
	g.pool = keep
}

// runProgram runs seed's program of steps on rt, with EvalAsync and no host
// wait between steps when async, and returns every output's bytes.
func runProgram(t *testing.T, rt *runtime.Runtime, seed uint64, steps int, async bool, total *runtime.Stats) [][]byte {
	t.Helper()
	g := &genGraph{r: loomtest.Rand(seed)}
	var pend []*runtime.Pending
	for s := 0; s < steps; s++ {
		outs := g.step(4 + g.r.IntN(20))
		if async {
			p, err := rt.EvalAsync(outs...)
			if err != nil {
				t.Fatalf("seed %d step %d: %v", seed, s, err)
			}
			pend = append(pend, p)
		} else if err := rt.Eval(outs...); err != nil {
			t.Fatalf("seed %d step %d: %v", seed, s, err)
		}
		g.settle()
	}
	for _, p := range pend {
		if err := p.Wait(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if total != nil {
			st := p.Stats()
			total.Dispatches += st.Dispatches
			total.Barriers += st.Barriers
			total.FenceWaits += st.FenceWaits
			total.Passes += st.Passes
			total.CommandBuffers += st.CommandBuffers
			total.Donations += st.Donations
			total.DonationsRefused += st.DonationsRefused
			total.ScratchBytes += st.ScratchBytes
			total.BytesReused += st.BytesReused
		}
	}
	res := make([][]byte, len(g.outs))
	for i, a := range g.outs {
		if a.Overwritten() {
			continue // donated in a later step
		}
		b, err := a.Bytes()
		if err != nil {
			t.Fatalf("seed %d output %d: %v", seed, i, err)
		}
		res[i] = b
	}
	return res
}

// TestRandomGraphs runs random programs under every commit interval on the
// checking device, and requires zero hazards and results bit-identical to a
// plain synchronous evaluation.
func TestRandomGraphs(t *testing.T) {
	seeds := 1000
	if testing.Short() {
		seeds = 100
	}
	intervals := []int{1, 2, 3, 7, 40, -1}
	var total runtime.Stats
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		refDev := cpu.New(cpu.Options{Workers: 1})
		ref, _ := runtime.New(refDev, runtime.Options{DispatchesPerCommandBuffer: -1})
		want := runProgram(t, ref, seed, 3, false, nil)
		ref.Close()
		for i, n := range intervals {
			// Vary the schedule with the seed: concurrent or adversarial,
			// eager or lazy, one pass per command buffer or several.
			opts := cpu.Options{Check: true, Lazy: seed%2 == 0}
			if (seed+uint64(i))%3 != 0 {
				opts.Seed = seed*7 + uint64(i)
			}
			dev := cpu.New(opts)
			rt, _ := runtime.New(dev, runtime.Options{DispatchesPerCommandBuffer: n, DispatchesPerPass: int(seed % 4)})
			got := runProgram(t, rt, seed, 3, true, &total)
			rt.Close()
			dev.Close()
			if hz := dev.Hazards(); len(hz) > 0 {
				t.Fatalf("seed %d, %d dispatches per command buffer, %+v: %d hazards; first: %v", seed, n, opts, len(hz), hz[0])
			}
			for k := range want {
				if !bytes.Equal(got[k], want[k]) {
					t.Fatalf("seed %d, %d dispatches per command buffer, %+v: output %d differs from the synchronous evaluation", seed, n, opts, k)
				}
			}
		}
	}
	// The programs must exercise every kind of ordering and buffer reuse, or
	// passing proves little.
	t.Logf("totals: %v", total)
	for name, v := range map[string]int64{
		"barriers": int64(total.Barriers), "fence waits": int64(total.FenceWaits), "passes": int64(total.Passes),
		"donations": int64(total.Donations), "refused donations": int64(total.DonationsRefused),
		"scratch bytes": total.ScratchBytes, "reused bytes": total.BytesReused,
	} {
		if v == 0 {
			t.Errorf("the random programs never produced %s", name)
		}
	}
}

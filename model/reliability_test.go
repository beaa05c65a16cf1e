package model

import (
	"maps"
	"slices"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
)

// TestManyDecodeSteps runs 10,000 steps of the tiny model (300 under the
// race detector) through the cache manager: sequences arrive with random
// prompts (prefilled in the same step as the others' decodes), grow to
// random lengths, finish and are freed. Every so often a golden prompt
// joins the batch and must produce its golden tokens whatever runs beside
// it. Device memory must stay flat and every block must be accounted for.
//
// Under the race detector the run is too short for the pool to reach its
// plateau (it still meets new shapes after a few hundred steps), so memory
// is checked only by the full run, which `make test` runs without -race.
func TestManyDecodeSteps(t *testing.T) {
	steps, checkMemory := 10000, true
	if raceEnabled {
		steps, checkMemory = 300, false
	}
	g := loadGolden(t)
	golden := g.Cases[1] // "copyright": a wide margin at every step
	tg := loomtest.Targets(t)[0]
	e := loadTiny(t, tg, graph.Float32)
	r := loomtest.Rand(21)

	type seq struct {
		next    []int32
		left    int
		golden  bool
		outputs []int32
	}
	live := map[int]*seq{}
	nextID, goldensChecked := 0, 0
	var heldAfterWarmup int64
	for step := range steps {
		if len(live) < 3 && r.IntN(4) == 0 {
			s := &seq{left: 1 + r.IntN(200)}
			if nextID%7 == 3 {
				s.next, s.left, s.golden = golden.PromptIDs, len(golden.Tokens), true
			} else {
				s.next = []int32{256}
				for range r.IntN(24) {
					s.next = append(s.next, int32(' '+r.IntN(90)))
				}
			}
			if err := e.Cache.Add(nextID); err != nil {
				t.Fatal(err)
			}
			live[nextID] = s
			nextID++
		}
		if len(live) == 0 {
			continue
		}
		ids := slices.Sorted(maps.Keys(live))
		tokens := make([][]int32, len(ids))
		for i, id := range ids {
			tokens[i] = live[id].next
		}
		res, err := e.Step(ids, tokens)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if res.Stats.HostWaits != 1 {
			t.Fatalf("step %d: %d host waits", step, res.Stats.HostWaits)
		}
		for i, id := range ids {
			s := live[id]
			tok := int32(slices.Index(res.Logits[i], slices.Max(res.Logits[i]))) // greedy
			s.outputs = append(s.outputs, tok)
			s.next = []int32{tok}
			if s.left--; s.left > 0 {
				continue
			}
			if s.golden {
				if !slices.Equal(s.outputs, golden.Tokens) {
					t.Fatalf("step %d: golden sequence %d gave %v, want %v", step, id, s.outputs, golden.Tokens)
				}
				goldensChecked++
			}
			if err := e.Cache.Free(id); err != nil {
				t.Fatal(err)
			}
			delete(live, id)
		}
		if used := e.Cache.UsedBlocks(); used+e.Cache.FreeBlocks() != e.Cache.Config().NumBlocks {
			t.Fatalf("step %d: %d used + %d free blocks of %d", step, used, e.Cache.FreeBlocks(), e.Cache.Config().NumBlocks)
		}
		// The pool grows until it has a buffer of every size class the
		// workload's shapes need; after that, any growth is a leak.
		if step == steps/2 {
			heldAfterWarmup, _ = tg.RT.MemoryInUse()
		}
		if checkMemory && step > steps/2 && step%100 == 0 {
			if held, _ := tg.RT.MemoryInUse(); held > heldAfterWarmup+heldAfterWarmup/100 {
				t.Fatalf("step %d: device memory grew from %d to %d bytes", step, heldAfterWarmup, held)
			}
		}
	}
	for id := range live {
		if err := e.Cache.Free(id); err != nil {
			t.Fatal(err)
		}
	}
	if e.Cache.FreeBlocks() != e.Cache.Config().NumBlocks {
		t.Fatalf("%d of %d blocks free after every sequence finished", e.Cache.FreeBlocks(), e.Cache.Config().NumBlocks)
	}
	if goldensChecked == 0 {
		t.Fatal("no golden sequence finished")
	}
	held, pooled := tg.RT.MemoryInUse()
	t.Logf("%d steps, %d sequences (%d golden), device memory %d bytes held (%d pooled), %d after warm-up", steps, nextID, goldensChecked, held, pooled, heldAfterWarmup)
}

package model

import (
	"maps"
	goruntime "runtime"
	"slices"
	"testing"
	"time"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/runtime"
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
		// What stays held once the plan cache and the pool's idle buffers
		// are released is the live arrays' memory (weights, KV cache, the
		// last results): any growth of it is a leak. (The cache and the pool
		// are bounded by count and by the workload's size classes.)
		if step == steps/2 {
			heldAfterWarmup = liveMemory(tg.RT)
		}
		if checkMemory && step > steps/2 && step%100 == 0 {
			if held := liveMemory(tg.RT); held > heldAfterWarmup+heldAfterWarmup/100 {
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

// liveMemory is the device memory the runtime holds for live arrays: the
// garbage arrays' storage is collected first (their cleanups return it to
// the pool), then the plan cache and the pool's idle buffers are released.
func liveMemory(rt *runtime.Runtime) int64 {
	for range 2 {
		goruntime.GC()
		time.Sleep(time.Millisecond) // the cleanups run on their own goroutine
	}
	rt.ReleaseMemory()
	held, _ := rt.MemoryInUse()
	return held
}

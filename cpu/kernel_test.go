package cpu

import (
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// A panic in any worker of a parallel kernel fails the dispatch with an
// error instead of crashing the process.
func TestParallelPanicFailsTheDispatch(t *testing.T) {
	k := &kernel{name: "test_panics", fn: func(c *Call) error {
		c.Parallel(1000, 1, func(lo, hi int) {
			if lo > 0 {
				var s []int
				_ = s[lo] // index out of range in a chunk (run by a helper or by the caller)
			}
		})
		return nil
	}}
	d := New(Options{Workers: 4})
	buf, _ := d.NewBuffer(16)
	err := d.execute(&runtime.Command{Kind: runtime.CmdDispatch, Kernel: k, Args: []runtime.BufferArg{{Buffer: buf, Size: 16, Access: primitives.Write}}}, 0)
	// The error shows where the chunk panicked, whichever goroutine ran it.
	if err == nil || !strings.Contains(err.Error(), "test_panics panicked") || !strings.Contains(err.Error(), "TestParallelPanicFailsTheDispatch.func1.1(") {
		t.Fatalf("got %v", err)
	}
}

// Parallel calls nested inside a Parallel chunk, with more chunks than
// helpers, complete: each call's caller takes its own call's chunks until
// none is left, so none waits on a chunk nobody will run.
func TestParallelNested(t *testing.T) {
	var mu sync.Mutex
	sum := 0
	Parallel(4, 8, 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			Parallel(5, 100, 1, func(lo2, hi2 int) {
				mu.Lock()
				sum += hi2 - lo2
				mu.Unlock()
			})
		}
	})
	if sum != 800 {
		t.Fatalf("nested Parallel covered %d items, want 800", sum)
	}
}

// TestParallelFine checks that ParallelFine covers every item once, in
// more chunks than workers, and never runs more chunks at once than it has
// workers, even with more helpers started (by a wider call) than it may use.
func TestParallelFine(t *testing.T) {
	defer goruntime.GOMAXPROCS(goruntime.GOMAXPROCS(4))
	Parallel(4, 4, 1, func(lo, hi int) {}) // starts 3 helpers
	for _, workers := range []int{1, 2, 3} {
		const n = 997
		var seen [n]atomic.Int32
		var running, most, chunks atomic.Int32
		c := &Call{workers: workers}
		for range 20 {
			c.ParallelFine(n, 7, func(lo, hi int) {
				now := running.Add(1)
				for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
				}
				chunks.Add(1)
				for i := lo; i < hi; i++ {
					seen[i].Add(1)
				}
				time.Sleep(50 * time.Microsecond)
				running.Add(-1)
			})
		}
		for i := range seen {
			if got := seen[i].Load(); got != 20 {
				t.Fatalf("workers %d: item %d covered %d times in 20 calls, want 20", workers, i, got)
			}
		}
		if m := most.Load(); m > int32(workers) {
			t.Errorf("workers %d: %d chunks ran at once", workers, m)
		}
		if want := int32(20 * min(workers*fineChunks, (n+6)/7)); workers > 1 && chunks.Load() != want {
			t.Errorf("workers %d: %d chunks in 20 calls, want %d", workers, chunks.Load(), want)
		}
	}
}

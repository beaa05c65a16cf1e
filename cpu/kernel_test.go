package cpu

import (
	"strings"
	"sync"
	"testing"

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

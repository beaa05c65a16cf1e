package cpu

import (
	"strings"
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
				_ = s[lo] // index out of range in a worker goroutine
			}
		})
		return nil
	}}
	d := New(Options{Workers: 4})
	buf, _ := d.NewBuffer(16)
	err := d.execute(&op{k: k, args: []runtime.BufferArg{{Buffer: buf, Size: 16, Access: primitives.Write}}})
	if err == nil || !strings.Contains(err.Error(), "test_panics panicked") {
		t.Fatalf("got %v", err)
	}
}

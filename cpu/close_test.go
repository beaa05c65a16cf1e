package cpu_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// TestCommitAfterClose: closing a queue (or the device) twice is fine, and
// a command buffer committed afterwards completes at once with an error
// matching runtime.ErrClosed, signalling its event so that nobody waits
// forever; work committed before Close still runs.
func TestCommitAfterClose(t *testing.T) {
	for _, co := range []cpu.Options{{}, {Check: true}, {Check: true, Seed: 3}} {
		for _, closeDevice := range []bool{false, true} {
			t.Run(fmt.Sprintf("%+v/device=%v", co, closeDevice), func(t *testing.T) {
				dev := cpu.New(co)
				q, _ := dev.NewQueue()
				ev := q.NewEvent()
				k, _ := dev.Kernel("copy_bytes")
				src, _ := dev.NewBuffer(8)
				dst, _ := dev.NewBuffer(8)
				src.Write(0, []byte{1, 2, 3, 4, 5, 6, 7, 8})
				commit := func(v uint64) runtime.Submission {
					l := &runtime.CommandList{}
					l.NewPass()
					l.Dispatch(k, primitives.Dim3{X: 1, Y: 1, Z: 1}, primitives.Dim3{X: 1, Y: 1, Z: 1},
						[]runtime.BufferArg{{Buffer: src, Size: 8, Access: primitives.Read, Name: "src"}, {Buffer: dst, Size: 8, Access: primitives.Write, Name: "dst"}},
						&primitives.CopyParams{Bytes: 8}, 0)
					l.Signal(ev, v)
					return q.Submit(l)
				}
				first := commit(1)
				if closeDevice {
					dev.Close()
					dev.Close()
				}
				q.Close()
				q.Close()
				late := commit(2)
				done := make(chan struct{})
				go func() { ev.Wait(2); close(done) }()
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					t.Fatal("waiting for a command buffer committed after Close hangs")
				}
				if err := first.Err(); err != nil {
					t.Fatalf("work committed before Close: %v", err)
				}
				b := make([]byte, 8)
				dst.Read(0, b)
				if b[7] != 8 {
					t.Fatalf("work committed before Close did not run: %v", b)
				}
				if err := late.Err(); !errors.Is(err, runtime.ErrClosed) {
					t.Fatalf("commit after Close: error %v, want runtime.ErrClosed", err)
				}
			})
		}
	}
}

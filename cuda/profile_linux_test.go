package cuda

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// TestKernelProfile times a command buffer of copies, run with CUDA graphs
// on: the profiled launches are issued one by one, counted and timed,
// those before the profile are not.
func TestKernelProfile(t *testing.T) {
	d := device(t)
	if _, err := d.StopProfile(); err == nil {
		t.Error("StopProfile without a profile: no error")
	}
	const size, copies = 64 << 20, 5
	src, dst := deviceBuffer(t, d, size), deviceBuffer(t, d, size)
	defer src.Release()
	defer dst.Release()
	k, err := d.Kernel("copy_bytes")
	if err != nil {
		t.Fatal(err)
	}
	cp := primitives.CopyDispatch(primitives.In(0), primitives.Out(0), size)
	args := []runtime.BufferArg{{Buffer: src, Size: size, Access: primitives.Read, Name: "src"}, {Buffer: dst, Size: size, Access: primitives.Write, Name: "dst"}}
	q, err := d.NewQueue()
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ev := q.NewEvent()
	var n uint64
	submit := func() {
		cl := &runtime.CommandList{}
		cl.NewPass()
		for range copies {
			cl.Dispatch(k, cp.Grid, cp.Group, args, cp.Params, 0)
		}
		n++
		cl.Signal(ev, n)
		sub := q.Submit(cl)
		ev.Wait(n)
		if err := sub.Err(); err != nil {
			t.Fatal(err)
		}
	}
	var profile []KernelTime
	stats := withGraphs(t, d, true, func() {
		submit() // not profiled; makes the structure's next run a graph
		if err := d.StartProfile(); err != nil {
			t.Fatal(err)
		}
		if err := d.StartProfile(); err == nil {
			t.Error("a second StartProfile: no error")
		}
		submit()
		submit()
		if profile, err = d.StopProfile(); err != nil {
			t.Fatal(err)
		}
	})
	if stats.Launches != 0 {
		t.Errorf("%d command buffers ran as graphs while profiling; want every launch issued on its own", stats.Launches)
	}
	if len(profile) != 1 || profile[0].Name != "copy_bytes" {
		t.Fatalf("profile %+v: want one kernel, copy_bytes", profile)
	}
	p := profile[0]
	if p.Launches != 2*copies || p.Bytes != 2*copies*2*size {
		t.Errorf("copy_bytes: %d launches of %d bytes in all; want %d of %d", p.Launches, p.Bytes, 2*copies, 2*copies*2*size)
	}
	// Each copy moves 128 MiB: on any GPU this runs at tens of GB/s at
	// least, and at no more than the tens of TB/s no memory reaches.
	if gbs := float64(p.Bytes) / p.Time.Seconds() / 1e9; !(gbs > 10 && gbs < 20000) {
		t.Errorf("copy_bytes: %d bytes in %v = %.0f GB/s: the timing is off", p.Bytes, p.Time, gbs)
	}
}

// TestKernelProfileHolds shows the hold that keeps the host's launch time
// out of a profile: work queued behind it does not start until the gate
// opens, and then completes.
func TestKernelProfileHolds(t *testing.T) {
	d := device(t)
	if err := d.StartProfile(); err != nil {
		t.Fatal(err)
	}
	defer d.StopProfile()
	rq, err := d.NewQueue()
	if err != nil {
		t.Fatal(err)
	}
	defer rq.Close()
	stream := rq.(*queue).stream
	err = d.do(func() error {
		p := d.prof
		if p.gate == nil {
			return errors.New("the profile holds no gate")
		}
		p.hold(d, stream)
		ev := p.event(d, stream)
		if p.err != nil {
			return p.err
		}
		defer func() { p.free = append(p.free, ev) }()
		time.Sleep(20 * time.Millisecond)
		if r := d.drv.eventQuery.raw(ev); r != cudaNotReady {
			p.release()
			return fmt.Errorf("an event behind the hold: cuEventQuery = %d after 20 ms, want %d (not ready)", r, cudaNotReady)
		}
		p.release()
		return d.drv.call(d.drv.eventSynchronize, ev)
	})
	if err != nil {
		t.Fatal(err)
	}
}

package cpu_test

import (
	"strings"
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// These tests drive the checking device through the device interface
// directly, the way an encoder would, to pin down what it treats as ordered.

type rig struct {
	t    *testing.T
	dev  *cpu.Device
	q    runtime.Queue
	ev   runtime.Event
	k    runtime.Kernel
	seq  uint64
	bufs []runtime.Buffer
}

func newRig(t *testing.T) *rig {
	dev := cpu.New(cpu.Options{Check: true, Lazy: true, Seed: 1})
	t.Cleanup(dev.Close)
	q, _ := dev.NewQueue()
	k, err := dev.Kernel("copy_bytes")
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, dev: dev, q: q, ev: q.NewEvent(), k: k}
	for range 3 {
		b, _ := dev.NewBuffer(64)
		r.bufs = append(r.bufs, b)
	}
	return r
}

// copyOp dispatches a copy of n bytes from src[so:] to dst[do:].
func (r *rig) copyOp(e *runtime.CommandList, src runtime.Buffer, so int64, dst runtime.Buffer, do, n int64) {
	e.Dispatch(r.k, primitives.Dim3{X: 1, Y: 1, Z: 1}, primitives.Dim3{X: 1, Y: 1, Z: 1}, []runtime.BufferArg{
		{Buffer: src, Offset: so, Size: n, Access: primitives.Read, Name: "src"},
		{Buffer: dst, Offset: do, Size: n, Access: primitives.Write, Name: "dst"},
	}, &primitives.CopyParams{Bytes: uint32(n)}, 0)
}

func (r *rig) commit(cb *runtime.CommandList) {
	r.seq++
	cb.Signal(r.ev, r.seq)
	r.q.Submit(cb)
}

func (r *rig) hazards() []cpu.Hazard {
	r.ev.Wait(r.seq)
	return r.dev.Hazards()
}

func TestCheckerByteRanges(t *testing.T) {
	r := newRig(t)
	a, b := r.bufs[0], r.bufs[1]
	cb := &runtime.CommandList{}
	cb.NewPass()
	r.copyOp(cb, a, 0, b, 0, 16)  // writes b[0,16)
	r.copyOp(cb, a, 0, b, 16, 16) // writes b[16,32): disjoint, fine unordered
	r.copyOp(cb, b, 0, a, 32, 8)  // reads b[0,8), not ordered after the write of b[0,16)
	r.commit(cb)
	hz := r.hazards()
	if len(hz) != 1 || hz[0].Kind != "read-after-write" || hz[0].Bytes != [2]int64{0, 8} {
		t.Fatalf("want one read-after-write on bytes [0,8) of b, got %v", hz)
	}
	if !strings.Contains(hz[0].First, "*dst write") || !strings.Contains(hz[0].Second, "*src read") {
		t.Fatalf("the report must name both dispatches and the arguments involved: %v", hz[0])
	}
}

func TestCheckerBarrier(t *testing.T) {
	r := newRig(t)
	a, b := r.bufs[0], r.bufs[1]
	cb := &runtime.CommandList{}
	cb.NewPass()
	r.copyOp(cb, a, 0, b, 0, 32)
	cb.Barrier()
	r.copyOp(cb, b, 0, a, 32, 32) // ordered by the barrier
	r.copyOp(cb, b, 0, r.bufs[2], 0, 32)
	r.commit(cb)
	if hz := r.hazards(); len(hz) != 0 {
		t.Fatalf("a barrier orders the pass: %v", hz)
	}
}

func TestCheckerFences(t *testing.T) {
	for _, wait := range []bool{true, false} {
		r := newRig(t)
		a, b := r.bufs[0], r.bufs[1]
		f := r.q.NewFence()
		cb1 := &runtime.CommandList{}
		cb1.NewPass()
		r.copyOp(cb1, a, 0, b, 0, 32)
		cb1.UpdateFence(f)
		r.commit(cb1)
		cb2 := &runtime.CommandList{}
		cb2.NewPass()
		r.copyOp(cb2, a, 0, r.bufs[2], 0, 8) // independent: before the wait
		if wait {
			cb2.WaitFence(f)
		}
		r.copyOp(cb2, b, 0, a, 32, 32) // reads b, writes a[32,64)
		r.commit(cb2)
		hz := r.hazards()
		if wait && len(hz) != 0 {
			t.Fatalf("the fence wait orders the command buffers: %v", hz)
		}
		if !wait && (len(hz) != 1 || hz[0].Kind != "read-after-write") {
			t.Fatalf("commit order alone orders nothing: want one read-after-write, got %v", hz)
		}
	}
}

// A fence wait holds back only the dispatches encoded after it.
func TestCheckerFenceWaitIsPositional(t *testing.T) {
	r := newRig(t)
	a, b := r.bufs[0], r.bufs[1]
	f := r.q.NewFence()
	cb := &runtime.CommandList{}
	cb.NewPass()
	r.copyOp(cb, a, 0, b, 0, 32)
	cb.UpdateFence(f)
	cb.NewPass()
	r.copyOp(cb, b, 0, r.bufs[2], 0, 32) // before the wait: unordered
	cb.WaitFence(f)
	r.commit(cb)
	if hz := r.hazards(); len(hz) != 1 {
		t.Fatalf("want the dispatch before the wait reported, got %v", hz)
	}
}

func TestCheckerHostAccess(t *testing.T) {
	r := newRig(t)
	a, b := r.bufs[0], r.bufs[1]
	cb := &runtime.CommandList{}
	cb.NewPass()
	r.copyOp(cb, a, 0, b, 0, 32)
	r.commit(cb)
	// The host writes a while the device may still read it.
	if err := a.Write(0, make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	r.ev.Wait(r.seq)
	// After the wait the host may read b and release a.
	if err := b.Read(0, make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	a.Release()
	hz := r.dev.Hazards()
	if len(hz) != 1 || hz[0].Kind != "write-after-read" || !strings.Contains(hz[0].Second, "host write") {
		t.Fatalf("want only the early host write reported, got %v", hz)
	}
}

func TestCheckerUseAfterRelease(t *testing.T) {
	r := newRig(t)
	a, b := r.bufs[0], r.bufs[1]
	cb := &runtime.CommandList{}
	cb.NewPass()
	r.copyOp(cb, a, 0, b, 0, 32)
	b.Release() // before the command buffer is even committed
	r.commit(cb)
	hz := r.hazards()
	if len(hz) == 0 || hz[0].Kind != "use-after-release" {
		t.Fatalf("want a use-after-release, got %v", hz)
	}
}

// An upload is ordered like a dispatch that writes its range: unordered
// with an earlier read of it, it is a hazard; after a barrier it is not,
// and its bytes land.
func TestCheckerUpload(t *testing.T) {
	for _, barrier := range []bool{false, true} {
		r := newRig(t)
		a, b := r.bufs[0], r.bufs[1]
		cb := &runtime.CommandList{}
		cb.NewPass()
		r.copyOp(cb, a, 0, b, 0, 16) // reads a[0,16)
		if barrier {
			cb.Barrier()
		}
		cb.Upload(a, 8, []byte{1, 2, 3, 4})
		r.commit(cb)
		hz := r.hazards()
		if barrier != (len(hz) == 0) {
			t.Fatalf("barrier %v: hazards %v", barrier, hz)
		}
		if !barrier && (hz[0].Kind != "write-after-read" || hz[0].Bytes != [2]int64{8, 12} || !strings.Contains(hz[0].Second, "upload(")) {
			t.Fatalf("want the upload's write-after-read on bytes [8,12), got %v", hz[0])
		}
		got := make([]byte, 4)
		if err := a.Read(8, got); err != nil {
			t.Fatal(err)
		}
		if string(got) != "\x01\x02\x03\x04" {
			t.Fatalf("upload wrote %v", got)
		}
	}
}

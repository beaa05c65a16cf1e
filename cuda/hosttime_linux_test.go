package cuda

import (
	"testing"
	"time"

	"github.com/loomrt/loom/runtime"
)

// TestHostTimes: a command buffer submitted, waited for and read back
// counts in the classes it went through, and Submit and Wait hold the
// calls they make (Record, Sync), and the result is the kernel's.
func TestHostTimes(t *testing.T) {
	d := device(t)
	a := newAccumulation(t, d, 1000)
	before := d.HostTimes()
	l := &runtime.CommandList{}
	l.NewPass()
	a.add(l)
	l.Signal(a.ev, 1)
	sub := a.q.Submit(l)
	a.ev.Wait(1)
	if err := sub.Err(); err != nil {
		t.Fatal(err)
	}
	for i, v := range readF32(t, a.x) {
		if v != 1 {
			t.Fatalf("x[%d] = %v, want 1", i, v)
		}
	}
	after := d.HostTimes()
	calls := func(a, b HostTime) int64 { return b.Calls - a.Calls }
	spent := func(a, b HostTime) time.Duration { return b.Time - a.Time }
	for _, c := range []struct {
		name          string
		before, after HostTime
	}{{"submit", before.Submit, after.Submit}, {"launch", before.Launch, after.Launch}, {"record", before.Record, after.Record},
		{"wait", before.Wait, after.Wait}, {"sync", before.Sync, after.Sync}, {"read", before.Read, after.Read}} {
		if calls(c.before, c.after) < 1 || spent(c.before, c.after) <= 0 {
			t.Errorf("%s: %d calls, %v: want at least one, some time", c.name, calls(c.before, c.after), spent(c.before, c.after))
		}
	}
	if s, r := spent(before.Submit, after.Submit), spent(before.Launch, after.Launch)+spent(before.Record, after.Record); s < r {
		t.Errorf("submit %v less than its launch and record %v", s, r)
	}
	if w, s := spent(before.Wait, after.Wait), spent(before.Sync, after.Sync); w < s {
		t.Errorf("wait %v less than its sync %v", w, s)
	}
}

// BenchmarkTokenRead reads a decode step's tokens back (4 bytes at batch
// 1, 128 at batch 32) through the pinned arena and straight into pageable
// memory (LOOM_CUDA_READ=pageable): the copy and its synchronise, the
// host's cost of every step's read-back.
func BenchmarkTokenRead(b *testing.B) {
	d := device(b)
	for _, n := range []int{4, 128} {
		buf, err := d.NewBuffer(int64(n))
		if err != nil {
			b.Fatal(err)
		}
		dst := make([]byte, n)
		for _, m := range []readMode{readPinned, readPageable} {
			name := map[readMode]string{readPinned: "pinned", readPageable: "pageable"}[m]
			b.Run(name+"/"+map[int]string{4: "b1", 128: "b32"}[n], func(b *testing.B) {
				d.readMode = m
				defer func() { d.readMode = readPinned }()
				for b.Loop() {
					if err := buf.Read(0, dst); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		buf.Release()
	}
}

package mtlfake

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/loomrt/loom/metal/mslcheck"
	"github.com/loomrt/loom/metal/mtl"
)

// The fake's own rules, called directly: the Metal device's tests show it
// catches the device's mistakes; these show what each rule orders, and
// what it forbids.

// copyMSL is copy_bytes in MSL, enough for the fake to know its
// arguments.
const copyMSL = `
struct CopyParams { uint Bytes; };
[[kernel]] void copy_bytes(device const uchar* src [[buffer(0)]], device uchar* dst [[buffer(1)]],
                           constant CopyParams& p [[buffer(2)]], uint i [[thread_position_in_grid]]) {}
`

func setup(t *testing.T, opts Options) (*Device, mtl.Pipeline, mtl.CommandQueue) {
	t.Helper()
	if _, err := mslcheck.Compiler(); err != nil {
		t.Skip(err)
	}
	d := New(opts)
	t.Cleanup(d.Close)
	lib, err := d.NewLibraryWithSource(copyMSL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lib.NewComputePipeline("absent"); err == nil {
		t.Fatal("a function the library lacks gave a pipeline")
	}
	p, err := lib.NewComputePipeline("copy_bytes")
	if err != nil {
		t.Fatal(err)
	}
	q, _ := d.NewCommandQueue()
	return d, p, q
}

// copyPass encodes a pass copying n bytes of src into dst, waiting for
// wait and updating update when they are not nil.
func copyPass(cb mtl.CommandBuffer, p mtl.Pipeline, src, dst mtl.Buffer, n int, wait, update mtl.Fence) {
	enc, _ := cb.ComputeCommandEncoder()
	if wait != nil {
		enc.WaitForFence(wait)
	}
	enc.SetComputePipelineState(p)
	enc.SetBuffer(src, 0, n, 0)
	enc.SetBuffer(dst, 0, n, 1)
	enc.SetBytes(binary.LittleEndian.AppendUint32(nil, uint32(n)), 2)
	enc.DispatchThreadgroups(mtl.Size{Width: 1, Height: 1, Depth: 1}, mtl.Size{Width: 1, Height: 1, Depth: 1})
	if update != nil {
		enc.UpdateFence(update)
	}
	enc.EndEncoding()
}

func buffer(t *testing.T, d *Device, fill byte) mtl.Buffer {
	b, err := d.NewBuffer(8)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b.Contents() {
		b.Contents()[i] = fill
	}
	return b
}

// TestFenceOrders: two command buffers writing one buffer are a hazard
// unless a fence orders them; ordered, the later write wins; the host's
// read is ordered only by observing the event.
func TestFenceOrders(t *testing.T) {
	for _, fenced := range []bool{false, true} {
		d, p, q := setup(t, Options{Seed: 2})
		a, b, dst := buffer(t, d, 1), buffer(t, d, 2), buffer(t, d, 0)
		ev, _ := d.NewSharedEvent()
		var f mtl.Fence
		if fenced {
			f, _ = d.NewFence()
		}
		d.Hold(true) // both run together
		for i, src := range []mtl.Buffer{a, b} {
			cb, _ := q.CommandBuffer()
			if i == 0 {
				copyPass(cb, p, src, dst, 8, nil, f)
			} else {
				copyPass(cb, p, src, dst, 8, f, nil)
			}
			cb.EncodeWaitForEvent(ev, uint64(i))
			cb.EncodeSignalEvent(ev, uint64(i+1))
			cb.Commit()
		}
		d.Hold(false)
		for ev.SignaledValue() < 2 {
			time.Sleep(time.Millisecond)
		}
		got := make([]byte, 8)
		dst.CopyFromContents(0, got)
		hz := d.Hazards()
		if fenced && (len(hz) > 0 || got[0] != 2) {
			t.Fatalf("fenced: %v, dst %v: want no hazard and the second copy's bytes", hz, got)
		}
		if !fenced && (len(hz) != 1 || hz[0].Kind != "write-after-write") {
			t.Fatalf("unfenced: %v, want one write-after-write", hz)
		}
		if v := d.Violations(); len(v) > 0 {
			t.Fatal(v)
		}
	}
	// A host read the event does not cover.
	d, p, q := setup(t, Options{})
	src, dst := buffer(t, d, 1), buffer(t, d, 0)
	cb, _ := q.CommandBuffer()
	copyPass(cb, p, src, dst, 8, nil, nil)
	cb.Commit()
	time.Sleep(10 * time.Millisecond)
	dst.CopyFromContents(0, make([]byte, 8))
	if hz := d.Hazards(); len(hz) != 1 || hz[0].Kind != "read-after-write" || !strings.Contains(hz[0].Second, "host read") {
		t.Fatalf("%v, want the host's read after the copy's write", hz)
	}
}

// TestViolations: what Metal forbids is reported.
func TestViolations(t *testing.T) {
	d, p, q := setup(t, Options{})
	src, dst := buffer(t, d, 1), buffer(t, d, 0)
	cb, _ := q.CommandBuffer()
	enc, _ := cb.ComputeCommandEncoder()
	enc.EndEncoding()
	enc.SetComputePipelineState(p) // an ended encoder
	enc2, _ := cb.ComputeCommandEncoder()
	enc2.DispatchThreadgroups(mtl.Size{Width: 1, Height: 1, Depth: 1}, mtl.Size{Width: 1, Height: 1, Depth: 1}) // no pipeline
	enc2.SetComputePipelineState(p)
	enc2.SetBuffer(src, 0, 8, 0)
	enc2.DispatchThreadgroups(mtl.Size{Width: 1, Height: 1, Depth: 1}, mtl.Size{Width: 1, Height: 1, Depth: 1}) // dst unbound
	enc2.SetBuffer(dst, 4, 8, 1)                                                                                // past the end
	cb.Commit()                                                                                                 // with an encoder open
	cb.Commit()                                                                                                 // twice
	ev, _ := d.NewSharedEvent()
	cb2, _ := q.CommandBuffer()
	cb2.EncodeSignalEvent(ev, 2) // no wait for 1
	cb2.Commit()
	for ev.SignaledValue() < 2 {
		time.Sleep(time.Millisecond)
	}
	ev.SetSignaledValue(1) // back
	src.Release()
	src.Release()
	q.Release()
	want := []string{"on an ended encoder", "dispatch without a pipeline", "argument dst unbound", "offset 4 length 8",
		"committed with an encoder open", "commit on", "signalled 2 on the GPU while at 0", "set back from 2 to 1", "released twice"}
	got := strings.Join(d.Violations(), "\n")
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("no violation %q in:\n%s", w, got)
		}
	}
}

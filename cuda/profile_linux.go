package cuda

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"time"
	"unsafe"
)

// Kernel profiling. A decode step is a few hundred short kernels; where its
// GPU time goes decides what to make faster, and no profiler is on the
// machines Loom is measured on. While a profile runs, every launch is
// issued on its own (no CUDA graphs) between two timing events, and the
// time between them is summed per kernel. The events' own cost stays
// outside the measured interval; the gaps between launches do too, so the
// sum is the kernels' time, not the step's.
//
// A launch through purego costs the host some 5 µs, longer than a short
// kernel runs: an idle GPU would reach the start event while the host was
// still launching, and every short kernel would seem to take about that
// long. So the profile holds the stream: a wait on a gate word in pinned
// memory goes before a run of launches, and the host opens the gate once
// the run is queued (at the end of a command buffer, before an upload,
// which may wait for the stream, and before reading the events), so that
// the GPU runs the launches back to back. LOOM_CUDA_PROFILE_HOLD=0 turns
// the hold off.

// profileHoldMax is the most launches queued behind one hold: well within
// what a stream queues without the host blocking on it.
const profileHoldMax = 256

// profiler holds a running profile. With d.mu held (inside do).
type profiler struct {
	free    []uintptr // timing events to reuse
	pending []profiled
	sums    map[string]*KernelTime
	err     error // the first driver error; the profile stops counting

	gate *uint32 // pinned host memory (a device address too: unified addressing); nil: no hold
	seq  uint32  // the value that opens the current hold
	held int     // launches queued behind the current hold; 0: none
}

// profiled is one launch whose events are not yet read.
type profiled struct {
	name       string
	bytes      int64
	start, end uintptr
}

// profileFlush is the number of launches whose events are read together.
const profileFlush = 1024

// StartProfile starts a kernel profile: from now until StopProfile, command
// buffers are issued launch by launch, each launch timed on the GPU.
func (d *Device) StartProfile() error {
	return d.do(func() error {
		if d.prof != nil {
			return errors.New("cuda: a kernel profile is already running")
		}
		p := &profiler{sums: map[string]*KernelTime{}}
		if os.Getenv("LOOM_CUDA_PROFILE_HOLD") != "0" {
			if d.drv.streamWaitValue32.ptr == 0 {
				return errors.New("cuda: the kernel profile needs cuStreamWaitValue32_v2 (a CUDA 12 driver); LOOM_CUDA_PROFILE_HOLD=0 profiles without holding the stream, timing the host's launches too")
			}
			var gate unsafe.Pointer
			if err := d.drv.call(d.drv.memAllocHost, uintptr(unsafe.Pointer(&gate)), 4); err != nil {
				return err
			}
			p.gate = (*uint32)(gate)
			*p.gate = 0
		}
		d.prof = p
		return nil
	})
}

// hold makes stream wait for the gate before the launches that follow,
// unless a hold is already on.
func (p *profiler) hold(d *Device, stream uintptr) {
	if p.gate == nil || p.held > 0 || p.err != nil {
		return
	}
	p.seq++
	// Flags 0: CU_STREAM_WAIT_VALUE_GEQ, (int32)(*gate − seq) ≥ 0.
	if err := d.drv.call(d.drv.streamWaitValue32, stream, uintptr(unsafe.Pointer(p.gate)), uintptr(p.seq), 0); err != nil {
		p.err = fmt.Errorf("cuda: kernel profile: holding the stream: %w", err)
		return
	}
	p.held = 1
}

// release opens the gate of the current hold, if any.
func (p *profiler) release() {
	if p.held > 0 {
		atomic.StoreUint32(p.gate, p.seq)
		p.held = 0
	}
}

// StopProfile ends the profile and returns its kernels, the most GPU time
// first. It waits for the profiled launches to finish.
func (d *Device) StopProfile() ([]KernelTime, error) {
	var out []KernelTime
	err := d.do(func() error {
		p := d.prof
		if p == nil {
			return errors.New("cuda: no kernel profile is running")
		}
		d.prof = nil
		p.release()
		p.flush(d)
		for _, ev := range p.free {
			d.drv.call(d.drv.eventDestroy, ev)
		}
		if p.gate != nil {
			d.drv.call(d.drv.memFreeHost, uintptr(unsafe.Pointer(p.gate)))
		}
		for _, k := range p.sums {
			out = append(out, *k)
		}
		return p.err
	})
	slices.SortFunc(out, func(a, b KernelTime) int { return cmp.Or(cmp.Compare(b.Time, a.Time), cmp.Compare(a.Name, b.Name)) })
	return out, err
}

// event returns a timing event recorded on stream, or 0 after an error.
func (p *profiler) event(d *Device, stream uintptr) uintptr {
	if p.err != nil {
		return 0
	}
	var ev uintptr
	if n := len(p.free); n > 0 {
		ev, p.free = p.free[n-1], p.free[:n-1]
	} else if err := d.drv.call(d.drv.eventCreate, uintptr(unsafe.Pointer(&ev)), 0); err != nil {
		p.err = err
		return 0
	}
	if err := d.drv.call(d.drv.eventRecord, ev, stream); err != nil {
		p.err = err
		p.free = append(p.free, ev)
		return 0
	}
	return ev
}

// add notes launch l, timed between start and end.
func (p *profiler) add(d *Device, l *launch, start, end uintptr) {
	if start == 0 || end == 0 {
		return
	}
	name := l.k.name
	switch fn := l.function(); {
	case fn == l.k.fn:
	case fn == l.k.bulk:
		name += "+bulk"
	default:
		name += "+mma"
	}
	var bytes int64
	for _, a := range l.args {
		bytes += a.Size
	}
	p.pending = append(p.pending, profiled{name, bytes, start, end})
	if p.held > 0 {
		p.held++
	}
	if p.held > profileHoldMax {
		p.release()
	}
	if len(p.pending) >= profileFlush {
		p.release()
		p.flush(d)
	}
}

// flush waits for the pending launches and adds their times to the sums.
func (p *profiler) flush(d *Device) {
	if n := len(p.pending); n > 0 && p.err == nil {
		p.err = d.drv.call(d.drv.eventSynchronize, p.pending[n-1].end)
	}
	for _, l := range p.pending {
		var ms float32
		if p.err == nil {
			if err := d.drv.call(d.drv.eventElapsed, uintptr(unsafe.Pointer(&ms)), l.start, l.end); err != nil {
				p.err = fmt.Errorf("cuda: timing kernel %s: %w", l.name, err)
			}
		}
		k := p.sums[l.name]
		if k == nil {
			k = &KernelTime{Name: l.name}
			p.sums[l.name] = k
		}
		k.Launches++
		k.Time += time.Duration(float64(ms) * float64(time.Millisecond))
		k.Bytes += l.bytes
		p.free = append(p.free, l.start, l.end)
	}
	p.pending = p.pending[:0]
}

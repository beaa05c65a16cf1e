package cuda

import (
	"fmt"
	"time"

	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// MeasureBandwidth copies a buffer of size bytes to another, reps times in
// a row per batch, and returns the best of three batches for each way of
// copying. The buffers should be far larger than the GPU's L2 cache.
func (d *Device) MeasureBandwidth(size int64, reps int) (Bandwidth, error) {
	if size <= 0 || size > 1<<32-1 || reps <= 0 {
		return Bandwidth{}, fmt.Errorf("cuda: bandwidth of %d bytes × %d copies: the size must be in [1, 2^32) and the copies > 0", size, reps)
	}
	src, err := d.NewBuffer(size)
	if err != nil {
		return Bandwidth{}, err
	}
	defer src.Release()
	dst, err := d.NewBuffer(size)
	if err != nil {
		return Bandwidth{}, err
	}
	defer dst.Release()
	q, err := d.NewQueue()
	if err != nil {
		return Bandwidth{}, err
	}
	defer q.Close()
	stream := q.(*queue).stream
	sp, dp := src.(*buffer).ptr, dst.(*buffer).ptr
	// Not zeros: a copy of zeros could be faster than real data.
	if err := d.do(func() error {
		return d.drv.call(d.drv.memsetD32Async, uintptr(sp), 0x3c00abcd, uintptr(size/4), stream)
	}); err != nil {
		return Bandwidth{}, err
	}

	best := func(batch func() error) (float64, error) {
		var top float64
		for range 4 { // the first batch warms up and is not counted
			t := time.Now()
			if err := batch(); err != nil {
				return 0, err
			}
			if gbs := 2 * float64(size) * float64(reps) / time.Since(t).Seconds() / 1e9; gbs > top {
				top = gbs
			}
		}
		return top, nil
	}
	var bw Bandwidth
	bw.Driver, err = best(func() error {
		return d.do(func() error {
			for range reps {
				if err := d.drv.call(d.drv.memcpyDtoDAsync, uintptr(dp), uintptr(sp), uintptr(size), stream); err != nil {
					return err
				}
			}
			return d.drv.call(d.drv.streamSynchronize, stream)
		})
	})
	if err != nil {
		return Bandwidth{}, err
	}
	k, err := d.Kernel("copy_bytes")
	if err != nil {
		return Bandwidth{}, err
	}
	copyArgs := []runtime.BufferArg{{Buffer: src, Size: size, Access: primitives.Read, Name: "src"}, {Buffer: dst, Size: size, Access: primitives.Write, Name: "dst"}}
	dispatch := primitives.CopyDispatch(primitives.In(0), primitives.Out(0), size)
	ev := q.NewEvent()
	var seq uint64
	bw.Kernel, err = best(func() error {
		cb := q.NewCommandBuffer()
		pass := cb.NewPass()
		for range reps {
			pass.Dispatch(k, dispatch.Grid, dispatch.Group, copyArgs, dispatch.Params, 0)
		}
		pass.End()
		seq++
		cb.Signal(ev, seq)
		cb.Commit()
		ev.Wait(seq)
		return cb.Err()
	})
	return bw, err
}

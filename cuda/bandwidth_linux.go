package cuda

import (
	"fmt"
	"time"

	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// MeasureBandwidth copies a buffer of size bytes to another, and sums its
// float32s, reps times in a row per batch, and returns the best of three
// batches for each. The buffers should be far larger than the GPU's L2
// cache.
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

	// best runs batch four times and returns the best GB/s of the last
	// three (the first warms up), for bytes moved per copy.
	best := func(bytes int64, batch func() error) (float64, error) {
		var top float64
		for i := range 4 {
			t := time.Now()
			if err := batch(); err != nil {
				return 0, err
			}
			if gbs := float64(bytes) * float64(reps) / time.Since(t).Seconds() / 1e9; i > 0 && gbs > top {
				top = gbs
			}
		}
		return top, nil
	}
	var bw Bandwidth
	bw.Driver, err = best(2*size, func() error {
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
	ev := q.NewEvent()
	var seq uint64
	// launch times reps dispatches of one kernel in a command buffer.
	launch := func(name string, bytes int64, grid, group primitives.Dim3, args []runtime.BufferArg, params any) (float64, error) {
		k, err := d.Kernel(name)
		if err != nil {
			return 0, err
		}
		return best(bytes, func() error {
			var l runtime.CommandList
			l.NewPass()
			for range reps {
				l.Dispatch(k, grid, group, args, params, 0)
			}
			seq++
			l.Signal(ev, seq)
			sub := q.Submit(&l)
			ev.Wait(seq)
			return sub.Err()
		})
	}
	src0 := runtime.BufferArg{Buffer: src, Size: size, Access: primitives.Read, Name: "src"}
	cp := primitives.CopyDispatch(primitives.In(0), primitives.Out(0), size)
	bw.Kernel, err = launch("copy_bytes", 2*size, cp.Grid, cp.Group, []runtime.BufferArg{src0, {Buffer: dst, Size: size, Access: primitives.Write, Name: "dst"}}, cp.Params)
	if err != nil {
		return Bandwidth{}, err
	}
	// Sum rows of 64 Ki floats into dst: a block per row, the reads
	// coalesced, the writes negligible.
	rows := size / 4 / (64 << 10)
	if rows == 0 {
		return bw, nil
	}
	sum := &primitives.AxisParams{Outer: uint32(rows), N: 64 << 10, Inner: 1}
	bw.Read, err = launch("sum_f32", rows*4*(64<<10), primitives.Dim3{X: int(rows), Y: 1, Z: 1}, primitives.Dim3{X: primitives.ReduceThreads, Y: 1, Z: 1},
		[]runtime.BufferArg{{Buffer: src, Size: rows * 4 * (64 << 10), Access: primitives.Read, Name: "a"}, {Buffer: dst, Size: rows * 4, Access: primitives.Write, Name: "out"}}, sum)
	return bw, err
}

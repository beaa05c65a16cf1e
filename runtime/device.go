package runtime

import (
	"github.com/loomrt/loom/primitives"
)

// Device is a compute device: the CPU, a Metal GPU or a CUDA GPU.
//
// The interface is modelled on Metal, the strictest target: buffers carry no
// automatic hazard tracking, command buffers of one queue and passes of one
// command buffer may run concurrently, and dispatches of one pass may run
// concurrently unless a barrier separates them. Only fences order passes, and
// only events tell the host that work has completed. The runtime's encoder
// is the one place that turns data dependencies into those orderings.
type Device interface {
	Caps() primitives.Caps
	// NewBuffer allocates nbytes of device memory.
	NewBuffer(nbytes int64) (Buffer, error)
	NewQueue() (Queue, error)
	// Kernel returns the kernel with the given name, or an error that says the
	// device does not implement it (wrapping ErrUnsupportedKernel).
	Kernel(name string) (Kernel, error)
}

// Kernel is a device's handle to a compiled kernel.
type Kernel interface {
	Name() string
}

// Buffer is device memory. Write, Read and Release are host operations: the
// runtime calls them only when no device work that touches the buffer can be
// in flight, as established by an Event.
type Buffer interface {
	Len() int64
	Write(offset int64, src []byte) error
	Read(offset int64, dst []byte) error
	// Release frees the memory. The buffer must not be used again.
	Release()
}

// Queue creates command buffers, fences and events. Command buffers are
// committed in order but may execute concurrently.
type Queue interface {
	NewCommandBuffer() CommandBuffer
	NewFence() Fence
	NewEvent() Event
	// Close releases the queue once the work committed so far is done.
	// Closing twice is harmless; a command buffer committed afterwards
	// completes with an error wrapping ErrClosed.
	Close()
}

// CommandBuffer is a batch of passes submitted together.
type CommandBuffer interface {
	// NewPass starts a concurrent compute pass. The previous pass must have
	// ended.
	NewPass() Encoder
	// Signal makes the command buffer set ev to value once all its work has
	// completed and ev has reached value-1. The runtime signals each command
	// buffer's sequence number, so the event's value is a completion frontier:
	// every command buffer up to it has completed.
	Signal(ev Event, value uint64)
	// Commit submits the command buffer. It may not be used afterwards except
	// for Err.
	Commit()
	// Err is the error the command buffer's execution hit, if any; valid once
	// an event it signals shows it completed. A failed dispatch is reported
	// as a *DispatchError, so that the runtime can name the op.
	Err() error
}

// BufferArg binds a range of a buffer to a kernel parameter.
type BufferArg struct {
	Buffer Buffer
	Offset int64
	Size   int64
	Access primitives.Access
	Name   string
}

// Encoder encodes one concurrent compute pass.
type Encoder interface {
	// Dispatch encodes a kernel launch. params may be nil.
	Dispatch(k Kernel, grid, group primitives.Dim3, args []BufferArg, params any, sharedBytes int)
	// Barrier orders every dispatch encoded before it in this pass before
	// every dispatch encoded after it.
	Barrier()
	// WaitFence makes the dispatches encoded after it wait until the most
	// recent UpdateFence of f encoded before it has been reached.
	WaitFence(f Fence)
	// UpdateFence marks f once every dispatch encoded before it in this pass
	// has completed. A pass must not wait on a fence it updates.
	UpdateFence(f Fence)
	End()
}

// Fence orders passes, within and across command buffers of a queue.
type Fence any

// Event is a monotonically increasing counter that command buffers signal
// and the host observes.
type Event interface {
	// Wait blocks the host until the value is at least v.
	Wait(v uint64)
	// Value returns the current value without blocking.
	Value() uint64
}

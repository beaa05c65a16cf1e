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

// Queue executes command lists and creates fences and events. Lists are
// submitted in order but may execute concurrently.
type Queue interface {
	// Submit commits a command list (one command buffer). The queue only
	// reads the list and keeps it until its work has completed; nobody
	// modifies it afterwards, and the same commands may be submitted again
	// (a replay) before that.
	Submit(l *CommandList) Submission
	NewFence() Fence
	NewEvent() Event
	// Close releases the queue once the work committed so far is done.
	// Closing twice is harmless; a command buffer committed afterwards
	// completes with an error wrapping ErrClosed.
	Close()
}

// Submission is a submitted command list.
type Submission interface {
	// Err is the error the list's execution hit, if any; valid once an
	// event it signals shows it completed. A failed dispatch is reported
	// as a *DispatchError (Index counts the list's dispatches, not its
	// other commands), so that the runtime can name the op.
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

package runtime

import "errors"

// DispatchError is how a device reports, through CommandBuffer.Err, that a
// dispatch failed: Index counts the dispatches encoded into the command
// buffer, from 0. The runtime wraps it in a graph.Error that names the op
// and the call site that built it.
type DispatchError struct {
	Index int
	Err   error
}

func (e *DispatchError) Error() string { return e.Err.Error() }

// Unwrap returns the kernel's error.
func (e *DispatchError) Unwrap() error { return e.Err }

// Errors an Eval can return, matchable with errors.Is however much context
// the error carries (a graph.Error naming the op and its call site wraps
// them).
var (
	// ErrClosed: the runtime has been closed.
	ErrClosed = errors.New("runtime: closed")
	// ErrMemoryLimit: the evaluation needs more device memory than
	// Options.MemoryLimit allows.
	ErrMemoryLimit = errors.New("memory limit exceeded")
	// ErrUnsupportedKernel: the device does not implement a kernel a
	// primitive lowered to. Devices wrap it in the error Kernel returns.
	ErrUnsupportedKernel = errors.New("unsupported kernel")
)

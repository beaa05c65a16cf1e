package runtime

import "errors"

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

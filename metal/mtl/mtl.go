// Package mtl is the Objective-C side of Loom's Metal device: the few
// Metal objects and calls the device makes, one method per selector it
// uses, as interfaces. On macOS, Default returns the system's device
// reached through purego (the *_darwin.go files: the only code of the
// Metal backend that needs a Mac). Everything that decides what to call —
// command buffers, passes, fences, event values, completion, caches,
// status records — is package metal's, platform-independent Go, which
// internal/mtlfake runs on Linux over a recording fake of these
// interfaces.
//
// Objects handed to a method are of the same implementation as the
// receiver.
package mtl

import "errors"

// Size is MTLSize.
type Size struct{ Width, Height, Depth int }

// ErrNoFunction is what Library.NewComputePipeline returns (wrapped) when
// the library has no function of that name.
var ErrNoFunction = errors.New("no such function in the library")

// GPUFamilyApple7 is MTLGPUFamilyApple7 (M1 and later): SIMD-group
// matrices.
const GPUFamilyApple7 = 1007

// Device is an id<MTLDevice>.
type Device interface {
	Name() string
	SupportsFamily(family int) bool
	MaxThreadsPerThreadgroup() Size
	MaxThreadgroupMemoryLength() int
	// GPUCoreCount is the IORegistry's gpu-core-count of the GPU, or 0
	// when the system does not report one (it is not in Metal's API).
	GPUCoreCount() int
	// NewLibraryWithSource compiles MSL 3.1 with fast math off (it may
	// drop NaN and infinity handling that the ops document: Maximum lets
	// NaN win, softmax of -inf masks); the error is the compiler's.
	NewLibraryWithSource(src string) (Library, error)
	// NewBuffer returns n bytes of shared storage without hazard
	// tracking (newBufferWithLength:options:).
	NewBuffer(n int) (Buffer, error)
	NewCommandQueue() (CommandQueue, error)
	NewFence() (Fence, error)
	NewSharedEvent() (SharedEvent, error)
	// AutoreleasePool runs fn inside an autorelease pool on one locked OS
	// thread, so that the autoreleased objects fn makes are freed when it
	// returns.
	AutoreleasePool(fn func())
}

// Library is an id<MTLLibrary>.
type Library interface {
	// NewComputePipeline makes the pipeline of the named function
	// (newFunctionWithName:, then newComputePipelineStateWithFunction:error:).
	NewComputePipeline(name string) (Pipeline, error)
}

// Pipeline is an id<MTLComputePipelineState>.
type Pipeline interface {
	ThreadExecutionWidth() int
	MaxTotalThreadsPerThreadgroup() int
}

// Buffer is a shared-storage id<MTLBuffer>.
type Buffer interface {
	// Contents is the buffer's memory, mapped into this process.
	Contents() []byte
	// CopyToContents and CopyFromContents copy host bytes into and out of
	// Contents: the host's accesses to the runtime's buffers (a fake
	// records them).
	CopyToContents(off int, src []byte)
	CopyFromContents(off int, dst []byte)
	Release()
}

// CommandQueue is an id<MTLCommandQueue>.
type CommandQueue interface {
	// CommandBuffer returns a new command buffer with unretained
	// references (commandBufferWithUnretainedReferences), retained until
	// its completed handler has run.
	CommandBuffer() (CommandBuffer, error)
	Release()
}

// CommandBuffer is an id<MTLCommandBuffer>.
type CommandBuffer interface {
	// ComputeCommandEncoder starts a concurrent compute pass
	// (computeCommandEncoderWithDispatchType: concurrent).
	ComputeCommandEncoder() (ComputeCommandEncoder, error)
	EncodeWaitForEvent(e SharedEvent, value uint64)
	EncodeSignalEvent(e SharedEvent, value uint64)
	// AddCompletedHandler makes fn run once the command buffer has
	// completed, successfully or not.
	AddCompletedHandler(fn func())
	Commit()
	// Error is the command buffer's error once it has completed with
	// status MTLCommandBufferStatusError, else nil.
	Error() error
}

// ComputeCommandEncoder is an id<MTLComputeCommandEncoder>.
type ComputeCommandEncoder interface {
	SetComputePipelineState(p Pipeline)
	// SetBuffer binds length bytes of b from offset. Metal takes no
	// length (a kernel's parameters bound what it touches) and the darwin
	// layer drops it; a fake that runs a CPU kernel in place of the MSL
	// one needs it.
	SetBuffer(b Buffer, offset, length, index int)
	SetBytes(b []byte, index int)
	SetThreadgroupMemoryLength(n, index int)
	DispatchThreadgroups(grid, group Size)
	// MemoryBarrierWithScopeBuffers is memoryBarrierWithScope:
	// MTLBarrierScopeBuffers.
	MemoryBarrierWithScopeBuffers()
	UpdateFence(f Fence)
	WaitForFence(f Fence)
	EndEncoding()
}

// Fence is an id<MTLFence>.
type Fence interface{ Release() }

// SharedEvent is an id<MTLSharedEvent>.
type SharedEvent interface {
	SignaledValue() uint64
	SetSignaledValue(v uint64)
	Release()
}

// Package primitives defines the Primitive interface and Loom's built-in
// primitives. A primitive knows two things: the dtype and shape of its
// outputs, and how to lower itself to backend-neutral dispatches — a kernel
// name, a grid, and arguments that name buffers with an access mode.
//
// A primitive never sees a fence, a barrier or a command buffer: ordering is
// the runtime encoder's job alone, and it derives that ordering from the
// access modes declared here.
package primitives

import (
	"fmt"

	"github.com/loomrt/loom/graph"
)

// Primitive is an operation of the graph.
//
// Implementations should be small comparable value types: the runtime may
// compare primitives to reuse a plan. A primitive whose outputs live in an
// input's buffer also implements graph.Aliaser; one with several outputs
// implements MultiOutput.
type Primitive interface {
	graph.Primitive
	// Outputs returns the dtype and shape of each output for the given inputs,
	// or an error that says which input is wrong and why.
	Outputs(inputs []graph.Spec) ([]graph.Spec, error)
	// Lower appends the dispatches that compute the outputs to l.
	Lower(l *Lowering) error
}

// MultiOutput is implemented by primitives with more than one output, so
// that a failed shape rule still yields an array (in an error state) for
// each output.
type MultiOutput interface {
	NumOutputs() int
}

// NumOutputs is how many outputs prim has: 1 unless it implements
// MultiOutput.
func NumOutputs(prim Primitive) int {
	if m, ok := prim.(MultiOutput); ok {
		return m.NumOutputs()
	}
	return 1
}

// Dim3 is a grid or threadgroup size.
type Dim3 struct{ X, Y, Z int }

// Count is X·Y·Z.
func (d Dim3) Count() int { return d.X * d.Y * d.Z }

// Access says how a dispatch uses a buffer.
type Access uint8

// Access modes. ReadWrite is both a read and a write for hazard tracking.
const (
	Read Access = 1 << iota
	Write
	ReadWrite = Read | Write
)

func (a Access) String() string {
	switch a {
	case Read:
		return "read"
	case Write:
		return "write"
	case ReadWrite:
		return "read-write"
	}
	return fmt.Sprintf("Access(%d)", uint8(a))
}

// Writes reports whether the access writes.
func (a Access) Writes() bool { return a&Write != 0 }

// Caps describes the device a graph is lowered for. Primitives use it to
// choose between lowerings (the split-KV decision, tile sizes).
type Caps struct {
	Device             string // "cpu", "metal", "cuda"
	SIMDWidth          int    // threads that execute in lockstep
	MaxThreadsPerGroup int
	MaxSharedBytes     int // threadgroup memory per group
	Cores              int // GPU cores (Metal), multiprocessors (CUDA) or CPU cores

	// SplitKV is the device's rule for choosing split-KV paged attention
	// automatically.
	SplitKV SplitKVGate
	// Partitions is how split-KV attention cuts a row's keys; the zero
	// value is partitions of AttentionPartitionSize keys.
	Partitions AttentionPartitioning
	// AttentionWarps is the SIMD groups of a GPU paged-attention
	// threadgroup; 0 means AttentionWarps.
	AttentionWarps int
	// AttentionGridBlocks, where set, bounds the threadgroups of split-KV
	// attention at that many (or one a row): a threadgroup then takes
	// several of a row's partitions (the kernel must loop over them: the
	// CUDA device's). 0 means a threadgroup a partition.
	AttentionGridBlocks int
	// GEMVMaxRows is the most rows per output matrix the device's GEMV
	// kernel takes (reading each weight once for all of them); 0 or 1 means
	// matrix-vector products only.
	GEMVMaxRows int
	// GatedGEMVMaxRows is the most rows of x that MatMulSiLUMul lowers to
	// the device's one-dispatch gated kernel (matmul_silu_mul_<dt>); above
	// it, or where it is 0, the product goes to a scratch buffer and
	// silu_mul reads it back (two dispatches).
	GatedGEMVMaxRows int
	// TensorCores puts float16 and bfloat16 matrix products with weights
	// stored [N, K] on the device's tensor cores (MatMulParams.MMA, taken
	// by the CUDA device only; on unless the environment has
	// LOOM_CUDA_MMA=0).
	TensorCores bool
	// GEMVSplitK lets several SIMD groups of the GEMV kernel share one
	// output's K where the outputs are few for the device's cores (CUDA;
	// the kernel derives the split from its grid).
	GEMVSplitK bool
	// GEMVStream lets the tensor-core GEMV of 2 to 8 rows of x stream its
	// weights where its tile loop would take more than one wave of blocks
	// (an lm_head; mmaStreams says where and why): one stream of weight
	// loads per warp over a grid of at most two blocks a multiprocessor
	// (MatMulParams.Stream, mmaStreamGrid); the sums are the same. CUDA
	// only; on unless the environment has LOOM_CUDA_GEMV_STREAM=0.
	GEMVStream bool
	// GEMVBulk, where its Stages are set, runs the tensor-core GEMV and
	// gated GEMV of 1 to 8 rows of x (the norms fused into them too) in
	// their bulk variant (bulkGEMVPlan; MatMulParams.Bulk): weight rows
	// streamed into shared memory by 1-D bulk copies, about a block a core.
	// The sums are the same. CUDA on sm_90 and later, LOOM_CUDA_GEMV_BULK.
	GEMVBulk GEMVBulk
	// ClusterGEMVRows is the most rows of x that the tensor-core GEMV and
	// gated GEMV take in their cluster variant (MatMulParams.Ring,
	// ringGEMV: from 9 rows on, where its grid is at most a block a core),
	// weights and x copied into shared memory a slice per block of a
	// cluster of 8. 0: none (CUDA before sm_90, or LOOM_CUDA_RING_ROWS=0).
	// Above MatMulMMARows it also takes products that would otherwise go
	// to the tiled kernel.
	ClusterGEMVRows int
	// QuantWarpRows is the most outputs (up to 2) one SIMD group of the
	// quantized GEMV takes (QuantizedMatMul of one row of x) for the
	// lowering's grid (CUDA's kernel derives its own, up to 4, from the
	// grid): they share each load of x and each widening of it, where the
	// outputs are many enough to keep two threadgroups a core; 0 or 1
	// means one. Above 1 it also says that the kernel loops over its
	// outputs, so that the lowering caps its grid at two threadgroups a
	// core.
	QuantWarpRows int
	// QuantGatedMaxRows is the most rows of x that QuantizedMatMulSiLUMul
	// lowers to the one-dispatch gated kernel (qmatmul_silu_mul_<dt>_q<bits>);
	// above it, or where it is 0, the quantized matmul goes to a scratch
	// buffer and silu_mul reads it back.
	QuantGatedMaxRows int
	// SampleSplit lowers a sampling over more than SampleGroupElems tokens
	// to the sampling kernel's two passes (SampleFirst over many
	// threadgroups per sequence, then SampleFinal), which only the CUDA
	// kernel implements; otherwise one threadgroup per sequence reads its
	// whole row, which is slow on a GPU for a large vocabulary.
	SampleSplit bool
}

// SplitKVGate is a device's rule for SplitAuto, measured with `loom bench
// attention -gate` where the device could be run (the CPU and CUDA; Metal's
// is a reference rule, unmeasured): split when the context spans two
// partitions or more and the single pass has fewer than
// GroupsPerCore·Cores groups of work. A group is a query token, or with
// PerHead a query token and KV head (a GPU runs one per threadgroup; the CPU
// kernels keep a token's KV heads together). GroupsPerCore 0 sets no
// occupancy limit: the device splits whenever there are partitions to split.
type SplitKVGate struct {
	GroupsPerCore int
	PerHead       bool
}

// RefKind says what buffer an argument refers to.
type RefKind uint8

// The buffers a dispatch can name.
const (
	InputRef RefKind = iota
	OutputRef
	ScratchRef
)

// Ref names one of a node's buffers: an input, an output or a scratch buffer.
type Ref struct {
	Kind  RefKind
	Index int
}

// Arg is one buffer argument of a dispatch: the buffer Ref, bound to the
// kernel's argument of that position, whose name and access mode come from
// the catalog (Lowering.Dispatch). Bytes [Offset, Offset+Size) of the
// referenced buffer are accessed; Size 0 means to the end.
type Arg struct {
	Name   string // the kernel parameter's name
	Ref    Ref
	Access Access
	Offset int64
	Size   int64
}

// Dispatch is one kernel launch, made by Lowering.Dispatch. Buffer arguments
// are bound at indices 0..len(Args)-1 in order; Params, if not nil, is bound
// at index len(Args).
type Dispatch struct {
	Kernel string
	Grid   Dim3 // threadgroups
	Group  Dim3 // threads per threadgroup
	Args   []Arg
	// Params is a pointer to a struct of 4-byte fields (int32, uint32,
	// float32, or arrays of them) so that its memory layout is the same in Go,
	// MSL and CUDA C. CPU kernels type-assert it.
	Params      any
	SharedBytes int
}

// Lowering is the context a primitive lowers into: the specs of its inputs
// and outputs, the device caps, and the dispatches and scratch it asks for.
type Lowering struct {
	Inputs  []graph.Spec
	Outputs []graph.Spec
	Caps    Caps

	Dispatches []Dispatch
	Scratch    []int64        // sizes in bytes of the scratch buffers requested
	Zeroed     []bool         // per scratch buffer: asked for with NewZeroedScratch
	Counters   map[string]int // statistics the primitive reports, such as the attention path taken
}

// NewLowering returns a Lowering for the given specs and caps.
func NewLowering(inputs, outputs []graph.Spec, caps Caps) *Lowering {
	return &Lowering{Inputs: inputs, Outputs: outputs, Caps: caps}
}

// Reset clears the results for reuse with new specs.
func (l *Lowering) Reset(inputs, outputs []graph.Spec) {
	l.Inputs, l.Outputs = inputs, outputs
	l.Dispatches, l.Scratch, l.Zeroed = l.Dispatches[:0], l.Scratch[:0], l.Zeroed[:0]
	clear(l.Counters)
}

// In refers to input i.
func In(i int) Ref { return Ref{InputRef, i} }

// Out refers to output i.
func Out(i int) Ref { return Ref{OutputRef, i} }

// NewScratch asks the runtime for a scratch buffer of nbytes that lives for
// this node's dispatches only, and returns a reference to it. The runtime
// tracks scratch buffers exactly like any other buffer.
func (l *Lowering) NewScratch(nbytes int64) Ref {
	l.Scratch = append(l.Scratch, nbytes)
	l.Zeroed = append(l.Zeroed, false)
	return Ref{ScratchRef, len(l.Scratch) - 1}
}

// NewZeroedScratch is NewScratch for a buffer whose bytes are all zero when
// the node's dispatches start, which they must leave all zero when they
// end, error or not (such as counters that the last of a grid's
// threadgroups to use them resets). The runtime keeps such buffers apart
// and zeroes one only when it allocates it, so a replayed step has no
// dispatch or copy to clear them.
func (l *Lowering) NewZeroedScratch(nbytes int64) Ref {
	l.Scratch = append(l.Scratch, nbytes)
	l.Zeroed = append(l.Zeroed, true)
	return Ref{ScratchRef, len(l.Scratch) - 1}
}

// Count adds n to the named statistic.
func (l *Lowering) Count(name string, n int) {
	if l.Counters == nil {
		l.Counters = map[string]int{}
	}
	l.Counters[name] += n
}

// Groups is the number of groups of size g that cover n items.
func Groups(n, g int) int { return (n + g - 1) / g }

package cuda

import (
	"fmt"
	"os"
	"reflect"
	goruntime "runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// Device is a CUDA GPU.
//
// A CUDA context is current per OS thread: the calling goroutine locks its
// thread and makes the context current for each call into the driver (see
// do and current). The device's own calls (launches, copies, the kernel
// parameter arena) are serialised by mu; a host waiting for a command
// buffer blocks in cuEventSynchronize outside it, so that it does not hold
// up another goroutine's launches (EvalAsync encodes the next step while
// the previous one is awaited). (An owner goroutine that made every call,
// and a waiter goroutine for the waits, cost four wake-ups of parked
// threads per Eval: 85–93 µs for a one-dispatch Eval on an H200 machine.)
type Device struct {
	drv     *driver
	ctx     uintptr // the primary context of device 0
	cuDev   int32
	name    string
	arch    string // compute capability, such as "90"
	major   int    // its major number, such as 9
	caps    primitives.Caps
	maxGrid [3]int
	unified bool // unified addressing: kernels read pinned host memory through the host's pointers

	mu      sync.Mutex // held by do
	modules []uintptr
	kernels map[string]*kernel // the built-in kernels; not changed after Open
	nvrtc   *nvrtc

	// The kernels compiled at first use (lazy_linux.go): the variants'
	// and those registered with their own CUDA source, and the failures,
	// by name; and their modules, by cache key.
	lazyMu      sync.Mutex
	lazy        map[string]lazyKernel
	lazyModules map[string]lazyModule
	// arena is pinned host memory where do's caller lays out each launch's
	// kernel parameters (cuLaunchKernel copies them before returning), and
	// where small reads land before they are copied to the caller (Read).
	arena    unsafe.Pointer
	transfer uintptr // the stream host reads and writes use
	closed   atomic.Bool

	small      smallBuffers
	graphs     atomic.Bool // command buffers of a repeated structure run as CUDA graphs (graph_linux.go)
	replays    bool        // with graphs, replayed lists run as their own execs (replay_linux.go); set by Open
	bulkEarly  bool        // the bulk GEMV copies weights before grid_dependency_wait where that is safe (bulkearly_linux.go); set by Open
	pdl        atomic.Bool // graphs built from now on chain their kernel nodes programmatically (graph_linux.go)
	prof       *profiler   // a running kernel profile (profile_linux.go), with mu held
	graphStats struct {
		launches, replays, captures, updates, evictions, failures, programmatic atomic.Int64
	}
	hostTimes [hostClasses]hostClock // the host's time in the device's calls (hosttime_linux.go)

	readMode readMode // how Read copies (LOOM_CUDA_READ)

	// cuBLASLt (cublaslt_linux.go): the library and its handle (nil where
	// unavailable, ltErr says why), the fewest rows of a product it takes,
	// the stream its calls in graphs are captured on (made on first use),
	// and its counts.
	lt       *cublasLt
	ltErr    error
	ltRows   atomic.Int64
	ltStream uintptr
	ltStats  struct {
		calls, captures, failures, unplanned atomic.Int64
		lastErr                              atomic.Pointer[error]
	}
}

// arenaBytes is the size of the launch-parameter arena.
const arenaBytes = 4096

// Open opens CUDA device 0 and compiles the kernels for it. If this machine
// has no CUDA driver or device, the error satisfies IsUnavailable.
//
// Command buffers of a repeated structure run as CUDA graphs (see
// SetGraphs), the lists replays submit again each as its own graph exec
// (replay_linux.go), float16 and bfloat16 matrix products with weights
// stored [N, K] on tensor cores (Caps.TensorCores), and MatMulSiLUMul up
// to Caps.GatedGEMVMaxRows rows of x as the gated GEMV. Each but the
// replayed lists' execs was measured on an H100 (docs/BENCHMARKS.md). For
// bisecting, the environment turns them off: LOOM_CUDA_GRAPHS=0,
// LOOM_CUDA_REPLAY=0 (replayed lists go through the structure cache like
// any other), LOOM_CUDA_MMA=0, LOOM_CUDA_GATED_ROWS=0 (or N rows),
// LOOM_CUDA_QUANT_GATED_ROWS=0 (Caps.QuantGatedMaxRows; or N rows).
// LOOM_CUDA_PARTITIONS=keys/max sets split-KV attention's partitioning
// (Caps.Partitions; 512/0 is the other devices'). For measurement, the
// attention kernels (kernels/attention.cu) take
// LOOM_CUDA_ATTENTION_WARPS=8: blocks of 8 warps instead of 4
// (Caps.AttentionWarps); LOOM_CUDA_ATTENTION_BLOCKS=1, 2, 3 or 4: launch
// bounds of that many blocks a multiprocessor for every head size (the
// default: 4 blocks of 4 warps, 3 at head size 256, 2 of 8);
// LOOM_CUDA_ATTENTION_CHUNK=256, 512 or 2048 (4 warps only): float32
// chunks of K rows of at most that many bytes instead of 1,024, with more
// (fewer) stages in their rings; LOOM_CUDA_ATTENTION_TRANSPOSE=shfl: the
// tensor-core path's P transposed by shuffles instead of movmatrix;
// LOOM_CUDA_ATTENTION_CHAINS=2 or 4: its scores summed in that many
// accumulators (not yet run on a GPU); and
// LOOM_CUDA_ATTENTION_GRID=N:
// the split path's grid at about N blocks, each taking several
// partitions, instead of a block a partition (Caps.AttentionGridBlocks).
// For the host's side of a step: LOOM_CUDA_SCHED=spin, yield or blocking
// sets how a host thread waits in a synchronising call (the primary
// context's scheduling flag; the driver's default is auto: spin while the
// process has fewer contexts than cores; not measured on a GPU yet), and
// LOOM_CUDA_READ=pageable copies small reads straight into the caller's
// memory instead of through pinned memory (Buffer Read).
//
// Programmatic dependent launch in the graphs (SetPDL) is on where the
// driver and the GPU can do it (measured on an H100: 8–9 % off a batch-1
// decode step, 2–7 % at batch 8 and 32; docs/CUDA.md). LOOM_CUDA_PDL=0
// turns it off; LOOM_CUDA_PDL=1 makes Open fail where it is unsupported.
// LOOM_CUDA_GEMV_STREAM=0 turns off the streaming tensor-core GEMV
// (Caps.GEMVStream, measured faster on the lm_head at 2 to 8 rows), and
// LOOM_CUDA_RING_ROWS=0 (or N rows) the cluster GEMV of 9 to 256 rows
// (Caps.ClusterGEMVRows, sm_90 and later). LOOM_CUDA_GEMV_BULK=1 turns on
// the bulk GEMV of 1 to 8 rows (Caps.GEMVBulk, sm_90 and later, NVRTC 12
// or later; envBulk); with it on, LOOM_CUDA_BULK_EARLY=0 keeps every
// launch of it from copying weights before grid_dependency_wait, which it
// otherwise does where that is safe (bulkearly_linux.go).
//
// cuBLASLt (cublaslt_linux.go) is off unless asked for (its products ran
// on an H100, but not yet the model's and server's GPU tests with it):
// LOOM_CUBLASLT_ROWS=N (N > 0) runs the plain matrix products of N rows
// and more in it, LOOM_CUBLASLT=FILE or LOOM_CUBLASLT=1 those of 65 rows
// and more (FILE names the library, else libcublasLt.so.13, .12 or .11 on
// the loader's path or in /usr/local/cuda*/lib64; with 1 Open fails
// without it), LOOM_CUBLASLT=0 keeps it off. N below 65 also lowers the
// gated and cluster GEMVs' rows (Caps.GatedGEMVMaxRows,
// Caps.ClusterGEMVRows) under N, so that those products reach it.
func Open() (*Device, error) {
	drv, err := loadDriver()
	if err != nil {
		return nil, err
	}
	if err := drv.call(drv.init, 0); err != nil {
		return nil, err
	}
	var count int32
	if err := drv.call(drv.deviceGetCount, uintptr(unsafe.Pointer(&count))); err != nil {
		return nil, err
	}
	if count == 0 {
		return nil, fmt.Errorf("cuda: the driver reports no device: %w", errNoDriver)
	}
	d := &Device{drv: drv}
	if err := drv.call(drv.deviceGet, uintptr(unsafe.Pointer(&d.cuDev)), 0); err != nil {
		return nil, err
	}
	if err := d.describe(); err != nil {
		return nil, err
	}
	d.caps.TensorCores = os.Getenv("LOOM_CUDA_MMA") != "0"
	d.caps.SampleSplit = os.Getenv("LOOM_CUDA_SAMPLE_SPLIT") != "0"
	d.caps.GEMVStream = os.Getenv("LOOM_CUDA_GEMV_STREAM") != "0"
	if d.caps.TensorCores {
		// On tensor cores the gated GEMV is the tensor-core GEMV's kernel
		// with both halves' rows in one tile, which reads the weights once
		// for up to its MatMulMMARows rows, as the matmul does.
		d.caps.GatedGEMVMaxRows = primitives.MatMulMMARows
	}
	if d.caps.TensorCores && d.arch >= "90" && len(d.arch) == 2 {
		// The cluster GEMV (sm_90 clusters) from 9 rows to ringMaxRows.
		d.caps.ClusterGEMVRows = ringMaxRows
	}
	if err := envRows("LOOM_CUDA_RING_ROWS", &d.caps.ClusterGEMVRows); err != nil {
		return nil, err
	}
	if d.caps.GEMVBulk, err = envBulk(d.caps.TensorCores && d.arch >= "90" && len(d.arch) == 2); err != nil {
		return nil, err
	}
	if err := envRows("LOOM_CUDA_GATED_ROWS", &d.caps.GatedGEMVMaxRows); err != nil {
		return nil, err
	}
	if err := envRows("LOOM_CUDA_QUANT_GATED_ROWS", &d.caps.QuantGatedMaxRows); err != nil {
		return nil, err
	}
	// Read by variants.go as kernels/attention.cu's macros: its launch
	// bounds, its chunks (2048 with 4 warps), ATTENTION_S_CHAINS and
	// transpose8.
	for _, e := range []struct {
		name   string
		values []string
		want   string
	}{
		{"LOOM_CUDA_ATTENTION_BLOCKS", []string{"1", "2", "3", "4"}, "1, 2, 3 or 4 blocks a multiprocessor"},
		{"LOOM_CUDA_ATTENTION_CHUNK", []string{"256", "512", "1024", "2048"}, "256, 512, 1024 or 2048 bytes of K rows a chunk"},
		{"LOOM_CUDA_ATTENTION_CHAINS", []string{"1", "2", "4"}, "1, 2 or 4 accumulators of a chunk's scores"},
		{"LOOM_CUDA_ATTENTION_TRANSPOSE", []string{"shfl"}, "shfl (shuffles instead of movmatrix) or nothing"},
	} {
		if v := os.Getenv(e.name); v != "" && !slices.Contains(e.values, v) {
			return nil, fmt.Errorf("cuda: %s=%q: want %s", e.name, v, e.want)
		}
	}
	if v, ok := os.LookupEnv("LOOM_CUDA_ATTENTION_WARPS"); ok && v != "" { // read by variants too (kernels/attention.cu's ATTENTION_WARPS)
		if v != "4" && v != "8" {
			return nil, fmt.Errorf("cuda: LOOM_CUDA_ATTENTION_WARPS=%q: want 4 or 8 warps a block", v)
		}
		d.caps.AttentionWarps = int(v[0] - '0')
	}
	if v, ok := os.LookupEnv("LOOM_CUDA_ATTENTION_GRID"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("cuda: LOOM_CUDA_ATTENTION_GRID=%q: want a number of blocks ≥ 0 (0: a block a partition)", v)
		}
		d.caps.AttentionGridBlocks = n
	}
	if v, ok := os.LookupEnv("LOOM_CUDA_PARTITIONS"); ok {
		var pt primitives.AttentionPartitioning
		if _, err := fmt.Sscanf(v, "%d/%d", &pt.Keys, &pt.MaxPartitions); err != nil || pt.Keys < 32 || pt.Keys%32 != 0 || pt.MaxPartitions < 0 {
			return nil, fmt.Errorf("cuda: LOOM_CUDA_PARTITIONS=%q: want keys/max, keys a multiple of 32, max ≥ 0 (0: no bound)", v)
		}
		d.caps.Partitions = pt
	}
	switch v := os.Getenv("LOOM_CUDA_READ"); v {
	case "", "pinned":
	case "pageable":
		d.readMode = readPageable
	default:
		return nil, fmt.Errorf("cuda: LOOM_CUDA_READ=%q: want pinned or pageable", v)
	}
	if err := d.setSchedule(os.Getenv("LOOM_CUDA_SCHED")); err != nil {
		return nil, err
	}
	if err := drv.call(drv.primaryCtxRetain, uintptr(unsafe.Pointer(&d.ctx)), uintptr(d.cuDev)); err != nil {
		return nil, err
	}
	if err := d.load(); err != nil {
		d.Close()
		return nil, err
	}
	if err := d.ltStartup(); err != nil {
		d.Close()
		return nil, err
	}
	d.graphs.Store(drv.graphErr == nil && os.Getenv("LOOM_CUDA_GRAPHS") != "0")
	d.replays = os.Getenv("LOOM_CUDA_REPLAY") != "0"
	d.bulkEarly = os.Getenv("LOOM_CUDA_BULK_EARLY") != "0"
	switch v := os.Getenv("LOOM_CUDA_PDL"); v {
	case "0":
	case "":
		d.pdl.Store(d.pdlSupport() == nil)
	case "1":
		if err := d.SetPDL(true); err != nil {
			d.Close()
			return nil, fmt.Errorf("LOOM_CUDA_PDL=1: %w", err)
		}
	default:
		d.Close()
		return nil, fmt.Errorf("cuda: LOOM_CUDA_PDL=%q: want 0 or 1", v)
	}
	return d, nil
}

// Scheduling flags of a context (CUctx_flags): how a host thread waits
// for the device in a synchronising call.
var schedFlags = map[string]uintptr{
	"auto":     0, // CU_CTX_SCHED_AUTO: spin while the process has fewer contexts than cores, else yield
	"spin":     1, // CU_CTX_SCHED_SPIN
	"yield":    2, // CU_CTX_SCHED_YIELD
	"blocking": 4, // CU_CTX_SCHED_BLOCKING_SYNC: sleep until the device interrupts
}

// setSchedule sets the primary context's scheduling flag, before it is
// retained, from LOOM_CUDA_SCHED's value v ("" leaves the driver's
// default, auto): for measuring how the host's wait for a step is done.
func (d *Device) setSchedule(v string) error {
	if v == "" {
		return nil
	}
	f, ok := schedFlags[v]
	if !ok {
		return fmt.Errorf("cuda: LOOM_CUDA_SCHED=%q: want auto, spin, yield or blocking", v)
	}
	if d.drv.primaryCtxSetFlags.ptr == 0 {
		return fmt.Errorf("cuda: LOOM_CUDA_SCHED=%q: libcuda.so.1 has no cuDevicePrimaryCtxSetFlags_v2", v)
	}
	return d.drv.call(d.drv.primaryCtxSetFlags, uintptr(d.cuDev), f)
}

// envRows sets *rows from the environment variable name where it is set:
// a number of rows ≥ 0.
func envRows(name string, rows *int) error {
	v, ok := os.LookupEnv(name)
	if !ok {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return fmt.Errorf("cuda: %s=%q: want a number of rows ≥ 0", name, v)
	}
	*rows = n
	return nil
}

// bulkDefault is the bulk GEMV's shape that LOOM_CUDA_GEMV_BULK=1 selects
// (primitives.GEMVBulk): three stages of about 32 KB, two blocks a
// multiprocessor, the fastest shape of a batch-1 and batch-8 decode step
// measured on an H100 (with the early fill: 1.29 ms against the tile
// loop's 1.66 at batch 1, 1.92 against 2.53 at batch 8; docs/BENCHMARKS.md,
// "H100 round of main, 00:49 UTC"). A block takes at most half a
// multiprocessor's shared memory, so the next kernel's block still finds
// room beside one of them.
var bulkDefault = primitives.GEMVBulk{Stages: 3, StageBytes: 32 << 10, Blocks: 2}

// envBulk is Caps.GEMVBulk from LOOM_CUDA_GEMV_BULK where the device has
// the bulk GEMV (sm_90 and later, tensor cores): off unless set, 1 for
// bulkDefault, or stages,stageKB,blocks for another shape (measurement).
// It is off by default until its kernels as they are now (both fills
// compiled, the early one chosen per launch) have run on a GPU.
func envBulk(has bool) (primitives.GEMVBulk, error) {
	v := os.Getenv("LOOM_CUDA_GEMV_BULK")
	switch {
	case !bulkAsked() || !has:
		return primitives.GEMVBulk{}, nil
	case v == "1":
		return bulkDefault, nil
	}
	var b primitives.GEMVBulk
	if _, err := fmt.Sscanf(v, "%d,%d,%d", &b.Stages, &b.StageBytes, &b.Blocks); err != nil ||
		b.Stages < 1 || b.Stages > primitives.BulkMaxStages || b.StageBytes < 1 || b.Blocks < 1 || b.Blocks > 2 {
		return b, fmt.Errorf("cuda: LOOM_CUDA_GEMV_BULK=%q: want 0, 1 or stages,stageKB,blocks (1 to %d stages, 1 or 2 blocks a multiprocessor)", v, primitives.BulkMaxStages)
	}
	b.StageBytes <<= 10
	return b, nil
}

// SetPDL turns programmatic dependent launch on or off for the CUDA graphs
// built from then on (graph_linux.go; the graphs of a queue opened after
// the call, in practice, as a queue keeps the execs it built): each kernel
// node of a catalog kernel that follows a kernel node depends on it
// programmatically, so that it may be scheduled while its predecessor runs
// and waits for it in grid_dependency_wait. Turning it on fails, saying
// unsupported, without graphs, on a GPU before compute capability 9.0
// (Hopper), or with a driver before CUDA 12.3 (no cuGraphAddDependencies_v2).
func (d *Device) SetPDL(on bool) error {
	if on {
		if err := d.pdlSupport(); err != nil {
			return err
		}
	}
	d.pdl.Store(on)
	return nil
}

// PDL reports whether programmatic dependent launch is on (SetPDL).
func (d *Device) PDL() bool { return d.pdl.Load() }

// pdlSupport says why this device cannot chain graph nodes
// programmatically, or nil if it can.
func (d *Device) pdlSupport() error {
	switch {
	case d.drv.graphErr != nil:
		return fmt.Errorf("cuda: programmatic dependent launch is unsupported without CUDA graphs: %w", d.drv.graphErr)
	case d.major < 9:
		return fmt.Errorf("cuda: programmatic dependent launch is unsupported on compute capability %s (%s); it needs 9.0 (Hopper) or later", d.arch, d.name)
	case d.drv.graphAddDependencies.ptr == 0:
		return fmt.Errorf("cuda: programmatic dependent launch is unsupported by this driver: libcuda.so.1 has no cuGraphAddDependencies_v2 (CUDA 12.3 or later)")
	}
	return nil
}

// SetGraphs turns the running of repeated command-buffer structures as
// CUDA graphs on or off, for the command buffers committed from now on. It
// fails if the driver lacks the graph functions.
func (d *Device) SetGraphs(on bool) error {
	if on && d.drv.graphErr != nil {
		return d.drv.graphErr
	}
	d.graphs.Store(on)
	return nil
}

// GraphStats counts the device's CUDA-graph work since it opened.
func (d *Device) GraphStats() GraphStats {
	s := &d.graphStats
	return GraphStats{Launches: s.launches.Load(), Replays: s.replays.Load(), Captures: s.captures.Load(), Updates: s.updates.Load(),
		Evictions: s.evictions.Load(), Failures: s.failures.Load(), Programmatic: s.programmatic.Load()}
}

// stop releases the context, once no call is running; calls after it
// fail.
func (d *Device) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed.Swap(true) {
		return
	}
	d.drv.call(d.drv.primaryCtxRelease, uintptr(d.cuDev))
}

// do runs f, which calls the driver, with the device's context current on
// this goroutine's thread and the device's other calls held off, and
// returns its error.
func (d *Device) do(f func() error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.current(f)
}

// current runs f with the device's context current on this goroutine's
// thread, without holding off the device's other calls: for f that blocks
// in the driver (a wait), or inside do.
func (d *Device) current(f func() error) error {
	if d.closed.Load() {
		return fmt.Errorf("cuda: the device is closed: %w", runtime.ErrClosed)
	}
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	if err := d.drv.call(d.drv.ctxSetCurrent, d.ctx); err != nil {
		return err
	}
	return f()
}

// describe reads the device's name and attributes.
func (d *Device) describe() error {
	attr := func(a int) (int, error) {
		var v int32
		err := d.drv.call(d.drv.deviceGetAttribute, uintptr(unsafe.Pointer(&v)), uintptr(a), uintptr(d.cuDev))
		return int(v), err
	}
	vals := map[int]int{}
	for _, a := range []int{attrMaxThreadsPerBlock, attrMaxGridDimX, attrMaxGridDimY, attrMaxGridDimZ, attrMaxSharedPerBlock,
		attrWarpSize, attrMultiprocessorCount, attrComputeCapabilityMaj, attrComputeCapabilityMin, attrUnifiedAddressing} {
		v, err := attr(a)
		if err != nil {
			return err
		}
		vals[a] = v
	}
	var name [256]byte
	if err := d.drv.call(d.drv.deviceGetName, uintptr(unsafe.Pointer(&name[0])), uintptr(len(name)), uintptr(d.cuDev)); err != nil {
		return err
	}
	d.name = goString(unsafe.Pointer(&name[0]))
	d.arch = fmt.Sprintf("%d%d", vals[attrComputeCapabilityMaj], vals[attrComputeCapabilityMin])
	d.major = vals[attrComputeCapabilityMaj]
	d.maxGrid = [3]int{vals[attrMaxGridDimX], vals[attrMaxGridDimY], vals[attrMaxGridDimZ]}
	d.unified = vals[attrUnifiedAddressing] == 1
	d.caps = primitives.Caps{
		Device:             "cuda",
		SIMDWidth:          vals[attrWarpSize],
		MaxThreadsPerGroup: vals[attrMaxThreadsPerBlock],
		MaxSharedBytes:     vals[attrMaxSharedPerBlock],
		Cores:              vals[attrMultiprocessorCount],
		// Measured on an H200 (docs/BENCHMARKS.md): the split path won
		// every case with two partitions or more, decode and varlen alike,
		// by 1.7× to 12×, so it has no occupancy limit.
		SplitKV: primitives.SplitKVGate{GroupsPerCore: 0},
		// Partitions of 64 keys give a batch-1 decode of 8 KV heads
		// at context 1,024 128 blocks for the 132 SMs (512 gave 16);
		// beyond 16 of them a row's partitions grow instead, which
		// bounds the scratch and the merge (docs/CUDA.md).
		Partitions: primitives.AttentionPartitioning{Keys: 64, MaxPartitions: 16},
		// Blocks of 4 warps, four a multiprocessor, ran every decode
		// case of the attention suite 3–22 % faster than blocks of 8
		// on an H100 (kernels/attention.cu's ATTENTION_WARPS).
		AttentionWarps: 4,
		// Measured on an H100 (docs/BENCHMARKS.md) with the FMA gated
		// GEMV: it took the batch-1 step from 2.61 to 2.39 ms and tied at
		// batch 8; at batch 32 the tensor-core matmul and silu_mul were
		// faster. Open raises it where the tensor-core kernel takes it.
		GatedGEMVMaxRows: 8,
		GEMVSplitK:       true,
		QuantWarpRows:    2,
		// The gated quantized GEMV takes a row of x a block (each reads
		// the weights again): batch 1, where it took an H100's 4-bit
		// decode step from 1.447 to 1.392 ms (docs/BENCHMARKS.md).
		QuantGatedMaxRows: 1,
	}
	return nil
}

// load compiles the kernel files (their variants wait for first use),
// loads them as modules and looks up every catalog kernel they hold.
func (d *Device) load() error {
	nv, err := loadNVRTC()
	if err != nil {
		return err
	}
	d.nvrtc = nv
	if v, err := nv.versionNumber(); err != nil || v < 12000 {
		// The bulk GEMV's PTX needs NVRTC 12 (matmul.cu's BULK_PTX).
		d.caps.GEMVBulk = primitives.GEMVBulk{}
	}
	cubins, err := compileAll(nv, d.arch)
	if err != nil {
		return err
	}
	return d.do(func() error {
		if err := d.drv.call(d.drv.memAllocHost, uintptr(unsafe.Pointer(&d.arena)), arenaBytes); err != nil {
			return err
		}
		if err := d.drv.call(d.drv.streamCreate, uintptr(unsafe.Pointer(&d.transfer)), streamNonBlocking); err != nil {
			return err
		}
		for file, cubin := range cubins {
			var mod uintptr
			if err := d.drv.call(d.drv.moduleLoadData, uintptr(unsafe.Pointer(&mod)), uintptr(unsafe.Pointer(&cubin[0]))); err != nil {
				return fmt.Errorf("loading the module of %s: %w", file, err)
			}
			d.modules = append(d.modules, mod)
		}
		d.kernels = map[string]*kernel{}
		for _, spec := range primitives.Catalog() {
			fn, err := d.function(spec.Name)
			if err != nil {
				return err
			}
			if fn == 0 {
				continue
			}
			k, err := newKernel(spec, fn)
			if err != nil {
				return err
			}
			if k.mma, err = d.function(spec.Name + "_mma"); err != nil {
				return err
			}
			for _, mod := range d.modules {
				if k.ring, err = d.sharedFunction(mod, spec.Name+"_mma_ring"); err != nil || k.ring != 0 {
					break
				}
			}
			if err != nil {
				return err
			}
			for _, mod := range d.modules {
				if k.bulk, err = d.sharedFunction(mod, spec.Name+"_mma_bulk"); err != nil || k.bulk != 0 {
					if err == nil {
						k.bulkEarly, err = d.sharedFunction(mod, spec.Name+"_mma_bulk_early")
					}
					break
				}
			}
			if err != nil {
				return err
			}
			d.kernels[spec.Name] = k
		}
		return nil
	})
}

// function finds the named kernel in the loaded modules; 0 if none has it.
func (d *Device) function(name string) (uintptr, error) {
	for _, mod := range d.modules {
		if fn, err := d.moduleFunction(mod, name); err != nil || fn != 0 {
			return fn, err
		}
	}
	return 0, nil
}

// ringMaxRows is the most rows of x the cluster GEMV takes by default
// (Caps.ClusterGEMVRows; LOOM_CUDA_RING_ROWS sets another bound, 0 none,
// up to the 256 rows whose slice of x fits its shared memory,
// primitives.RingSharedBytes): the decode batches, where it ran on a GPU
// bit for bit equal to the tile loop and faster (docs/BENCHMARKS.md "The
// cluster GEMV, 9–160 rows"). Past 64 rows its results are checked only
// by the host emulation and its speed against the tiled matmul that
// serves those rows has not been measured, so serving steps keep the
// tiled matmul unless LOOM_CUDA_RING_ROWS=256.
const ringMaxRows = 64

// sharedFunction finds the named cluster or bulk GEMV
// (primitives.MatMulParams.Ring, Bulk) in module mod, 0 if it has none,
// and lets it take the shared memory the lowering gives it, past the 48 KB
// a kernel gets without asking: primitives.RingMaxSharedBytes in all,
// less its static shared memory (the fused norms' row). Called inside do.
func (d *Device) sharedFunction(mod uintptr, name string) (uintptr, error) {
	fn, err := d.moduleFunction(mod, name)
	if err != nil || fn == 0 {
		return fn, err
	}
	var static int32
	if err := d.drv.call(d.drv.funcGetAttribute, uintptr(unsafe.Pointer(&static)), funcAttrStaticShared, fn); err != nil {
		return 0, err
	}
	return fn, d.drv.call(d.drv.funcSetAttribute, fn, funcAttrMaxDynamicShared, uintptr(primitives.RingMaxSharedBytes-int(static)))
}

// moduleFunction finds the named kernel in module mod; 0 if it has none.
// Called inside do.
func (d *Device) moduleFunction(mod uintptr, name string) (uintptr, error) {
	cname := cString(name)
	var fn uintptr
	switch r := d.drv.moduleGetFunction.raw(uintptr(unsafe.Pointer(&fn)), mod, uintptr(unsafe.Pointer(&cname[0]))); r {
	case cudaSuccess:
		return fn, nil
	case cudaNotFound:
		return 0, nil
	default:
		return 0, d.drv.check(d.drv.moduleGetFunction, r)
	}
}

// Close releases the device's modules and context. Buffers and queues must
// have been released first.
func (d *Device) Close() {
	if d.closed.Load() {
		return
	}
	d.small.mu.Lock()
	chunks := d.small.chunks
	d.small.chunks, d.small.free = nil, nil
	d.small.mu.Unlock()
	d.do(func() error {
		for _, m := range d.modules {
			d.drv.call(d.drv.moduleUnload, m)
		}
		if d.transfer != 0 {
			d.drv.call(d.drv.streamDestroy, d.transfer)
		}
		if d.lt != nil {
			d.lt.close()
		}
		if d.ltStream != 0 {
			d.drv.call(d.drv.streamDestroy, d.ltStream)
		}
		if d.arena != nil {
			d.drv.call(d.drv.memFreeHost, uintptr(d.arena))
		}
		for _, c := range chunks {
			d.drv.call(d.drv.memFree, uintptr(c))
		}
		return nil
	})
	d.stop()
}

// Name is the GPU's name, such as "NVIDIA H100 80GB HBM3".
func (d *Device) Name() string { return d.name }

// ComputeCapability is the GPU's compute capability, such as "90".
func (d *Device) ComputeCapability() string { return d.arch }

// Caps describes the GPU to primitives: warp size, threads and shared
// memory per block (without opting in to more), multiprocessor count.
func (d *Device) Caps() primitives.Caps { return d.caps }

// kernel is a loaded catalog kernel.
type kernel struct {
	name   string
	fn     uintptr      // CUfunction
	mma    uintptr      // its tensor-core variant <name>_mma, 0 if none (see launch.function)
	ring   uintptr      // its cluster variant <name>_mma_ring, 0 if none (see launch.function)
	bulk   uintptr      // its bulk variant <name>_mma_bulk, 0 if none (see launch.function)
	args   []string     // the names of its buffer arguments
	params reflect.Type // the params struct type, nil if none
	// bulkEarly is its bulk variant that copies weights before
	// grid_dependency_wait, <name>_mma_bulk_early, 0 if none
	// (bulkearly_linux.go).
	bulkEarly uintptr
	// Where launch lays out the kernel's parameters in the arena (bytes):
	// the pointer array, then the buffer pointers from valuesOff, the
	// params struct from paramsOff and the status pointer at statusOff.
	valuesOff, paramsOff, statusOff int
	paramsPtr                       reflect.Type // *params
	// lt marks the matmul kernels whose products of dtype ltDType cuBLASLt
	// may run instead (cublaslt_linux.go).
	lt      bool
	ltDType graph.DType
	// user marks a kernel compiled from its own CUDA source at first use
	// (user_linux.go): it does not call grid_dependency_wait, so a graph
	// node of it never depends on the one before programmatically.
	user bool
}

// newKernel describes a catalog kernel and its parameter layout, which
// depends on the kernel alone.
func newKernel(spec primitives.KernelSpec, fn uintptr) (*kernel, error) {
	k := &kernel{name: spec.Name, fn: fn, args: spec.ArgNames()}
	k.ltDType, k.lt = ltKernel(spec.Name)
	nptrs, size := len(spec.Args)+1, 0 // the buffers and the status
	if spec.Params != nil {
		k.params = reflect.TypeOf(spec.Params).Elem()
		k.paramsPtr = reflect.PointerTo(k.params)
		nptrs++
		size = int(k.params.Size())
	}
	k.valuesOff = 8 * nptrs
	k.paramsOff = k.valuesOff + 8*len(k.args)
	k.statusOff = (k.paramsOff + size + 7) &^ 7
	if k.statusOff+8 > arenaBytes {
		return nil, fmt.Errorf("cuda: kernel %s: %d bytes of parameters exceed the %d-byte arena", k.name, k.statusOff+8, arenaBytes)
	}
	return k, nil
}

func (k *kernel) Name() string { return k.name }

// Kernel returns the named kernel: a built-in one, compiled when the
// device opened or, for a variant's (variants.go), on first use; or one
// registered with its own CUDA source (primitives.KernelSpec.CUDA), which
// is checked against its spec and compiled on first use.
func (d *Device) Kernel(name string) (runtime.Kernel, error) {
	if k, ok := d.kernels[name]; ok {
		return k, nil
	}
	spec, ok := primitives.LookupKernel(name)
	if _, variant := variantOf(name); !ok || (spec.CUDA.Text == "" && !variant) {
		why := ""
		if ok {
			why = " (it was registered without CUDA source: primitives.KernelSpec.CUDA)"
		}
		return nil, fmt.Errorf("%w: kernel %q is not implemented by the CUDA device%s", runtime.ErrUnsupportedKernel, name, why)
	}
	k, err := d.lazyKernel(spec)
	if err != nil {
		return nil, err
	}
	return k, nil
}

// buffer is device memory from cuMemAlloc, or a slot of a chunk of small
// buffers.
type buffer struct {
	dev      *Device
	ptr      uint64 // CUdeviceptr; 0 for an empty buffer
	n        int64
	small    int64 // the slot's size class, 0 for a buffer of its own
	released atomic.Bool
}

// Small buffers. A replayed decode step's results are a few hundred bytes
// in fresh storage every step (the sampled tokens), and the runtime's pool
// gets them back only when the garbage collector drops the arrays; a
// cuMemAlloc each would be a driver call per step. So buffers of at most
// smallMax bytes are slots of chunks of smallChunk bytes, by size class
// (multiples of 256 bytes, the runtime pool's classes there): a released
// slot goes back to its class's free list, and the chunks are freed when
// the device closes.
const (
	smallMax   = 4096
	smallChunk = 64 << 10
)

type smallBuffers struct {
	mu     sync.Mutex
	free   map[int64][]uint64 // by size class: idle slots
	chunks []uint64
}

// NewBuffer allocates n bytes of device memory.
func (d *Device) NewBuffer(n int64) (runtime.Buffer, error) {
	if n < 0 {
		return nil, fmt.Errorf("cuda: negative buffer size %d", n)
	}
	b := &buffer{dev: d, n: n}
	if n == 0 {
		return b, nil
	}
	if n <= smallMax {
		return b, d.smallSlot(b)
	}
	err := d.do(func() error { return d.drv.call(d.drv.memAlloc, uintptr(unsafe.Pointer(&b.ptr)), uintptr(n)) })
	if err != nil {
		return nil, fmt.Errorf("cuda: allocating %d bytes: %w", n, err)
	}
	return b, nil
}

// smallSlot gives b, of at most smallMax bytes, a slot of its size class,
// allocating a chunk of them if none is idle. The driver is called without
// small.mu held (Close takes them in the other order).
func (d *Device) smallSlot(b *buffer) error {
	sb := &d.small
	c := (b.n + 255) &^ 255
	sb.mu.Lock()
	if list := sb.free[c]; len(list) > 0 {
		b.ptr, b.small = list[len(list)-1], c
		sb.free[c] = list[:len(list)-1]
		sb.mu.Unlock()
		return nil
	}
	sb.mu.Unlock()
	var chunk uint64
	err := d.do(func() error { return d.drv.call(d.drv.memAlloc, uintptr(unsafe.Pointer(&chunk)), smallChunk) })
	if err != nil {
		return fmt.Errorf("cuda: allocating %d bytes for buffers of %d: %w", smallChunk, c, err)
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	sb.chunks = append(sb.chunks, chunk)
	if sb.free == nil {
		sb.free = map[int64][]uint64{}
	}
	for off := smallChunk - 2*c; off >= 0; off -= c {
		sb.free[c] = append(sb.free[c], chunk+uint64(off))
	}
	b.ptr, b.small = chunk+uint64(smallChunk-c), c
	return nil
}

func (b *buffer) Len() int64 { return b.n }

// span checks that bytes [off, off+n) of b may be used.
func (b *buffer) span(off, n int64) error {
	if b.released.Load() {
		return fmt.Errorf("cuda: buffer of %d bytes used after release", b.n)
	}
	if off < 0 || n < 0 || off+n > b.n {
		return fmt.Errorf("cuda: bytes [%d,+%d) outside a buffer of %d bytes", off, n, b.n)
	}
	return nil
}

// Write copies src into the buffer at off and returns once the copy is done.
// It uses the device's transfer stream, which nothing orders against the
// queues' streams: the runtime writes only buffers no device work uses.
func (b *buffer) Write(off int64, src []byte) error {
	if err := b.span(off, int64(len(src))); err != nil || len(src) == 0 {
		return err
	}
	d := b.dev
	defer d.since(hostWrite, time.Now())
	return d.do(func() error {
		if err := d.drv.call(d.drv.memcpyHtoDAsync, uintptr(b.ptr)+uintptr(off), uintptr(unsafe.Pointer(&src[0])), uintptr(len(src)), d.transfer); err != nil {
			return err
		}
		return d.drv.call(d.drv.streamSynchronize, d.transfer)
	})
}

// readMode is how Buffer.Read copies.
type readMode int

const (
	// readPinned: up to arenaBytes (a decode step's tokens) are copied
	// into the arena, pinned, and from there to dst: a copy into
	// pageable memory goes through the driver's own staging (on an H100
	// 7.4 µs against 10.5 for 128 bytes; docs/CUDA.md, "Host work of a
	// replayed step"); more straight into dst.
	readPinned readMode = iota
	// readPageable: every read straight into dst (LOOM_CUDA_READ=pageable).
	readPageable
)

// Read copies bytes from off into dst and returns once the copy is done
// (readMode says how).
func (b *buffer) Read(off int64, dst []byte) error {
	if err := b.span(off, int64(len(dst))); err != nil || len(dst) == 0 {
		return err
	}
	d := b.dev
	defer d.since(hostRead, time.Now())
	return d.do(func() error {
		to := unsafe.Pointer(&dst[0])
		pinned := len(dst) <= arenaBytes && d.readMode != readPageable
		if pinned {
			to = d.arena
		}
		if err := d.drv.call(d.drv.memcpyDtoHAsync, uintptr(to), uintptr(b.ptr)+uintptr(off), uintptr(len(dst)), d.transfer); err != nil {
			return err
		}
		if err := d.drv.call(d.drv.streamSynchronize, d.transfer); err != nil {
			return err
		}
		if pinned {
			copy(dst, unsafe.Slice((*byte)(d.arena), len(dst)))
		}
		return nil
	})
}

// Release frees the memory (a small buffer's slot goes back to its
// class).
func (b *buffer) Release() {
	if b.released.Swap(true) || b.ptr == 0 {
		return
	}
	d := b.dev
	if b.small > 0 {
		d.small.mu.Lock()
		if d.small.free != nil { // else the device closed, and freed the chunks
			d.small.free[b.small] = append(d.small.free[b.small], b.ptr)
		}
		d.small.mu.Unlock()
		return
	}
	d.do(func() error { return d.drv.call(d.drv.memFree, uintptr(b.ptr)) })
}

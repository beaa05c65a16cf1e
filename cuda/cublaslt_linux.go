package cuda

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"github.com/ebitengine/purego"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// cuBLASLt. Matrix products of many rows (a serving step's tokens, a
// batched decode step) run faster in cuBLASLt's tensor-core kernels than
// in Loom's tiled matmul (docs/BENCHMARKS.md, "cuBLASLt beside Loom's
// matmul"). The lowering knows nothing of it: the device takes a dispatch
// of matmul_<dt>_tiled or matmul_<dt>_gemv that is a plain 2-D product of
// weights stored [N, K] (MatMulParams with Batch 1, TransposeA 0,
// TransposeB 1) of at least the device's cuBLASLt rows, with its rows and
// pointers aligned as cuBLASLt's kernels want them (ltTakes, ltAligned),
// once the environment or SetCuBLASLtRows has turned it on (it is off by
// default),
// and calls cublasLtMatmul on its stream instead of launching the kernel.
// In a CUDA graph that call is captured on a capture stream into a child
// graph node, with ordinary edges around it; when a rebound argument
// changes the node's pointers it is captured again and set with
// cuGraphExecChildGraphNodeSetParams. Where the library is missing, the
// rows are 0 or a call fails, Loom's kernel runs; CuBLASLt says why and
// counts the calls.
//
// Loom's out[M,N] = x[M,K]·W[N,K]ᵀ, row-major, is in cuBLAS's
// column-major terms D[N,M] = op(A)·op(B) with A = W (K×N, ld K, op T),
// B = x (K×M, ld K, op N) and D = out (N×M, ld N), C = D with beta 0.
//
// The values below are cublasLt.h's, cublas_api.h's and library_types.h's
// (CUDA 12 and 13, which keep them): cublasComputeType_t, cudaDataType_t,
// cublasOperation_t, cublasLtMatmulDescAttributes_t,
// cublasLtMatmulPreferenceAttributes_t, cublasLtReductionScheme_t and
// cublasStatus_t; the structs cublasLtMatmulAlgo_t (uint64_t data[8]) and
// cublasLtMatmulHeuristicResult_t (algo, size_t workspaceSize,
// cublasStatus_t state, float wavesCount, int reserved[4]).
const (
	cublasCompute32F = 68 // CUBLAS_COMPUTE_32F: float accumulation, no down-conversion

	cudaR32F  = 0  // CUDA_R_32F
	cudaR16F  = 2  // CUDA_R_16F
	cudaR16BF = 14 // CUDA_R_16BF

	cublasOpN = 0 // CUBLAS_OP_N
	cublasOpT = 1 // CUBLAS_OP_T

	ltDescTransA = 3 // CUBLASLT_MATMUL_DESC_TRANSA (int32 cublasOperation_t)
	ltDescTransB = 4 // CUBLASLT_MATMUL_DESC_TRANSB

	ltPrefMaxWorkspace  = 1 // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES (uint64)
	ltPrefReductionMask = 3 // CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK (uint32)
	ltPrefMinAlignA     = 5 // CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES (uint32); B, C, D follow as 6, 7, 8

	ltReductionNone = 0 // CUBLASLT_REDUCTION_SCHEME_NONE: no split-K, each output summed by one block in one order

	cublasSuccess = 0 // CUBLAS_STATUS_SUCCESS
)

// ltHeuristicResult is cublasLtMatmulHeuristicResult_t.
type ltHeuristicResult struct {
	algo      [8]uint64
	workspace uint64
	state     int32
	waves     float32
	_         [4]int32
}

// ltAlign is the byte alignment the device asks of cuBLASLt's kernels
// (the heuristic's minimum alignment of A, B, C and D) and so requires of
// every pointer and row it hands to it: 16 bytes, a vector of 8 halves.
const ltAlign = 16

// ltWorkspaceBytes is the workspace a queue gives cuBLASLt: what NVIDIA
// recommends for Hopper. Without split-K reductions the algorithms need
// little of it.
const ltWorkspaceBytes = 32 << 20

// ltMaxPlans bounds the shapes a device keeps a plan for; past it, new
// shapes run Loom's kernels (counted as CuBLASLtInfo.Unplanned).
const ltMaxPlans = 4096

// ltDefaultRows is the device's cuBLASLt rows where LOOM_CUBLASLT turns
// it on without LOOM_CUBLASLT_ROWS: past the 64 rows of the tensor-core
// GEMV, the products Loom's tiled kernel takes.
const ltDefaultRows = primitives.MatMulMMARows + 1

// cublasLt holds libcublasLt's functions, the device's handle and its
// plans by shape. Used inside do.
type cublasLt struct {
	path    string
	version int

	create, destroy, getVersion, statusName cfunc
	descCreate, descDestroy, descSet        cfunc
	layoutCreate, layoutDestroy             cfunc
	prefCreate, prefDestroy, prefSet        cfunc
	heuristic, matmul                       cfunc

	handle, desc, pref uintptr
	plans              map[ltKey]*ltPlan
}

// ltKey is a product's shape.
type ltKey struct {
	dt      graph.DType
	m, n, k uint32
}

// ltPlan is what cuBLASLt needs for one shape: the layouts of A, B and D
// and the heuristic's algorithm. A shape the heuristic has no algorithm
// for keeps a plan with err set, and runs Loom's kernel.
type ltPlan struct {
	key     ltKey
	a, b, d uintptr
	algo    [8]uint64
	err     error
}

// cublasLtNames are the file names cuBLASLt is looked up under, newest
// first; LOOM_CUBLASLT names the file to use instead, or 0 (off) or 1
// (Open fails without it).
var cublasLtNames = []string{"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11"}

// CuBLASLt's reasons where LOOM_CUBLASLT=0, and where the environment does
// not ask for it (the default).
var (
	errLtOff      = errors.New("cuda: cuBLASLt turned off (LOOM_CUBLASLT=0)")
	errLtNotAsked = errors.New("cuda: cuBLASLt not asked for (LOOM_CUBLASLT_ROWS=65 runs products of 65 rows and more in it)")
)

// loadCuBLASLt opens the cuBLASLt library the environment's value v of
// LOOM_CUBLASLT names (a file; "" or "1": the first of cublasLtNames on
// the loader's path or in the CUDA toolkit's directories).
func loadCuBLASLt(v string) (*cublasLt, error) {
	env := ""
	if v != "1" {
		env = v
	}
	lib, path, err := openLibrary("cuBLASLt", "LOOM_CUBLASLT", env, cublasLtNames)
	if err != nil {
		return nil, err
	}
	c := &cublasLt{path: path}
	err = bind(lib, path, map[*cfunc]string{
		&c.create:        "cublasLtCreate",
		&c.destroy:       "cublasLtDestroy",
		&c.getVersion:    "cublasLtGetVersion",
		&c.descCreate:    "cublasLtMatmulDescCreate",
		&c.descDestroy:   "cublasLtMatmulDescDestroy",
		&c.descSet:       "cublasLtMatmulDescSetAttribute",
		&c.layoutCreate:  "cublasLtMatrixLayoutCreate",
		&c.layoutDestroy: "cublasLtMatrixLayoutDestroy",
		&c.prefCreate:    "cublasLtMatmulPreferenceCreate",
		&c.prefDestroy:   "cublasLtMatmulPreferenceDestroy",
		&c.prefSet:       "cublasLtMatmulPreferenceSetAttribute",
		&c.heuristic:     "cublasLtMatmulAlgoGetHeuristic",
		&c.matmul:        "cublasLtMatmul",
	})
	if err != nil {
		return nil, err
	}
	if bind(lib, path, map[*cfunc]string{&c.statusName: "cublasLtGetStatusName"}) != nil {
		c.statusName = cfunc{}
	}
	c.version = int(c.getVersion.raw())
	return c, nil
}

// call calls a cuBLASLt function and turns a failure into an error naming
// it and the cublasStatus_t.
//
//go:uintptrescapes
func (c *cublasLt) call(f cfunc, args ...uintptr) error {
	r := f.raw(args...)
	if r == cublasSuccess {
		return nil
	}
	name := "cublasStatus_t"
	if c.statusName.ptr != 0 {
		// A static C string of the library's, which the GC never moves.
		if p, _, _ := purego.SyscallN(c.statusName.ptr, r); p != 0 {
			name = goString(*(*unsafe.Pointer)(unsafe.Pointer(&p)))
		}
	}
	return fmt.Errorf("cuda: %s: %s (%d)", f.name, name, r)
}

// start creates the handle, the operation's descriptor (float
// accumulation and scale, A transposed) and the heuristic's preference: at
// most ltWorkspaceBytes of workspace, no split-K reduction (the bits of a
// shape are one block's sums, the same every run; docs/CUDA.md), and 16-byte
// alignment. Inside do.
func (c *cublasLt) start() error {
	if err := c.call(c.create, uintptr(unsafe.Pointer(&c.handle))); err != nil {
		return err
	}
	if err := c.call(c.descCreate, uintptr(unsafe.Pointer(&c.desc)), cublasCompute32F, cudaR32F); err != nil {
		return err
	}
	for _, a := range []struct{ attr, op int32 }{{ltDescTransA, cublasOpT}, {ltDescTransB, cublasOpN}} {
		if err := c.call(c.descSet, c.desc, uintptr(a.attr), uintptr(unsafe.Pointer(&a.op)), 4); err != nil {
			return err
		}
	}
	if err := c.call(c.prefCreate, uintptr(unsafe.Pointer(&c.pref))); err != nil {
		return err
	}
	ws := uint64(ltWorkspaceBytes)
	if err := c.call(c.prefSet, c.pref, ltPrefMaxWorkspace, uintptr(unsafe.Pointer(&ws)), 8); err != nil {
		return err
	}
	red := uint32(ltReductionNone)
	if err := c.call(c.prefSet, c.pref, ltPrefReductionMask, uintptr(unsafe.Pointer(&red)), 4); err != nil {
		return err
	}
	align := uint32(ltAlign)
	for attr := ltPrefMinAlignA; attr <= ltPrefMinAlignA+3; attr++ {
		if err := c.call(c.prefSet, c.pref, uintptr(attr), uintptr(unsafe.Pointer(&align)), 4); err != nil {
			return err
		}
	}
	c.plans = map[ltKey]*ltPlan{}
	return nil
}

// close destroys the plans' layouts, the preference, the descriptor and
// the handle. Inside do.
func (c *cublasLt) close() {
	for _, p := range c.plans {
		for _, l := range []uintptr{p.a, p.b, p.d} {
			if l != 0 {
				c.call(c.layoutDestroy, l)
			}
		}
	}
	c.plans = nil
	if c.pref != 0 {
		c.call(c.prefDestroy, c.pref)
	}
	if c.desc != 0 {
		c.call(c.descDestroy, c.desc)
	}
	if c.handle != 0 {
		c.call(c.destroy, c.handle)
	}
	c.pref, c.desc, c.handle = 0, 0, 0
}

// ltType is dt's cudaDataType_t.
func ltType(dt graph.DType) uintptr {
	switch dt {
	case graph.Float16:
		return cudaR16F
	case graph.BFloat16:
		return cudaR16BF
	}
	return cudaR32F
}

// plan returns the plan of shape key, made (layouts, heuristic) on first
// use, when made is true; nil past ltMaxPlans shapes. Inside do.
func (c *cublasLt) plan(key ltKey) (p *ltPlan, made bool) {
	if p, ok := c.plans[key]; ok {
		return p, false
	}
	if len(c.plans) >= ltMaxPlans {
		return nil, false
	}
	p = &ltPlan{key: key}
	c.plans[key] = p
	return p, true
}

// make makes plan p's layouts and asks the heuristic for its algorithm,
// setting p.err where either fails.
func (c *cublasLt) make(p *ltPlan) {
	key := p.key
	t := ltType(key.dt)
	m, n, k := uintptr(key.m), uintptr(key.n), uintptr(key.k)
	for _, l := range []struct {
		dst              *uintptr
		rows, cols, ldim uintptr
	}{{&p.a, k, n, k}, {&p.b, k, m, k}, {&p.d, n, m, n}} {
		if p.err = c.call(c.layoutCreate, uintptr(unsafe.Pointer(l.dst)), t, l.rows, l.cols, l.ldim); p.err != nil {
			return
		}
	}
	var res ltHeuristicResult
	var found int32
	if p.err = c.call(c.heuristic, c.handle, c.desc, p.a, p.b, p.d, p.d, c.pref, 1, uintptr(unsafe.Pointer(&res)), uintptr(unsafe.Pointer(&found))); p.err != nil {
		return
	}
	if found < 1 || res.state != cublasSuccess {
		p.err = fmt.Errorf("cuda: cublasLtMatmulAlgoGetHeuristic has no algorithm for %s %dx%dx%d (state %d)", key.dt, key.m, key.n, key.k, res.state)
		return
	}
	p.algo = res.algo
}

// run enqueues D = A·B of plan p on stream: weights w, rows x, output out
// (device pointers), with ws, ltWorkspaceBytes of workspace.
func (c *cublasLt) run(p *ltPlan, x, w, out, ws uint64, stream uintptr) error {
	alpha, beta := float32(1), float32(0)
	return c.call(c.matmul, c.handle, c.desc, uintptr(unsafe.Pointer(&alpha)),
		uintptr(w), p.a, uintptr(x), p.b, uintptr(unsafe.Pointer(&beta)),
		uintptr(out), p.d, uintptr(out), p.d,
		uintptr(unsafe.Pointer(&p.algo)), uintptr(ws), ltWorkspaceBytes, stream)
}

// ltTakes reports whether a dispatch of matmul params p of dtype dt is a
// product cuBLASLt may run for a device of cuBLASLt rows: one plain 2-D
// product x[M,K]·W[N,K]ᵀ of at least rows rows (0: none), with N and K
// whole multiples of ltAlign bytes (so that every row starts aligned), and
// buffer arguments at least as long as its matrices.
func ltTakes(dt graph.DType, p *primitives.MatMulParams, rows int, args []runtime.BufferArg) bool {
	if p == nil || rows <= 0 || p.Batch != 1 || p.TransposeA != 0 || p.TransposeB != 1 || int(p.M) < rows || p.N == 0 || p.K == 0 {
		return false
	}
	es := int64(dt.Size())
	m, n, k := int64(p.M), int64(p.N), int64(p.K)
	if (k*es)%ltAlign != 0 || (n*es)%ltAlign != 0 || len(args) != 3 {
		return false
	}
	return args[0].Size >= m*k*es && args[1].Size >= n*k*es && args[2].Size >= m*n*es
}

// ltKernel reports whether cuBLASLt may run the products of the named
// kernel, and their dtype: the tiled and GEMV matmul kernels.
func ltKernel(name string) (graph.DType, bool) {
	for _, dt := range primitives.MatMulDTypes {
		if name == primitives.MatMulTiledKernel(dt) || name == primitives.MatMulGEMVKernel(dt) {
			return dt, true
		}
	}
	return 0, false
}

// ltAligned reports whether the pointers are all ltAlign-byte aligned.
func ltAligned(ptrs ...uint64) bool {
	for _, p := range ptrs {
		if p%ltAlign != 0 {
			return false
		}
	}
	return true
}

// ltPlanOf returns the cuBLASLt plan that stands in for a dispatch of k
// with params and args, or nil where Loom's kernel runs. Inside do.
func (d *Device) ltPlanOf(k *kernel, params any, args []runtime.BufferArg) *ltPlan {
	if d.lt == nil || k == nil || !k.lt {
		return nil
	}
	p, _ := params.(*primitives.MatMulParams)
	if !ltTakes(k.ltDType, p, int(d.ltRows.Load()), args) {
		return nil
	}
	for _, a := range args {
		b, ok := a.Buffer.(*buffer)
		if !ok || !ltAligned(b.ptr+uint64(a.Offset)) {
			return nil
		}
	}
	pl, made := d.lt.plan(ltKey{k.ltDType, p.M, p.N, p.K})
	if pl == nil {
		d.ltStats.unplanned.Add(1)
		return nil
	}
	if made {
		d.lt.make(pl)
		if pl.err != nil {
			d.ltFailed(pl.err) // once a shape: its products run in Loom's kernels
		}
	}
	if pl.err != nil {
		return nil
	}
	return pl
}

// ltPointers are x, w and out of a matmul launch's argument values (see
// queue.values: a device pointer per buffer argument, in the catalog's
// order a, b, out).
func ltPointers(vals []byte) (x, w, out uint64) {
	v := unsafe.Slice((*uint64)(unsafe.Pointer(&vals[0])), 3)
	return v[0], v[1], v[2]
}

// ltWorkspace returns the queue's cuBLASLt workspace, allocated on first
// use: one a stream, since the launches of a stream run one at a time.
// Inside do, with q.mu held.
func (q *queue) ltWorkspace() (uint64, error) {
	if q.ltWork == 0 {
		d := q.dev
		if err := d.drv.call(d.drv.memAlloc, uintptr(unsafe.Pointer(&q.ltWork)), ltWorkspaceBytes); err != nil {
			q.ltWork = 0
			return 0, fmt.Errorf("cuda: cuBLASLt workspace: %w", err)
		}
	}
	return q.ltWork, nil
}

// ltLaunch enqueues launch l's product, whose argument values are vals,
// on the queue's stream. Inside do, with q.mu held.
func (q *queue) ltLaunch(l *launch, vals []byte) error {
	ws, err := q.ltWorkspace()
	if err != nil {
		return err
	}
	x, w, out := ltPointers(vals)
	if err := q.dev.lt.run(l.lt, x, w, out, ws, q.stream); err != nil {
		return err
	}
	q.dev.ltStats.calls.Add(1)
	return nil
}

// ltCapture returns a graph of launch l's product with argument values
// vals, captured on the device's capture stream: the child graph of its
// node in a graph exec. The caller destroys it. Inside do, with q.mu held.
func (q *queue) ltCapture(l *launch, vals []byte) (uintptr, error) {
	d := q.dev
	x, w, out := ltPointers(vals)
	if !ltAligned(x, w, out) {
		return 0, fmt.Errorf("cuda: cuBLASLt: pointers %#x, %#x, %#x not %d-byte aligned", x, w, out, ltAlign)
	}
	ws, err := q.ltWorkspace()
	if err != nil {
		return 0, err
	}
	if d.ltStream == 0 {
		if err := d.drv.call(d.drv.streamCreate, uintptr(unsafe.Pointer(&d.ltStream)), streamNonBlocking); err != nil {
			d.ltStream = 0
			return 0, err
		}
	}
	if err := d.drv.call(d.drv.streamBeginCapture, d.ltStream, captureModeRelaxed); err != nil {
		return 0, err
	}
	runErr := d.lt.run(l.lt, x, w, out, ws, d.ltStream)
	var g uintptr
	err = d.drv.call(d.drv.streamEndCapture, d.ltStream, uintptr(unsafe.Pointer(&g)))
	if err = errors.Join(runErr, err); err != nil {
		if g != 0 {
			d.drv.call(d.drv.graphDestroy, g)
		}
		return 0, err
	}
	return g, nil
}

// ltStartup opens cuBLASLt where the environment asks for it (see Open):
// LOOM_CUBLASLT_ROWS=N (N > 0), LOOM_CUBLASLT=FILE or LOOM_CUBLASLT=1.
// By default it stays off and unloaded (ltErr says so), and the device
// runs exactly the kernels it runs without it. Where it was asked for and
// cannot be opened, ltErr says why; only LOOM_CUBLASLT=1 makes that an
// error. On, with rows below ltDefaultRows, it lowers Caps' gated and
// cluster GEMV bounds below them, so that products of that many rows
// reach it as plain matmuls.
func (d *Device) ltStartup() error {
	rows := -1 // not given
	if err := envRows("LOOM_CUBLASLT_ROWS", &rows); err != nil {
		return err
	}
	v := os.Getenv("LOOM_CUBLASLT")
	switch {
	case v == "0":
		d.ltErr = errLtOff
		return nil
	case v == "" && rows <= 0:
		d.ltErr = errLtNotAsked
		return nil
	}
	if rows < 0 {
		rows = ltDefaultRows
	}
	if err := d.ltLoad(v); err != nil {
		if v == "1" {
			return fmt.Errorf("LOOM_CUBLASLT=1: %w", err)
		}
		return nil
	}
	d.ltRows.Store(int64(rows))
	if rows > 0 {
		d.caps.GatedGEMVMaxRows = min(d.caps.GatedGEMVMaxRows, rows-1)
		d.caps.ClusterGEMVRows = min(d.caps.ClusterGEMVRows, rows-1)
	}
	return nil
}

// ltLoad opens the cuBLASLt library LOOM_CUBLASLT's value v names ("" or
// "1": the lookup) and makes its handle; a failure is kept in ltErr.
func (d *Device) ltLoad(v string) error {
	lt, err := loadCuBLASLt(v)
	if err == nil {
		err = d.do(func() error {
			if err := lt.start(); err != nil {
				lt.close()
				return err
			}
			d.lt = lt // inside do: the launches read it there
			return nil
		})
	}
	if err != nil {
		d.ltErr = err
	}
	return err
}

// SetCuBLASLtRows sets the fewest rows of a product the device gives
// cuBLASLt (0: none), for the dispatches issued from then on, opening the
// library if the environment left it unopened. Asking for rows fails,
// saying why, where cuBLASLt is unavailable or LOOM_CUBLASLT=0. (Open
// lowers Caps' gated and cluster GEMV bounds below LOOM_CUBLASLT_ROWS;
// this leaves Caps alone.)
func (d *Device) SetCuBLASLtRows(rows int) error {
	if rows < 0 {
		return fmt.Errorf("cuda: cuBLASLt rows %d: want ≥ 0", rows)
	}
	if rows > 0 && !d.ltOpen() {
		if d.ltErr != errLtNotAsked || d.drv == nil {
			return fmt.Errorf("cuda: cuBLASLt is unavailable: %w", d.ltErr)
		}
		if err := d.ltLoad(""); err != nil {
			return fmt.Errorf("cuda: cuBLASLt is unavailable: %w", err)
		}
	}
	d.ltRows.Store(int64(rows))
	return nil
}

// ltOpen reports whether the device has opened cuBLASLt.
func (d *Device) ltOpen() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lt != nil
}

// CuBLASLtInfo describes the device's use of cuBLASLt.
type CuBLASLtInfo struct {
	Path    string // the library file; "" where unavailable
	Version int    // cublasLtGetVersion, such as 130001
	Rows    int    // the fewest rows of a product it takes; 0: none
	Err     error  // why it is unavailable, or nil
	// Since the device opened: products run by cublasLtMatmul on a stream,
	// graph nodes captured (built or updated), shapes without a plan and
	// calls or captures that failed (Loom's kernels ran instead, LastErr
	// says why), and products of a shape past ltMaxPlans (Loom's kernel
	// ran).
	Calls, Captures, Failures, Unplanned int64
	LastErr                              error
}

func (i CuBLASLtInfo) String() string {
	if i.Path == "" {
		return fmt.Sprintf("cuBLASLt off: %v", i.Err)
	}
	s := fmt.Sprintf("cuBLASLt %d (%s), products of ≥ %d rows: %d calls, %d graph captures, %d failures, %d unplanned", i.Version, i.Path, i.Rows, i.Calls, i.Captures, i.Failures, i.Unplanned)
	if i.Rows == 0 {
		s = fmt.Sprintf("cuBLASLt %d (%s), rows 0 (unused)", i.Version, i.Path)
	}
	if i.LastErr != nil {
		s += fmt.Sprintf("; last failure: %v", i.LastErr)
	}
	return s
}

// CuBLASLt describes the device's use of cuBLASLt.
func (d *Device) CuBLASLt() CuBLASLtInfo {
	i := CuBLASLtInfo{Err: d.ltErr, Rows: int(d.ltRows.Load()), Calls: d.ltStats.calls.Load(), Captures: d.ltStats.captures.Load(),
		Failures: d.ltStats.failures.Load(), Unplanned: d.ltStats.unplanned.Load()}
	d.mu.Lock()
	if d.lt != nil {
		i.Path, i.Version, i.Err = d.lt.path, d.lt.version, nil
	}
	d.mu.Unlock()
	if e := d.ltStats.lastErr.Load(); e != nil {
		i.LastErr = *e
	}
	return i
}

// ltFailed counts a failed cuBLASLt call and keeps its error.
func (d *Device) ltFailed(err error) {
	d.ltStats.failures.Add(1)
	d.ltStats.lastErr.Store(&err)
}

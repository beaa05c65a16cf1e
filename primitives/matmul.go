package primitives

import (
	"fmt"

	"github.com/loomrt/loom/graph"
)

// MatMul multiplies matrices: out[..., M, N] = A[..., M, K] · B[..., K, N],
// where a holds A, or Aᵀ ([..., K, M]) with TransposeA, and b holds B, or
// Bᵀ ([..., N, K], the layout of linear-layer weights) with TransposeB.
//
// Both inputs have rank 2 or more; a vector must be reshaped to a [1, K] or
// [K, 1] matrix first (there is no rank-1 shorthand, so a result's rank never
// depends on its inputs' ranks in a hidden way). The dims before the last
// two are batch dims and broadcast NumPy-style: either side may have fewer,
// or size 1. Both inputs have the same dtype, float32, float16 or bfloat16;
// products are accumulated in float32 and the output has the inputs' dtype.
//
// Lowering picks one of two kernels per dtype: a GEMV kernel
// (matmul_<dt>_gemv) when each output matrix has one row, the decode case of
// x[1, K] · Wᵀ, which streams the weights once; and a tiled kernel
// (matmul_<dt>_tiled) otherwise. On the CPU the GEMV kernel also takes
// products of up to MatMulSmallM rows (batched decode: x[M, K] · Wᵀ),
// reading each weight once for all the rows, and on Metal of up to
// MatMulSIMDGroupRows (Caps.GEMVMaxRows says how many). Where the device
// has Caps.TensorCores (CUDA, unless LOOM_CUDA_MMA=0), float16 and
// bfloat16 products with weights stored [N, K] run on tensor cores, in
// both kernels' variants (MatMulParams.MMA) with their own grids (mmaGEMV,
// mmaTiled), and the GEMV takes up to MatMulMMARows rows of them, or up to
// Caps.ClusterGEMVRows in its cluster variant (ringGEMV).
type MatMul struct{ TransposeA, TransposeB bool }

func (m MatMul) Name() string { return "matmul" }

// MatMulDTypes are the dtypes MatMul supports.
var MatMulDTypes = []graph.DType{graph.Float32, graph.Float16, graph.BFloat16}

// Tiling of the GPU kernels, which the grids below are counted in; the CPU
// kernels ignore the grid and block for their caches instead.
const (
	// MatMulTile is the side of the square output tile one threadgroup of
	// the tiled kernel computes.
	MatMulTile = 32
	// MatMulThreads is the tiled kernel's threadgroup size: four SIMD
	// groups of 32 lanes.
	MatMulThreads = 128
	// GEMVRowsPerGroup is the number of outputs one threadgroup of the GEMV
	// kernel computes: one per SIMD group.
	GEMVRowsPerGroup = 8
	// GEMVThreads is the GEMV kernel's threadgroup size.
	GEMVThreads = 8 * 32
)

// The CUDA tensor-core paths (cuda/kernels/matmul.cu): the tiled kernel's
// blocks of MatMulMMAThreads compute MatMulMMATileM × MatMulMMATileN output
// tiles; the GEMV kernel's blocks of GEMVThreads (8 warps) compute tiles of
// 8 or 16 outputs (MatMulParams.TileRows) for up to MatMulMMARows rows of
// x, Split warps a tile.
const (
	MatMulMMATileM   = 64
	MatMulMMATileN   = 128
	MatMulMMAThreads = 256
)

// CConstants returns C-family #define lines (MSL, CUDA C) for the GPU
// kernels' launch geometry above, AddRMSNormLinearMaxK, the sampling
// kernel's passes and
// SampleMaxTop (the size of the sampling kernels' per-thread candidate
// lists): the lowering counts grids and groups in these constants, and the kernels' index arithmetic must agree, so the GPU
// backends put these lines before their kernels, which use or static_assert
// them instead of repeating the numbers.
func CConstants() string {
	return fmt.Sprintf("#define LOOM_MATMUL_TILE %d\n#define LOOM_MATMUL_THREADS %d\n#define LOOM_GEMV_ROWS %d\n#define LOOM_GEMV_THREADS %d\n"+
		"#define LOOM_MMA_TILE_M %d\n#define LOOM_MMA_TILE_N %d\n#define LOOM_MMA_THREADS %d\n#define LOOM_MMA_GEMV_ROWS %d\n#define LOOM_MMA_CHUNKS %d\n#define LOOM_QUANT_X_ROWS %d\n#define LOOM_SAMPLE_MAX_TOP %d\n",
		MatMulTile, MatMulThreads, GEMVRowsPerGroup, GEMVThreads, MatMulMMATileM, MatMulMMATileN, MatMulMMAThreads, MatMulMMARows, MatMulMMAChunks, QuantXRows, SampleMaxTop) +
		fmt.Sprintf("#define LOOM_SAMPLE_WHOLE %d\n#define LOOM_SAMPLE_FIRST %d\n#define LOOM_SAMPLE_FINAL %d\n#define LOOM_ATTENTION_WARPS %d\n#define LOOM_NORM_GEMV_MAX_K %d\n",
			SampleWhole, SampleFirst, SampleFinal, AttentionWarps, AddRMSNormLinearMaxK)
}

// MatMulSmallM is the CPU device's Caps.GEMVMaxRows: the most rows per
// output matrix it lowers to the GEMV kernel's small-M path (CUDA's GEMV
// kernels take one row, but for its tensor-core path, MatMulMMARows; Metal's
// MatMulSIMDGroupRows). At
// 128 rows the small-M path was still faster than the tiled kernel on the
// development machine, 1.6–1.9× with weights stored [N, K] and 1.1–1.8×
// with [K, N]; they met at 256–512 rows (docs/BENCHMARKS.md, "CPU small-M
// matmul").
const MatMulSmallM = 128

// MatMulSIMDGroupRows is the Metal device's Caps.GEMVMaxRows: the rows
// one pass of its GEMV kernel takes, one 8-row SIMD-group matrix per SIMD
// group of a GEMVThreads threadgroup (metal/kernels/matmul.metal), so that
// up to that many rows read each weight once; more go to the tiled kernel,
// whose 32-row tiles would read them once per tile.
const MatMulSIMDGroupRows = GEMVThreads / 32 * 8

// MatMulMMARows is the most rows of a product the lowering gives CUDA's
// tensor-core GEMV (with Caps.TensorCores): the rows one pass of it takes
// (eight 8-row tiles of x), so that up to that many rows read the weights
// once. Set by that design, not yet by a measured crossover with the tiled
// kernel (docs/BENCHMARKS.md, "CUDA tensor-core matmul").
const MatMulMMARows = 64

// MatMulParams describe a matmul dispatch: Batch output matrices of M×N,
// each the product of an M×K matrix of a and a K×N matrix of b (stored
// transposed where TransposeA / TransposeB is 1).
//
// Output matrix i (row-major over BatchShape[:BatchRank]) multiplies a's
// matrix Σ_d idx_d·BatchStrideA[d] and b's matrix Σ_d idx_d·BatchStrideB[d],
// where idx is i's multi-index in BatchShape; a stride is 0 along a dim that
// input broadcasts. Strides count matrices (M·K elements for a, K·N for b).
type MatMulParams struct {
	M, N, K                    uint32
	Batch                      uint32
	TransposeA, TransposeB     uint32
	BatchRank                  uint32
	BatchShape                 [MaxRank]uint32
	BatchStrideA, BatchStrideB [MaxRank]uint32
	// MMA is 1 where the product runs on tensor cores: set by the lowering
	// with Caps.TensorCores (mmaGEMV, mmaTiled), for which the CUDA device
	// launches the kernel's tensor-core variant, matmul_<dt>_<path>_mma
	// (cuda/kernels/matmul.cu); the kernels themselves ignore it.
	MMA uint32
	// Split and TileRows shape the tensor-core GEMV's work (see
	// mmaGEMVGrid): Split warps share each tile of TileRows (8 or 16)
	// outputs. The sums do not depend on them; other kernels ignore them.
	Split, TileRows uint32
	// Stream is 1 where the tensor-core GEMV streams its weights
	// (Caps.GEMVStream, mmaStreams, mmaStreamGrid): the kernel then runs
	// its stream path where M ≤ 8, K is a multiple of 256 and the rows are
	// aligned, else its tiles as without it. The sums are the same.
	Stream uint32
	// Ring is 1 where the tensor-core GEMV runs its cluster variant
	// (Caps.ClusterGEMVRows, ringGEMV; matmul_<dt>_gemv_mma_ring): a grid
	// of clusters of 8 blocks, each with RingSharedBytes of shared memory.
	// The sums are the tile loop's.
	Ring uint32
	// Bulk, where not 0, is the stages of the ring through which the
	// tensor-core GEMV's bulk variant (Caps.GEMVBulk, bulkGEMVPlan;
	// matmul_<dt>_gemv_mma_bulk) copies its weights into shared memory:
	// a grid of about a block a multiprocessor, each with BulkSharedBytes.
	// The sums are the tile loop's.
	Bulk uint32
}

// matmulDims returns M, K of a and K, N of b, honouring the transposes.
func (m MatMul) matmulDims(a, b []int) (am, ak, bk, bn int) {
	ra, rb := len(a), len(b)
	am, ak = a[ra-2], a[ra-1]
	if m.TransposeA {
		am, ak = ak, am
	}
	bk, bn = b[rb-2], b[rb-1]
	if m.TransposeB {
		bk, bn = bn, bk
	}
	return am, ak, bk, bn
}

func (m MatMul) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 2 {
		return nil, fmt.Errorf("needs 2 inputs, got %d", len(in))
	}
	a, b := in[0], in[1]
	if a.DType != b.DType {
		return nil, fmt.Errorf("dtypes differ: a is %s, b is %s", a.DType, b.DType)
	}
	if !hasDType(MatMulDTypes, a.DType) {
		return nil, fmt.Errorf("dtype %s is not supported (float32, float16, bfloat16)", a.DType)
	}
	for i, s := range in {
		if len(s.Shape) < 2 {
			return nil, fmt.Errorf("input %d (%s) has rank %d; matmul needs matrices (rank ≥ 2): reshape a vector to [1, K] or [K, 1]", i, "ab"[i:i+1], len(s.Shape))
		}
		if len(s.Shape) > MaxRank {
			return nil, fmt.Errorf("input %d has rank %d: unsupported, the most is %d", i, len(s.Shape), MaxRank)
		}
		if int64(s.Size()) > 1<<32-1 {
			return nil, fmt.Errorf("input %d has %d elements: unsupported, the most is 2^32-1", i, s.Size())
		}
	}
	am, ak, bk, bn := m.matmulDims(a.Shape, b.Shape)
	if ak != bk {
		return nil, fmt.Errorf("inner dimensions differ: a%v gives K=%d%s, b%v gives K=%d%s",
			a.Shape, ak, transposed(m.TransposeA), b.Shape, bk, transposed(m.TransposeB))
	}
	batch, err := BroadcastShapes(a.Shape[:len(a.Shape)-2], b.Shape[:len(b.Shape)-2])
	if err != nil {
		return nil, fmt.Errorf("batch dims: %v", err)
	}
	out := graph.Spec{DType: a.DType, Shape: append(batch, am, bn)}
	if int64(out.Size()) > 1<<32-1 {
		return nil, fmt.Errorf("output %v has %d elements: unsupported, the most is 2^32-1", out.Shape, out.Size())
	}
	return []graph.Spec{out}, nil
}

func transposed(t bool) string {
	if t {
		return " (transposed)"
	}
	return ""
}

// params returns the params for a matmul of inputs of the given
// shapes, already checked by Outputs. When b has no batch (or broadcasts
// all of it) and a is not transposed, a's batch of M×K matrices is one
// (Batch·M)×K matrix, and the product is a single matrix product: the
// params say so (Batch 1), which lets several decode tokens share one pass
// over the weights.
func (m MatMul) params(a, b []int) *MatMulParams {
	am, ak, _, bn := m.matmulDims(a, b)
	p := &MatMulParams{M: uint32(am), N: uint32(bn), K: uint32(ak), TransposeA: b2u32(m.TransposeA), TransposeB: b2u32(m.TransposeB)}
	ab, bb := a[:len(a)-2], b[:len(b)-2]
	batch, _ := BroadcastShapes(ab, bb) // checked by Outputs
	p.Batch = uint32(graph.NumElements(batch))
	if graph.NumElements(bb) == 1 && !m.TransposeA {
		p.M *= p.Batch
		p.Batch = 1
		return p
	}
	p.BatchRank = uint32(len(batch))
	for i, d := range batch {
		p.BatchShape[i] = uint32(d)
	}
	for k, s := range [][]int{ab, bb} {
		strides := &p.BatchStrideA
		if k == 1 {
			strides = &p.BatchStrideB
		}
		off := len(batch) - len(s)
		stride := 1
		for i := len(s) - 1; i >= 0; i-- {
			if s[i] != 1 {
				strides[off+i] = uint32(stride)
			}
			stride *= s[i]
		}
	}
	return p
}

func b2u32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

func (m MatMul) Lower(l *Lowering) error {
	lowerMatMul(l, l.Inputs[0].DType, m.params(l.Inputs[0].Shape, l.Inputs[1].Shape), In(0), In(1), Out(0))
	return nil
}

// lowerMatMul adds the dispatch of a matmul with params p of a and b of
// dtype dt into out, choosing the kernel.
func lowerMatMul(l *Lowering, dt graph.DType, p *MatMulParams, a, b, out Ref) {
	maxRows := l.Caps.GEMVMaxRows
	if mmaGEMV(l.Caps, dt, p) {
		maxRows = max(maxRows, MatMulMMARows)
	}
	smallM := p.M > 1 && int(p.M) <= maxRows
	if p.M == 1 || smallM || ringGEMV(l.Caps, dt, p, int(p.M), int(p.K), ringGrid(Groups(int(p.N), 16))*int(p.Batch)) {
		grid := gemvGeometry(l, dt, p)
		if p.M > 1 {
			l.Count("matmul_small_m", 1)
		} else {
			l.Count("matmul_gemv", 1)
		}
		d := l.Dispatch(MatMulGEMVKernel(dt), grid, Dim3{GEMVThreads, 1, 1}, p, a, b, out)
		switch {
		case p.Ring == 1:
			d.SharedBytes = RingSharedBytes(int(p.M), int(p.K))
		case p.Bulk > 0:
			d.SharedBytes = BulkSharedBytes(int(p.M), int(p.K), int(p.Split), int(p.TileRows), int(p.Bulk))
		}
		return
	}
	grid, group := Dim3{Groups(int(p.N), MatMulTile), Groups(int(p.M), MatMulTile), int(p.Batch)}, Dim3{MatMulThreads, 1, 1}
	if mmaTiled(l.Caps, dt, p) {
		p.MMA = 1
		grid = Dim3{Groups(int(p.N), MatMulMMATileN), Groups(int(p.M), MatMulMMATileM), int(p.Batch)}
		group = Dim3{MatMulMMAThreads, 1, 1}
		l.Count("matmul_mma", 1)
	}
	l.Count("matmul_tiled", 1)
	l.Dispatch(MatMulTiledKernel(dt), grid, group, p, a, b, out)
}

// gemvGeometry returns the grid of the GEMV kernel for p (M up to the
// device's GEMV rows) and sets p's tensor-core fields (MMA, Split,
// TileRows, Stream, Ring, Bulk) where the device runs it on tensor cores.
func gemvGeometry(l *Lowering, dt graph.DType, p *MatMulParams) Dim3 {
	grid := Dim3{Groups(int(p.N), GEMVRowsPerGroup), 1, int(p.Batch)}
	if b, ok := bulkGEMVPlan(l.Caps, dt, int(p.M), int(p.N), int(p.K), false, true); ok && mmaGEMV(l.Caps, dt, p) && p.Batch == 1 {
		p.MMA, p.Bulk, p.Split, p.TileRows = 1, uint32(b.stages), uint32(b.split), uint32(b.tileRows)
		grid.X = b.grid
		l.Count("matmul_mma_bulk", 1)
		l.Count("matmul_mma", 1)
	} else if ringGEMV(l.Caps, dt, p, int(p.M), int(p.K), ringGrid(Groups(int(p.N), 16))*int(p.Batch)) {
		p.MMA, p.Ring, p.TileRows = 1, 1, 16
		grid.X = ringGrid(Groups(int(p.N), 16))
		l.Count("matmul_mma_ring", 1)
		l.Count("matmul_mma", 1)
	} else if mmaGEMV(l.Caps, dt, p) {
		p.MMA = 1
		grid.X, p.Split, p.TileRows = mmaGEMVTiles(int(p.N), int(p.M), int(p.K), l.Caps.Cores)
		if mmaStreams(l.Caps, int(p.M), int(p.K), grid.X) {
			p.Stream = 1
			grid.X, p.Split, p.TileRows = mmaStreamTiles(int(p.N), int(p.K), l.Caps.Cores)
			l.Count("matmul_mma_stream", 1)
		}
		l.Count("matmul_mma", 1)
	} else if l.Caps.GEMVSplitK && p.M == 1 && p.TransposeB == 1 {
		grid.X = Groups(int(p.N), GEMVRowsPerGroup/gemvSplitK(int(p.N)*int(p.Batch), int(p.K)*dt.Size(), l.Caps.Cores))
		l.Count("matmul_gemv_split_k", 1)
	}
	return grid
}

// MatMulGEMVKernel is the GEMV kernel for dtype dt.
func MatMulGEMVKernel(dt graph.DType) string { return KernelName("matmul", dt) + "_gemv" }

// MatMulTiledKernel is the tiled matmul kernel for dtype dt.
func MatMulTiledKernel(dt graph.DType) string { return KernelName("matmul", dt) + "_tiled" }

// mmaGEMV reports whether CUDA's GEMV kernel computes the product on
// tensor cores: the device opts in (Caps.TensorCores), float16 or
// bfloat16, weights stored [N, K], rows of x contiguous.
func mmaGEMV(c Caps, dt graph.DType, p *MatMulParams) bool {
	return c.TensorCores && dt != graph.Float32 && p.TransposeB == 1 && (p.TransposeA == 0 || p.M == 1)
}

// mmaTiled reports whether CUDA's tiled kernel computes the product on
// tensor cores, in MatMulMMATileM × MatMulMMATileN tiles: the device opts
// in (Caps.TensorCores), float16 or bfloat16, weights stored [N, K], a not
// transposed.
func mmaTiled(c Caps, dt graph.DType, p *MatMulParams) bool {
	return c.TensorCores && dt != graph.Float32 && p.TransposeB == 1 && p.TransposeA == 0
}

// gemvSplitK is how many SIMD groups of CUDA's GEMV share each of n outputs
// of rowBytes of weights on a device of cores cores: the fewest (1, 2, 4
// or 8) that make at least four threadgroups of GEMVThreads a core, so
// that a product of few outputs (1,024 on an H100's 132 multiprocessors)
// still has enough loads in flight on every one of them, but no more than
// a row has 512-byte parts for (the kernel's parts: vector i of 16 bytes
// goes to part (i/32) mod 8, and a group's share is whole parts). The
// kernel derives the number from its grid, Groups(n, GEMVRowsPerGroup/s)
// wide; its sums do not depend on it.
func gemvSplitK(n, rowBytes, cores int) int {
	most := min(GEMVRowsPerGroup, max(1, Groups(rowBytes, 512)))
	s := 1
	for 2*s <= most && Groups(n, GEMVRowsPerGroup/s) < 4*cores {
		s *= 2
	}
	return s
}

// mmaGEMVTiles is the grid of CUDA's tensor-core GEMV for n outputs, m
// rows of x and k columns on a device of cores multiprocessors, with its
// Split and TileRows: tiles of 16 outputs, or of 8 where the grid of 16
// would leave multiprocessors without a block (1,024 outputs on an H100's
// 132).
func mmaGEMVTiles(n, m, k, cores int) (groups int, split, tileRows uint32) {
	tileRows = 16
	groups, split = mmaGEMVGrid(Groups(n, 16), m, k, cores)
	if groups < cores {
		tileRows = 8
		groups, split = mmaGEMVGrid(Groups(n, 8), m, k, cores)
	}
	return groups, split, tileRows
}

// The cluster variant of the tensor-core GEMV (cuda/kernels/matmul.cu's
// mma_ring): clusters of RingCluster blocks, one per slice of K, each
// cluster RingTiles tiles of 16 weight rows (the gated GEMV's: 8 outputs).
const (
	RingCluster = 8
	RingTiles   = 4
	// RingMaxSharedBytes bounds a block's shared memory: what an sm_90
	// block may opt in to (227 KB).
	RingMaxSharedBytes = 227 << 10
)

// RingSharedBytes is the shared memory of a block of the cluster GEMV of
// m rows of x and k columns (mma_ring's RingSmem): its slice (k/8 columns,
// rows padded as ring_stride pads them) of 64 weight rows and of x's rows
// rounded up to whole passes, and a pass's slice sums.
func RingSharedBytes(m, k int) int {
	kc := k / RingCluster
	stride := kc
	if kc%64 == 0 {
		stride += 32
	}
	mt := ringTilesOfX(m)
	mp := Groups(m, 8*mt) * 8 * mt
	return (RingTiles*16+mp)*stride*2 + RingTiles*mt*32*4*4
}

// ringTilesOfX is mma_tiles_of_x: the 8-row tiles of x of a pass.
func ringTilesOfX(m int) int {
	switch {
	case m <= 8:
		return 1
	case m <= 16:
		return 2
	case m <= 32:
		return 4
	}
	return 8
}

// ringGEMV reports whether a tensor-core GEMV (mmaGEMV; the gated GEMV
// with p nil) of m rows and k columns whose cluster variant would have a
// grid of `blocks` runs that variant: the device has
// one (Caps.ClusterGEMVRows rows), 9 rows or more (fewer stay on the tile
// loop and stream), k a positive multiple of 256 (whole chunks a slice),
// the shared memory fits, and the grid is at most a block a multiprocessor.
// That last is where it was measured faster (docs/BENCHMARKS.md, "The
// cluster GEMV"): on an H100 the O and down projections (1,024 outputs,
// 128 blocks) took 7.5–44.7 µs against the tile loop's and tiled kernel's
// 8.3–55.7 at 16 to 160 rows (8.6 against 8.3 at 32 rows of O), while the
// grids of several blocks a multiprocessor were slower than the tile loop
// (QKV: 512 blocks, 13.7 against 7.8 µs at 32 rows; the gated GEMV: 768,
// 19.0 against 12.6; the lm_head: 18,992, 350 against 220) and than the
// tiled kernel past 64 rows: a block's copies, products and two cluster
// barriers run one after another, so its lifetime, not the bytes in
// flight, bounds a grid of many.
func ringGEMV(c Caps, dt graph.DType, p *MatMulParams, m, k, blocks int) bool {
	if p != nil && !mmaGEMV(c, dt, p) || !c.TensorCores || dt == graph.Float32 {
		return false
	}
	return m > 8 && m <= c.ClusterGEMVRows && k > 0 && k%256 == 0 && RingSharedBytes(m, k) <= RingMaxSharedBytes && blocks <= c.Cores
}

// ringGrid is the cluster GEMV's grid of blocks for the given tiles.
func ringGrid(tiles int) int { return Groups(tiles, RingTiles) * RingCluster }

// BulkMaxStages is the most stages of the bulk GEMV's ring (its kernel's
// room for mbarriers).
const BulkMaxStages = 16

// GEMVBulk shapes the bulk variant of the tensor-core GEMV and gated GEMV
// (Caps.GEMVBulk; matmul.cu's mma_bulk): weight rows copied into shared
// memory in stages, one 1-D bulk copy a span, by a grid of Blocks blocks a
// multiprocessor. The zero value is off.
type GEMVBulk struct {
	Stages     int // the ring's stages, at most BulkMaxStages; 0: off
	StageBytes int // the weight bytes a stage aims at (whole tiles, at least one)
	Blocks     int // blocks a multiprocessor (1 or 2)
}

// bulkPlan is the geometry of a bulk GEMV: its grid, warps a tile (Split),
// tile height (the gated GEMV's: 8) and stages.
type bulkPlan struct{ grid, split, tileRows, stages int }

// bulkGEMVPlan is the plan of the bulk GEMV (gated: the gated GEMV) of m
// rows of x, n outputs and k columns of dtype dt where the device has it
// (Caps.GEMVBulk) and it applies: tensor cores (float16, bfloat16), 1 to 8 rows (one tile of
// x), k a multiple of 8 (rows of whole 16-byte pieces), and a ring of at
// least one stage in half a multiprocessor's shared memory. xShared says whether x's rows are in the kernel's dynamic
// shared memory (not so for the norms fused into it, whose normalised row
// has its own). A block takes a contiguous run of tiles: 16 rows, or 8
// where 16 would leave multiprocessors without a block (the gated GEMV's
// tiles are 8 gate and 8 up rows); a stage is 8/Split tiles, the most (up
// to 8 and to a block's tiles) within StageBytes, at least one.
func bulkGEMVPlan(c Caps, dt graph.DType, m, n, k int, gated, xShared bool) (bulkPlan, bool) {
	b := c.GEMVBulk
	if b.Stages < 1 || !c.TensorCores || dt == graph.Float32 || m < 1 || m > 8 || n < 1 || k < 8 || k%8 != 0 {
		return bulkPlan{}, false
	}
	perCore := min(max(b.Blocks, 1), 2)
	blocks := max(c.Cores, 1) * perCore
	p := bulkPlan{tileRows: 16}
	outs, rows := 16, 16 // outputs and weight rows a tile
	if gated {
		p.tileRows, outs = 8, 8
	} else if Groups(n, 16) < blocks {
		p.tileRows, outs, rows = 8, 8, 8
	}
	tiles := Groups(n, outs)
	p.grid = min(tiles, blocks)
	share := Groups(tiles, p.grid)
	tileBytes := rows * k * 2
	per := 1
	for per < 8 && 2*per <= share && 2*per*tileBytes <= b.StageBytes {
		per *= 2
	}
	p.split = 8 / per
	xRows := 0
	if xShared {
		xRows = m
	}
	// Two blocks' shared memory, less a block's static shared memory (the
	// fused norms' row), must fit a multiprocessor's: at one block a
	// multiprocessor, so that the next kernel's block fits beside it.
	budget := RingMaxSharedBytes/2 - 8<<10
	for p.stages = min(b.Stages, Groups(share, per), BulkMaxStages); p.stages > 0; p.stages-- {
		if BulkSharedBytes(xRows, k, p.split, rows, p.stages) <= budget {
			return p, true
		}
	}
	return bulkPlan{}, false
}

// BulkSharedBytes is the dynamic shared memory of a block of the bulk GEMV
// (matmul.cu's BulkLayout) with xRows rows of x of k columns in it, split
// warps a tile, tiles of tileRows weight rows (the gated GEMV's: 16, its 8
// gate and 8 up rows) and the given stages: the mbarriers, the slice sums
// (or block_sum's scratch), x, and the ring.
func BulkSharedBytes(xRows, k, split, tileRows, stages int) int {
	red := 32 * 4
	if split > 1 {
		red = GEMVThreads / 32 / split * 8 * 4 * 32 * 4
	}
	return BulkMaxStages*8 + red + Groups(xRows*k*2, 16)*16 + stages*(GEMVThreads/32/split)*tileRows*k*2
}

// MatMulMMAChunks is the chunks of 32 columns whose weights a lane of
// CUDA's tensor-core GEMV loads before it uses any (two 16-byte loads
// each), for up to 16 rows of x; past 16, half as many, which keeps the
// accumulators of more rows in registers.
const MatMulMMAChunks = 8

// mmaGEMVGrid is the grid and split of a tensor-core GEMV of the given
// tiles (the gated GEMV's or the matmul's), m rows of x and k columns. A
// decode GEMV is bound by the weight bytes in flight: its time is about a
// memory round trip for each wave of blocks (two blocks of 8 warps a
// multiprocessor at once) and each round of a warp's loads (its chunks of
// 32 columns, MatMulMMAChunks at a time). Split is the number of warps a
// tile (1, 2, 4 or 8; each takes 1/Split of the chunks) with the fewest
// waves × rounds, the fewest warps of those; at least the 8-row tiles of x
// of a pass (1, 2, 4 or 8, for up to MatMulMMARows rows), which keeps a
// warp's accumulators in registers. The kernel takes any grid and split;
// the result does not depend on them.
func mmaGEMVGrid(tiles, m, k, cores int) (groups int, split uint32) {
	xTiles := Groups(min(m, MatMulMMARows), 8)
	chunks := Groups(k, 32)
	unroll := MatMulMMAChunks
	if xTiles > 2 {
		unroll /= 2
	}
	best := -1
	for s := 1; s <= 8; s *= 2 {
		if s < xTiles {
			continue
		}
		blocks := Groups(tiles, GEMVThreads/32/s)
		cost := Groups(blocks, max(2*cores, 1)) * max(Groups(Groups(chunks, s), unroll), 1)
		if best < 0 || cost < best {
			best, groups, split = cost, blocks, uint32(s)
		}
	}
	return groups, split
}

// mmaStreams reports whether a tensor-core GEMV of m rows of x and k
// columns, whose tile loop would have a grid of tileGrid blocks, streams
// (MatMulParams.Stream): where it was measured faster than the tile loop.
// On an H100 (docs/BENCHMARKS.md, "GEMV kernels side by side") that was
// the lm_head (151,936×1024, a tile loop of 2,374 blocks, nine waves of
// two a multiprocessor) at 2 to 8 rows: 130 against 133 µs at M = 2, 131
// against 144 at 4, 130–134 against 154–155 at 8; at M = 1 they tied
// (128.8–133.1 against 128.9–129.4 µs), and the projections of 2–12 MB
// (one wave) were 0.5–3.5 µs slower streamed. So: the device opts in
// (Caps.GEMVStream), 2 to 8 rows (one 8-row tile of x), k a multiple of
// 256 (the kernel's own condition, with aligned rows), and a tile loop of
// more than one wave.
func mmaStreams(c Caps, m, k, tileGrid int) bool {
	return c.GEMVStream && m >= 2 && m <= 8 && k > 0 && k%256 == 0 && tileGrid > 2*c.Cores
}

// mmaStreamTiles is mmaGEMVTiles for the streaming GEMV: tiles of 16
// outputs, or of 8 where the grid of 16 would leave multiprocessors
// without a block.
func mmaStreamTiles(n, k, cores int) (groups int, split, tileRows uint32) {
	tileRows = 16
	groups, split = mmaStreamGrid(Groups(n, 16), k, cores)
	if groups < cores {
		tileRows = 8
		groups, split = mmaStreamGrid(Groups(n, 8), k, cores)
	}
	return groups, split, tileRows
}

// mmaStreamGrid is the grid and split of a streaming tensor-core GEMV of
// the given tiles and k columns: at most two blocks of 8 warps a
// multiprocessor (the kernel's launch bounds), each looping over tiles,
// since a warp keeps its loads in flight from one tile to the next. A
// warp's time is its chunks of 32 columns, steps × chunks/Split, where
// steps are the tiles a warp takes in turn; Split (1, 2, 4 or 8 warps a
// tile) is the one with the fewest, the fewest warps of those. The kernel
// takes any grid and split; the result does not depend on them.
func mmaStreamGrid(tiles, k, cores int) (groups int, split uint32) {
	chunks := Groups(k, 32)
	best := -1
	for s := 1; s <= 8; s *= 2 {
		tb := GEMVThreads / 32 / s
		blocks := max(1, min(Groups(tiles, tb), 2*cores))
		cost := Groups(tiles, blocks*tb) * Groups(chunks, s)
		if best < 0 || cost < best {
			best, groups, split = cost, blocks, uint32(s)
		}
	}
	return groups, split
}

func init() {
	for _, dt := range MatMulDTypes {
		for _, name := range []string{MatMulGEMVKernel(dt), MatMulTiledKernel(dt)} {
			register(KernelSpec{Name: name, Args: []ArgSpec{R("a"), R("b"), W("out")}, Params: (*MatMulParams)(nil)})
		}
	}
}

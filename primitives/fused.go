package primitives

import (
	"fmt"
	"math"
	"slices"

	"github.com/loomrt/loom/graph"
)

// Fused primitives of a transformer layer: each does in one dispatch what a
// chain of the basic primitives does in several, computing in float32 and
// rounding to the dtype once at the end where the chain rounds between its
// steps. Where that rounding differs from the chain, the doc comment says
// so; in float32 the results are the chain's bit for bit on the CPU.

// AddRMSNorm adds its first two inputs, x and residual ([..., D], one float
// dtype), and normalises the sum like RMSNorm with its third, weight ([D]):
// output 0 is sum = x + residual rounded to the dtype, output 1 is
// RMSNorm(sum)·weight computed from that rounded sum. Both are the results
// of Add followed by RMSNorm, bit for bit on the CPU, in every dtype.
type AddRMSNorm struct{ Eps float32 }

func (AddRMSNorm) Name() string { return "add_rms_norm" }

// NumOutputs is 2: the sum and its normalisation.
func (AddRMSNorm) NumOutputs() int { return 2 }

func (a AddRMSNorm) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("needs 3 inputs (x, residual, weight), got %d", len(in))
	}
	x, res := in[0], in[1]
	if res.DType != x.DType || !slices.Equal(res.Shape, x.Shape) {
		return nil, fmt.Errorf("residual %s differs from x %s", res, x)
	}
	outs, err := RMSNorm{Eps: a.Eps}.Outputs([]graph.Spec{x, in[2]})
	if err != nil {
		return nil, err
	}
	return []graph.Spec{x, outs[0]}, nil
}

func (a AddRMSNorm) Lower(l *Lowering) error {
	return lowerRMSNorm(l, AddRMSNormKernel, a.Eps, In(0), In(1), In(2), Out(0), Out(1))
}

// AddRMSNormKernel is AddRMSNorm's kernel for x of dtype dt.
func AddRMSNormKernel(dt graph.DType) string { return KernelName("add_rms_norm", dt) }

// SiLUMulParams describe a gated activation of Rows rows of 2·N elements
// into Rows rows of N.
type SiLUMulParams struct{ Rows, N uint32 }

// SiLUMul is the gated activation of a SwiGLU MLP on its input [..., 2N],
// the gate half then the up half of the last axis (the output of one
// matmul by the concatenated gate and up weights): out[..., i] =
// SiLU(a[..., i])·a[..., N+i], [..., N]. SiLU is evaluated in float64 and
// rounded to float32, the product rounded once to the dtype: in float32 the
// result is SiLU followed by Mul bit for bit; in float16 and bfloat16 the
// chain also rounds SiLU's result to the dtype, this does not.
type SiLUMul struct{}

func (SiLUMul) Name() string { return "silu_mul" }

func (SiLUMul) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("needs 1 input, got %d", len(in))
	}
	a := in[0]
	if !hasDType(FloatDTypes, a.DType) {
		return nil, fmt.Errorf("dtype %s is unsupported (supported: %v)", a.DType, FloatDTypes)
	}
	if len(a.Shape) == 0 || a.Shape[len(a.Shape)-1]%2 != 0 {
		return nil, fmt.Errorf("input %s must have an even last dimension (the gate half, then the up half)", a)
	}
	shape := append([]int{}, a.Shape...)
	shape[len(shape)-1] /= 2
	return []graph.Spec{{DType: a.DType, Shape: shape}}, nil
}

func (SiLUMul) Lower(l *Lowering) error {
	a := l.Inputs[0]
	if err := checkElements(a.Size()); err != nil {
		return err
	}
	n := a.Shape[len(a.Shape)-1] / 2
	rows := 0
	if n > 0 {
		rows = a.Size() / (2 * n)
	}
	lowerSiLUMul(l, a.DType, rows, n, In(0), Out(0))
	return nil
}

// lowerSiLUMul adds the silu_mul dispatch of rows rows of 2·n elements of
// dtype dt in buffer a into out.
func lowerSiLUMul(l *Lowering, dt graph.DType, rows, n int, a, out Ref) {
	l.Dispatch(SiLUMulKernel(dt), Dim3{Groups(rows*n, ElementwiseThreads), 1, 1}, // a thread per output element
		Dim3{ElementwiseThreads, 1, 1}, &SiLUMulParams{Rows: uint32(rows), N: uint32(n)}, a, out)
}

// SiLUMulKernel is SiLUMul's kernel for dtype dt.
func SiLUMulKernel(dt graph.DType) string { return KernelName("silu_mul", dt) }

// MatMulSiLUMulParams describe a gated linear layer: M rows of x of K
// elements, weights of 2·N rows of K (the gate rows, then the up rows),
// M rows of N outputs. MMA is 1 where the CUDA device runs the gated GEMV
// on tensor cores (matmul_silu_mul_<dt>_mma, with Split warps a tile of 8
// outputs, see mmaGEMVGrid): set by the lowering with Caps.TensorCores for
// float16 and bfloat16; other kernels ignore MMA and Split. Ring and Bulk
// select the cluster and bulk variants as MatMulParams's do.
type MatMulSiLUMulParams struct{ M, N, K, MMA, Split, Ring, Bulk uint32 }

// MatMulSiLUMul is the gate and up projections of a SwiGLU MLP with their
// activation: inputs x [..., K] and w [2N, K], the gate weights (rows
// 0..N-1) stacked on the up weights (rows N..2N-1), both of one dtype of
// MatMulDTypes; out[..., j] = SiLU(x·w[j])·(x·w[N+j]), [..., N]. It is
// MatMul (x by wᵀ) followed by SiLUMul, and its results are theirs bit for
// bit on the CPU in every dtype: each dot product is summed as the GEMV
// kernel sums it and rounded to the dtype, as the matmul's output is, and
// SiLU and the product are evaluated as SiLUMul evaluates them.
//
// Lowering emits one dispatch (matmul_silu_mul_<dt>: each output's two dot
// products and the activation by one piece of work) where x has at most
// Caps.GatedGEMVMaxRows rows; otherwise the matmul into a scratch buffer
// and silu_mul (counted as matmul_silu_mul.fused and .unfused).
type MatMulSiLUMul struct{}

func (MatMulSiLUMul) Name() string { return "matmul_silu_mul" }

func (MatMulSiLUMul) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 2 {
		return nil, fmt.Errorf("needs 2 inputs (x, the stacked gate and up weights), got %d", len(in))
	}
	x, w := in[0], in[1]
	if x.DType != w.DType {
		return nil, fmt.Errorf("dtypes differ: x is %s, w is %s", x.DType, w.DType)
	}
	if !hasDType(MatMulDTypes, x.DType) {
		return nil, fmt.Errorf("dtype %s is unsupported (float32, float16, bfloat16)", x.DType)
	}
	if len(x.Shape) < 2 || len(x.Shape) > MaxRank {
		return nil, fmt.Errorf("x %s must have rank 2 to %d ([..., K])", x, MaxRank)
	}
	if len(w.Shape) != 2 || w.Shape[0]%2 != 0 {
		return nil, fmt.Errorf("w %s must be [2N, K]: the gate rows, then as many up rows", w)
	}
	k := x.Shape[len(x.Shape)-1]
	if w.Shape[1] != k {
		return nil, fmt.Errorf("inner dimensions differ: x %s has K=%d, w %s has K=%d", x, k, w, w.Shape[1])
	}
	out := graph.Spec{DType: x.DType, Shape: append(slices.Clone(x.Shape[:len(x.Shape)-1]), w.Shape[0]/2)}
	for _, s := range []graph.Spec{x, w, {DType: x.DType, Shape: append(slices.Clone(out.Shape[:len(out.Shape)-1]), w.Shape[0])}} {
		if int64(s.Size()) > 1<<32-1 {
			return nil, fmt.Errorf("%s has %d elements: unsupported, the most is 2^32-1", s, s.Size())
		}
	}
	return []graph.Spec{out}, nil
}

// MatMulSiLUMulKernel is the gated kernel's name for dtype dt.
func MatMulSiLUMulKernel(dt graph.DType) string { return KernelName("matmul_silu_mul", dt) }

func (MatMulSiLUMul) Lower(l *Lowering) error {
	x, w := l.Inputs[0], l.Inputs[1]
	m := graph.NumElements(x.Shape[:len(x.Shape)-1])
	lowerMatMulSiLUMul(l, x.DType, m, w.Shape[0]/2, w.Shape[1], In(0), In(1), Out(0))
	return nil
}

// lowerMatMulSiLUMul adds the dispatches of a gated linear layer of m rows
// of x of k elements, weights w of 2n rows of dtype dt, into out.
func lowerMatMulSiLUMul(l *Lowering, dt graph.DType, m, n, k int, x, w, out Ref) {
	if m <= l.Caps.GatedGEMVMaxRows || ringGEMV(l.Caps, dt, nil, m, k, ringGrid(Groups(n, 8))) {
		p := &MatMulSiLUMulParams{M: uint32(m), N: uint32(n), K: uint32(k)}
		grid := gatedGeometry(l, dt, p)
		d := l.Dispatch(MatMulSiLUMulKernel(dt), grid, Dim3{GEMVThreads, 1, 1}, p, x, w, out)
		switch {
		case p.Ring == 1:
			d.SharedBytes = RingSharedBytes(m, k)
		case p.Bulk > 0:
			d.SharedBytes = BulkSharedBytes(m, k, int(p.Split), 16, int(p.Bulk))
		}
		l.Count("matmul_silu_mul.fused", 1)
		return
	}
	gateUp := l.NewScratch(int64(m) * int64(2*n) * int64(dt.Size()))
	lowerMatMul(l, dt, &MatMulParams{M: uint32(m), N: uint32(2 * n), K: uint32(k), Batch: 1, TransposeB: 1}, x, w, gateUp)
	lowerSiLUMul(l, dt, m, n, gateUp, out)
	l.Count("matmul_silu_mul.unfused", 1)
}

// gatedGeometry returns the grid of the gated kernel for p and sets its
// tensor-core fields (MMA, Split) where the device runs it on tensor
// cores. As the GEMV: a SIMD group per output (its two dot products), a
// row of groups per row of x; on tensor cores as the tensor-core GEMV,
// whose sums it shares (tiles of 8 gate and 8 up rows).
func gatedGeometry(l *Lowering, dt graph.DType, p *MatMulSiLUMulParams) Dim3 {
	m, n := int(p.M), int(p.N)
	grid := Dim3{Groups(n, GEMVRowsPerGroup), m, 1}
	if b, ok := bulkGEMVPlan(l.Caps, dt, m, n, int(p.K), true, true); ok {
		p.MMA, p.Bulk, p.Split = 1, uint32(b.stages), uint32(b.split)
		grid = Dim3{b.grid, 1, 1}
		l.Count("matmul_silu_mul.mma_bulk", 1)
	} else if ringGEMV(l.Caps, dt, nil, m, int(p.K), ringGrid(Groups(n, 8))) {
		p.MMA, p.Ring = 1, 1
		grid = Dim3{ringGrid(Groups(n, 8)), 1, 1}
		l.Count("matmul_silu_mul.mma_ring", 1)
	} else if l.Caps.TensorCores && dt != graph.Float32 {
		p.MMA = 1
		grid.X, p.Split = mmaGEMVGrid(Groups(n, 8), m, int(p.K), l.Caps.Cores)
		grid.Y = min(m, 1)
		l.Count("matmul_silu_mul.mma", 1)
	}
	return grid
}

// AddRMSNormLinearMaxK is the longest row that AddRMSNormLinear lowers to
// its one-dispatch kernels: what a threadgroup of the CUDA kernels
// normalises in registers (common.cuh's NORM_REGS elements a thread) and
// keeps in shared memory beside the tensor-core GEMV's (8 KB of bfloat16).
const AddRMSNormLinearMaxK = 4096

// AddRMSNormLinearParams describe a norm fused into a GEMV: one row of K
// elements, N outputs (of the gated kernel: N gate and N up rows), the
// norm's Eps, and the GEMV's geometry as MatMulParams (MMA, Split,
// TileRows, Bulk) or MatMulSiLUMulParams (MMA, Split, Bulk) have it.
type AddRMSNormLinearParams struct {
	N, K                       uint32
	Eps                        float32
	MMA, Split, TileRows, Bulk uint32
}

// AddRMSNormLinear is AddRMSNorm followed by a linear layer of its
// normalised output: inputs x and delta ([..., K], one dtype of
// MatMulDTypes), the norm's weight ([K]) and w, the layer's weights stored
// [N, K] (Gated: [2N, K], MatMulSiLUMul's gate rows then up rows). Output
// 0 is sum = x + delta, output 1 is norm(sum)·wᵀ ([..., N]; Gated:
// MatMulSiLUMul of norm(sum)). The results are those of AddRMSNorm
// followed by MatMul (or MatMulSiLUMul) bit for bit, on every device: a
// transformer layer's residual add and norm fused into the projection
// that follows them.
//
// Lowering emits one dispatch where x is one row of at most
// AddRMSNormLinearMaxK elements and the layer has outputs
// (add_rms_norm_matmul_<dt> or add_rms_norm_matmul_silu_mul_<dt>): each
// threadgroup normalises the row into its own memory as add_rms_norm does
// and computes its outputs from there as the GEMV (or the gated GEMV)
// does; the first threadgroup also stores the sum. Otherwise it emits
// add_rms_norm into a scratch buffer and the matmul (or the gated layer's
// dispatches) reading it (counted as add_rms_norm_linear.fused and
// .unfused).
type AddRMSNormLinear struct {
	Eps   float32
	Gated bool
}

func (AddRMSNormLinear) Name() string { return "add_rms_norm_linear" }

// NumOutputs is 2: the sum and the layer's output.
func (AddRMSNormLinear) NumOutputs() int { return 2 }

func (a AddRMSNormLinear) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 4 {
		return nil, fmt.Errorf("needs 4 inputs (x, delta, norm weight, w), got %d", len(in))
	}
	norm, err := AddRMSNorm{Eps: a.Eps}.Outputs(in[:3])
	if err != nil {
		return nil, err
	}
	var lin []graph.Spec
	if a.Gated {
		lin, err = MatMulSiLUMul{}.Outputs([]graph.Spec{in[0], in[3]})
	} else {
		lin, err = MatMul{TransposeB: true}.Outputs([]graph.Spec{in[0], in[3]})
		if err == nil && len(in[3].Shape) != 2 {
			err = fmt.Errorf("w %s must be [N, K]", in[3])
		}
	}
	if err != nil {
		return nil, err
	}
	return []graph.Spec{norm[0], lin[0]}, nil
}

// AddRMSNormMatMulKernel and AddRMSNormMatMulSiLUMulKernel are
// AddRMSNormLinear's one-dispatch kernels for dtype dt.
func AddRMSNormMatMulKernel(dt graph.DType) string { return KernelName("add_rms_norm_matmul", dt) }
func AddRMSNormMatMulSiLUMulKernel(dt graph.DType) string {
	return KernelName("add_rms_norm_matmul_silu_mul", dt)
}

func (a AddRMSNormLinear) Lower(l *Lowering) error {
	x, w := l.Inputs[0], l.Inputs[3]
	dt, k := x.DType, x.Shape[len(x.Shape)-1]
	m := graph.NumElements(x.Shape[:len(x.Shape)-1])
	n := w.Shape[0]
	if a.Gated {
		n /= 2
	}
	if m == 1 && n > 0 && k <= AddRMSNormLinearMaxK {
		p := &AddRMSNormLinearParams{N: uint32(n), K: uint32(k), Eps: a.Eps}
		var grid Dim3
		kernel, tileRows := AddRMSNormMatMulKernel(dt), 16
		if a.Gated {
			g := &MatMulSiLUMulParams{M: 1, N: p.N, K: p.K}
			grid = gatedGeometry(l, dt, g)
			p.MMA, p.Split, p.Bulk = g.MMA, g.Split, g.Bulk
			kernel = AddRMSNormMatMulSiLUMulKernel(dt)
		} else {
			g := &MatMulParams{M: 1, N: p.N, K: p.K, Batch: 1, TransposeB: 1}
			grid = gemvGeometry(l, dt, g)
			p.MMA, p.Split, p.TileRows, p.Bulk = g.MMA, g.Split, g.TileRows, g.Bulk
			tileRows = int(g.TileRows)
		}
		d := l.Dispatch(kernel, grid, Dim3{GEMVThreads, 1, 1}, p, In(0), In(1), In(2), In(3), Out(0), Out(1))
		if p.Bulk > 0 { // the normalised row is not in the dynamic shared memory
			d.SharedBytes = BulkSharedBytes(0, k, int(p.Split), tileRows, int(p.Bulk))
		}
		l.Count("add_rms_norm_linear.fused", 1)
		return nil
	}
	if err := checkElements(x.Size()); err != nil {
		return err
	}
	h := l.NewScratch(int64(x.Size()) * int64(dt.Size()))
	if err := lowerRMSNorm(l, AddRMSNormKernel, a.Eps, In(0), In(1), In(2), Out(0), h); err != nil {
		return err
	}
	if a.Gated {
		lowerMatMulSiLUMul(l, dt, m, n, k, h, In(3), Out(1))
	} else {
		lowerMatMul(l, dt, &MatMulParams{M: uint32(m), N: uint32(n), K: uint32(k), Batch: 1, TransposeB: 1}, h, In(3), Out(1))
	}
	l.Count("add_rms_norm_linear.unfused", 1)
	return nil
}

// QKNormRoPEKVWriteParams are the params of the QK-norm, RoPE and KV write
// kernels.
type QKNormRoPEKVWriteParams struct {
	NumTokens int32
	Heads     int32 // query heads
	KVHeads   int32
	HeadSize  int32
	NumSlots  int32 // num_blocks · block_size
	Eps       float32
	Theta     float32
}

// QKNormRoPEKVWrite prepares a step's attention inputs from the output of
// one matmul by the concatenated Q, K and V weights. Inputs: qkv [T,
// (Heads + 2·kv_heads)·head_size] (the query heads, then the key heads,
// then the value heads of each token), q_norm and k_norm [head_size],
// positions int32 [T], k_cache, v_cache, slot_mapping (int32 or int64 [T]).
// Each query and key head is RMS-normalised with eps Eps and scaled by
// q_norm or k_norm (as RMSNorm), then rotated as RoPE with base Theta.
// Output 0 is the queries [T, Heads, head_size]; outputs 1 and 2 are the
// caches, updated in place as KVWrite does (the same donation, slot rules,
// checks and messages) with the normalised, rotated keys and the values.
//
// The normalised heads stay float32 into the rotation: in float32 the
// result is RMSNorm, RoPE and KVWrite bit for bit on the CPU; in float16
// and bfloat16 the chain also rounds the normalised heads to the dtype,
// this does not. The values are copied bit for bit.
type QKNormRoPEKVWrite struct {
	Heads int
	Eps   float32
	Theta float32
}

func (QKNormRoPEKVWrite) Name() string { return "qk_norm_rope_kv_write" }

// Aliases makes the updated caches the donated input caches.
func (QKNormRoPEKVWrite) Aliases() []graph.Alias {
	return []graph.Alias{{Output: 1, Input: 4, Donate: true}, {Output: 2, Input: 5, Donate: true}}
}

// NumOutputs is 3: q, and the updated K and V caches.
func (QKNormRoPEKVWrite) NumOutputs() int { return 3 }

func (p QKNormRoPEKVWrite) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 7 {
		return nil, fmt.Errorf("needs 7 inputs (qkv, q_norm, k_norm, positions, k_cache, v_cache, slot_mapping), got %d", len(in))
	}
	qkv, qn, kn, pos, kc, vc, slots := in[0], in[1], in[2], in[3], in[4], in[5], in[6]
	if err := checkCaches(kc, vc); err != nil {
		return nil, err
	}
	kvh, hs := kc.Shape[2], kc.Shape[3]
	if p.Heads < 1 {
		return nil, fmt.Errorf("heads = %d, want at least 1", p.Heads)
	}
	width := (p.Heads + 2*kvh) * hs
	if len(qkv.Shape) != 2 || qkv.DType != kc.DType || qkv.Shape[1] != width {
		return nil, fmt.Errorf("qkv %s does not match the cache %s: want %s[tokens, %d] ((%d heads + 2·%d kv heads)·head size %d)",
			qkv, kc, kc.DType, width, p.Heads, kvh, hs)
	}
	if hs%2 != 0 {
		return nil, fmt.Errorf("head size %d is odd; the half-rotation form needs it even", hs)
	}
	for _, n := range []struct {
		name string
		s    graph.Spec
	}{{"q_norm", qn}, {"k_norm", kn}} {
		if n.s.DType != kc.DType || len(n.s.Shape) != 1 || n.s.Shape[0] != hs {
			return nil, fmt.Errorf("%s %s must be %s[%d] (one weight per element of a head)", n.name, n.s, kc.DType, hs)
		}
	}
	t := qkv.Shape[0]
	if pos.DType != graph.Int32 || len(pos.Shape) != 1 || pos.Shape[0] != t {
		return nil, fmt.Errorf("positions %s must be int32[%d], one per token of qkv", pos, t)
	}
	if err := checkSlotMapping(slots, t); err != nil {
		return nil, err
	}
	switch {
	case !(p.Eps >= 0) || math.IsInf(float64(p.Eps), 0):
		return nil, fmt.Errorf("eps %g must be finite and ≥ 0", p.Eps)
	case !(p.Theta > 0) || math.IsInf(float64(p.Theta), 0):
		return nil, fmt.Errorf("theta %g must be finite and > 0", p.Theta)
	}
	if err := fitsInt32("qkv's elements", qkv.Size()); err != nil {
		return nil, err
	}
	return []graph.Spec{{DType: kc.DType, Shape: []int{t, p.Heads, hs}}, kc, vc}, nil
}

// QKNormRoPEKVWriteKernel is the kernel name for caches of dtype dt and
// slots of dtype slotDT.
func QKNormRoPEKVWriteKernel(dt, slotDT graph.DType) string {
	return KernelName("qk_norm_rope_kv_write", dt, slotDT)
}

func (p QKNormRoPEKVWrite) Lower(l *Lowering) error {
	qkv, kc := l.Inputs[0], l.Inputs[4]
	t, kvh, hs := qkv.Shape[0], kc.Shape[2], kc.Shape[3]
	// A group per (head, token); a thread per rotated pair, in whole SIMD
	// groups (the reduction of a head's squares is by SIMD groups).
	simd := max(l.Caps.SIMDWidth, 1)
	threads := min(Groups(hs/2, simd)*simd, ReduceThreads)
	l.Dispatch(QKNormRoPEKVWriteKernel(kc.DType, l.Inputs[6].DType), Dim3{p.Heads + 2*kvh, t, 1}, Dim3{threads, 1, 1},
		&QKNormRoPEKVWriteParams{
			NumTokens: int32(t),
			Heads:     int32(p.Heads),
			KVHeads:   int32(kvh),
			HeadSize:  int32(hs),
			NumSlots:  int32(kc.Shape[0] * kc.Shape[1]),
			Eps:       p.Eps,
			Theta:     p.Theta,
		},
		In(0), In(1), In(2), In(3), Out(1), Out(2), In(6), Out(0))
	return nil
}

func init() {
	for _, dt := range FloatDTypes {
		register(
			KernelSpec{Name: AddRMSNormKernel(dt), Args: []ArgSpec{R("x"), R("residual"), R("weight"), W("sum"), W("out")}, Params: (*RMSNormParams)(nil)},
			KernelSpec{Name: SiLUMulKernel(dt), Args: []ArgSpec{R("a"), W("out")}, Params: (*SiLUMulParams)(nil)},
		)
	}
	for _, dt := range MatMulDTypes {
		register(KernelSpec{Name: MatMulSiLUMulKernel(dt), Args: []ArgSpec{R("x"), R("w"), W("out")}, Params: (*MatMulSiLUMulParams)(nil)})
		for _, name := range []string{AddRMSNormMatMulKernel(dt), AddRMSNormMatMulSiLUMulKernel(dt)} {
			register(KernelSpec{Name: name, Args: []ArgSpec{R("x"), R("delta"), R("norm_weight"), R("w"), W("sum"), W("out")},
				Params: (*AddRMSNormLinearParams)(nil)})
		}
	}
	for _, dt := range AttentionDTypes {
		for _, slot := range []graph.DType{graph.Int32, graph.Int64} {
			register(KernelSpec{Name: QKNormRoPEKVWriteKernel(dt, slot),
				Args: []ArgSpec{R("qkv"), R("q_norm"), R("k_norm"), R("positions"),
					RW("k_cache"), RW("v_cache"), R("slot_mapping"), W("q")},
				Params: (*QKNormRoPEKVWriteParams)(nil)})
		}
	}
}

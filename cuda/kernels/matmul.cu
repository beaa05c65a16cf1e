// Matrix products (MatMulParams): out[i] = A[i] · B[i] for the Batch output
// matrices i, accumulated in float32. A is M×K (stored K×M when
// TransposeA), B is K×N (stored N×K when TransposeB, the layout of
// linear-layer weights).

// MatrixOffsets are the element offsets of matrix i's operands and output.
struct MatrixOffsets {
  u64 a, b, out;
};

__device__ __forceinline__ MatrixOffsets matrix_offsets(const MatMulParams& p, u32 i) {
  MatrixOffsets o = {0, 0, (u64)i * p.M * p.N};
  u64 sa = 0, sb = 0;
  for (int d = (int)p.BatchRank - 1; d >= 0; d--) {
    u32 n = p.BatchShape[d], c = i % n;
    sa += (u64)c * p.BatchStrideA[d];
    sb += (u64)c * p.BatchStrideB[d];
    i /= n;
  }
  o.a = sa * p.M * p.K;
  o.b = sb * p.K * p.N;
  return o;
}

// ---- GEMV: M = 1 -------------------------------------------------------------

// Vec<T> widens 16 bytes of T (n elements) to floats.
template <typename T> struct Vec;
template <> struct Vec<float> {
  static constexpr int n = 4;
  static __device__ __forceinline__ void widen(const uint4& x, float* v) {
    v[0] = __uint_as_float(x.x); v[1] = __uint_as_float(x.y); v[2] = __uint_as_float(x.z); v[3] = __uint_as_float(x.w);
  }
};
template <typename H> struct Vec16 {
  static constexpr int n = 8;
  static __device__ __forceinline__ void widen(const uint4& x, float* v) {
    u32 w[4] = {x.x, x.y, x.z, x.w};
    for (int j = 0; j < 4; j++) {
      H lo, hi;
      lo.bits = (u16)(w[j] & 0xffffu);
      hi.bits = (u16)(w[j] >> 16);
      v[2 * j] = Num<H>::load(lo);
      v[2 * j + 1] = Num<H>::load(hi);
    }
  }
};
template <> struct Vec<half_t> : Vec16<half_t> {};
template <> struct Vec<bf16_t> : Vec16<bf16_t> {};

// A decode GEMV is bound by how many bytes are in flight. A row's dot
// product is summed in GEMV_PARTS parts: vector (16 bytes) i of the row
// goes to lane i % 32 of part (i / 32) % GEMV_PARTS, each lane adds its
// vectors of a part in order, each part is summed over the lanes (warp_sum)
// and the parts are added in order. The S warps that share a row (split-K,
// see gemv_rows) take parts s, s + S, …, so the sum is the same bit
// for bit whatever S, and a lane has a vector of each of its parts in
// flight at once: GEMV_PARTS / S 16-byte loads a row, a row of up to
// 256 vectors (2048 bfloat16 values) in one round trip with S = 1.
#define GEMV_PARTS 8

// dot_parts adds, for the R rows w_r (K elements each), lane's share of
// x·w_r to acc[r][u] for the parts u = share, share + S, … (see
// GEMV_PARTS): with 16-byte loads where x and the rows allow them (the
// weights read once, as a stream; x from the cache, or from shared memory
// with XS), else an element at a time, element k then taking vector k's
// place.
template <typename T, int R, bool XS = false>
__device__ __forceinline__ void dot_parts(const T* x, const T* const* w, u32 K, u32 share, u32 S,
                                          float (&acc)[R][GEMV_PARTS]) {
  const u32 lane = threadIdx.x % 32;
  bool vec = K % Vec<T>::n == 0 && ((u64)x & 15) == 0;
#pragma unroll
  for (int r = 0; r < R; r++) vec = vec && ((u64)w[r] & 15) == 0;
  if (!vec) {
    for (u32 k = share * 32 + lane; k < K; k += 32 * S) {
      const float xk = load_f(x, k);
#pragma unroll
      for (int r = 0; r < R; r++) acc[r][(k / 32) % GEMV_PARTS] += xk * load_f(w[r], k);
    }
    return;
  }
  const u32 nvec = K / Vec<T>::n;
  const uint4* xv = (const uint4*)x;
  for (u32 base = 0; base < nvec; base += 32 * GEMV_PARTS) {
    uint4 wv[R][GEMV_PARTS], xs[GEMV_PARTS];
#pragma unroll
    for (int u = 0; u < GEMV_PARTS; u++) {
      const u32 i = base + u * 32 + lane;
      const bool mine = u % S == share && i < nvec;
      if constexpr (XS) {
        xs[u] = mine ? xv[i] : make_uint4(0u, 0u, 0u, 0u);
      } else {
        xs[u] = mine ? __ldg(xv + i) : make_uint4(0u, 0u, 0u, 0u);
      }
#pragma unroll
      for (int r = 0; r < R; r++) wv[r][u] = mine ? __ldcs((const uint4*)w[r] + i) : make_uint4(0u, 0u, 0u, 0u);
    }
#pragma unroll
    for (int u = 0; u < GEMV_PARTS; u++) {
      float xf[Vec<T>::n];
      Vec<T>::widen(xs[u], xf);
#pragma unroll
      for (int r = 0; r < R; r++) {
        float wf[Vec<T>::n];
        Vec<T>::widen(wv[r][u], wf);
#pragma unroll
        for (int j = 0; j < Vec<T>::n; j++) acc[r][u] += xf[j] * wf[j];
      }
    }
  }
}

// gemv_split is gemv_rows's S (below).
__device__ __forceinline__ u32 gemv_split(u32 N) {
  u32 S = 1;
  while (S < LOOM_GEMV_ROWS && (u64)gridDim.x * (LOOM_GEMV_ROWS / (2 * S)) >= N) S *= 2;
  return S;
}

// PREFETCH_BYTES bounds the weight bytes a GEMV block asks the L2 for
// before grid_dependency_wait (common.cuh), its first step's rows: a block
// with a long first step (few blocks over many rows, the lm_head) asks for
// no more than it reads in the first microseconds. (-DPREFETCH_BYTES=N
// through LOOM_CUDA_MATMUL_DEFS sets another bound, for measurement.)
#ifndef PREFETCH_BYTES
#define PREFETCH_BYTES (64u << 10)
#endif

// rows_span is rows [r0, r0 + n) ∩ [r0, limit) of the K-element rows at
// w, at most PREFETCH_BYTES of them: what grid_dependency_wait prefetches.
template <typename T> __device__ __forceinline__ L2Span rows_span(const T* w, u32 r0, u32 n, u32 limit, u32 K) {
  if (r0 >= limit) return L2Span{nullptr, 0};
  const u64 bytes = (u64)min(n, limit - r0) * K * sizeof(T);
  return L2Span{w + (u64)r0 * K, bytes < PREFETCH_BYTES ? bytes : PREFETCH_BYTES};
}

// gemv_span is the weight rows of gemv_rows's first step in this block.
template <typename T> __device__ __forceinline__ L2Span gemv_span(const T* b, const MatMulParams& p) {
  if (!p.TransposeB) return L2Span{nullptr, 0};
  const u32 rows = LOOM_GEMV_ROWS / gemv_split(p.N);
  return rows_span(b + matrix_offsets(p, blockIdx.z).b, blockIdx.x * rows, rows, p.N, p.K);
}

// gemv_rows: B stored N×K (TransposeB). S warps share each output, S the
// largest of 1, 2, 4 and 8 whose LOOM_GEMV_ROWS / S outputs a block the
// grid covers N with (primitives.gemvSplitK chooses it through the grid):
// warp w of block b computes share w % S of output
// n = (LOOM_GEMV_ROWS / S)·b + w / S, then of n + (LOOM_GEMV_ROWS / S)·gridDim.x,
// …; the shares' part sums meet in shared memory and are added in order
// (see GEMV_PARTS). The sums depend on K alone, not on S or the grid,
// which may be any width. With XS, a is in shared memory.
template <typename T, bool XS = false>
__device__ void gemv_rows(const T* a, const T* b, T* out, const MatMulParams& p, const MatrixOffsets& o) {
  static_assert(LOOM_GEMV_THREADS == 32 * LOOM_GEMV_ROWS, "a warp per output share");
  __shared__ float parts[LOOM_GEMV_ROWS][GEMV_PARTS];
  const u32 warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const u32 S = gemv_split(p.N);
  const u32 rows = LOOM_GEMV_ROWS / S, share = warp % S;
  const T* x = a + o.a;
  // Every warp takes every step, so that all reach the barriers.
  for (u32 n0 = blockIdx.x * rows; n0 < p.N; n0 += gridDim.x * rows) {
    const u32 n = n0 + warp / S;
    float acc[1][GEMV_PARTS] = {};
    if (n < p.N) {
      const T* w = b + o.b + (u64)n * p.K;
      dot_parts<T, 1, XS>(x, &w, p.K, share, S, acc);
    }
    if (S == 1) {
      float sum = 0.0f;
#pragma unroll
      for (int u = 0; u < GEMV_PARTS; u++) sum += warp_sum(acc[0][u]);
      if (lane == 0 && n < p.N) store_f(out, o.out + n, sum);
      continue;
    }
#pragma unroll
    for (int u = 0; u < GEMV_PARTS; u++) {
      const float part = warp_sum(acc[0][u]);
      if (lane == 0 && u % S == share) parts[warp / S][u] = part;
    }
    __syncthreads();
    if (share == 0 && lane == 0 && n < p.N) {
      float sum = 0.0f;
      for (int u = 0; u < GEMV_PARTS; u++) sum += parts[warp / S][u];
      store_f(out, o.out + n, sum);
    }
    __syncthreads();  // the next step may overwrite the parts
  }
}

// gemv_cols: B stored K×N. The block's threads are SLICES slices of K by
// LOOM_GEMV_ROWS outputs n = LOOM_GEMV_ROWS·blockIdx.x + c, so that
// neighbouring threads read neighbouring columns; the SLICES partial sums
// of each output are then added in a fixed order.
template <typename T>
__device__ void gemv_cols(const T* a, const T* b, T* out, const MatMulParams& p, const MatrixOffsets& o) {
  constexpr u32 ROWS = LOOM_GEMV_ROWS, SLICES = LOOM_GEMV_THREADS / LOOM_GEMV_ROWS;
  __shared__ float part[SLICES][ROWS + 1];
  const u32 c = threadIdx.x % ROWS, slice = threadIdx.x / ROWS;
  const u32 n = blockIdx.x * ROWS + c;
  float acc = 0;
  if (n < p.N) {
    for (u32 k = slice; k < p.K; k += SLICES) acc += load_f(a, o.a + k) * load_f(b, o.b + (u64)k * p.N + n);
  }
  part[slice][c] = acc;
  __syncthreads();
  if (threadIdx.x < ROWS && n < p.N) {
    float s = 0;
    for (u32 j = 0; j < SLICES; j++) s += part[j][c];
    store_f(out, o.out + n, s);
  }
}

#define GEMV_KERNEL(SHORT, T)                                                                           \
  extern "C" __global__ void matmul_##SHORT##_gemv(const T* a, const T* b, T* out, const MatMulParams p, \
                                                   Status* status) {                                    \
    grid_dependency_wait(gemv_span(b, p));                                                              \
    MatrixOffsets o = matrix_offsets(p, blockIdx.z);                                                    \
    if (p.TransposeB) {                                                                                 \
      gemv_rows(a, b, out, p, o);                                                                       \
    } else {                                                                                            \
      gemv_cols(a, b, out, p, o);                                                                       \
    }                                                                                                   \
  }

// matmul_silu_mul (MatMulSiLUMul): x [M, K], w [2N, K], the gate rows then
// the up rows. Warp w of block (bx, m) computes out[m, j] for
// j = LOOM_GEMV_ROWS·bx + w: its two dot products, with w's rows j and
// N + j, summed as gemv_rows sums one (both rows' loads in flight
// together, see GEMV_PARTS), each rounded to T as the matmul's output is, then silu_mul's
// product. With XS, x is in shared memory.
template <typename T, bool XS = false>
__device__ void gated_gemv_rows(const T* x, const T* w, T* out, const MatMulSiLUMulParams& p) {
  const u32 warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const u32 j = blockIdx.x * LOOM_GEMV_ROWS + warp, m = blockIdx.y;
  if (j >= p.N || m >= p.M) return;
  x += (u64)m * p.K;
  const T* rows[2] = {w + (u64)j * p.K, w + (u64)(p.N + j) * p.K};
  float acc[2][GEMV_PARTS] = {};
  dot_parts<T, 2, XS>(x, rows, p.K, 0, 1, acc);
  float sums[2] = {0.0f, 0.0f};
#pragma unroll
  for (int r = 0; r < 2; r++) {
#pragma unroll
    for (int u = 0; u < GEMV_PARTS; u++) sums[r] += warp_sum(acc[r][u]);
  }
  const float gs = Num<T>::load(Num<T>::store(sums[0]));
  const float us = Num<T>::load(Num<T>::store(sums[1]));
  if (lane == 0) store_f(out, (u64)m * p.N + j, un_silu(gs) * us);
}

// gated_span is the gate (half 0) or up (half 1) rows of this block of
// gated_gemv_rows, for its first row of x only: the other rows' blocks
// read the same weights.
template <typename T> __device__ __forceinline__ L2Span gated_span(const T* w, const MatMulSiLUMulParams& p, u32 half) {
  if (blockIdx.y != 0) return L2Span{nullptr, 0};
  const u32 j0 = blockIdx.x * LOOM_GEMV_ROWS;
  return rows_span(w + (u64)half * p.N * p.K, j0, LOOM_GEMV_ROWS, p.N, p.K);
}

#define GATED_GEMV_KERNEL(SHORT, T)                                                                       \
  extern "C" __global__ void matmul_silu_mul_##SHORT(const T* x, const T* w, T* out,                      \
                                                     const MatMulSiLUMulParams p, Status* status) {       \
    grid_dependency_wait(gated_span(w, p, 0), gated_span(w, p, 1));                                       \
    gated_gemv_rows(x, w, out, p);                                                                        \
  }

// ---- tiled -------------------------------------------------------------------

// matmul_tiled: a block of LOOM_MATMUL_THREADS threads (128) computes a
// TILE×TILE tile of the output (32×32), stepping through K TILE at a time
// with both operand tiles in shared memory. Thread (tx, ty) = (t % TILE,
// t / TILE) computes column tx of rows ty, ty + PASS, …, where PASS is the
// rows the block's threads cover at once (4). The operand tiles are loaded
// so that neighbouring threads read neighbouring elements in either
// storage order.
#define TILE LOOM_MATMUL_TILE
#define PASS (LOOM_MATMUL_THREADS / LOOM_MATMUL_TILE)
static_assert(LOOM_MATMUL_THREADS % TILE == 0 && TILE % PASS == 0, "the tile's rows must split evenly over the passes");
template <typename T> __device__ void matmul_tiled(const T* a, const T* b, T* out, const MatMulParams& p) {
  __shared__ float As[TILE][TILE + 1];  // [m][k]
  __shared__ float Bs[TILE][TILE + 1];  // [k][n]
  const MatrixOffsets o = matrix_offsets(p, blockIdx.z);
  const u32 m0 = blockIdx.y * TILE, n0 = blockIdx.x * TILE;
  const u32 tx = threadIdx.x % TILE, ty = threadIdx.x / TILE;
  float acc[TILE / PASS] = {};
  for (u32 k0 = 0; k0 < p.K; k0 += TILE) {
    for (u32 e = threadIdx.x; e < TILE * TILE; e += blockDim.x) {
      // The fast-moving index runs along the stored rows.
      const u32 fast = e % TILE, slow = e / TILE;
      u32 m, k;
      if (p.TransposeA) {
        k = slow, m = fast;
      } else {
        m = slow, k = fast;
      }
      const u32 gm = m0 + m, gk = k0 + k;
      float v = 0;
      if (gm < p.M && gk < p.K) v = load_f(a, o.a + (p.TransposeA ? (u64)gk * p.M + gm : (u64)gm * p.K + gk));
      As[m][k] = v;
      u32 n;
      if (p.TransposeB) {
        n = slow, k = fast;
      } else {
        k = slow, n = fast;
      }
      const u32 gn = n0 + n, gk2 = k0 + k;
      float w = 0;
      if (gn < p.N && gk2 < p.K) w = load_f(b, o.b + (p.TransposeB ? (u64)gn * p.K + gk2 : (u64)gk2 * p.N + gn));
      Bs[k][n] = w;
    }
    __syncthreads();
    for (u32 kk = 0; kk < TILE; kk++) {
      const float w = Bs[kk][tx];
      for (u32 r = 0; r < TILE / PASS; r++) acc[r] += As[ty + PASS * r][kk] * w;
    }
    __syncthreads();
  }
  const u32 n = n0 + tx;
  if (n >= p.N) return;
  for (u32 r = 0; r < TILE / PASS; r++) {
    const u32 m = m0 + ty + PASS * r;
    if (m < p.M) store_f(out, o.out + (u64)m * p.N + n, acc[r]);
  }
}

#define TILED_KERNEL(SHORT, T)                                                                           \
  extern "C" __global__ void matmul_##SHORT##_tiled(const T* a, const T* b, T* out, const MatMulParams p, \
                                                    Status* status) {                                    \
    grid_dependency_wait();                                                                              \
    matmul_tiled(a, b, out, p);                                                                          \
  }

// ---- tensor cores: the *_mma variants ------------------------------------------
//
// matmul_<dt>_gemv_mma and matmul_<dt>_tiled_mma (float16 and bfloat16) are
// the tensor-core variants of the catalog kernels above, with the same
// parameters: the CUDA device launches one in place of its catalog kernel
// where the lowering set MatMulParams.MMA (Caps.TensorCores; see
// primitives.MatMul's mmaGEMV and mmaTiled for the products they take and
// their grids). They are kernels of their own, not branches of the FMA
// kernels, so that the FMA kernels keep their register counts and shared
// memory, and so their occupancy.

// ---- tensor cores --------------------------------------------------------------

// MMA<T>::run accumulates a 16×8 float tile: d += A (16×16, row-major) ·
// B (16×8, column-major) of float16 or bfloat16 pairs packed in u32, in
// the register layout of mma.sync.m16n8k16 (PTX ISA, "Matrix fragments for
// mma.m16n8k16"). For a lane of group g = lane / 4 and thread t = lane % 4:
// a = {A[g][2t..], A[g+8][2t..], A[g][2t+8..], A[g+8][2t+8..]},
// b = {B[2t..][g], B[2t+8..][g]}, d = {D[g][2t], D[g][2t+1], D[g+8][2t],
// D[g+8][2t+1]}. float32 has no tensor-core path.
template <typename T> struct MMA;
template <> struct MMA<bf16_t> {
  static __device__ __forceinline__ void run(float* d, u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
};
template <> struct MMA<half_t> {
  static __device__ __forceinline__ void run(float* d, u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
};

// load8 returns the 8 elements of row from k on as 16 bytes, zero past K:
// one 16-byte load where vec says the rows are 16-byte aligned and all 8
// are inside, else one element at a time. A null row (outside the matrix)
// is all zeros. Weights (stream) bypass L1, which keeps the activations that
// every block reads there.
template <typename T, bool stream>
__device__ __forceinline__ uint4 load8(const T* row, u32 k, u32 K, bool vec) {
  uint4 v = make_uint4(0, 0, 0, 0);
  if (row == nullptr || k >= K) return v;
  if (vec && k + 8 <= K) {
    if (stream) {
      asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(row + k));
    } else {
      v = *(const uint4*)(row + k);
    }
    return v;
  }
  u32 h[8];
  for (u32 j = 0; j < 8; j++) h[j] = k + j < K ? row[k + j].bits : 0u;
  return make_uint4(h[0] | h[1] << 16, h[2] | h[3] << 16, h[4] | h[5] << 16, h[6] | h[7] << 16);
}

// ---- small M on tensor cores: B stored N×K, 1 ≤ M ------------------------------
//
// The product is computed transposed, outᵀ = W·xᵀ: 16 weight rows are the A
// operand of mma.sync m16n8k16 and 8 rows of x its B operand, so the
// weights fill the 16-row operand whatever M (one 8-row tile of x up to
// M = 8). K is cut into chunks of 32. In chunk c lane (g, t) loads 16 bytes
// of weight rows g and g + 8 of its tile at k = 32c + 8t, and the same 16
// bytes of row g of each 8-row tile of x; two products use them, the first
// with bytes 0–7 as the fragment's k = 2t, 2t + 1, 2t + 8, 2t + 9, the
// second with bytes 8–15: a permutation of k that both operands share, so
// every weight byte is read once, by one 16-byte load, and used straight
// from registers. Lane (g, t) ends with outᵀ[g][2t], [g][2t + 1],
// [g + 8][2t], [g + 8][2t + 1] of each 16 × 8 tile.
//
// The sum of an output depends on K alone: chunk c belongs to slice
// c mod 8, each slice is one chain of products over its chunks in order,
// from zero, and the slices are added in a fixed tree, ((s0 + s4) + (s2 +
// s6)) + ((s1 + s5) + (s3 + s7)). The S warps (1, 2, 4 or 8) that share a
// tile take slices share, share + S, … (so chunks c ≡ share mod S), each
// slice in its own accumulators, and meet in shared memory; S, the tile
// height (8 or 16 rows), the grid, M and the other rows of a tile change
// which warp computes what, never the arithmetic. So a row of a product is
// the same bit for bit whatever the batch it is computed in (batch
// invariance, M = 1 included), and the gated GEMV's gate and up sums are the
// matmul's.
//
// A decode GEMV is bound by the bytes in flight: a lane issues the weight
// loads of MMA_UNROLL(MT) chunks before it uses any, and the lowering picks
// S (and 8-row tiles for few outputs) for the fewest memory round trips
// (primitives.mmaGEMVGrid).
#define MMA_WARPS (LOOM_GEMV_THREADS / 32)
#define MMA_SLICES 8
#define MMA_MAX_MT 8  // 8-row tiles of x per pass: 64 rows
static_assert(MMA_WARPS == 8, "a block of 8 warps holds 8/S tiles");
static_assert(MMA_MAX_MT * 8 == LOOM_MMA_GEMV_ROWS, "a pass takes primitives.MatMulMMARows rows");

// mma_slices adds the warp's slices of one tile to acc (acc[i] is slice
// share + S·i): lo and hi are the lane's weight rows g and g + 8, xr[j] its
// row g of x tile j (null: zeros). U chunks' weight loads are issued
// together; U is a multiple of the warp's 8/S slices, so that chunk u of a
// round is slice u mod 8/S of the warp's, known at compile time.
template <typename T, int MT, int S, int U>
__device__ __forceinline__ void mma_slices(const T* lo, const T* hi, const T* const (&xr)[MT], u32 K, bool vec, u32 share,
                                           float (&acc)[MMA_SLICES / S][MT][4]) {
  constexpr int NS = MMA_SLICES / S;
  static_assert(U % NS == 0, "a round of chunks starts at the warp's first slice");
  const u32 t = threadIdx.x % 4;
  const u32 chunks = (K + 31) / 32;
  for (u32 c0 = share; c0 < chunks; c0 += S * U) {
    uint4 wl[U], wh[U];
#pragma unroll
    for (int u = 0; u < U; u++) {
      const u32 k = (c0 + S * u) * 32 + 8 * t;
      wl[u] = load8<T, true>(lo, k, K, vec);
      wh[u] = load8<T, true>(hi, k, K, vec);
    }
    // From 4 tiles of x on (past 16 rows) the x of a chunk's tiles is
    // loaded before its products, one round trip to the cache for all of
    // them: x no longer stays in L1 there, and a load before each product
    // cost an L2 round trip each (about 0.3 µs a chunk and tile of x on an
    // H100; docs/BENCHMARKS.md, "Small-M tensor-core GEMV by rows").
    constexpr bool together = MT >= 4;
#pragma unroll
    for (int u = 0; u < U; u++) {
      const u32 c = c0 + S * u;
      if (c >= chunks) break;
      const u32 k = c * 32 + 8 * t;
      uint4 xs[MT];
#pragma unroll
      for (int j = 0; j < MT; j++)
        if (together) xs[j] = load8<T, false>(xr[j], k, K, vec);
#pragma unroll
      for (int j = 0; j < MT; j++) {
        const uint4 xv = together ? xs[j] : load8<T, false>(xr[j], k, K, vec);
        MMA<T>::run(acc[u % NS][j], wl[u].x, wh[u].x, wl[u].y, wh[u].y, xv.x, xv.y);
        MMA<T>::run(acc[u % NS][j], wl[u].z, wh[u].z, wl[u].w, wh[u].w, xv.z, xv.w);
      }
    }
  }
}

// slice_tree adds the 8 slices s[0..7] in the fixed order.
__device__ __forceinline__ float slice_tree(const float* s) {
  return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}

// MMA_UNROLL is the chunks a lane has in flight (two 16-byte loads each):
// primitives.MatMulMMAChunks up to 16 rows of x, half as many past them
// (LOOM_MMA_WIDE_CHUNKS, for measurement).
#ifndef LOOM_MMA_WIDE_CHUNKS
#define LOOM_MMA_WIDE_CHUNKS (LOOM_MMA_CHUNKS / 2)
#endif
#define MMA_UNROLL(MT) ((MT) <= 2 ? LOOM_MMA_CHUNKS : LOOM_MMA_WIDE_CHUNKS)

// mma_owns says whether the warp of share `share` (of S) adds up and
// stores the sums [j][r] of a tile: the tile's warps share that work, unit
// 2j + r mod 2 (rows g and g + 8 of the output together, which the gated
// GEMV's epilogue pairs) going to share unit mod S. (Share 0 alone read
// the 8 slices of all MT·4 sums, 256 shared-memory loads a lane at 64 rows
// of x, while the tile's other warps waited.)
__device__ __forceinline__ bool mma_owns(int j, int r, u32 share, u32 S) { return (u32)(2 * j + r % 2) % S == share; }

// tile_sums adds the slices of a tile in the fixed tree (slice_tree):
// acc[i] holds the warp's slice share + S·i; with S > 1 the tile's warps
// meet in red, and the block's warps call it together (its barriers). The
// sums [j][r] are valid in the lanes of the share that mma_owns them.
template <int MT, int S>
__device__ __forceinline__ void tile_sums(const float (&acc)[MMA_SLICES / S][MT][4], float* red, u32 tb, u32 share, u32 lane,
                                          float (&sum)[MT][4]) {
  constexpr int NS = MMA_SLICES / S;
  if constexpr (S == 1) {
#pragma unroll
    for (int j = 0; j < MT; j++)
#pragma unroll
      for (int r = 0; r < 4; r++) {
        float s[MMA_SLICES];
#pragma unroll
        for (int i = 0; i < MMA_SLICES; i++) s[i] = acc[i % NS][j][r];
        sum[j][r] = slice_tree(s);
      }
  } else {
    // red[tb][slice][j·4 + r][lane]
    float* mine = red + (u64)tb * MMA_SLICES * MT * 4 * 32 + lane;
#pragma unroll
    for (int i = 0; i < NS; i++)
#pragma unroll
      for (int j = 0; j < MT; j++)
#pragma unroll
        for (int r = 0; r < 4; r++) mine[((share + S * i) * MT * 4 + j * 4 + r) * 32] = acc[i][j][r];
    __syncthreads();
#pragma unroll
    for (int j = 0; j < MT; j++)
#pragma unroll
      for (int r = 0; r < 4; r++) {
        if (mma_owns(j, r, share, S)) {
          float s[MMA_SLICES];
#pragma unroll
          for (int i = 0; i < MMA_SLICES; i++) s[i] = mine[(i * MT * 4 + j * 4 + r) * 32];
          sum[j][r] = slice_tree(s);
        }
      }
    __syncthreads();  // the next tile writes red again
  }
}

template <typename T> struct MmaRows;

// mma_tiles runs the tiles of a tensor-core GEMV: tile i covers weight rows
// epi.rows(i, g) for lane group g and is stored by epi.store; the block's
// 8/S tiles step through all of them, in passes of 8·MT rows of x. Not
// inlined: the matmul and the gated GEMV share each instance, which halves
// the file's compile time.
template <typename T, int MT, int S>
__device__ __noinline__ void mma_tiles(const T* x, u32 M, u32 K, u32 tiles, bool vec, float* red, const MmaRows<T> epi) {
  constexpr int TB = MMA_WARPS / S, NS = MMA_SLICES / S, U = MMA_UNROLL(MT);
  const u32 warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const u32 tb = warp / S, share = warp % S;
  for (u32 m0 = 0; m0 < M; m0 += 8 * MT) {
    const T* xr[MT];
#pragma unroll
    for (int j = 0; j < MT; j++) {
      const u32 m = m0 + 8 * j + g;
      xr[j] = m < M ? x + (u64)m * K : nullptr;
    }
    // Every warp takes every step, so that all reach the barriers.
    for (u32 tile0 = blockIdx.x * TB; tile0 < tiles; tile0 += gridDim.x * TB) {
      const u32 tile = tile0 + tb;
      float acc[NS][MT][4];
#pragma unroll
      for (int i = 0; i < NS; i++)
#pragma unroll
        for (int j = 0; j < MT; j++)
#pragma unroll
          for (int r = 0; r < 4; r++) acc[i][j][r] = 0.f;
      if (tile < tiles) {
        const T *lo, *hi;
        epi.rows(tile, g, lo, hi);
        mma_slices<T, MT, S, U>(lo, hi, xr, K, vec, share, acc);
      }
      float sum[MT][4];
      tile_sums<MT, S>(acc, red, tb, share, lane, sum);
      if (tile < tiles) epi.store(tile, m0, g, t, share, S, sum);
    }
  }
}

// mma_stream is mma_tiles for one tile of x (M ≤ 8) where K is a multiple
// of 256 and the rows are 16-byte aligned: the same products in the same
// order (slices, chains and tree), so the same bits, but the lane's weight
// loads stay in flight across its rounds and tiles. The warp's chunks, of
// all its tiles in turn, are one stream, and each chunk's two 16-byte
// loads are issued STREAM_DEPTH chunks before the products that use them:
// a lane always has STREAM_DEPTH chunks in flight, where mma_tiles has
// MMA_UNROLL at the start of a round and none at its end, the last round
// of a tile included. The lowering gives it a grid of at most two blocks a
// multiprocessor, which loop over the tiles (primitives.mmaStreamGrid).
// With K a multiple of 256 a warp's chunks of a tile, K/32/S, are a
// multiple of its slices, 8/S, so chunk f of the stream is slice f mod 8/S
// of the warp's, known at compile time.
#define STREAM_DEPTH 8
#define STREAM_X_BATCH 4

template <typename T, int S>
__device__ __noinline__ void mma_stream(const T* x, u32 M, u32 K, u32 tiles, float* red, const MmaRows<T> epi) {
  constexpr int TB = MMA_WARPS / S, NS = MMA_SLICES / S, D = STREAM_DEPTH;
  // The chunks whose x is loaded together: all D where the warp's slices
  // leave registers for them (S ≥ 4), else fewer (no spills).
  constexpr int XB = S >= 4 ? D : STREAM_X_BATCH;
  static_assert(D % NS == 0 && D % XB == 0, "a run of STREAM_DEPTH chunks starts at the warp's first slice");
  const u32 warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const u32 tb = warp / S, share = warp % S;
  const T* xr = g < M ? x + (u64)g * K : nullptr;
  const u32 per = K / 32 / S;  // the warp's chunks of a tile
  const u32 stride = gridDim.x * TB, first = blockIdx.x * TB;
  // Every warp of the block takes the same steps, so that all reach the
  // barriers of tile_sums; a tile past the last has null rows (zeros).
  const u32 steps = first < tiles ? (tiles - first + stride - 1) / stride : 0;
  const u32 total = steps * per;
  // The load cursor: chunk lj of the warp's in tile ltile, rows llo, lhi.
  u32 lj = 0, ltile = first + tb;
  const T *llo, *lhi;
  epi.rows(ltile, g, llo, lhi);
  uint4 wl[D], wh[D];
#pragma unroll
  for (int u = 0; u < D; u++) {
    const u32 k = (share + S * lj) * 32 + 8 * t;
    wl[u] = load8<T, true>(llo, k, K, true);
    wh[u] = load8<T, true>(lhi, k, K, true);
    if (++lj == per) {
      lj = 0, ltile += stride;
      epi.rows(ltile, g, llo, lhi);
    }
  }
  float acc[NS][1][4];
#pragma unroll
  for (int i = 0; i < NS; i++)
#pragma unroll
    for (int r = 0; r < 4; r++) acc[i][0][r] = 0.f;
  u32 cj = 0, ctile = first + tb;  // the chunk the products take next
  for (u32 f0 = 0; f0 < total; f0 += D) {
#pragma unroll
    for (int b = 0; b < D; b += XB) {
      // The x of XB chunks, loaded together: one round trip to the cache,
      // where a load before each chunk's products waited for each.
      uint4 xs[XB];
#pragma unroll
      for (int v = 0, j = cj; v < XB; v++, j = j + 1 == per ? 0 : j + 1) xs[v] = load8<T, false>(xr, (share + S * j) * 32 + 8 * t, K, true);
#pragma unroll
      for (int v = 0; v < XB; v++) {
        const int u = b + v;
        if (f0 + u >= total) continue;
        MMA<T>::run(acc[u % NS][0], wl[u].x, wh[u].x, wl[u].y, wh[u].y, xs[v].x, xs[v].y);
        MMA<T>::run(acc[u % NS][0], wl[u].z, wh[u].z, wl[u].w, wh[u].w, xs[v].z, xs[v].w);
        // Chunk f0 + u + D into the registers just used.
        const u32 kl = (share + S * lj) * 32 + 8 * t;
        wl[u] = load8<T, true>(llo, kl, K, true);
        wh[u] = load8<T, true>(lhi, kl, K, true);
        if (++lj == per) {
          lj = 0, ltile += stride;
          epi.rows(ltile, g, llo, lhi);
        }
        if (++cj == per) {
          float sum[1][4];
          tile_sums<1, S>(acc, red, tb, share, lane, sum);
          if (ctile < tiles) epi.store(ctile, 0, g, t, share, S, sum);
#pragma unroll
          for (int i = 0; i < NS; i++)
#pragma unroll
            for (int r = 0; r < 4; r++) acc[i][0][r] = 0.f;
          cj = 0, ctile += stride;
        }
      }
    }
  }
}

// mma_tiles_of_x and mma_split are mma_gemv's MT and S (below).
__device__ __forceinline__ u32 mma_tiles_of_x(u32 M) {
  const u32 rows = min(M, (u32)LOOM_MMA_GEMV_ROWS);
  return rows <= 8 ? 1 : rows <= 16 ? 2 : rows <= 32 ? 4 : 8;
}
__device__ __forceinline__ u32 mma_split(u32 M, u32 split) {
  const u32 mt = mma_tiles_of_x(M);
  u32 s = 1;
  while (s < 8 && (s < split || s < mt)) s *= 2;
  return s;
}

// mma_span is the weight rows of this block's first step of mma_tiles,
// tiles of tileRows rows from row `first` of w (the gated GEMV's up rows:
// first = N).
// (LOOM_MMA_PREFETCH=0 asks for none, for measurement: docs/CUDA.md.)
#ifndef LOOM_MMA_PREFETCH
#define LOOM_MMA_PREFETCH 1
#endif
template <typename T>
__device__ __forceinline__ L2Span mma_span(const T* w, u32 first, u32 N, u32 K, u32 M, u32 split, u32 tileRows) {
  if (!LOOM_MMA_PREFETCH) return L2Span{nullptr, 0};
  const u32 rows = MMA_WARPS / mma_split(M, split) * tileRows;
  return rows_span(w + (u64)first * K, blockIdx.x * rows, rows, N, K);
}

// mma_gemv runs mma_tiles with the tiles of x that min(M, 64) rows need
// and S warps a tile: split as the lowering asked, but at least the tiles
// of x (the warp's accumulators, (8/S)·MT·4 floats, stay at 32), a power
// of two of at most 8. Any split and grid give the same result.
//
// With stream (MatMulParams.Stream), M ≤ 8, K a positive multiple of 256 and
// aligned rows, it runs mma_stream instead, whose sums are the same.
template <typename T>
__device__ void mma_gemv(const T* x, u32 M, u32 K, u32 tiles, u32 split, bool vec, bool stream, float* red, const MmaRows<T>& epi) {
  const u32 mt = mma_tiles_of_x(M), s = mma_split(M, split);
  if (stream && mt == 1 && vec && K > 0 && K % 256 == 0) {
    switch (s) {
      case 1: mma_stream<T, 1>(x, M, K, tiles, red, epi); break;
      case 2: mma_stream<T, 2>(x, M, K, tiles, red, epi); break;
      case 4: mma_stream<T, 4>(x, M, K, tiles, red, epi); break;
      default: mma_stream<T, 8>(x, M, K, tiles, red, epi); break;
    }
    return;
  }
  switch (mt * 16 + s) {
    case 16 + 1: mma_tiles<T, 1, 1>(x, M, K, tiles, vec, red, epi); break;
    case 16 + 2: mma_tiles<T, 1, 2>(x, M, K, tiles, vec, red, epi); break;
    case 16 + 4: mma_tiles<T, 1, 4>(x, M, K, tiles, vec, red, epi); break;
    case 16 + 8: mma_tiles<T, 1, 8>(x, M, K, tiles, vec, red, epi); break;
    case 32 + 2: mma_tiles<T, 2, 2>(x, M, K, tiles, vec, red, epi); break;
    case 32 + 4: mma_tiles<T, 2, 4>(x, M, K, tiles, vec, red, epi); break;
    case 32 + 8: mma_tiles<T, 2, 8>(x, M, K, tiles, vec, red, epi); break;
    case 64 + 4: mma_tiles<T, 4, 4>(x, M, K, tiles, vec, red, epi); break;
    case 64 + 8: mma_tiles<T, 4, 8>(x, M, K, tiles, vec, red, epi); break;
    default: mma_tiles<T, 8, 8>(x, M, K, tiles, vec, red, epi); break;
  }
}

// The shared memory of the warps' slices: 8 slices of MT·4 floats a lane
// for each of the block's 8/S tiles, MT ≤ S.
#define MMA_RED_FLOATS (MMA_WARPS * MMA_SLICES * 4 * 32)

// MmaRows are the tiles of a tensor-core GEMV and their outputs.
// The matmul's tiles have tileRows (8 or 16) weight rows each; with 8,
// rows g + 8 are zeros. The gated GEMV's (matmul_silu_mul_<dt>_mma,
// MatMulSiLUMulParams.MMA) pair gate rows 8i + g (the A operand's rows g)
// with up rows N + 8i + g (rows g + 8), so lane (g, t) holds both sums of
// outputs (m, 8i + g), m = 2t and 2t + 1 of each tile of x: each rounded
// to T as the matmul's output is, then silu_mul's product.
template <typename T> struct MmaRows {
  const T* w;
  T* out;
  u32 N, M, K, tileRows;
  bool gated;
  __device__ __forceinline__ void rows(u32 tile, u32 g, const T*& lo, const T*& hi) const {
    const u32 n = tile * tileRows + g;
    lo = n < N ? w + (u64)n * K : nullptr;
    if (gated) {
      hi = n < N ? w + (u64)(N + n) * K : nullptr;
    } else {
      hi = tileRows == 16 && n + 8 < N ? w + (u64)(n + 8) * K : nullptr;
    }
  }
  // store stores the sums of the tile that mma_owns gives share (of S).
  template <int MT>
  __device__ __forceinline__ void store(u32 tile, u32 m0, u32 g, u32 t, u32 share, u32 S, const float (&sum)[MT][4]) const {
#pragma unroll
    for (int j = 0; j < MT; j++)
#pragma unroll
      for (int r = 0; r < 4; r++) {
        const u32 m = m0 + 8 * j + 2 * t + r % 2, n = tile * tileRows + g + 8 * (r / 2);
        if (!mma_owns(j, r, share, S) || m >= M || n >= N) continue;
        if (!gated) {
          if (r < 2 || tileRows == 16) store_f(out, (u64)m * N + n, sum[j][r]);
        } else if (r < 2) {
          const float gs = Num<T>::load(Num<T>::store(sum[j][r])), us = Num<T>::load(Num<T>::store(sum[j][r + 2]));
          store_f(out, (u64)m * N + n, un_silu(gs) * us);
        }
      }
  }
};

// gemv_mma_span is the weight rows of gemv_mma's first step in this block.
template <typename T> __device__ __forceinline__ L2Span gemv_mma_span(const T* b, const MatMulParams& p) {
  return mma_span(b + matrix_offsets(p, blockIdx.z).b, 0, p.N, p.K, p.M, p.Split, p.TileRows == 8 ? 8 : 16);
}

template <typename T>
__device__ void gemv_mma(const T* a, const T* b, T* out, const MatMulParams& p, float* red) {
  const MatrixOffsets o = matrix_offsets(p, blockIdx.z);
  const bool vec = p.K % 8 == 0 && (((u64)(a + o.a) | (u64)(b + o.b)) & 15) == 0;
  const u32 tileRows = p.TileRows == 8 ? 8 : 16;
  const MmaRows<T> epi{b + o.b, out + o.out, p.N, p.M, p.K, tileRows, false};
  mma_gemv(a + o.a, p.M, p.K, (p.N + tileRows - 1) / tileRows, p.Split, vec, p.Stream == 1, red, epi);
}

__device__ __forceinline__ u32 smem_u32(const void* p) {
  u32 r;
  asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(r) : "l"(p));
  return r;
}

// tc_copy copies 16 bytes from src to shared memory at dst, or zeros if
// !ok.
__device__ __forceinline__ void tc_copy(u32 dst, const void* src, bool ok) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(ok ? 16 : 0));
}

// ---- 9 ≤ M on tensor cores, through shared memory: the cluster GEMV -----------
//
// mma_ring (matmul_<dt>_gemv_mma_ring, matmul_silu_mul_<dt>_mma_ring;
// MatMulParams.Ring, MatMulSiLUMulParams.Ring) computes the same sums as
// mma_tiles, bit for bit, for M > 8 rows, K a multiple of 256 and 16-byte
// aligned rows, and reads every weight byte once whatever M. A cluster of
// RING_C = 8 blocks (one per slice, see mma_tiles) takes RING_GT tiles of
// weight rows: block r of the cluster copies, with cp.async, its slice's
// chunks (c ≡ r mod 8) of those rows and of every row of x into shared
// memory, the whole slice at once, then its warps run the slice's chains
// over the chunks in order with the operands read from shared memory,
// pass by pass of 8·MT rows of x; the cluster's blocks then add the 8
// slices of every output in the fixed tree, each block a share of the
// outputs, reading the others' slices through distributed shared memory.
// Where mma_tiles's warps load x once for every tile of 16 weight rows
// (x's bytes 2–4 times the weights' at 32–64 rows, from the L2), a block
// here reads 1/8 of the columns of x for 64 weight rows, and a slice's
// operands arrive in one round trip, not a round per MMA_UNROLL chunks.
#define RING_C 8
#define RING_GT 4
#define RING_ROWS (RING_GT * 16)

// ring_stride is the elements between rows of a block's slice in shared
// memory, kc of them: padded so that 2 rows' 64-byte pieces fall in
// different halves of the 128 bytes of banks (the 8 lanes of a quarter of
// a warp read rows g and g + 1).
__device__ __forceinline__ u32 ring_stride(u32 kc) { return kc % 64 == 0 ? kc + 32 : kc; }

// ring_copy starts the copy of piece `piece` (8 elements) of row src's
// chunks of slice r into dst, zeros where src is null: by cp.async where
// the operands are 16-byte aligned (vec), else an element at a time (an
// offset view of x or the weights).
template <typename T>
__device__ __forceinline__ void ring_copy(T* dst, const T* src, const T* any, u32 r, u32 piece, bool vec) {
  const u32 ks = piece / 4, sub = piece % 4;
  const bool ok = src != nullptr;
  dst += ks * 32 + sub * 8;
  src = ok ? src + ks * 256 + r * 32 + sub * 8 : any;
  if (vec) {
    tc_copy(smem_u32(dst), src, ok);
    return;
  }
  for (int j = 0; j < 8; j++) dst[j].bits = ok ? src[j].bits : (u16)0;
}

__device__ __forceinline__ u32 cluster_rank() {
  u32 r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
  return r;
}
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.aligned;\nbarrier.cluster.wait.aligned;" ::: "memory");
}
// cluster_load reads the float at shared address a of block `rank`.
__device__ __forceinline__ float cluster_load(u32 a, u32 rank) {
  u32 ra;
  float v;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(ra) : "r"(a), "r"(rank));
  asm volatile("ld.shared::cluster.f32 %0, [%1];" : "=f"(v) : "r"(ra) : "memory");
  return v;
}

// RingSmem is a block's shared memory (primitives.RingSharedBytes): the
// slice of its weight rows, then of x's rows (mp: M rounded up to whole
// passes), then the slice sums of a pass, red[tile][tile of x][lane][4]
// (the lanes' accumulators).
template <typename T> struct RingSmem {
  T *w, *x;
  float* red;
  u32 stride;
  __device__ __forceinline__ RingSmem(u8* smem, u32 K, u32 mp) {
    stride = ring_stride(K / RING_C);
    w = (T*)smem;
    x = w + RING_ROWS * stride;
    red = (float*)(x + mp * stride);
  }
};

template <typename T, int MT>
__device__ void mma_ring(const T* x, u32 M, u32 K, const MmaRows<T>& epi, u8* smem) {
  // The warps of a pass: CJ warps split its MT tiles of x, CT warps the
  // RING_GT weight tiles; a warp runs WT × JT chains.
  constexpr int CJ = MT < 4 ? MT : 4, CT = 8 / CJ, WT = RING_GT / CT, JT = MT / CJ;
  static_assert(CJ * CT == 8 && WT * CT == RING_GT && JT * CJ == MT, "the warps cover the tiles");
  const u32 warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const u32 r = cluster_rank(), group = blockIdx.x / RING_C;
  const u32 passRows = 8 * MT, mp = (M + passRows - 1) / passRows * passRows;
  const u32 kc = K / RING_C, pieces = kc / 8;
  RingSmem<T> sm(smem, K, mp);
  const u32 st = sm.stride;
  const bool vec = (((u64)x | (u64)epi.w) & 15) == 0;
  // The slice's weight rows: tile i's rows g (lo) and g + 8 (hi).
  for (u32 e = threadIdx.x; e < RING_ROWS * pieces; e += blockDim.x) {
    const u32 row = e / pieces, tile = group * RING_GT + row / 16;
    const T *lo, *hi;
    epi.rows(tile, row % 8, lo, hi);
    ring_copy(sm.w + row * st, row % 16 < 8 ? lo : hi, epi.w, r, e % pieces, vec);
  }
  for (u32 e = threadIdx.x; e < mp * pieces; e += blockDim.x) {
    const u32 m = e / pieces;
    ring_copy(sm.x + m * st, m < M ? x + (u64)m * K : (const T*)nullptr, x, r, e % pieces, vec);
  }
  asm volatile("cp.async.commit_group;\ncp.async.wait_group 0;" ::: "memory");
  __syncthreads();
  const u32 wt0 = warp / CJ * WT, jt0 = warp % CJ * JT;
  for (u32 m0 = 0; m0 < M; m0 += passRows) {
    float acc[WT][JT][4];
#pragma unroll
    for (int i = 0; i < WT; i++)
#pragma unroll
      for (int j = 0; j < JT; j++)
#pragma unroll
        for (int v = 0; v < 4; v++) acc[i][j][v] = 0.f;
    for (u32 c = 0; c < kc; c += 32) {
      uint4 wl[WT], wh[WT], xv[JT];
#pragma unroll
      for (int i = 0; i < WT; i++) {
        wl[i] = *(const uint4*)(sm.w + ((wt0 + i) * 16 + g) * st + c + 8 * t);
        wh[i] = *(const uint4*)(sm.w + ((wt0 + i) * 16 + g + 8) * st + c + 8 * t);
      }
#pragma unroll
      for (int j = 0; j < JT; j++) xv[j] = *(const uint4*)(sm.x + (m0 + (jt0 + j) * 8 + g) * st + c + 8 * t);
#pragma unroll
      for (int i = 0; i < WT; i++)
#pragma unroll
        for (int j = 0; j < JT; j++) {
          MMA<T>::run(acc[i][j], wl[i].x, wh[i].x, wl[i].y, wh[i].y, xv[j].x, xv[j].y);
          MMA<T>::run(acc[i][j], wl[i].z, wh[i].z, wl[i].w, wh[i].w, xv[j].z, xv[j].w);
        }
    }
#pragma unroll
    for (int i = 0; i < WT; i++)
#pragma unroll
      for (int j = 0; j < JT; j++)
        *(float4*)(sm.red + (((wt0 + i) * MT + jt0 + j) * 32 + lane) * 4) = make_float4(acc[i][j][0], acc[i][j][1], acc[i][j][2], acc[i][j][3]);
    cluster_sync();  // every block's slice sums of the pass are in
    // Unit u: lane l's sums v and v + 2 (rows g and g + 8 of a tile; the
    // gated GEMV's gate and up sums) of tile i of weights and j of x.
    const u32 units = RING_GT * MT * 32 * 2;
    for (u32 u = r * blockDim.x + threadIdx.x; u < units; u += RING_C * blockDim.x) {
      const u32 v = u % 2, l = u / 2 % 32, j = u / 64 % MT, i = u / 64 / MT;
      const u32 base = smem_u32(sm.red + ((i * MT + j) * 32 + l) * 4 + v);
      float s[2][MMA_SLICES];
#pragma unroll
      for (int q = 0; q < MMA_SLICES; q++) {
        s[0][q] = cluster_load(base, q);
        s[1][q] = cluster_load(base + 8, q);
      }
      const float lo = slice_tree(s[0]), hi = slice_tree(s[1]);
      const u32 m = m0 + 8 * j + 2 * (l % 4) + v, tile = group * RING_GT + i, n = tile * epi.tileRows + l / 4;
      if (m >= M || n >= epi.N) continue;
      if (epi.gated) {
        const float gs = Num<T>::load(Num<T>::store(lo)), us = Num<T>::load(Num<T>::store(hi));
        store_f(epi.out, (u64)m * epi.N + n, un_silu(gs) * us);
      } else {
        store_f(epi.out, (u64)m * epi.N + n, lo);
        if (n + 8 < epi.N) store_f(epi.out, (u64)m * epi.N + n + 8, hi);
      }
    }
    cluster_sync();  // the slice sums are read before the next pass writes them
  }
}

// ring_span is the weight rows block r of the cluster asks the L2 for
// before grid_dependency_wait: its eighth of the cluster's 64 rows, whole
// (the gated GEMV's: of its 32 gate rows, then of its 32 up rows), so
// that the cluster prefetches its rows once.
template <typename T> __device__ __forceinline__ L2Span ring_span(const T* w, u32 N, u32 K, bool gated) {
  if (!LOOM_MMA_PREFETCH) return L2Span{nullptr, 0};
  const u32 r = cluster_rank(), group = blockIdx.x / RING_C;
  if (!gated) return rows_span(w, group * RING_ROWS + r * 8, 8, N, K);
  return rows_span(w + (u64)(r / 4) * N * K, group * RING_ROWS / 2 + r % 4 * 8, 8, N, K);
}

// ring_gemv runs mma_ring with MT as primitives.ringTilesOfX chose it.
template <typename T>
__device__ void ring_gemv(const T* x, u32 M, u32 K, u32 mt, const MmaRows<T>& epi) {
  extern __shared__ __align__(16) u8 ring_smem[];
  switch (mt) {
    case 2: mma_ring<T, 2>(x, M, K, epi, ring_smem); break;
    case 4: mma_ring<T, 4>(x, M, K, epi, ring_smem); break;
    default: mma_ring<T, 8>(x, M, K, epi, ring_smem); break;
  }
}

// The cluster variants (sm_90 and later) of the GEMV and the gated GEMV,
// compiled beside their tensor-core variants, take three blocks a
// multiprocessor by registers (ptxas, sm_90: 78–80, no spills; 74–92
// without the bound, four blocks spill).
#ifndef LOOM_RING_MIN_BLOCKS
#define LOOM_RING_MIN_BLOCKS 3
#endif
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900  // (undefined: the host emulation)
#define GEMV_RING_KERNEL(SHORT, T)                                                                          \
  extern "C" __global__ void __cluster_dims__(RING_C, 1, 1) __launch_bounds__(LOOM_GEMV_THREADS, LOOM_RING_MIN_BLOCKS)          \
      matmul_##SHORT##_gemv_mma_ring(const T* a, const T* b, T* out, const MatMulParams p, Status* status) { \
    grid_dependency_wait(ring_span(b + matrix_offsets(p, blockIdx.z).b, p.N, p.K, false));                \
    const MatrixOffsets o = matrix_offsets(p, blockIdx.z);                                                 \
    ring_gemv(a + o.a, p.M, p.K, mma_tiles_of_x(p.M), MmaRows<T>{b + o.b, out + o.out, p.N, p.M, p.K, 16, false}); \
  }
#define GATED_RING_KERNEL(SHORT, T)                                                                      \
  extern "C" __global__ void __cluster_dims__(RING_C, 1, 1) __launch_bounds__(LOOM_GEMV_THREADS, LOOM_RING_MIN_BLOCKS)        \
      matmul_silu_mul_##SHORT##_mma_ring(const T* x, const T* w, T* out, const MatMulSiLUMulParams p,    \
                                         Status* status) {                                               \
    grid_dependency_wait(ring_span(w, p.N, p.K, true));                                                  \
    ring_gemv(x, p.M, p.K, mma_tiles_of_x(p.M), MmaRows<T>{w, out, p.N, p.M, p.K, 8, true});             \
  }
#else
#define GEMV_RING_KERNEL(SHORT, T)
#define GATED_RING_KERNEL(SHORT, T)
#endif

// ---- M ≤ 8 on tensor cores, weights through shared memory: the bulk GEMV ------
//
// mma_bulk (matmul_<dt>_gemv_mma_bulk, matmul_silu_mul_<dt>_mma_bulk,
// add_rms_norm_matmul_<dt>_mma_bulk, add_rms_norm_matmul_silu_mul_<dt>_mma_bulk;
// the Bulk of MatMulParams, MatMulSiLUMulParams and AddRMSNormLinearParams)
// computes mma_tiles's sums, bit for bit, for up to 8 rows of x (one tile of
// x), K a multiple of 8 and 16-byte aligned weights (else it runs
// mma_gemv). Its grid is about a block a multiprocessor
// (primitives.bulkGEMVPlan): block b of G takes the contiguous tiles
// [b·T/G, (b+1)·T/G) of T, in stages of 8/S tiles, S the warps a tile as
// in mma_tiles. A stage's weight rows are one contiguous span (the gated
// GEMV's: its gate rows and its up rows, two spans), which thread 0 copies
// into shared memory with one 1-D bulk copy each (cp.async.bulk, no tensor
// map), completing on the stage's mbarrier; the stages go round a ring of
// p.Bulk slots, thread 0 refilling a slot with the stage p.Bulk ahead once
// every warp is done with it. The warps run a stage's tiles as mma_tiles
// runs them (the same slices, chains, tree and epilogue), the weights and
// x read from shared memory. So a block has its first ring fill in
// flight from its first instructions, issued by one thread, and needs
// neither the 16 warps a multiprocessor nor the registers that the tile
// loop's loads in flight take: at a block a multiprocessor (the default) the next
// kernel's block finds room beside it under programmatic dependent
// launch, and starts its own stream there.
//
// Each kernel comes twice. The late one (<name>_mma_bulk): before
// grid_dependency_wait thread 0 asks the L2 for the first ring fill with
// one bulk prefetch a span (cp.async.bulk.prefetch.L2, which, as
// prefetch_l2, can neither see nor change a value), and copies it into
// shared memory after the wait. The early one (<name>_mma_bulk_early)
// copies the first ring fill before the wait, while the kernel before may
// still run: correct only where that kernel does not write the weights,
// which the device decides per launch (cuda/bulkearly_linux.go: no launch
// of the command list writes the weights' buffer).
#define BULK_MAX_STAGES 16  // primitives.BulkMaxStages: the mbarriers' room

// BulkLayout is a block's dynamic shared memory (primitives.BulkSharedBytes),
// byte offsets: the stages' mbarriers at 0, the slice sums (red; with
// S = 1 room for block_sum's scratch alone), x's rows (xRows of K: none
// where x is elsewhere), then the ring, p.Bulk stages of `stage` bytes:
// 8/S tiles of stageRows weight rows (the gated GEMV's 8 gate rows, then
// its 8 up rows, count 16).
struct BulkLayout {
  u32 red, x, ring, stage;
};
template <typename T>
__device__ __forceinline__ BulkLayout bulk_layout(u32 xRows, u32 K, u32 S, u32 stageRows) {
  BulkLayout l;
  l.red = BULK_MAX_STAGES * 8;
  l.x = l.red + (S > 1 ? MMA_WARPS / S * MMA_SLICES * 4 * 32 * 4 : 32 * 4);
  l.ring = l.x + (xRows * K * (u32)sizeof(T) + 15) / 16 * 16;
  l.stage = MMA_WARPS / S * stageRows * K * (u32)sizeof(T);
  return l;
}

__device__ __forceinline__ void mbar_init(u32 bar, u32 count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
// mbar_init_fence makes the mbarriers' initialisation visible to the bulk
// copies (the async proxy) that complete on them.
__device__ __forceinline__ void mbar_init_fence() { asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory"); }
// mbar_expect arrives on bar (count 1: its phase's only arrival), which then
// completes once `bytes` more bytes of bulk copies have landed.
__device__ __forceinline__ void mbar_expect(u32 bar, u32 bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
// mbar_wait returns once the phase of bar of the given parity (0 for its
// first phase, 1 for its second, 0 again…) has completed.
__device__ __forceinline__ void mbar_wait(u32 bar, u32 parity) {
  u32 done = 0;
  while (!done) {
    asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                 : "=r"(done) : "r"(bar), "r"(parity) : "memory");
  }
}
// bulk_copy copies bytes (a multiple of 16) from src to the shared address
// dst (both 16-byte aligned), completing them on bar.
__device__ __forceinline__ void bulk_copy(u32 dst, const void* src, u32 bytes, u32 bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
               ::"r"(dst), "l"(src), "r"(bytes), "r"(bar) : "memory");
}
__device__ __forceinline__ void bulk_prefetch(const void* src, u32 bytes) {
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(src), "r"(bytes) : "memory");
}

// bulk_smem is the bulk GEMV's dynamic shared memory (BulkLayout).
extern __shared__ __align__(16) u8 bulk_smem[];

// BulkRing is a block's share of a bulk GEMV: its tiles [t0, t1) of the
// weights epi describes, `per` (8/S) a stage, `count` stages in `slots`
// slots of the layout's ring.
template <typename T> struct BulkRing {
  MmaRows<T> epi;
  u8* smem;
  BulkLayout lay;
  u32 t0, t1, per, count, slots;
  __device__ __forceinline__ BulkRing(const MmaRows<T>& e, u32 xRows, u32 S, u32 stages) : epi(e), smem(bulk_smem) {
    const u32 tiles = (e.N + e.tileRows - 1) / e.tileRows;
    lay = bulk_layout<T>(xRows, e.K, S, e.gated ? 16 : e.tileRows);
    t0 = (u32)((u64)blockIdx.x * tiles / gridDim.x);
    t1 = (u32)((u64)(blockIdx.x + 1) * tiles / gridDim.x);
    per = MMA_WARPS / S;
    count = (t1 - t0 + per - 1) / per;
    slots = min(stages, (u32)BULK_MAX_STAGES);
  }
  __device__ __forceinline__ u32 bar(u32 j) const { return smem_u32(smem) + 8 * (j % slots); }
  __device__ __forceinline__ T* stage(u32 j) const { return (T*)(smem + lay.ring + (j % slots) * lay.stage); }
  // rows returns the weight rows [r0, r1) of stages [j0, j1) (of the gated
  // GEMV: its gate rows; the up rows are N further).
  __device__ __forceinline__ void rows(u32 j0, u32 j1, u32& r0, u32& r1) const {
    r0 = (t0 + j0 * per) * epi.tileRows;
    r1 = min(min(t0 + j1 * per, t1) * epi.tileRows, epi.N);
  }
  // copy starts the copies of stage j into its slot (thread 0).
  __device__ __forceinline__ void copy(u32 j) const {
    u32 r0, r1;
    rows(j, j + 1, r0, r1);
    const u32 bytes = (r1 - r0) * epi.K * (u32)sizeof(T), b = bar(j), dst = smem_u32(stage(j));
    mbar_expect(b, epi.gated ? 2 * bytes : bytes);
    bulk_copy(dst, epi.w + (u64)r0 * epi.K, bytes, b);
    if (epi.gated) bulk_copy(dst + per * 8 * epi.K * (u32)sizeof(T), epi.w + (u64)(epi.N + r0) * epi.K, bytes, b);
  }
  // tile_rows are lane group g's weight rows of tile i of stage j in
  // shared memory, as MmaRows::rows has them in the weights.
  __device__ __forceinline__ void tile_rows(u32 j, u32 i, u32 g, const T*& lo, const T*& hi) const {
    const T* s = stage(j);
    const u32 n = (t0 + j * per + i) * epi.tileRows + g;
    lo = n < epi.N ? s + (u64)(i * epi.tileRows + g) * epi.K : nullptr;
    if (epi.gated) {
      hi = n < epi.N ? s + (u64)(per * 8 + i * 8 + g) * epi.K : nullptr;
    } else {
      hi = epi.tileRows == 16 && n + 8 < epi.N ? lo + (u64)8 * epi.K : nullptr;
    }
  }
};

// bulk_aligned says whether the bulk path takes the weights: K a positive
// multiple of 8 and 16-byte aligned rows (M ≤ 8 is the lowering's).
template <typename T> __device__ __forceinline__ bool bulk_aligned(const BulkRing<T>& ring) {
  return ring.epi.K > 0 && ring.epi.K % 8 == 0 && ((u64)ring.epi.w & 15) == 0;
}

// bulk_start begins a block's weight stream before grid_dependency_wait:
// thread 0 initialises the ring's mbarriers and asks the L2 for the rows of
// the first ring fill (Early: copies them into the ring). Late, it reads
// no global memory; it returns no span for prefetch_l2.
template <typename T, bool Early> __device__ __forceinline__ L2Span bulk_start(const BulkRing<T>& ring) {
  if (!bulk_aligned(ring) || threadIdx.x != 0 || ring.count == 0) return L2Span{nullptr, 0};
  for (u32 s = 0; s < ring.slots; s++) mbar_init(ring.bar(s), 1);
  mbar_init_fence();
  const u32 first = min(ring.slots, ring.count);
  if (Early) {
    for (u32 j = 0; j < first; j++) ring.copy(j);
  } else {
    u32 r0, r1;
    ring.rows(0, first, r0, r1);
    const u32 bytes = (r1 - r0) * ring.epi.K * (u32)sizeof(T);
    bulk_prefetch(ring.epi.w + (u64)r0 * ring.epi.K, bytes);
    if (ring.epi.gated) bulk_prefetch(ring.epi.w + (u64)(ring.epi.N + r0) * ring.epi.K, bytes);
  }
  return L2Span{nullptr, 0};
}

// lds8 is load8 of a row in shared memory, K a multiple of 8.
template <typename T> __device__ __forceinline__ uint4 lds8(const T* row, u32 k, u32 K) {
  return row != nullptr && k < K ? *(const uint4*)(row + k) : make_uint4(0u, 0u, 0u, 0u);
}

// bulk_slices is mma_slices of one tile of x from shared memory: chunk
// c = share + S·j of the tile goes to acc[j mod 8/S], in order.
template <typename T, int S>
__device__ __forceinline__ void bulk_slices(const T* lo, const T* hi, const T* xr, u32 K, u32 share, float (&acc)[MMA_SLICES / S][1][4]) {
  constexpr int NS = MMA_SLICES / S;
  const u32 t = threadIdx.x % 4, chunks = (K + 31) / 32;
  for (u32 c0 = share; c0 < chunks; c0 += MMA_SLICES) {
#pragma unroll
    for (int u = 0; u < NS; u++) {
      const u32 c = c0 + S * u;
      if (c >= chunks) break;
      const u32 k = c * 32 + 8 * t;
      const uint4 wl = lds8(lo, k, K), wh = lds8(hi, k, K), xv = lds8(xr, k, K);
      MMA<T>::run(acc[u][0], wl.x, wh.x, wl.y, wh.y, xv.x, xv.y);
      MMA<T>::run(acc[u][0], wl.z, wh.z, wl.w, wh.w, xv.z, xv.w);
    }
  }
}

// mma_bulk runs the block's stages (after bulk_start and the wait; x, its
// M ≤ 8 rows, already in shared memory and the block past a barrier).
template <typename T, int S>
__device__ __noinline__ void mma_bulk(const T* x, u32 M, const BulkRing<T> ring) {
  constexpr int NS = MMA_SLICES / S;
  const u32 warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const u32 tb = warp / S, share = warp % S, K = ring.epi.K;
  float* red = (float*)(ring.smem + ring.lay.red);
  const T* xr = g < M ? x + (u64)g * K : nullptr;
  for (u32 j = 0; j < ring.count; j++) {
    mbar_wait(ring.bar(j), j / ring.slots % 2);
    const u32 tile = ring.t0 + j * ring.per + tb;
    float acc[NS][1][4];
#pragma unroll
    for (int i = 0; i < NS; i++)
#pragma unroll
      for (int r = 0; r < 4; r++) acc[i][0][r] = 0.f;
    if (tile < ring.t1) {
      const T *lo, *hi;
      ring.tile_rows(j, tb, g, lo, hi);
      bulk_slices<T, S>(lo, hi, xr, K, share, acc);
    }
    float sum[1][4];
    tile_sums<1, S>(acc, red, tb, share, lane, sum);
    if (tile < ring.t1) ring.epi.store(tile, 0, g, t, share, S, sum);
    __syncthreads();  // every warp is done with the slot
    if (threadIdx.x == 0 && j + ring.slots < ring.count) ring.copy(j + ring.slots);
  }
}

// bulk_gemv runs mma_bulk where the weights allow (bulk_aligned), else
// mma_gemv with the same sums; x (M ≤ 8 rows) is in shared memory where
// xShared, else copied there (the layout's rows). Thread 0 issues the
// first copies (after the wait) unless bulk_start did (Early).
template <typename T, bool Early>
__device__ void bulk_gemv(const T* x, u32 M, u32 split, bool xShared, const BulkRing<T>& ring) {
  float* red = (float*)(ring.smem + ring.lay.red);
  const u32 K = ring.epi.K;
  if (!bulk_aligned(ring)) {
    const bool vec = K % 8 == 0 && (((u64)x | (u64)ring.epi.w) & 15) == 0;
    mma_gemv(x, M, K, (ring.epi.N + ring.epi.tileRows - 1) / ring.epi.tileRows, split, vec, false, red, ring.epi);
    return;
  }
  if (!Early && threadIdx.x == 0)
    for (u32 j = 0; j < min(ring.slots, ring.count); j++) ring.copy(j);
  if (!xShared) {
    T* xs = (T*)(ring.smem + ring.lay.x);
    if (((u64)x & 15) == 0) {
      for (u32 i = threadIdx.x; i < M * K / 8; i += blockDim.x) ((uint4*)xs)[i] = ((const uint4*)x)[i];
    } else {
      for (u32 i = threadIdx.x; i < M * K; i += blockDim.x) xs[i] = x[i];
    }
    x = xs;
    __syncthreads();
  }
  switch (mma_split(M, split)) {
    case 1: mma_bulk<T, 1>(x, M, ring); break;
    case 2: mma_bulk<T, 2>(x, M, ring); break;
    case 4: mma_bulk<T, 4>(x, M, ring); break;
    default: mma_bulk<T, 8>(x, M, ring); break;
  }
}

// gemv_bulk_ring and gated_bulk_ring are the rings of the GEMV and the
// gated GEMV (x in the layout: xRows of it).
template <typename T> __device__ __forceinline__ BulkRing<T> gemv_bulk_ring(const T* w, T* out, u32 N, u32 M, u32 K, u32 tileRows, u32 split, u32 stages, u32 xRows) {
  return BulkRing<T>(MmaRows<T>{w, out, N, M, K, tileRows == 8 ? 8u : 16u, false}, xRows, mma_split(M, split), stages);
}
template <typename T> __device__ __forceinline__ BulkRing<T> gated_bulk_ring(const T* w, T* out, u32 N, u32 M, u32 K, u32 split, u32 stages, u32 xRows) {
  return BulkRing<T>(MmaRows<T>{w, out, N, M, K, 8, true}, xRows, mma_split(M, split), stages);
}

// The bulk variants (sm_90 and later) of the GEMV and the gated GEMV, late
// and early, compiled beside their tensor-core variants where the device has the bulk
// GEMV on (LOOM_MATMUL_BULK, from LOOM_CUDA_GEMV_BULK), at most 128 registers a
// thread so that two blocks fit a multiprocessor: the next kernel's beside
// this one's.
#ifndef LOOM_BULK_MIN_BLOCKS
#define LOOM_BULK_MIN_BLOCKS 2
#endif
// BULK_PTX: the bulk copies and mbarrier transactions need PTX ISA 8.0,
// NVRTC 12 or later (the device turns the bulk GEMV off under an older
// one, whose modules then lack these kernels).
#if !defined(__CUDACC_VER_MAJOR__) || __CUDACC_VER_MAJOR__ >= 12
#define BULK_PTX 1
#else
#define BULK_PTX 0
#endif
#if defined(LOOM_MATMUL_BULK) && (!defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900) && BULK_PTX  // (undefined: the host emulation)
#define GEMV_BULK_KERNEL_AS(SHORT, T, SUFFIX, EARLY)                                                                   \
  extern "C" __global__ void __launch_bounds__(LOOM_GEMV_THREADS, LOOM_BULK_MIN_BLOCKS)                                \
      matmul_##SHORT##_gemv_mma_bulk##SUFFIX(const T* a, const T* b, T* out, const MatMulParams p, Status* status) {  \
    grid_dependency_wait(bulk_start<T, EARLY>(gemv_bulk_ring(b, out, p.N, p.M, p.K, p.TileRows, p.Split, p.Bulk, p.M))); \
    bulk_gemv<T, EARLY>(a, p.M, p.Split, false, gemv_bulk_ring(b, out, p.N, p.M, p.K, p.TileRows, p.Split, p.Bulk, p.M)); \
  }
#define GATED_BULK_KERNEL_AS(SHORT, T, SUFFIX, EARLY)                                                                  \
  extern "C" __global__ void __launch_bounds__(LOOM_GEMV_THREADS, LOOM_BULK_MIN_BLOCKS)                                \
      matmul_silu_mul_##SHORT##_mma_bulk##SUFFIX(const T* x, const T* w, T* out, const MatMulSiLUMulParams p,         \
                                                 Status* status) {                                                     \
    grid_dependency_wait(bulk_start<T, EARLY>(gated_bulk_ring(w, out, p.N, p.M, p.K, p.Split, p.Bulk, p.M)));         \
    bulk_gemv<T, EARLY>(x, p.M, p.Split, false, gated_bulk_ring(w, out, p.N, p.M, p.K, p.Split, p.Bulk, p.M));         \
  }
#define GEMV_BULK_KERNEL(SHORT, T) GEMV_BULK_KERNEL_AS(SHORT, T, , false) GEMV_BULK_KERNEL_AS(SHORT, T, _early, true)
#define GATED_BULK_KERNEL(SHORT, T) GATED_BULK_KERNEL_AS(SHORT, T, , false) GATED_BULK_KERNEL_AS(SHORT, T, _early, true)
#else
#define GEMV_BULK_KERNEL(SHORT, T)
#define GATED_BULK_KERNEL(SHORT, T)
#endif

// The variants take two blocks a multiprocessor (at most 128 registers a
// thread): 16 warps, each with up to 8 KB of weights in flight. (One
// block, 255 registers, with LOOM_MMA_MIN_BLOCKS=1: measured slower.)
#ifndef LOOM_MMA_MIN_BLOCKS
#define LOOM_MMA_MIN_BLOCKS 2
#endif
#define GEMV_MMA_KERNEL(SHORT, T)                                                                      \
  extern "C" __global__ void __launch_bounds__(LOOM_GEMV_THREADS, LOOM_MMA_MIN_BLOCKS)                 \
      matmul_##SHORT##_gemv_mma(const T* a, const T* b, T* out, const MatMulParams p, Status* status) { \
    grid_dependency_wait(gemv_mma_span(b, p));                                                         \
    __shared__ float red[MMA_RED_FLOATS];                                                              \
    gemv_mma(a, b, out, p, red);                                                                        \
  }                                                                                                    \
  GEMV_RING_KERNEL(SHORT, T)                                                                           \
  GEMV_BULK_KERNEL(SHORT, T)

// The gated GEMV on tensor cores: see MmaRows.
#define GATED_MMA_KERNEL(SHORT, T)                                                                       \
  extern "C" __global__ void __launch_bounds__(LOOM_GEMV_THREADS, LOOM_MMA_MIN_BLOCKS)                   \
      matmul_silu_mul_##SHORT##_mma(const T* x, const T* w, T* out, const MatMulSiLUMulParams p,         \
                                    Status* status) {                                                    \
    grid_dependency_wait(mma_span(w, 0, p.N, p.K, p.M, p.Split, 8), mma_span(w, p.N, p.N, p.K, p.M, p.Split, 8)); \
    __shared__ float red[MMA_RED_FLOATS];                                                                \
    const bool vec = p.K % 8 == 0 && (((u64)x | (u64)w) & 15) == 0;                                      \
    mma_gemv(x, p.M, p.K, (p.N + 7) / 8, p.Split, vec, false, red, MmaRows<T>{w, out, p.N, p.M, p.K, 8, true}); \
  }                                                                                                      \
  GATED_RING_KERNEL(SHORT, T)                                                                            \
  GATED_BULK_KERNEL(SHORT, T)

// ---- a norm fused into the GEMV: one row ---------------------------------------
//
// add_rms_norm_matmul_<dt> and add_rms_norm_matmul_silu_mul_<dt>
// (primitives.AddRMSNormLinear, AddRMSNormLinearParams): x and delta, one
// row of K ≤ primitives.AddRMSNormLinearMaxK elements, the norm's weight
// [K], w [N, K] (gated: [2N, K]). Every block first normalises the row
// into shared memory as add_rms_norm does (add_rms_norm_regs, with as many
// threads, so the same bits; block 0 also stores the sum), then computes
// its outputs reading the row from there as the GEMV (gemv_rows,
// gemv_mma) or the gated GEMV (gated_gemv_rows, its tensor-core variant)
// of the stored norm would: the same sums, so add_rms_norm's and the
// GEMV's results bit for bit. Each block reads the row again (from the L2:
// 6 KB for K = 1,024 of bfloat16), in place of a launch and a round trip
// of the norm through memory. The weight spans prefetched before
// grid_dependency_wait are the GEMV's.
static_assert(NORM_REGS * LOOM_GEMV_THREADS == LOOM_NORM_GEMV_MAX_K, "a block normalises primitives.AddRMSNormLinearMaxK elements in registers");

// norm_gemv_params and norm_gated_params are the params of the GEMV and
// the gated GEMV of the normalised row.
__device__ __forceinline__ MatMulParams norm_gemv_params(const AddRMSNormLinearParams& p) {
  MatMulParams m = {};
  m.M = 1, m.N = p.N, m.K = p.K, m.Batch = 1, m.TransposeB = 1;
  m.MMA = p.MMA, m.Split = p.Split, m.TileRows = p.TileRows;
  return m;
}
__device__ __forceinline__ MatMulSiLUMulParams norm_gated_params(const AddRMSNormLinearParams& p) {
  MatMulSiLUMulParams m = {};
  m.M = 1, m.N = p.N, m.K = p.K, m.MMA = p.MMA, m.Split = p.Split;
  return m;
}

#define NORM_GEMV_ARGS(T) \
  const T *x, const T *delta, const T *norm_weight, const T *w, T *sum, T *out, const AddRMSNormLinearParams p, Status *status
// NORM_ROW normalises the row into xn (shared, 16-byte aligned), scratch
// being block_sum's, and waits for the whole block.
#define NORM_ROW(T, scratch)                                                                                     \
  __align__(16) __shared__ T xn[LOOM_NORM_GEMV_MAX_K];                                                          \
  add_rms_norm_regs(x, delta, norm_weight, blockIdx.x == 0 ? sum : (T*)nullptr, xn, p.K, p.Eps, scratch);       \
  __syncthreads()

#define NORM_GEMV_KERNEL(SHORT, T)                                                           \
  extern "C" __global__ void add_rms_norm_matmul_##SHORT(NORM_GEMV_ARGS(T)) {                \
    grid_dependency_wait(gemv_span(w, norm_gemv_params(p)));                                 \
    __shared__ float scratch[32];                                                            \
    NORM_ROW(T, scratch);                                                                    \
    gemv_rows<T, true>(xn, w, out, norm_gemv_params(p), MatrixOffsets{0, 0, 0});             \
  }

#define NORM_GATED_KERNEL(SHORT, T)                                                                                  \
  extern "C" __global__ void add_rms_norm_matmul_silu_mul_##SHORT(NORM_GEMV_ARGS(T)) {                               \
    grid_dependency_wait(gated_span(w, norm_gated_params(p), 0), gated_span(w, norm_gated_params(p), 1));            \
    __shared__ float scratch[32];                                                                                    \
    NORM_ROW(T, scratch);                                                                                            \
    gated_gemv_rows<T, true>(xn, w, out, norm_gated_params(p));                                                      \
  }

// The tensor-core variants: block_sum's scratch is the start of red,
// which the GEMV uses only after the norm's barrier.
#define NORM_GEMV_MMA_KERNEL(SHORT, T)                                                                              \
  extern "C" __global__ void __launch_bounds__(LOOM_GEMV_THREADS, 2) add_rms_norm_matmul_##SHORT##_mma(NORM_GEMV_ARGS(T)) { \
    grid_dependency_wait(mma_span(w, 0, p.N, p.K, 1, p.Split, p.TileRows == 8 ? 8 : 16));                            \
    __shared__ float red[MMA_RED_FLOATS];                                                                           \
    NORM_ROW(T, red);                                                                                               \
    const u32 tileRows = p.TileRows == 8 ? 8 : 16;                                                                  \
    const bool vec = p.K % 8 == 0 && ((u64)w & 15) == 0;                                                            \
    mma_gemv<T>(xn, 1, p.K, (p.N + tileRows - 1) / tileRows, p.Split, vec, false, red,                              \
                MmaRows<T>{w, out, p.N, 1, p.K, tileRows, false});                                                  \
  }                                                                                                                 \
  NORM_GEMV_BULK_KERNEL(SHORT, T)

#define NORM_GATED_MMA_KERNEL(SHORT, T)                                                                                       \
  extern "C" __global__ void __launch_bounds__(LOOM_GEMV_THREADS, 2) add_rms_norm_matmul_silu_mul_##SHORT##_mma(NORM_GEMV_ARGS(T)) { \
    grid_dependency_wait(mma_span(w, 0, p.N, p.K, 1, p.Split, 8), mma_span(w, p.N, p.N, p.K, 1, p.Split, 8));                 \
    __shared__ float red[MMA_RED_FLOATS];                                                                                     \
    NORM_ROW(T, red);                                                                                                         \
    const bool vec = p.K % 8 == 0 && ((u64)w & 15) == 0;                                                                      \
    mma_gemv<T>(xn, 1, p.K, (p.N + 7) / 8, p.Split, vec, false, red, MmaRows<T>{w, out, p.N, 1, p.K, 8, true});               \
  }                                                                                                                           \
  NORM_GATED_BULK_KERNEL(SHORT, T)

// The bulk variants of the fused kernels: the norm's row into xn, its
// scratch at the layout's slice sums (red), then bulk_gemv of it.
#if defined(LOOM_MATMUL_BULK) && (!defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900) && BULK_PTX
#define NORM_GEMV_BULK_KERNEL_AS(SHORT, T, SUFFIX, EARLY)                                                                    \
  extern "C" __global__ void __launch_bounds__(LOOM_GEMV_THREADS, LOOM_BULK_MIN_BLOCKS)                                      \
      add_rms_norm_matmul_##SHORT##_mma_bulk##SUFFIX(NORM_GEMV_ARGS(T)) {                                                    \
    grid_dependency_wait(bulk_start<T, EARLY>(gemv_bulk_ring(w, out, p.N, 1, p.K, p.TileRows, p.Split, p.Bulk, 0)));         \
    const BulkRing<T> ring = gemv_bulk_ring(w, out, p.N, 1, p.K, p.TileRows, p.Split, p.Bulk, 0);                          \
    NORM_ROW(T, (float*)(bulk_smem + ring.lay.red));                                                                         \
    bulk_gemv<T, EARLY>(xn, 1, p.Split, true, ring);                                                                         \
  }
#define NORM_GATED_BULK_KERNEL_AS(SHORT, T, SUFFIX, EARLY)                                                                   \
  extern "C" __global__ void __launch_bounds__(LOOM_GEMV_THREADS, LOOM_BULK_MIN_BLOCKS)                                      \
      add_rms_norm_matmul_silu_mul_##SHORT##_mma_bulk##SUFFIX(NORM_GEMV_ARGS(T)) {                                           \
    grid_dependency_wait(bulk_start<T, EARLY>(gated_bulk_ring(w, out, p.N, 1, p.K, p.Split, p.Bulk, 0)));                    \
    const BulkRing<T> ring = gated_bulk_ring(w, out, p.N, 1, p.K, p.Split, p.Bulk, 0);                                     \
    NORM_ROW(T, (float*)(bulk_smem + ring.lay.red));                                                                         \
    bulk_gemv<T, EARLY>(xn, 1, p.Split, true, ring);                                                                         \
  }
#define NORM_GEMV_BULK_KERNEL(SHORT, T) NORM_GEMV_BULK_KERNEL_AS(SHORT, T, , false) NORM_GEMV_BULK_KERNEL_AS(SHORT, T, _early, true)
#define NORM_GATED_BULK_KERNEL(SHORT, T) NORM_GATED_BULK_KERNEL_AS(SHORT, T, , false) NORM_GATED_BULK_KERNEL_AS(SHORT, T, _early, true)
#else
#define NORM_GEMV_BULK_KERNEL(SHORT, T)
#define NORM_GATED_BULK_KERNEL(SHORT, T)
#endif

// ---- large M on tensor cores: A M×K, B stored N×K ------------------------------
//
// A block of TC_THREADS (8 warps, 2 × 4) computes a TC_BM × TC_BN tile of
// the output, stepping through K TC_BK at a time: each step's tiles of A
// and B are copied into shared memory by cp.async, TC_STAGES - 1 steps ahead,
// and each warp multiplies its 32×32 share with m16n8k16 products whose
// fragments ldmatrix reads (rows padded by 16 bytes, so that the 8 rows of
// an 8×8 matrix fall in different banks). Where the rows are not 16-byte
// aligned (K not a multiple of 8, or an offset operand) the tiles are
// loaded an element at a time instead. Each output element sums K in
// order, 16 at a time; the result does not depend on M or the grid, but it
// is not the small-M path's sum (other order), so a row of a product of
// more than primitives.MatMulMMARows rows may differ from the same row
// computed with fewer in the last bits.
#define TC_BM LOOM_MMA_TILE_M
#define TC_BN LOOM_MMA_TILE_N
#define TC_BK 32
#define TC_THREADS LOOM_MMA_THREADS
#define TC_STAGES 3
#define TC_LD (TC_BK + 8)

template <typename T, bool VEC> struct TcTiles {
  T a[TC_STAGES][TC_BM][TC_LD];
  T b[TC_STAGES][TC_BN][TC_LD];
};

// tc_load starts loading step k0's tiles into stage s: rows of TC_BK
// elements, 8 per 16-byte piece.
template <typename T, bool VEC>
__device__ __forceinline__ void tc_load(TcTiles<T, VEC>& sm, int s, const T* A, const T* B, const MatMulParams& p, u32 m0, u32 n0, u32 k0) {
  constexpr int PIECES = TC_BK / 8;
  for (u32 e = threadIdx.x; e < (TC_BM + TC_BN) * PIECES; e += TC_THREADS) {
    const bool isA = e < TC_BM * PIECES;
    const u32 r = (isA ? e : e - TC_BM * PIECES) / PIECES, c = e % PIECES * 8;
    const u32 row = (isA ? m0 : n0) + r, rows = isA ? p.M : p.N, k = k0 + c;
    const T* src = isA ? A : B;
    T* dst = isA ? &sm.a[s][r][c] : &sm.b[s][r][c];
    if (VEC) {
      const bool ok = row < rows && k < p.K;
      tc_copy(smem_u32(dst), ok ? src + (u64)row * p.K + k : src, ok);
    } else {
      for (u32 j = 0; j < 8; j++) {
        T v;
        v.bits = row < rows && k + j < p.K ? src[(u64)row * p.K + k + j].bits : (u16)0;
        dst[j] = v;
      }
    }
  }
}

__device__ __forceinline__ void ldmatrix4(u32* r, u32 addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}

template <typename T, bool VEC> __device__ void matmul_tc(const T* a, const T* b, T* out, const MatMulParams& p, void* smem) {
  TcTiles<T, VEC>& sm = *(TcTiles<T, VEC>*)smem;
  const MatrixOffsets o = matrix_offsets(p, blockIdx.z);
  const T* A = a + o.a;
  const T* B = b + o.b;
  const u32 m0 = blockIdx.y * TC_BM, n0 = blockIdx.x * TC_BN;
  const u32 warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const u32 wm = warp / 4 * 32, wn = warp % 4 * 32;  // the warp's 32×32 share
  float acc[2][4][4];
#pragma unroll
  for (int mt = 0; mt < 2; mt++)
#pragma unroll
    for (int nt = 0; nt < 4; nt++)
#pragma unroll
      for (int i = 0; i < 4; i++) acc[mt][nt][i] = 0.f;
  const u32 steps = (p.K + TC_BK - 1) / TC_BK;
  for (int s = 0; s < TC_STAGES - 1; s++) {
    if (s < (int)steps) tc_load(sm, s, A, B, p, m0, n0, s * TC_BK);
    asm volatile("cp.async.commit_group;");
  }
  for (u32 kt = 0; kt < steps; kt++) {
    asm volatile("cp.async.wait_group %0;" ::"n"(TC_STAGES - 2));
    __syncthreads();  // step kt is in; every warp is done with step kt - 1's stage
    const u32 next = kt + TC_STAGES - 1;
    if (next < steps) tc_load(sm, next % TC_STAGES, A, B, p, m0, n0, next * TC_BK);
    asm volatile("cp.async.commit_group;");
    const int s = kt % TC_STAGES;
#pragma unroll
    for (int kk = 0; kk < TC_BK; kk += 16) {
      u32 af[2][4], bf[4][2];
#pragma unroll
      for (int mt = 0; mt < 2; mt++) ldmatrix4(af[mt], smem_u32(&sm.a[s][wm + mt * 16 + lane % 16][kk + lane / 16 * 8]));
#pragma unroll
      for (int np = 0; np < 2; np++) {
        u32 r[4];
        ldmatrix4(r, smem_u32(&sm.b[s][wn + np * 16 + lane / 16 * 8 + lane % 8][kk + lane / 8 % 2 * 8]));
        bf[2 * np][0] = r[0], bf[2 * np][1] = r[1], bf[2 * np + 1][0] = r[2], bf[2 * np + 1][1] = r[3];
      }
#pragma unroll
      for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < 4; nt++) MMA<T>::run(acc[mt][nt], af[mt][0], af[mt][1], af[mt][2], af[mt][3], bf[nt][0], bf[nt][1]);
    }
  }
  asm volatile("cp.async.wait_group 0;");
#pragma unroll
  for (int mt = 0; mt < 2; mt++)
#pragma unroll
    for (int nt = 0; nt < 4; nt++)
#pragma unroll
      for (int i = 0; i < 4; i++) {
        const u32 m = m0 + wm + mt * 16 + g + 8 * (i / 2), n = n0 + wn + nt * 8 + 2 * t + i % 2;
        if (m < p.M && n < p.N) store_f(out, o.out + (u64)m * p.N + n, acc[mt][nt][i]);
      }
}

static_assert(TC_BM == 64 && TC_BN == 128 && TC_THREADS == 256, "the warps' layout is 2 × 4 shares of 32×32");
template <typename T> __device__ void matmul_tiled_mma(const T* a, const T* b, T* out, const MatMulParams& p) {
  __shared__ __align__(16) u8 smem[sizeof(TcTiles<T, true>)];
  const MatrixOffsets o = matrix_offsets(p, blockIdx.z);
  if (p.K % 8 == 0 && (((u64)(a + o.a) | (u64)(b + o.b)) & 15) == 0) {
    matmul_tc<T, true>(a, b, out, p, smem);
  } else {
    matmul_tc<T, false>(a, b, out, p, smem);
  }
}

#define TILED_MMA_KERNEL(SHORT, T)                                                                       \
  extern "C" __global__ void matmul_##SHORT##_tiled_mma(const T* a, const T* b, T* out, const MatMulParams p, \
                                                        Status* status) {                                \
    grid_dependency_wait();                                                                              \
    matmul_tiled_mma(a, b, out, p);                                                                      \
  }

// ---- compiled one at a time ------------------------------------------------

// The kernels are compiled one at a time, each for one dtype, when a
// dispatch first needs it (a variant: cuda/variants.go): the tensor-core
// kernels of float16 and bfloat16 take most of a minute of NVRTC together,
// and a decode step needs two to four of them. A variant's program defines
// LOOM_MATMUL_KERNEL (GEMV_KERNEL, GATED_GEMV_KERNEL, NORM_GEMV_KERNEL,
// NORM_GATED_KERNEL or TILED_KERNEL),
// LOOM_MATMUL_DTYPE (the kernel names' dtype, such as bf16) and, where the
// dtype has tensor-core kernels, LOOM_MATMUL_MMA_KERNEL (the kernel's:
// GEMV_MMA_KERNEL, GATED_MMA_KERNEL, NORM_GEMV_MMA_KERNEL,
// NORM_GATED_MMA_KERNEL or TILED_MMA_KERNEL), and holds that
// kernel and its tensor-core variant; without them the file holds no
// kernel. (MATMUL_VARIANT expands the macros before the kernel's macro
// pastes them into its name.)
#define MATMUL_VARIANT(KERNEL, SHORT, T) KERNEL(SHORT, T)
#ifdef LOOM_MATMUL_KERNEL
MATMUL_VARIANT(LOOM_MATMUL_KERNEL, LOOM_MATMUL_DTYPE, LOOM_T(LOOM_MATMUL_DTYPE))
#endif
#ifdef LOOM_MATMUL_MMA_KERNEL
MATMUL_VARIANT(LOOM_MATMUL_MMA_KERNEL, LOOM_MATMUL_DTYPE, LOOM_T(LOOM_MATMUL_DTYPE))
#endif

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

// Vec<T> loads 16 bytes of T at once as floats.
template <typename T> struct Vec;
template <> struct Vec<float> {
  static constexpr int n = 4;
  static __device__ __forceinline__ void load(const float* p, float* v) {
    float4 x = *(const float4*)p;
    v[0] = x.x; v[1] = x.y; v[2] = x.z; v[3] = x.w;
  }
};
template <typename H> struct Vec16 {
  static constexpr int n = 8;
  static __device__ __forceinline__ void load(const H* p, float* v) {
    uint4 x = *(const uint4*)p;
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

// gemv_rows: B stored N×K (TransposeB). Warp w of the block computes output
// n = LOOM_GEMV_ROWS·blockIdx.x + w, a dot product of two contiguous rows: the lanes
// stride over K with 16-byte loads where the rows are 16-byte aligned, so
// the weights stream through once, coalesced.
template <typename T>
__device__ void gemv_rows(const T* a, const T* b, T* out, const MatMulParams& p, const MatrixOffsets& o) {
  static_assert(LOOM_GEMV_THREADS == 32 * LOOM_GEMV_ROWS, "a warp per output");
  const u32 warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const u32 n = blockIdx.x * LOOM_GEMV_ROWS + warp;
  if (n >= p.N) return;
  const T* x = a + o.a;
  const T* w = b + o.b + (u64)n * p.K;
  float acc = 0;
  const u32 V = Vec<T>::n;
  u32 tail = 0;  // the elements from here on are summed one at a time
  if ((((u64)x | (u64)w) & 15) == 0) {
    float xv[V], wv[V];
    // Unrolled so that a lane can have several loads in flight: on an H100
    // a float16 GEMV of 4096×4096 went from 56–58 to 36 µs an Eval, 11008 ×
    // 4096 from 88 to 62 µs; float32 and bfloat16 stayed as they were.
#pragma unroll 4
    for (u32 k = lane * V; k + V <= p.K; k += 32 * V) {
      Vec<T>::load(x + k, xv);
      Vec<T>::load(w + k, wv);
      for (u32 j = 0; j < V; j++) acc += xv[j] * wv[j];
    }
    tail = p.K - p.K % V;
  }
  for (u32 k = tail + lane; k < p.K; k += 32) acc += load_f(x, k) * load_f(w, k);
  acc = warp_sum(acc);
  if (lane == 0) store_f(out, o.out + n, acc);
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
    MatrixOffsets o = matrix_offsets(p, blockIdx.z);                                                    \
    if (p.TransposeB) {                                                                                 \
      gemv_rows(a, b, out, p, o);                                                                       \
    } else {                                                                                            \
      gemv_cols(a, b, out, p, o);                                                                       \
    }                                                                                                   \
  }
LOOM_FLOATS(GEMV_KERNEL)

// matmul_silu_mul (MatMulSiLUMul): x [M, K], w [2N, K], the gate rows then
// the up rows. Warp w of block (bx, m) computes out[m, j] for
// j = LOOM_GEMV_ROWS·bx + w: its two dot products, with w's rows j and
// N + j, summed as gemv_rows sums one, each rounded to T as the matmul's
// output is, then silu_mul's product.
template <typename T>
__device__ void gated_gemv_rows(const T* x, const T* w, T* out, const MatMulSiLUMulParams& p) {
  const u32 warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const u32 j = blockIdx.x * LOOM_GEMV_ROWS + warp, m = blockIdx.y;
  if (j >= p.N || m >= p.M) return;
  x += (u64)m * p.K;
  const T* g = w + (u64)j * p.K;
  const T* u = w + (u64)(p.N + j) * p.K;
  float gs = 0, us = 0;
  const u32 V = Vec<T>::n;
  u32 tail = 0;  // the elements from here on are summed one at a time
  if ((((u64)x | (u64)g | (u64)u) & 15) == 0) {
    float xv[V], gv[V], uv[V];
#pragma unroll 4
    for (u32 k = lane * V; k + V <= p.K; k += 32 * V) {
      Vec<T>::load(x + k, xv);
      Vec<T>::load(g + k, gv);
      Vec<T>::load(u + k, uv);
      for (u32 i = 0; i < V; i++) {
        gs += xv[i] * gv[i];
        us += xv[i] * uv[i];
      }
    }
    tail = p.K - p.K % V;
  }
  for (u32 k = tail + lane; k < p.K; k += 32) {
    const float xk = load_f(x, k);
    gs += xk * load_f(g, k);
    us += xk * load_f(u, k);
  }
  gs = Num<T>::load(Num<T>::store(warp_sum(gs)));
  us = Num<T>::load(Num<T>::store(warp_sum(us)));
  if (lane == 0) store_f(out, (u64)m * p.N + j, un_silu(gs) * us);
}

#define GATED_GEMV_KERNEL(SHORT, T)                                                                       \
  extern "C" __global__ void matmul_silu_mul_##SHORT(const T* x, const T* w, T* out,                      \
                                                     const MatMulSiLUMulParams p, Status* status) {       \
    gated_gemv_rows(x, w, out, p);                                                                        \
  }
LOOM_FLOATS(GATED_GEMV_KERNEL)

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
    matmul_tiled(a, b, out, p);                                                                          \
  }
LOOM_FLOATS(TILED_KERNEL)

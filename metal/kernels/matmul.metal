// Matrix products out[b] = op(A[b]) · op(B[b]) over MatMulParams: A is
// M×K (stored K×M when TransposeA), B is K×N (stored N×K when TransposeB),
// out is M×N, all row-major; batch b of the Batch output matrices decomposes
// over BatchShape[:BatchRank], and BatchStrideA/B are the inputs' strides in
// matrices along it (0 where broadcast).

// matmul_offsets returns the element offsets of batch b's A and B.
inline ulong2 matmul_offsets(constant MatMulParams& p, uint b) {
  ulong oa = 0, ob = 0;
  for (int d = int(p.BatchRank) - 1; d >= 0; d--) {
    uint n = p.BatchShape[d];
    uint idx = b % n;
    b /= n;
    oa += ulong(idx) * p.BatchStrideA[d];
    ob += ulong(idx) * p.BatchStrideB[d];
  }
  return ulong2(oa * p.M * p.K, ob * p.K * p.N);
}

// Both kernels below compute every output element the same way: the
// products of its row of A and column of B, converted to float, summed by
// 8×8 SIMD-group matrix products (float32) over K in order, 8 values of K
// at a time, from zero, the last 8 zero-padded past K, one product per 8
// values (none for padding alone). So a row's result does not depend on M,
// the batch it is computed in, or the kernel that computes it (batch
// invariance), as far as the SIMD-group products themselves compute a row
// of their result the same way wherever it sits in the matrix.

// The tiled kernel: a threadgroup of 4 SIMD groups computes a 32×32 tile
// of out; each SIMD group a 16×16 quarter as 2×2 SIMD-group matrices of
// 8×8, accumulating over K in steps of 16 staged in threadgroup memory
// (converted to float on the way in, zero outside the matrices). The
// threads stage along the stored rows of each input (along K for A, and
// for B stored N×K, the weights' layout), so neighbouring lanes read
// neighbouring elements. The lowering counts grids and groups in the same
// numbers (primitives.CConstants), which this layout fixes.
static_assert(LOOM_MATMUL_TILE == 32 && LOOM_MATMUL_THREADS == 128, "the tile's layout is four SIMD groups of 16×16 quarters");
constant constexpr uint MM_TILE = LOOM_MATMUL_TILE;
constant constexpr uint MM_K = 16;

template <typename T>
[[kernel]] void matmul_tiled(
    device const T* a [[buffer(0)]],
    device const T* b [[buffer(1)]],
    device T* out [[buffer(2)]],
    constant MatMulParams& p [[buffer(3)]],
    uint3 group [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]]) {
  LOOM_SHARED float as[MM_TILE * MM_K];    // [32 rows of A][16 k]
  LOOM_SHARED float bs[MM_K * MM_TILE];    // [16 k][32 columns of B]
  LOOM_SHARED float cs[MM_TILE * MM_TILE]; // the finished tile
  uint row0 = group.y * MM_TILE, col0 = group.x * MM_TILE;
  ulong2 off = matmul_offsets(p, group.z);
  device const T* A = a + off.x;
  device const T* B = b + off.y;

  simdgroup_float8x8 acc[2][2];
  for (uint i = 0; i < 2; i++) {
    for (uint j = 0; j < 2; j++) {
      acc[i][j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
    }
  }
  uint sr = (sg / 2) * 16, sc = (sg % 2) * 16; // this SIMD group's quarter
  for (uint k0 = 0; k0 < p.K; k0 += MM_K) {
    // The threads stage 512 elements of each of A and B.
    for (uint e = tid; e < MM_TILE * MM_K; e += LOOM_MATMUL_THREADS) {
      uint r = p.TransposeA != 0 ? e % MM_TILE : e / MM_K;
      uint k = p.TransposeA != 0 ? e / MM_TILE : e % MM_K;
      uint m = row0 + r, kk = k0 + k;
      float v = 0.0f;
      if (m < p.M && kk < p.K) {
        v = float(p.TransposeA != 0 ? A[ulong(kk) * p.M + m] : A[ulong(m) * p.K + kk]);
      }
      as[r * MM_K + k] = v;
      uint c = p.TransposeB != 0 ? e / MM_K : e % MM_TILE;
      uint kb = p.TransposeB != 0 ? e % MM_K : e / MM_TILE;
      uint n = col0 + c, kkb = k0 + kb;
      float w = 0.0f;
      if (n < p.N && kkb < p.K) {
        w = float(p.TransposeB != 0 ? B[ulong(n) * p.K + kkb] : B[ulong(kkb) * p.N + n]);
      }
      bs[kb * MM_TILE + c] = w;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (uint kk = 0; kk < MM_K && k0 + kk < p.K; kk += 8) {
      simdgroup_float8x8 am[2], bm[2];
      for (uint i = 0; i < 2; i++) {
        simdgroup_load(am[i], &as[(sr + 8 * i) * MM_K + kk], MM_K);
        simdgroup_load(bm[i], &bs[kk * MM_TILE + sc + 8 * i], MM_TILE);
      }
      for (uint i = 0; i < 2; i++) {
        for (uint j = 0; j < 2; j++) {
          simdgroup_multiply_accumulate(acc[i][j], am[i], bm[j], acc[i][j]);
        }
      }
    }
    // Everyone is done with this step's tiles before they are overwritten.
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  for (uint i = 0; i < 2; i++) {
    for (uint j = 0; j < 2; j++) {
      simdgroup_store(acc[i][j], &cs[(sr + 8 * i) * MM_TILE + sc + 8 * j], MM_TILE);
    }
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  device T* O = out + ulong(group.z) * p.M * p.N;
  for (uint e = tid; e < MM_TILE * MM_TILE; e += LOOM_MATMUL_THREADS) {
    uint m = row0 + e / MM_TILE, n = col0 + e % MM_TILE;
    if (m < p.M && n < p.N) {
      O[ulong(m) * p.N + n] = T(cs[e]);
    }
  }
}

LOOM_KERNEL("matmul_f32_tiled", matmul_tiled, float)
LOOM_KERNEL("matmul_f16_tiled", matmul_tiled, half)
LOOM_KERNEL("matmul_bf16_tiled", matmul_tiled, bfloat)

// The GEMV kernel, for one row and the small-M path (the lowering gives it
// up to Caps.GEMVMaxRows rows, primitives.MatMulSIMDGroupRows on Metal):
// threadgroup (gx, 0, b) computes columns [8gx, 8gx + 8) of out for all
// the rows, in passes of 64, SIMD group sg rows [8sg, 8sg + 8) of the pass
// as one 8×8 SIMD-group matrix. Each step stages 32 values of K: the 8
// rows of B (columns of out; contiguous when B is stored N×K) once for all
// the rows of the pass, so that each byte of the weights is read once per
// pass, and the pass's rows of A (of x). The products are matmul_tiled's,
// so each row's result is the same whatever M and whichever kernel.
static_assert(LOOM_GEMV_THREADS == 256 && LOOM_GEMV_ROWS == 8, "the small-M layout is 8 SIMD groups of 8 rows by 8 columns");
constant constexpr uint SM_COLS = LOOM_GEMV_ROWS;
constant constexpr uint SM_ROWS = LOOM_GEMV_THREADS / 32 * 8;
constant constexpr uint SM_K = 32;

// gemv_columns computes columns [n0, n0 + 8) of O (M×N) = A·B, the GEMV
// kernel's threadgroup, with its staging xs and ws: A is M×K (K×M with
// trans_a) in device or threadgroup memory (AP), B K×N (N×K with trans_b).
template <typename T, typename AP>
inline void gemv_columns(AP A, device const T* B, device T* O, uint M, uint N, uint K, bool trans_a, bool trans_b, uint n0,
                         uint tid, uint sg, uint lane, threadgroup float* xs, threadgroup float* ws) {
  for (uint m0 = 0; m0 < M; m0 += SM_ROWS) {
    uint tiles = min((M - m0 + 7) / 8, SM_ROWS / 8); // row tiles in this pass
    simdgroup_float8x8 acc = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
    for (uint k0 = 0; k0 < K; k0 += SM_K) {
      // B: one element per thread, lanes along the stored rows.
      {
        uint c = trans_b ? tid / SM_K : tid % SM_COLS;
        uint k = trans_b ? tid % SM_K : tid / SM_COLS;
        uint n = n0 + c, kk = k0 + k;
        float w = 0.0f;
        if (n < N && kk < K) {
          w = float(trans_b ? B[ulong(n) * K + kk] : B[ulong(kk) * N + n]);
        }
        ws[c * SM_K + k] = w;
      }
      for (uint e = tid; e < tiles * 8 * SM_K; e += LOOM_GEMV_THREADS) {
        uint r = e / SM_K, k = e % SM_K;
        uint m = m0 + r, kk = k0 + k;
        float v = 0.0f;
        if (m < M && kk < K) {
          v = float(trans_a ? A[ulong(kk) * M + m] : A[ulong(m) * K + kk]);
        }
        xs[e] = v;
      }
      threadgroup_barrier(mem_flags::mem_threadgroup);
      if (sg < tiles) {
        for (uint kk = 0; kk < SM_K && k0 + kk < K; kk += 8) {
          simdgroup_float8x8 xm, wm;
          simdgroup_load(xm, &xs[sg * 8 * SM_K + kk], SM_K);
          // ws holds B's 8 columns as rows: loaded transposed, it is B's
          // 8×8 block (k by n).
          simdgroup_load(wm, &ws[kk], SM_K, ulong2(0), true);
          simdgroup_multiply_accumulate(acc, xm, wm, acc);
        }
      }
      // Everyone is done with this step's tiles before they are overwritten.
      threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    if (sg < tiles) {
      // The SIMD group's own 64 floats of xs (unused until the next pass).
      simdgroup_store(acc, &xs[sg * 64], 8);
      simdgroup_barrier(mem_flags::mem_threadgroup);
      for (uint e = lane; e < 64; e += 32) {
        uint m = m0 + sg * 8 + e / 8, n = n0 + e % 8;
        if (m < M && n < N) {
          O[ulong(m) * N + n] = T(xs[sg * 64 + e]);
        }
      }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
}

template <typename T>
[[kernel]] void matmul_gemv(
    device const T* a [[buffer(0)]],
    device const T* b [[buffer(1)]],
    device T* out [[buffer(2)]],
    constant MatMulParams& p [[buffer(3)]],
    uint3 group [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]) {
  LOOM_SHARED float xs[SM_ROWS * SM_K]; // [64 rows of A][32 k]
  LOOM_SHARED float ws[SM_COLS * SM_K]; // [8 columns of out][32 k]
  ulong2 off = matmul_offsets(p, group.z);
  gemv_columns(a + off.x, b + off.y, out + ulong(group.z) * p.M * p.N, p.M, p.N, p.K, p.TransposeA != 0, p.TransposeB != 0,
               group.x * SM_COLS, tid, sg, lane, xs, ws);
}

LOOM_KERNEL("matmul_f32_gemv", matmul_gemv, float)
LOOM_KERNEL("matmul_f16_gemv", matmul_gemv, half)
LOOM_KERNEL("matmul_bf16_gemv", matmul_gemv, bfloat)

// The gated GEMV (MatMulSiLUMul): x [M, K], w [2N, K], the gate rows then
// the up rows. SIMD group sg of threadgroup (gx, m) computes out[m, j] for
// j = gx·simdgroups + sg: its two dot products, lanes striding over K and
// summed with simd_sum (not matmul_gemv's order, so the fused result can
// differ from the matmul and silu_mul's in the last bits), each rounded to
// T as the matmul's output is, then silu_mul's product.
// gated_output computes out[j] of the gated GEMV of the row X (device or
// threadgroup memory, XP) by the SIMD group: the gate and up sums, lanes
// striding over K, each rounded to T, then silu_mul's product.
template <typename T, typename XP>
inline void gated_output(XP X, device const T* w, device T* out, uint N, uint K, uint j, uint lane, uint width) {
  device const T* G = w + ulong(j) * K;
  device const T* U = w + ulong(N + j) * K;
  float g = 0.0f, u = 0.0f;
  for (uint k = lane; k < K; k += width) {
    float xk = float(X[k]);
    g += xk * float(G[k]);
    u += xk * float(U[k]);
  }
  g = float(T(simd_sum(g)));
  u = float(T(simd_sum(u)));
  if (lane == 0) {
    out[j] = T(OpSiLU()(g) * u);
  }
}

template <typename T>
[[kernel]] void matmul_silu_mul(
    device const T* x [[buffer(0)]],
    device const T* w [[buffer(1)]],
    device T* out [[buffer(2)]],
    constant MatMulSiLUMulParams& p [[buffer(3)]],
    uint3 group [[threadgroup_position_in_grid]],
    uint sg [[simdgroup_index_in_threadgroup]],
    uint sgs [[simdgroups_per_threadgroup]],
    uint lane [[thread_index_in_simdgroup]],
    uint width [[threads_per_simdgroup]]) {
  uint j = group.x * sgs + sg, m = group.y;
  if (j >= p.N || m >= p.M) {
    return;
  }
  gated_output(x + ulong(m) * p.K, w, out + ulong(m) * p.N, p.N, p.K, j, lane, width);
}

LOOM_FLOAT_KERNELS("matmul_silu_mul", matmul_silu_mul)

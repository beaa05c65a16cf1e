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

// The tiled kernel: a threadgroup of 4 SIMD groups computes a 32×32 tile
// of out; each SIMD group a 16×16 quarter as 2×2 SIMD-group matrices of
// 8×8, accumulating in float over K in steps of 16 staged in threadgroup
// memory (converted to float on the way in, zero outside the matrices).
// The lowering counts grids and groups in the same numbers
// (primitives.CConstants), which this layout fixes.
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
      uint r = e / MM_K, k = e % MM_K;
      uint m = row0 + r, kk = k0 + k;
      float v = 0.0f;
      if (m < p.M && kk < p.K) {
        v = float(p.TransposeA != 0 ? A[ulong(kk) * p.M + m] : A[ulong(m) * p.K + kk]);
      }
      as[r * MM_K + k] = v;
      uint kb = e / MM_TILE, c = e % MM_TILE;
      uint n = col0 + c, kkb = k0 + kb;
      float w = 0.0f;
      if (n < p.N && kkb < p.K) {
        w = float(p.TransposeB != 0 ? B[ulong(n) * p.K + kkb] : B[ulong(kkb) * p.N + n]);
      }
      bs[kb * MM_TILE + c] = w;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (uint kk = 0; kk < MM_K; kk += 8) {
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

// The GEMV kernel (decode, M = 1): each SIMD group of the threadgroup
// computes one output column as a dot product over K, its 32 lanes striding
// over K (contiguous reads when B is stored N×K, the weights' usual
// layout), summed with simd_sum.
template <typename T>
[[kernel]] void matmul_gemv(
    device const T* a [[buffer(0)]],
    device const T* b [[buffer(1)]],
    device T* out [[buffer(2)]],
    constant MatMulParams& p [[buffer(3)]],
    uint3 group [[threadgroup_position_in_grid]],
    uint sg [[simdgroup_index_in_threadgroup]],
    uint sgs [[simdgroups_per_threadgroup]],
    uint lane [[thread_index_in_simdgroup]],
    uint width [[threads_per_simdgroup]]) {
  uint n = group.x * sgs + sg;
  if (n >= p.N) {
    return;
  }
  ulong2 off = matmul_offsets(p, group.z);
  device const T* A = a + off.x;
  device const T* B = b + off.y;
  float acc = 0.0f;
  for (uint k = lane; k < p.K; k += width) {
    float x = float(A[k]); // M = 1: row 0 (TransposeA reads the same K elements)
    float w = float(p.TransposeB != 0 ? B[ulong(n) * p.K + k] : B[ulong(k) * p.N + n]);
    acc += x * w;
  }
  acc = simd_sum(acc);
  if (lane == 0) {
    out[ulong(group.z) * p.N + n] = T(acc);
  }
}

LOOM_KERNEL("matmul_f32_gemv", matmul_gemv, float)
LOOM_KERNEL("matmul_f16_gemv", matmul_gemv, half)
LOOM_KERNEL("matmul_bf16_gemv", matmul_gemv, bfloat)

// The gated GEMV (MatMulSiLUMul): x [M, K], w [2N, K], the gate rows then
// the up rows. SIMD group sg of threadgroup (gx, m) computes out[m, j] for
// j = gx·simdgroups + sg: its two dot products as matmul_gemv sums one
// (lanes striding over K, simd_sum), each rounded to T as the matmul's
// output is, then silu_mul's product.
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
  device const T* X = x + ulong(m) * p.K;
  device const T* G = w + ulong(j) * p.K;
  device const T* U = w + ulong(p.N + j) * p.K;
  float g = 0.0f, u = 0.0f;
  for (uint k = lane; k < p.K; k += width) {
    float xk = float(X[k]);
    g += xk * float(G[k]);
    u += xk * float(U[k]);
  }
  g = float(T(simd_sum(g)));
  u = float(T(simd_sum(u)));
  if (lane == 0) {
    out[ulong(m) * p.N + j] = T(OpSiLU()(g) * u);
  }
}

LOOM_FLOAT_KERNELS("matmul_silu_mul", matmul_silu_mul)

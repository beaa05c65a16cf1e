// The quantized kernels (primitives/quantized.go, docs/QUANT.md): packed
// weights w [N, K·BITS/32] of uint32 words, each row's codes a
// little-endian bit stream (code i of a word in bits [i·BITS, i·BITS+BITS)),
// and a scale and a bias of T per group of GroupSize elements of a row.

// qdot_lane is lane's share of x[m]·dequant(w[n]): its lanes stride over
// the row's words four at a time (a row is a whole number of such chunks,
// as K is a multiple of 32, and every chunk lies in one group), each
// chunk's codes dequantised in registers as scale·Σ q·x + bias·Σ x, in
// float32; simd_sum adds the lanes' shares. The CUDA kernel sums in the
// same order.
template <typename T, int BITS>
inline float qdot_lane(device const T* x, device const uint* w, device const T* scales, device const T* biases,
                       constant QuantParams& p, uint n, uint m, uint lane, uint width) {
  const uint PER = 32 / BITS, MASK = (1u << BITS) - 1u;
  uint words = p.K / PER, groups = p.K / p.GroupSize;
  device const uint* wr = w + ulong(n) * words;
  float acc = 0.0f;
  for (uint c = lane; c < words / 4; c += width) {
    uint ws[4] = {wr[4 * c], wr[4 * c + 1], wr[4 * c + 2], wr[4 * c + 3]};
    uint k0 = c * 4 * PER;
    ulong g = ulong(n) * groups + k0 / p.GroupSize;
    float s = float(scales[g]), b = float(biases[g]);
    device const T* xr = x + ulong(m) * p.K + k0;
    float qx = 0.0f, xs = 0.0f;
    for (uint i = 0; i < 4 * PER; i++) {
      float xv = float(xr[i]);
      qx += float((ws[i / PER] >> (BITS * (i % PER))) & MASK) * xv;
      xs += xv;
    }
    acc += s * qx + b * xs;
  }
  return acc;
}

// qmatmul: out[m, n] = Σ_k x[m, k]·(scale·q + bias). SIMD group sg of the
// threadgroup computes output n = group.x·simdgroups + sg for the
// LOOM_QUANT_X_ROWS rows of x from LOOM_QUANT_X_ROWS·group.y (qdot_lane).
template <typename T, int BITS>
[[kernel]] void qmatmul(
    device const T* x [[buffer(0)]],
    device const uint* w [[buffer(1)]],
    device const T* scales [[buffer(2)]],
    device const T* biases [[buffer(3)]],
    device T* out [[buffer(4)]],
    constant QuantParams& p [[buffer(5)]],
    uint3 group [[threadgroup_position_in_grid]],
    uint sg [[simdgroup_index_in_threadgroup]],
    uint sgs [[simdgroups_per_threadgroup]],
    uint lane [[thread_index_in_simdgroup]],
    uint width [[threads_per_simdgroup]]) {
  uint n = group.x * sgs + sg, m0 = group.y * LOOM_QUANT_X_ROWS;
  if (n >= p.N || m0 >= p.M) {
    return;
  }
  uint rows = min(uint(LOOM_QUANT_X_ROWS), p.M - m0);
  for (uint r = 0; r < rows; r++) {
    float sum = simd_sum(qdot_lane<T, BITS>(x, w, scales, biases, p, n, m0 + r, lane, width));
    if (lane == 0) {
      out[ulong(m0 + r) * p.N + n] = T(sum);
    }
  }
}

// qmatmul_silu_mul (QuantizedMatMulSiLUMul): x [M, K] by the stacked gate
// and up weights [2N, K·BITS/32]. SIMD group sg of threadgroup (gx, m)
// computes out[m, j] for j = gx·simdgroups + sg: its gate and up sums as
// qmatmul sums them, each rounded to T as the matmul's output is, then
// silu_mul's product.
template <typename T, int BITS>
[[kernel]] void qmatmul_silu_mul(
    device const T* x [[buffer(0)]],
    device const uint* w [[buffer(1)]],
    device const T* scales [[buffer(2)]],
    device const T* biases [[buffer(3)]],
    device T* out [[buffer(4)]],
    constant QuantParams& p [[buffer(5)]],
    uint3 group [[threadgroup_position_in_grid]],
    uint sg [[simdgroup_index_in_threadgroup]],
    uint sgs [[simdgroups_per_threadgroup]],
    uint lane [[thread_index_in_simdgroup]],
    uint width [[threads_per_simdgroup]]) {
  uint j = group.x * sgs + sg, m = group.y;
  if (j >= p.N || m >= p.M) {
    return;
  }
  float g = float(T(simd_sum(qdot_lane<T, BITS>(x, w, scales, biases, p, j, m, lane, width))));
  float u = float(T(simd_sum(qdot_lane<T, BITS>(x, w, scales, biases, p, p.N + j, m, lane, width))));
  if (lane == 0) {
    out[ulong(m) * p.N + j] = T(OpSiLU()(g) * u);
  }
}

// dequantize: one thread per word of the N rows, writing its PER elements
// scale·q + bias (rows are whole words and whole groups, so flat indices
// line up).
template <typename T, int BITS>
[[kernel]] void dequantize(
    device const uint* w [[buffer(0)]],
    device const T* scales [[buffer(1)]],
    device const T* biases [[buffer(2)]],
    device T* out [[buffer(3)]],
    constant QuantParams& p [[buffer(4)]],
    uint gid [[thread_position_in_grid]]) {
  const uint PER = 32 / BITS, MASK = (1u << BITS) - 1u;
  if (ulong(gid) >= ulong(p.N) * (p.K / PER)) {
    return;
  }
  uint word = w[gid];
  ulong e0 = ulong(gid) * PER;
  ulong g = e0 / p.GroupSize;
  float s = float(scales[g]), b = float(biases[g]);
  for (uint i = 0; i < PER; i++) {
    out[e0 + i] = T(s * float((word >> (BITS * i)) & MASK) + b);
  }
}

#define LOOM_QUANT_KERNELS(SHORT, T) \
  LOOM_KERNEL("qmatmul_" SHORT "_q4", qmatmul, T, 4) \
  LOOM_KERNEL("qmatmul_" SHORT "_q8", qmatmul, T, 8) \
  LOOM_KERNEL("qmatmul_silu_mul_" SHORT "_q4", qmatmul_silu_mul, T, 4) \
  LOOM_KERNEL("qmatmul_silu_mul_" SHORT "_q8", qmatmul_silu_mul, T, 8) \
  LOOM_KERNEL("dequantize_" SHORT "_q4", dequantize, T, 4) \
  LOOM_KERNEL("dequantize_" SHORT "_q8", dequantize, T, 8)
LOOM_QUANT_KERNELS("f32", float)
LOOM_QUANT_KERNELS("f16", half)
LOOM_QUANT_KERNELS("bf16", bfloat)

// The quantized kernels (primitives/quantized.go, docs/QUANT.md): packed
// weights w [N, K·BITS/32] of uint32 words, each row's codes a
// little-endian bit stream (code i of a word in bits [i·BITS, i·BITS+BITS)),
// and a scale and a bias of T per group of GroupSize elements of a row.

// qmatmul: out[m, n] = Σ_k x[m, k]·(scale·q + bias). Warp w of the block
// computes output n = LOOM_GEMV_ROWS·blockIdx.x + w for the
// LOOM_QUANT_X_ROWS rows of x from LOOM_QUANT_X_ROWS·blockIdx.y: its lanes
// stride over the row's words 16 bytes at a time (coalesced; a row is a
// whole number of 16-byte chunks, as K is a multiple of 32, and every
// chunk lies in one group; one load a chunk where the buffer is 16-byte
// aligned), each chunk's codes dequantised in registers
// once for all the rows, as scale·Σ q·x + bias·Σ x, in float32.
template <typename T, int BITS>
__device__ void qmatmul(const T* x, const u32* w, const T* scales, const T* biases, T* out, const QuantParams& p) {
  static_assert(LOOM_GEMV_THREADS == 32 * LOOM_GEMV_ROWS, "a warp per output");
  constexpr u32 PER = 32 / BITS, MASK = (1u << BITS) - 1u, R = LOOM_QUANT_X_ROWS;
  const u32 warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const u32 n = blockIdx.x * LOOM_GEMV_ROWS + warp, m0 = blockIdx.y * R;
  if (n >= p.N || m0 >= p.M) return;
  const u32 words = p.K / PER, groups = p.K / p.GroupSize, rows = min(R, p.M - m0);
  const u32* wr = w + (u64)n * words;
  // Rows are whole 16-byte chunks, so one check of the buffer's address
  // tells whether every chunk can be one load (a weight bound at an
  // offset might not).
  const bool vec = ((u64)w & 15) == 0;
  float acc[R] = {};
  for (u32 c = lane; c < words / 4; c += 32) {
    u32 ws[4];
    if (vec) {
      const uint4 v = ((const uint4*)wr)[c];
      ws[0] = v.x, ws[1] = v.y, ws[2] = v.z, ws[3] = v.w;
    } else {
      for (u32 i = 0; i < 4; i++) ws[i] = wr[4 * c + i];
    }
    const u32 k0 = c * 4 * PER;
    const u64 g = (u64)n * groups + k0 / p.GroupSize;
    const float s = load_f(scales, g), b = load_f(biases, g);
#pragma unroll
    for (u32 r = 0; r < R; r++) {
      if (r < rows) {
        const T* xr = x + (u64)(m0 + r) * p.K + k0;
        float qx = 0, xs = 0;
#pragma unroll
        for (u32 i = 0; i < 4 * PER; i++) {
          const float xv = load_f(xr, i);
          qx += (float)((ws[i / PER] >> (BITS * (i % PER))) & MASK) * xv;
          xs += xv;
        }
        acc[r] += s * qx + b * xs;
      }
    }
  }
#pragma unroll
  for (u32 r = 0; r < R; r++) {
    if (r < rows) {
      const float sum = warp_sum(acc[r]);
      if (lane == 0) store_f(out, (u64)(m0 + r) * p.N + n, sum);
    }
  }
}

// dequantize: one thread per word of the N rows, writing its PER
// elements scale·q + bias.
template <typename T, int BITS>
__device__ void dequantize(const u32* w, const T* scales, const T* biases, T* out, const QuantParams& p) {
  constexpr u32 PER = 32 / BITS, MASK = (1u << BITS) - 1u;
  const u64 j = (u64)blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= (u64)p.N * (p.K / PER)) return;
  const u32 word = w[j];
  const u64 e0 = j * PER;  // rows are whole words and whole groups, so flat indices line up
  const u64 g = e0 / p.GroupSize;
  const float s = load_f(scales, g), b = load_f(biases, g);
#pragma unroll
  for (u32 i = 0; i < PER; i++) store_f(out, e0 + i, s * (float)((word >> (BITS * i)) & MASK) + b);
}

#define QUANT_KERNELS(SHORT, T, BITS)                                                                        \
  extern "C" __global__ void qmatmul_##SHORT##_q##BITS(const T* x, const u32* w, const T* scales,           \
                                                       const T* biases, T* out, const QuantParams p,         \
                                                       Status* status) {                                     \
    grid_dependency_wait();                                                                                  \
    qmatmul<T, BITS>(x, w, scales, biases, out, p);                                                          \
  }                                                                                                          \
  extern "C" __global__ void dequantize_##SHORT##_q##BITS(const u32* w, const T* scales, const T* biases,  \
                                                          T* out, const QuantParams p, Status* status) {     \
    grid_dependency_wait();                                                                                  \
    dequantize<T, BITS>(w, scales, biases, out, p);                                                          \
  }
#define QUANT_KERNELS_4_8(SHORT, T) QUANT_KERNELS(SHORT, T, 4) QUANT_KERNELS(SHORT, T, 8)
LOOM_FLOATS(QUANT_KERNELS_4_8)

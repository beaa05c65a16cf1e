// The quantized kernels (primitives/quantized.go, docs/QUANT.md): packed
// weights w [N, K·BITS/32] of uint32 words, each row's codes a
// little-endian bit stream (code i of a word in bits [i·BITS, i·BITS+BITS)),
// and a scale and a bias of T per group of GroupSize elements of a row.

// qmatmul: out[m, n] = Σ_k x[m, k]·(scale·q + bias). Warp w of the block
// computes output n = LOOM_GEMV_ROWS·blockIdx.x + w of x row blockIdx.y:
// its lanes stride over the row's words (coalesced), each word's codes
// dequantised in registers as scale·Σ q·x + bias·Σ x.
template <typename T, int BITS>
__device__ void qmatmul(const T* x, const u32* w, const T* scales, const T* biases, T* out, const QuantParams& p) {
  static_assert(LOOM_GEMV_THREADS == 32 * LOOM_GEMV_ROWS, "a warp per output");
  constexpr u32 PER = 32 / BITS, MASK = (1u << BITS) - 1u;
  const u32 warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const u32 n = blockIdx.x * LOOM_GEMV_ROWS + warp, m = blockIdx.y;
  if (n >= p.N) return;
  const u32 words = p.K / PER, groups = p.K / p.GroupSize;
  const u32* wr = w + (u64)n * words;
  const T* xr = x + (u64)m * p.K;
  float acc = 0;
  for (u32 j = lane; j < words; j += 32) {
    const u32 word = wr[j], k0 = j * PER;
    float qx = 0, xs = 0;
#pragma unroll
    for (u32 i = 0; i < PER; i++) {
      const float xv = load_f(xr, k0 + i);
      qx += (float)((word >> (BITS * i)) & MASK) * xv;
      xs += xv;
    }
    const u64 g = (u64)n * groups + k0 / p.GroupSize;
    acc += load_f(scales, g) * qx + load_f(biases, g) * xs;
  }
  acc = warp_sum(acc);
  if (lane == 0) store_f(out, (u64)m * p.N + n, acc);
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
    qmatmul<T, BITS>(x, w, scales, biases, out, p);                                                          \
  }                                                                                                          \
  extern "C" __global__ void dequantize_##SHORT##_q##BITS(const u32* w, const T* scales, const T* biases,  \
                                                          T* out, const QuantParams p, Status* status) {     \
    dequantize<T, BITS>(w, scales, biases, out, p);                                                          \
  }
#define QUANT_KERNELS_4_8(SHORT, T) QUANT_KERNELS(SHORT, T, 4) QUANT_KERNELS(SHORT, T, 8)
LOOM_FLOATS(QUANT_KERNELS_4_8)

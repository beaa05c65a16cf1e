// RMS normalisation and rotary embeddings.

// rms_norm: a block per row of D elements: the sum of squares (float32),
// then out = x · scale · weight with scale = 1 / sqrt(mean(x²) + eps).
template <typename T> __device__ void rms_norm(const T* x, const T* weight, T* out, const RMSNormParams& p) {
  __shared__ float scratch[32];
  const u64 row = (u64)blockIdx.x * p.D;
  float ss = 0;
  for (u32 k = threadIdx.x; k < p.D; k += blockDim.x) {
    float v = load_f(x, row + k);
    ss += v * v;
  }
  ss = block_sum(ss, scratch);
  const float scale = (float)(1.0 / sqrt((double)(ss / (float)p.D + p.Eps)));
  for (u32 k = threadIdx.x; k < p.D; k += blockDim.x) {
    store_f(out, row + k, load_f(x, row + k) * scale * load_f(weight, k));
  }
}

#define RMS_NORM_KERNEL(SHORT, T)                                                                       \
  extern "C" __global__ void rms_norm_##SHORT(const T* x, const T* weight, T* out,                     \
                                              const RMSNormParams p, Status* status) {                 \
    rms_norm(x, weight, out, p);                                                                        \
  }
LOOM_FLOATS(RMS_NORM_KERNEL)

// rope: a block per (token, head), a thread per pair (i, i + D/2). The angle
// pos · Theta^(−2i/D) and its sine and cosine are computed in double (float
// loses precision at long positions); the rotation is float32.
template <typename T> __device__ void rope(const T* x, const int* positions, T* out, const RoPEParams& p) {
  const u32 t = blockIdx.x / p.H, half = p.D / 2;
  const u64 base = (u64)blockIdx.x * p.D;
  const double pos = positions[t];
  for (u32 i = threadIdx.x; i < half; i += blockDim.x) {
    double s, c;
    sincos(pos * pow((double)p.Theta, -2.0 * i / p.D), &s, &c);
    const float cs = (float)c, sn = (float)s;
    const float u = load_f(x, base + i), v = load_f(x, base + i + half);
    store_f(out, base + i, u * cs - v * sn);
    store_f(out, base + i + half, v * cs + u * sn);
  }
}

#define ROPE_KERNEL(SHORT, T)                                                                           \
  extern "C" __global__ void rope_##SHORT(const T* x, const int* positions, T* out, const RoPEParams p, \
                                          Status* status) {                                             \
    rope(x, positions, out, p);                                                                         \
  }
LOOM_FLOATS(ROPE_KERNEL)

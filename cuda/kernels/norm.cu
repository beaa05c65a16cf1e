// RMS normalisation and rotary embeddings, and the fused kernels built on
// them: add_rms_norm (a residual add and the next norm) and
// qk_norm_rope_kv_write (the per-head norms of queries and keys, their
// rotation and the KV cache write).

// rms_norm: a block per row of D elements: the sum of squares (float32),
// then out = x · scale · weight.
template <typename T> __device__ void rms_norm(const T* x, const T* weight, T* out, const RMSNormParams& p) {
  __shared__ float scratch[32];
  const u64 row = (u64)blockIdx.x * p.D;
  if (p.D <= NORM_REGS * blockDim.x) {
    float v[NORM_REGS], w[NORM_REGS];
#pragma unroll
    for (int j = 0; j < NORM_REGS; j++) {
      const u32 k = threadIdx.x + j * blockDim.x;
      v[j] = k < p.D ? load_f(x, row + k) : 0.0f;
      w[j] = k < p.D ? load_f(weight, k) : 0.0f;
    }
    float ss = 0;
#pragma unroll
    for (int j = 0; j < NORM_REGS; j++) ss += v[j] * v[j];
    const float scale = rms_scale(block_sum(ss, scratch), p.D, p.Eps);
#pragma unroll
    for (int j = 0; j < NORM_REGS; j++) {
      const u32 k = threadIdx.x + j * blockDim.x;
      if (k < p.D) store_f(out, row + k, v[j] * scale * w[j]);
    }
    return;
  }
  float ss = 0;
  for (u32 k = threadIdx.x; k < p.D; k += blockDim.x) {
    float v = load_f(x, row + k);
    ss += v * v;
  }
  const float scale = rms_scale(block_sum(ss, scratch), p.D, p.Eps);
  for (u32 k = threadIdx.x; k < p.D; k += blockDim.x) {
    store_f(out, row + k, load_f(x, row + k) * scale * load_f(weight, k));
  }
}

#define RMS_NORM_KERNEL(SHORT, T)                                                                       \
  extern "C" __global__ void rms_norm_##SHORT(const T* x, const T* weight, T* out,                     \
                                              const RMSNormParams p, Status* status) {                 \
    grid_dependency_wait();                                                                            \
    rms_norm(x, weight, out, p);                                                                        \
  }
LOOM_FLOATS(RMS_NORM_KERNEL)

// add_rms_norm: rms_norm of sum = x + residual, rounded to T and stored;
// the norm reads the rounded sum, as rms_norm after add does. (Each thread
// reads back only the elements it wrote.)
template <typename T>
__device__ void add_rms_norm(const T* x, const T* residual, const T* weight, T* sum, T* out, const RMSNormParams& p) {
  __shared__ float scratch[32];
  const u64 row = (u64)blockIdx.x * p.D;
  if (p.D <= NORM_REGS * blockDim.x) {
    add_rms_norm_regs(x + row, residual + row, weight, sum + row, out + row, p.D, p.Eps, scratch);
    return;
  }
  float ss = 0;
  for (u32 k = threadIdx.x; k < p.D; k += blockDim.x) {
    const T s = Num<T>::store(load_f(x, row + k) + load_f(residual, row + k));
    sum[row + k] = s;
    const float v = Num<T>::load(s);
    ss += v * v;
  }
  const float scale = rms_scale(block_sum(ss, scratch), p.D, p.Eps);
  for (u32 k = threadIdx.x; k < p.D; k += blockDim.x) {
    store_f(out, row + k, load_f(sum, row + k) * scale * load_f(weight, k));
  }
}

#define ADD_RMS_NORM_KERNEL(SHORT, T)                                                                          \
  extern "C" __global__ void add_rms_norm_##SHORT(const T* x, const T* residual, const T* weight, T* sum, T* out, \
                                                  const RMSNormParams p, Status* status) {                    \
    grid_dependency_wait();                                                                                  \
    add_rms_norm(x, residual, weight, sum, out, p);                                                          \
  }
LOOM_FLOATS(ADD_RMS_NORM_KERNEL)

// rope_cos_sin returns the cosine and sine of the angle of pair i of a
// head of d elements at position pos, pos · theta^(−2i/d), computed in
// double (float loses precision at long positions) and rounded.
__device__ __forceinline__ void rope_cos_sin(double pos, u32 i, u32 d, float theta, float* cs, float* sn) {
  double s, c;
  sincos(pos * pow((double)theta, -2.0 * i / d), &s, &c);
  *cs = (float)c;
  *sn = (float)s;
}

// rope_scale is primitives.RoPEScaling.Scale: Llama 3.1's scaling of the
// inverse frequency f, in double.
__device__ __forceinline__ double rope_scale(double f, const RoPEParams& p) {
  const double orig = p.OriginalMaxPositions, low = p.LowFreqFactor, high = p.HighFreqFactor, w = 2.0 * 3.14159265358979323846 / f;
  if (w > orig / low) return f / p.Factor;
  if (w >= orig / high) {
    const double sm = (orig / w - low) / (high - low);
    return (1.0 - sm) * f / p.Factor + sm * f;
  }
  return f;
}

// rope: a block per (token, head), a thread per pair (i, i + D/2); the
// angle is computed as rope_cos_sin does, its frequency scaled first when
// p.Factor is set; the rotation is float32.
template <typename T> __device__ void rope(const T* x, const int* positions, T* out, const RoPEParams& p) {
  const u32 t = blockIdx.x / p.H, half = p.D / 2;
  const u64 base = (u64)blockIdx.x * p.D;
  const double pos = positions[t];
  for (u32 i = threadIdx.x; i < half; i += blockDim.x) {
    double f = pow((double)p.Theta, -2.0 * i / p.D), s, c;
    if (p.Factor != 0.0f) f = rope_scale(f, p);
    sincos(pos * f, &s, &c);
    const float cs = (float)c, sn = (float)s;
    const float u = load_f(x, base + i), v = load_f(x, base + i + half);
    store_f(out, base + i, u * cs - v * sn);
    store_f(out, base + i + half, v * cs + u * sn);
  }
}

#define ROPE_KERNEL(SHORT, T)                                                                           \
  extern "C" __global__ void rope_##SHORT(const T* x, const int* positions, T* out, const RoPEParams p, \
                                          Status* status) {                                             \
    grid_dependency_wait();                                                                             \
    rope(x, positions, out, p);                                                                         \
  }
LOOM_FLOATS(ROPE_KERNEL)

// qk_norm_rope_kv_write: a block per (head, token) of qkv's heads (the
// query heads, the key heads, the value heads), a thread per rotated pair.
// A query or key head is normalised as rms_norm does, kept in float32 (the
// unfused chain rounds it to T here), and rotated as rope does; queries go
// to q, keys and values to the token's slot of the caches, which kv_slot
// checks as kv_write does (the first key head's block reports). Values are
// copied as raw bits. A thread's first pair, its weights and its angle (in
// double, the longest chain of the kernel) are read and computed before
// kv_slot's scan and the reduction, so that they overlap the loads.
template <typename T, typename S>
__device__ void qk_norm_rope_kv_write(const T* qkv, const T* q_norm, const T* k_norm, const int* positions, T* k_cache,
                                      T* v_cache, const S* slot_mapping, T* q, const QKNormRoPEKVWriteParams& p,
                                      Status* status) {
  __shared__ float scratch[32];
  const int head = blockIdx.x, t = blockIdx.y;
  const u32 d = p.HeadSize, half = d / 2, i0 = threadIdx.x;
  const u64 src = ((u64)t * (p.Heads + 2 * p.KVHeads) + head) * d;
  T* dst = q + ((u64)t * p.Heads + head) * d;
  const T* w = head < p.Heads ? q_norm : k_norm;
  float u0 = 0, v0 = 0, wu0 = 0, wv0 = 0, cs0 = 0, sn0 = 0;
  if (head < p.Heads + p.KVHeads && i0 < half) {
    u0 = load_f(qkv, src + i0);
    v0 = load_f(qkv, src + i0 + half);
    wu0 = load_f(w, i0);
    wv0 = load_f(w, i0 + half);
    rope_cos_sin(positions[t], i0, d, p.Theta, &cs0, &sn0);
  }
  if (head >= p.Heads) {
    const i64 slot = kv_slot(slot_mapping, p.NumTokens, p.NumSlots, t, 6, head == p.Heads, status);
    if (slot < 0) return;
    const int g = head - p.Heads;
    const u64 at = (u64)slot * p.KVHeads * d;
    if (g >= p.KVHeads) {
      T* v = v_cache + at + (u64)(g - p.KVHeads) * d;
      for (u32 e = threadIdx.x; e < d; e += blockDim.x) v[e] = qkv[src + e];
      return;
    }
    dst = k_cache + at + (u64)g * d;
  }
  float ss = 0;
  for (u32 e = threadIdx.x; e < d; e += blockDim.x) {
    const float v = load_f(qkv, src + e);
    ss += v * v;
  }
  const float scale = rms_scale(block_sum(ss, scratch), d, p.Eps);
  for (u32 i = i0; i < half; i += blockDim.x) {
    float cs = cs0, sn = sn0, xu = u0, xv = v0, wu = wu0, wv = wv0;
    if (i != i0) {
      rope_cos_sin(positions[t], i, d, p.Theta, &cs, &sn);
      xu = load_f(qkv, src + i);
      xv = load_f(qkv, src + i + half);
      wu = load_f(w, i);
      wv = load_f(w, i + half);
    }
    const float u = xu * scale * wu, v = xv * scale * wv;
    store_f(dst, i, u * cs - v * sn);
    store_f(dst, i + half, v * cs + u * sn);
  }
}

#define QK_NORM_ROPE_KV_WRITE_KERNEL(SHORT, T, SS, S)                                                          \
  extern "C" __global__ void qk_norm_rope_kv_write_##SHORT##_##SS(                                              \
      const T* qkv, const T* q_norm, const T* k_norm, const int* positions, T* k_cache, T* v_cache,             \
      const S* slot_mapping, T* q, const QKNormRoPEKVWriteParams p, Status* status) {                           \
    grid_dependency_wait();                                                                                     \
    qk_norm_rope_kv_write(qkv, q_norm, k_norm, positions, k_cache, v_cache, slot_mapping, q, p, status);        \
  }
#define QK_NORM_ROPE_KV_WRITE(SHORT, T) \
  QK_NORM_ROPE_KV_WRITE_KERNEL(SHORT, T, i32, int) QK_NORM_ROPE_KV_WRITE_KERNEL(SHORT, T, i64, i64)
LOOM_FLOATS(QK_NORM_ROPE_KV_WRITE)

// layer_norm: a block per row of D elements: the mean, then the biased
// variance (both summed in double, as on the CPU), then
// out = (x − mean) · scale · weight + bias in float32.
template <typename T>
__device__ void layer_norm(const T* x, const T* weight, const T* bias, T* out, const RMSNormParams& p) {
  __shared__ double scratch[32];
  const u64 row = (u64)blockIdx.x * p.D;
  double s = 0;
  for (u32 k = threadIdx.x; k < p.D; k += blockDim.x) s += (double)load_f(x, row + k);
  const double mean = block_sum(s, scratch) / (double)p.D;
  double ss = 0;
  for (u32 k = threadIdx.x; k < p.D; k += blockDim.x) {
    const double v = (double)load_f(x, row + k) - mean;
    ss += v * v;
  }
  const float m = (float)mean, scale = (float)(1.0 / sqrt(block_sum(ss, scratch) / (double)p.D + (double)p.Eps));
  for (u32 k = threadIdx.x; k < p.D; k += blockDim.x) {
    const float z = __fmul_rn(__fmul_rn(load_f(x, row + k) - m, scale), load_f(weight, k));
    store_f(out, row + k, z + load_f(bias, k));
  }
}

#define LAYER_NORM_KERNEL(SHORT, T)                                                                     \
  extern "C" __global__ void layer_norm_##SHORT(const T* x, const T* weight, const T* bias, T* out,    \
                                                const RMSNormParams p, Status* status) {               \
    grid_dependency_wait();                                                                            \
    layer_norm(x, weight, bias, out, p);                                                                \
  }
LOOM_FLOATS(LAYER_NORM_KERNEL)

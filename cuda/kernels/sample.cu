// Sampling (primitives.Sample has the algorithm): one block per sequence.
// The row's logits become float32 in the weights scratch, then, in place,
// fixed-point weights; every sum is an integer, so the shared-memory
// atomics of the threshold search and the order of the reductions cannot
// change a result.

#define SAMPLE_MAX_THREADS 1024

// philox returns word 0 of Philox4x32-10 for counter (c, 0, 0, 0) and key
// (k0, k1).
__device__ u32 philox(u32 c, u32 k0, u32 k1) {
  u32 w[4];
  philox4x32(c, k0, k1, w);
  return w[0];
}

// block_total returns the sum of v over the block to every thread.
__device__ u64 block_total(u64 v) {
  __shared__ u64 scratch[32];
  return block_sum(v, scratch);
}

// block_first_max returns to every thread the largest v of the block and
// its smallest index k (0xffffffff: none).
__device__ void block_first_max(float& v, u32& k) {
  __shared__ float sv[32];
  __shared__ u32 sk[32];
  for (int o = 16; o > 0; o >>= 1) {
    float w = __shfl_xor_sync(0xffffffffu, v, o);
    u32 j = __shfl_xor_sync(0xffffffffu, k, o);
    if (w > v || (w == v && j < k)) v = w, k = j;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  __syncthreads();
  if (lane == 0) sv[warp] = v, sk[warp] = k;
  __syncthreads();
  v = lane < warps ? sv[lane] : -LOOM_INF;
  k = lane < warps ? sk[lane] : 0xffffffffu;
  for (int o = 16; o > 0; o >>= 1) {
    float w = __shfl_xor_sync(0xffffffffu, v, o);
    u32 j = __shfl_xor_sync(0xffffffffu, k, o);
    if (w > v || (w == v && j < k)) v = w, k = j;
  }
}

// threshold returns the largest t such that the weights q ≥ max(t, floor)
// add up to at least goal, each counting 1 (or its weight with mass): a
// radix select over the weights' bytes, most significant first, as the CPU
// kernel's threshold. Zero weights never change the answer and are
// skipped. A thread adds a run of weights that fall into the same bin with
// one atomic: the top byte of most weights is 0.
__device__ u32 threshold(const u32* q, u32 n, u64 goal, bool mass, u32 floor) {
  __shared__ u64 hist[256];
  __shared__ u32 chosen;
  __shared__ u64 chosen_above;
  u32 prefix = 0;
  u64 above = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (u32 b = threadIdx.x; b < 256; b += blockDim.x) hist[b] = 0;
    __syncthreads();
    u32 bin = 0;
    u64 run = 0;
    for (u32 i = threadIdx.x; i < n; i += blockDim.x) {
      u32 w = q[i];
      if (w == 0 || w < floor || (shift < 24 && (w >> (shift + 8)) != (prefix >> (shift + 8)))) continue;
      u32 b = (w >> shift) & 255u;
      if (b != bin && run != 0) {
        atomicAdd((unsigned long long*)&hist[bin], (unsigned long long)run);
        run = 0;
      }
      bin = b;
      run += mass ? (u64)w : 1ull;
    }
    if (run != 0) atomicAdd((unsigned long long*)&hist[bin], (unsigned long long)run);
    __syncthreads();
    if (threadIdx.x == 0) {
      int b = 255;
      u64 a = above;
      for (; b > 0 && a + hist[b] < goal; b--) a += hist[b];
      chosen = prefix | ((u32)b << shift);
      chosen_above = a;
    }
    __syncthreads();
    prefix = chosen;
    above = chosen_above;
  }
  return prefix;
}

// kept_total is the total of the weights ≥ t.
__device__ u64 kept_total(const u32* q, u32 n, u32 t) {
  u64 s = 0;
  for (u32 i = threadIdx.x; i < n; i += blockDim.x) {
    u32 w = q[i];
    if (w >= t) s += w;
  }
  return block_total(s);
}

// window_token is the token a window entry names (primitives.WindowToken):
// e ≥ 0 itself, e ≤ −2 the token −2 − e, −1 (padding) −1.
__device__ __forceinline__ int window_token(int e) { return e >= -1 ? e : -(e + 2); }

template <typename T>
__device__ void sample(const T* logits, const float* settings, const u32* keys, const int* counters, const int* window,
                       u32* weights, int* out, const SampleParams& p, Status* status) {
  const u32 s = blockIdx.x, n = p.V;
  const T* row = logits + (u64)s * n;
  u32* q = weights + (u64)s * n;
  float* x = (float*)q;
  const float* set = settings + s * 6;
  const float temp = set[0], top_p = set[1], min_p = set[2], pen = set[3];
  // A presence or frequency penalty that is not finite is off.
  const float pres = fabsf(set[4]) < LOOM_INF ? set[4] : 0.0f, freq = fabsf(set[5]) < LOOM_INF ? set[5] : 0.0f;
  const bool repeat = pen > 0.0f && pen != 1.0f, penalized = repeat || pres != 0.0f || freq != 0.0f;
  const u32 top_k = keys[s * 3 + 0];

  // 1. Logits as float32, NaN as −Inf; the penalties, one thread per window
  // entry, the first entry naming each distinct token (an entry e ≤ −2
  // names −2 − e, for the repetition penalty only). The frequency penalty
  // is one subtraction per entry e = id: no product to fuse into a
  // multiply-add.
  for (u32 i = threadIdx.x; i < n; i += blockDim.x) {
    float v = load_f(row, i);
    x[i] = v != v ? -LOOM_INF : v;
  }
  __syncthreads();
  const int* win = window + (u64)s * p.W;
  for (u32 j = threadIdx.x; j < p.W; j += blockDim.x) {
    const int id = window_token(win[j]);
    if (id >= (int)n) {
      report_bad_index(status, 4, s * p.W + j, id, n);
      continue;
    }
    if (id < 0 || !penalized) continue;
    bool seen = false;
    for (u32 k = 0; k < j; k++) seen |= window_token(win[k]) == id;
    if (seen) continue;
    float v = x[id];
    if (repeat) v = v > 0.0f ? v / pen : v * pen;
    u32 c = 0;
    for (u32 k = j; k < p.W; k++) c += win[k] == id;
    if (c > 0) {
      v -= pres;
      for (; c > 0; c--) v -= freq;
    }
    x[id] = v;
  }
  __syncthreads();

  // 2. The first maximum.
  float m = -LOOM_INF;
  u32 arg = 0xffffffffu;
  for (u32 i = threadIdx.x; i < n; i += blockDim.x) {
    float v = x[i];
    if (v > m) m = v, arg = i;
  }
  block_first_max(m, arg);
  if (arg == 0xffffffffu || !(temp > 0.0f)) {
    if (threadIdx.x == 0) out[s] = arg == 0xffffffffu ? -1 : (int)arg;
    return;
  }

  // 3. Weights, in place.
  __syncthreads();  // every thread has read x for the maximum
  for (u32 i = threadIdx.x; i < n; i += blockDim.x) {
    float v = x[i];
    u32 w = 1u << 31;
    if (v != m) {
      float e = expf((v - m) / temp);
      w = e > 0.0f ? (u32)(e * 2147483648.0f) : 0u;
    }
    q[i] = w;
  }
  __syncthreads();

  // 4. The thresholds.
  u32 tk = 0, tp = 0, tm = 0;
  if (top_k > 0 && top_k < n) tk = threshold(q, n, top_k, false, 0);
  if (top_p > 0.0f && top_p < 1.0f) {
    u64 total = kept_total(q, n, tk), pq = (u64)ceilf(top_p * 4294967296.0f);
    u64 goal = (total >> 32) * pq + (((total & 0xffffffffull) * pq + 0xffffffffull) >> 32);
    tp = threshold(q, n, goal, true, tk);
  }
  if (min_p > 0.0f) tm = (u32)ceilf(fminf(min_p, 1.0f) * 2147483648.0f);
  const u32 t = max(max(tk, tp), max(tm, 1u));

  // 5. The draw: each thread totals a contiguous share of the row, a scan
  // over the threads finds the share that holds r, and its thread walks it.
  __shared__ u64 part[SAMPLE_MAX_THREADS];
  const u32 share = (n + blockDim.x - 1) / blockDim.x, lo = min(n, threadIdx.x * share), hi = min(n, lo + share);
  u64 mine = 0;
  for (u32 i = lo; i < hi; i++) {
    u32 w = q[i];
    if (w >= t) mine += w;
  }
  part[threadIdx.x] = mine;
  __syncthreads();
  for (u32 off = 1; off < blockDim.x; off <<= 1) {
    u64 v = threadIdx.x >= off ? part[threadIdx.x - off] : 0;
    __syncthreads();
    part[threadIdx.x] += v;
    __syncthreads();
  }
  const u64 total = part[blockDim.x - 1], before = part[threadIdx.x] - mine;
  const u32 u = philox((u32)counters[s], keys[s * 3 + 1], keys[s * 3 + 2]);
  const u64 r = (total >> 32) * u + (((total & 0xffffffffull) * u) >> 32);
  if (before <= r && r < before + mine) {
    u64 run = before;
    for (u32 i = lo; i < hi; i++) {
      u32 w = q[i];
      if (w < t) continue;
      run += w;
      if (run > r) {
        out[s] = (int)i;
        break;
      }
    }
  }
}

#define SAMPLE_KERNEL(SHORT, T)                                                                          \
  extern "C" __global__ void sample_##SHORT(const T* logits, const float* settings, const u32* keys,    \
                                            const int* counters, const int* window, u32* weights,       \
                                            int* out, const SampleParams p, Status* status) {           \
    sample(logits, settings, keys, counters, window, weights, out, p, status);                         \
  }
LOOM_FLOATS(SAMPLE_KERNEL)

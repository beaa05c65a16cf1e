// Sampling (primitives.Sample has the algorithm): one block per sequence
// (LOOM_SAMPLE_WHOLE), or, for a large vocabulary, the split form: many
// blocks per sequence convert the logits and find their share's first
// maximum (LOOM_SAMPLE_FIRST), then a block per sequence takes the first of
// those maxima and does the rest (LOOM_SAMPLE_FINAL). The row's logits
// become float32 in the weights scratch, then, in place, fixed-point
// weights; every sum is an integer, so the shared-memory atomics of the
// threshold search and the order of the reductions cannot change a result.

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

// share_first_max does steps 1 and 2 of sequence s over [lo, hi): x = its
// logits as float32, NaN as −Inf; the penalties of the window's ids in
// [lo, hi), one thread per window entry, the first of each distinct id (the
// frequency penalty is one subtraction per occurrence: no product to fuse
// into a multiply-add); then the first maximum of x[lo, hi) and its index
// (0xffffffff: every value −Inf) to every thread. The maximum is taken while
// converting, and again from x only when a penalty changed it. A greedy
// draw without penalties reads nothing back, so x is not written then.
// Only a block with report set reports the window's ids ≥ V, so that each
// is reported once.
template <typename T>
__device__ void share_first_max(const T* row, float* x, const float* set, const int* win, const SampleParams& p,
                                u32 s, u32 lo, u32 hi, bool report, Status* status, float& m, u32& arg) {
  __shared__ int touched;
  const u32 n = p.V;
  const float pen = set[3];
  // A presence or frequency penalty that is not finite is off.
  const float pres = fabsf(set[4]) < LOOM_INF ? set[4] : 0.0f, freq = fabsf(set[5]) < LOOM_INF ? set[5] : 0.0f;
  const bool repeat = pen > 0.0f && pen != 1.0f, penalized = repeat || pres != 0.0f || freq != 0.0f;
  const bool keep = set[0] > 0.0f || penalized;
  if (threadIdx.x == 0) touched = 0;
  m = -LOOM_INF;
  arg = 0xffffffffu;
  // Four loads in flight per thread before any store to x (which the
  // compiler cannot move loads past).
  for (u32 base = lo + threadIdx.x; base < hi; base += 4 * blockDim.x) {
    float v[4];
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const u32 i = base + j * blockDim.x;
      v[j] = i < hi ? load_f(row, i) : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const u32 i = base + j * blockDim.x;
      if (i >= hi) break;
      const float w = v[j] != v[j] ? -LOOM_INF : v[j];
      if (keep) x[i] = w;
      if (w > m) m = w, arg = i;
    }
  }
  __syncthreads();
  for (u32 j = threadIdx.x; j < p.W; j += blockDim.x) {
    const int id = window_token(win[j]);
    if (id >= (int)n) {
      if (report) report_bad_index(status, 4, s * p.W + j, id, n);
      continue;
    }
    if (id < (int)lo || id >= (int)hi || !penalized) continue;
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
    touched = 1;
  }
  __syncthreads();
  if (touched) {
    m = -LOOM_INF;
    arg = 0xffffffffu;
    for (u32 i = lo + threadIdx.x; i < hi; i += blockDim.x) {
      const float v = x[i];
      if (v > m) m = v, arg = i;
    }
  }
  block_first_max(m, arg);
}

// sample_first is the split form's first pass for block (g, s): steps 1
// and 2 over the block's share of row s, its maximum and index written to
// candidate g of the sequence, after the S·V weights.
template <typename T>
__device__ void sample_first(const T* logits, const float* settings, const int* window, u32* weights,
                             const SampleParams& p, Status* status) {
  const u32 g = blockIdx.x, s = blockIdx.y, n = p.V, share = (n + p.Groups - 1) / p.Groups;
  const u32 lo = min(n, g * share), hi = min(n, lo + share);
  float m;
  u32 arg;
  share_first_max(logits + (u64)s * n, (float*)(weights + (u64)s * n), settings + s * 6, window + (u64)s * p.W, p, s,
                  lo, hi, g == 0, status, m, arg);
  if (threadIdx.x == 0) {
    u32* c = weights + (u64)p.S * n + ((u64)s * p.Groups + g) * 2;
    c[0] = __float_as_uint(m);
    c[1] = arg;
  }
}

template <typename T>
__device__ void sample(const T* logits, const float* settings, const u32* keys, const int* counters, const int* window,
                       u32* weights, int* out, const SampleParams& p, Status* status) {
  if (p.Pass == LOOM_SAMPLE_FIRST) {
    sample_first(logits, settings, window, weights, p, status);
    return;
  }
  const u32 s = blockIdx.x, n = p.V;
  u32* q = weights + (u64)s * n;
  float* x = (float*)q;
  const float* set = settings + s * 6;
  const float temp = set[0], top_p = set[1], min_p = set[2];
  const u32 top_k = keys[s * 3 + 0];

  // 1 and 2. x and its first maximum: here, or from the first pass, whose
  // blocks' candidates are in index order, so the first of their maxima is
  // the row's.
  float m;
  u32 arg;
  if (p.Pass == LOOM_SAMPLE_FINAL) {
    const u32* c = weights + (u64)p.S * n + (u64)s * p.Groups * 2;
    m = threadIdx.x < p.Groups ? __uint_as_float(c[2 * threadIdx.x]) : -LOOM_INF;
    arg = threadIdx.x < p.Groups ? c[2 * threadIdx.x + 1] : 0xffffffffu;
    block_first_max(m, arg);
  } else {
    share_first_max(logits + (u64)s * n, x, set, window + (u64)s * p.W, p, s, 0, n, true, status, m, arg);
  }
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

// logprob_of is the log-probability of a value x of a row with maximum m
// and log Z (primitives.Sample); NaN x reads as −Inf.
__device__ __forceinline__ float logprob_of(float x, float m, float logz) {
  if (m == -LOOM_INF) return LOOM_NAN;
  if (x == m) return -logz;
  if (x != x) return -LOOM_INF;
  return (x - m) - logz;
}

// top_logprobs writes to columns 1..Top of the row's lp_ids and lp the Top
// largest values of dist's row s (NaN as −Inf; ties by lower id) and their
// log-probabilities, and returns its maximum m and log Z to every thread.
// Each thread keeps the best Top of its strided share, sorted (walking its
// share in index order, an equal value never displaces an earlier one);
// Top rounds of a block-wide first maximum over the lists' heads merge
// them.
template <typename T>
__device__ void top_logprobs(const T* dist, int* lp_ids, float* lp, const SampleParams& p, float& m, float& logz) {
  __shared__ float zs[32];
  const u32 s = blockIdx.x, n = p.V, top = p.Top, cols = top + 1;
  const T* row = dist + (u64)s * n;
  m = -LOOM_INF;
  u32 arg = 0xffffffffu;
  for (u32 i = threadIdx.x; i < n; i += blockDim.x) {
    float v = load_f(row, i);
    if (v > m) m = v, arg = i;
  }
  block_first_max(m, arg);
  float z = 0.0f;
  for (u32 i = threadIdx.x; i < n; i += blockDim.x) {
    float v = load_f(row, i);
    if (v != v) v = -LOOM_INF;
    z += v == m ? 1.0f : expf(v - m);
  }
  logz = logf(block_sum(z, zs));

  float tv[LOOM_SAMPLE_MAX_TOP];
  u32 ti[LOOM_SAMPLE_MAX_TOP];
  u32 held = 0;
  float worst = -LOOM_INF;  // tv[top − 1] once the list is full, in a register
  for (u32 i = threadIdx.x; i < n && top > 0; i += blockDim.x) {
    float v = load_f(row, i);
    if (v != v) v = -LOOM_INF;
    if (held == top && !(v > worst)) continue;
    u32 j = held < top ? held : top - 1;
    for (; j > 0 && v > tv[j - 1]; j--) tv[j] = tv[j - 1], ti[j] = ti[j - 1];
    tv[j] = v, ti[j] = i;
    if (held < top) held++;
    if (held == top) worst = tv[top - 1];
  }
  u32 head = 0;
  for (u32 r = 0; r < top; r++) {
    float v = head < held ? tv[head] : -LOOM_INF;
    u32 k = head < held ? ti[head] : 0xffffffffu;
    block_first_max(v, k);
    if (head < held && ti[head] == k) head++;
    if (threadIdx.x == 0) {
      lp_ids[(u64)s * cols + 1 + r] = (int)k;
      lp[(u64)s * cols + 1 + r] = logprob_of(v, m, logz);
    }
  }
}

#define SAMPLE_KERNEL(SHORT, T)                                                                          \
  extern "C" __global__ void sample_##SHORT(const T* logits, const float* settings, const u32* keys,    \
                                            const int* counters, const int* window, u32* weights,       \
                                            int* out, const SampleParams p, Status* status) {           \
    grid_dependency_wait();                                                                            \
    sample(logits, settings, keys, counters, window, weights, out, p, status);                         \
  }
LOOM_FLOATS(SAMPLE_KERNEL)

// sample_logprobs draws as sample and reports the log-probs of dist: the
// top ones first, then the draw, then the drawn token's in column 0.
#define SAMPLE_LOGPROBS_KERNEL(SHORT, T)                                                                        \
  extern "C" __global__ void sample_logprobs_##SHORT(const T* logits, const float* settings, const u32* keys,  \
                                                     const int* counters, const int* window, const T* dist,     \
                                                     u32* weights, int* out, int* lp_ids, float* lp,            \
                                                     const SampleParams p, Status* status) {                    \
    grid_dependency_wait();                                                                                     \
    float m, logz;                                                                                               \
    top_logprobs(dist, lp_ids, lp, p, m, logz);                                                                 \
    sample(logits, settings, keys, counters, window, weights, out, p, status);                                 \
    __syncthreads(); /* the drawn token, written by one thread, is visible to all */                           \
    if (threadIdx.x == 0) {                                                                                      \
      const u64 at = (u64)blockIdx.x * (p.Top + 1);                                                              \
      const int tok = out[blockIdx.x];                                                                           \
      lp_ids[at] = tok;                                                                                          \
      lp[at] = tok < 0 ? LOOM_NAN : logprob_of(load_f(dist + (u64)blockIdx.x * p.V, tok), m, logz);             \
    }                                                                                                            \
  }
LOOM_FLOATS(SAMPLE_LOGPROBS_KERNEL)

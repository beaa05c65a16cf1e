// Sampling (primitives.Sample has the algorithm): one threadgroup per
// sequence. The row's logits become float32 in the weights scratch, then,
// in place, fixed-point weights; every sum is an integer, so neither the
// histogram atomics of the threshold search nor the order of a reduction
// can change a result. The first maximum combines with ArgmaxOp
// (reduce.metal).

// sample_philox returns word 0 of Philox4x32-10 for counter (c, 0, 0, 0)
// and key (k0, k1).
inline uint sample_philox(uint c, uint k0, uint k1) {
  return philox4x32(c, k0, k1).x;
}

// sample_add adds v to the 64-bit histogram bin (lo, hi) with 32-bit
// atomics: a carry out of lo goes into hi, so the bin is exact whatever the
// order of the additions.
inline void sample_add(threadgroup atomic_uint* lo, threadgroup atomic_uint* hi, ulong v) {
  uint a = uint(v), b = uint(v >> 32);
  uint old = atomic_fetch_add_explicit(lo, a, memory_order_relaxed);
  if (old + a < old) {
    b++;
  }
  if (b != 0u) {
    atomic_fetch_add_explicit(hi, b, memory_order_relaxed);
  }
}

// sample_threshold returns the largest t such that the weights q ≥ max(t,
// floor) add up to at least goal, each counting 1 (or its weight with
// mass): the CPU kernel's radix select over the weights' bytes. Zero
// weights never change the answer and are skipped; a thread adds a run of
// weights in the same bin at once.
inline uint sample_threshold(device const uint* q, uint n, ulong goal, bool mass, uint floor, threadgroup atomic_uint* lo,
                             threadgroup atomic_uint* hi, threadgroup ulong* chosen, uint tid, uint threads) {
  uint prefix = 0;
  ulong above = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (uint b = tid; b < 256; b += threads) {
      atomic_store_explicit(&lo[b], 0u, memory_order_relaxed);
      atomic_store_explicit(&hi[b], 0u, memory_order_relaxed);
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    uint bin = 0;
    ulong run = 0;
    for (uint i = tid; i < n; i += threads) {
      uint w = q[i];
      if (w == 0u || w < floor || (shift < 24 && (w >> uint(shift + 8)) != (prefix >> uint(shift + 8)))) {
        continue;
      }
      uint b = (w >> uint(shift)) & 255u;
      if (b != bin && run != 0) {
        sample_add(&lo[bin], &hi[bin], run);
        run = 0;
      }
      bin = b;
      run += mass ? ulong(w) : 1ul;
    }
    if (run != 0) {
      sample_add(&lo[bin], &hi[bin], run);
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (tid == 0) {
      int b = 255;
      ulong a = above;
      for (; b > 0; b--) {
        ulong h = ulong(atomic_load_explicit(&hi[b], memory_order_relaxed)) << 32 |
                  atomic_load_explicit(&lo[b], memory_order_relaxed);
        if (a + h >= goal) {
          break;
        }
        a += h;
      }
      chosen[0] = prefix | (uint(b) << uint(shift));
      chosen[1] = a;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    prefix = uint(chosen[0]);
    above = chosen[1];
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  return prefix;
}

// sample_kept returns the total of the weights ≥ t to every thread.
inline ulong sample_kept(device const uint* q, uint n, uint t, threadgroup ulong* sums, uint tid, uint threads) {
  ulong s = 0;
  for (uint i = tid; i < n; i += threads) {
    uint w = q[i];
    if (w >= t) {
      s += w;
    }
  }
  return threadgroup_reduce(s, sums, tid, threads, SumOp());
}

// sample_row draws sequence s's token into out[s]; the threadgroup
// arrays are the kernel's (best and sums of LOOM_MAX_THREADS, the
// histogram's 256 bins, chosen 2).
template <typename T>
inline void sample_row(device const T* logits, device const float* settings, device const uint* keys, device const int* counters,
                       device const int* window, device uint* weights, device int* out, constant SampleParams& p,
                       device atomic_uint* status, threadgroup ArgBest<float>* best, threadgroup ulong* sums,
                       threadgroup atomic_uint* hist_lo, threadgroup atomic_uint* hist_hi, threadgroup ulong* chosen, uint s,
                       uint tid, uint threads) {
  const uint n = p.V;
  device const T* row = logits + ulong(s) * n;
  device uint* q = weights + ulong(s) * n;
  device float* x = (device float*)q;
  device const float* set = settings + s * 6;
  const float temp = set[0], top_p = set[1], min_p = set[2], pen = set[3];
  // A presence or frequency penalty that is not finite is off.
  const float pres = fabs(set[4]) < INFINITY ? set[4] : 0.0f, freq = fabs(set[5]) < INFINITY ? set[5] : 0.0f;
  const bool repeat = pen > 0.0f && pen != 1.0f, penalized = repeat || pres != 0.0f || freq != 0.0f;
  const uint top_k = keys[s * 3 + 0];

  // 1. Logits as float32, NaN as −Inf; the penalties, one thread per window
  // entry, the first of each distinct id. The frequency penalty is one
  // subtraction per occurrence: no product to fuse into a multiply-add.
  for (uint i = tid; i < n; i += threads) {
    float v = float(row[i]);
    x[i] = v != v ? -INFINITY : v;
  }
  threadgroup_barrier(mem_flags::mem_device);
  device const int* win = window + ulong(s) * p.W;
  for (uint j = tid; j < p.W; j += threads) {
    int id = win[j];
    if (id >= int(n)) {
      report_bad_index(status, 4, s * p.W + j, id);
      continue;
    }
    if (id < 0 || !penalized) {
      continue;
    }
    bool seen = false;
    for (uint k = 0; k < j; k++) {
      seen = seen || win[k] == id;
    }
    if (seen) {
      continue;
    }
    float v = x[id];
    if (repeat) {
      v = v > 0.0f ? v / pen : v * pen;
    }
    v -= pres;
    for (uint k = j; k < p.W; k++) {
      if (win[k] == id) {
        v -= freq;
      }
    }
    x[id] = v;
  }
  threadgroup_barrier(mem_flags::mem_device);

  // 2. The first maximum.
  ArgBest<float> b = {-INFINITY, INT_MAX};
  for (uint i = tid; i < n; i += threads) {
    float v = x[i];
    if (v > b.v) {
      b.v = v;
      b.k = int(i);
    }
  }
  b = threadgroup_reduce(b, best, tid, threads, ArgmaxOp());
  const float m = b.v;
  if (b.k == INT_MAX || !(temp > 0.0f)) {
    if (tid == 0) {
      out[s] = b.k == INT_MAX ? -1 : b.k;
    }
    return;
  }

  // 3. Weights, in place.
  for (uint i = tid; i < n; i += threads) {
    float v = x[i];
    uint w = 1u << 31;
    if (v != m) {
      float e = exp((v - m) / temp);
      w = e > 0.0f ? uint(e * 2147483648.0f) : 0u;
    }
    q[i] = w;
  }
  threadgroup_barrier(mem_flags::mem_device);

  // 4. The thresholds.
  uint tk = 0, tp = 0, tm = 0;
  if (top_k > 0u && top_k < n) {
    tk = sample_threshold(q, n, top_k, false, 0u, hist_lo, hist_hi, chosen, tid, threads);
  }
  if (top_p > 0.0f && top_p < 1.0f) {
    ulong total = sample_kept(q, n, tk, sums, tid, threads), pq = ulong(ceil(top_p * 4294967296.0f));
    ulong goal = (total >> 32) * pq + (((total & 0xfffffffful) * pq + 0xfffffffful) >> 32);
    tp = sample_threshold(q, n, goal, true, tk, hist_lo, hist_hi, chosen, tid, threads);
  }
  if (min_p > 0.0f) {
    tm = uint(ceil(fmin(min_p, 1.0f) * 2147483648.0f));
  }
  const uint t = max(max(tk, tp), max(tm, 1u));

  // 5. The draw: each thread totals a contiguous share of the row, a scan
  // over the threads finds the share that holds r, and its thread walks it.
  const uint share = (n + threads - 1) / threads, lo = min(n, tid * share), hi = min(n, lo + share);
  ulong mine = 0;
  for (uint i = lo; i < hi; i++) {
    uint w = q[i];
    if (w >= t) {
      mine += w;
    }
  }
  sums[tid] = mine;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  for (uint off = 1; off < threads; off <<= 1) {
    ulong v = tid >= off ? sums[tid - off] : 0ul;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    sums[tid] += v;
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  const ulong total = sums[threads - 1], before = sums[tid] - mine;
  const uint u = sample_philox(uint(counters[s]), keys[s * 3 + 1], keys[s * 3 + 2]);
  const ulong r = (total >> 32) * u + (((total & 0xfffffffful) * u) >> 32);
  if (before <= r && r < before + mine) {
    ulong run = before;
    for (uint i = lo; i < hi; i++) {
      uint w = q[i];
      if (w < t) {
        continue;
      }
      run += w;
      if (run > r) {
        out[s] = int(i);
        break;
      }
    }
  }
}

template <typename T>
[[kernel]] void sample(
    device const T* logits [[buffer(0)]],
    device const float* settings [[buffer(1)]],
    device const uint* keys [[buffer(2)]],
    device const int* counters [[buffer(3)]],
    device const int* window [[buffer(4)]],
    device uint* weights [[buffer(5)]],
    device int* out [[buffer(6)]],
    constant SampleParams& p [[buffer(7)]],
    LOOM_STATUS,
    uint s [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]],
    uint threads [[threads_per_threadgroup]]) {
  LOOM_SHARED ArgBest<float> best[LOOM_MAX_THREADS];
  LOOM_SHARED ulong sums[LOOM_MAX_THREADS];
  LOOM_SHARED atomic_uint hist_lo[256];
  LOOM_SHARED atomic_uint hist_hi[256];
  LOOM_SHARED ulong chosen[2];
  sample_row(logits, settings, keys, counters, window, weights, out, p, status, best, sums, hist_lo, hist_hi, chosen, s, tid,
             threads);
}

LOOM_FLOAT_KERNELS("sample", sample)

// logprob_of is the log-probability of a value x of a row with maximum m
// and log Z (primitives.Sample); NaN x reads as −Inf.
inline float logprob_of(float x, float m, float logz) {
  if (m == -INFINITY) {
    return NAN;
  }
  if (x == m) {
    return -logz;
  }
  if (x != x) {
    return -INFINITY;
  }
  return (x - m) - logz;
}

// sample_logprobs draws as sample and reports the log-probs of dist: the
// top ones (columns 1..Top of lp_ids and lp) first, then the draw, then
// the drawn token's in column 0. Each thread keeps the best Top of its
// strided share, sorted (walking its share in index order, an equal value
// never displaces an earlier one); Top rounds of a threadgroup-wide first
// maximum over the lists' heads merge them, ties by lower id.
template <typename T>
[[kernel]] void sample_logprobs(
    device const T* logits [[buffer(0)]],
    device const float* settings [[buffer(1)]],
    device const uint* keys [[buffer(2)]],
    device const int* counters [[buffer(3)]],
    device const int* window [[buffer(4)]],
    device const T* dist [[buffer(5)]],
    device uint* weights [[buffer(6)]],
    device int* out [[buffer(7)]],
    device int* lp_ids [[buffer(8)]],
    device float* lp [[buffer(9)]],
    constant SampleParams& p [[buffer(10)]],
    LOOM_STATUS,
    uint s [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]],
    uint threads [[threads_per_threadgroup]]) {
  LOOM_SHARED ArgBest<float> best[LOOM_MAX_THREADS];
  LOOM_SHARED ulong sums[LOOM_MAX_THREADS];
  LOOM_SHARED float zs[LOOM_MAX_THREADS];
  LOOM_SHARED atomic_uint hist_lo[256];
  LOOM_SHARED atomic_uint hist_hi[256];
  LOOM_SHARED ulong chosen[2];
  const uint n = p.V, top = p.Top, cols = top + 1;
  device const T* row = dist + ulong(s) * n;
  ArgBest<float> b = {-INFINITY, INT_MAX};
  for (uint i = tid; i < n; i += threads) {
    float v = float(row[i]);
    if (v > b.v) {
      b.v = v;
      b.k = int(i);
    }
  }
  const float m = threadgroup_reduce(b, best, tid, threads, ArgmaxOp()).v;
  float z = 0.0f;
  for (uint i = tid; i < n; i += threads) {
    float v = float(row[i]);
    if (v != v) {
      v = -INFINITY;
    }
    z += v == m ? 1.0f : exp(v - m);
  }
  const float logz = log(threadgroup_reduce(z, zs, tid, threads, SumOp()));

  float tv[LOOM_SAMPLE_MAX_TOP];
  uint ti[LOOM_SAMPLE_MAX_TOP];
  uint held = 0;
  float worst = -INFINITY;  // tv[top − 1] once the list is full, in a register
  for (uint i = tid; i < n && top > 0u; i += threads) {
    float v = float(row[i]);
    if (v != v) {
      v = -INFINITY;
    }
    if (held == top && !(v > worst)) {
      continue;
    }
    uint j = held < top ? held : top - 1;
    for (; j > 0 && v > tv[j - 1]; j--) {
      tv[j] = tv[j - 1];
      ti[j] = ti[j - 1];
    }
    tv[j] = v;
    ti[j] = i;
    if (held < top) {
      held++;
    }
    if (held == top) {
      worst = tv[top - 1];
    }
  }
  uint head = 0;
  for (uint r = 0; r < top; r++) {
    ArgBest<float> c = {-INFINITY, INT_MAX};
    if (head < held) {
      c.v = tv[head];
      c.k = int(ti[head]);
    }
    c = threadgroup_reduce(c, best, tid, threads, ArgmaxOp());
    if (head < held && int(ti[head]) == c.k) {
      head++;
    }
    if (tid == 0) {
      lp_ids[ulong(s) * cols + 1 + r] = c.k;
      lp[ulong(s) * cols + 1 + r] = logprob_of(c.v, m, logz);
    }
  }

  sample_row(logits, settings, keys, counters, window, weights, out, p, status, best, sums, hist_lo, hist_hi, chosen, s, tid,
             threads);
  // The drawn token, written by one thread, is visible to all.
  threadgroup_barrier(mem_flags::mem_device);
  if (tid == 0) {
    const int tok = out[s];
    lp_ids[ulong(s) * cols] = tok;
    lp[ulong(s) * cols] = tok < 0 ? NAN : logprob_of(float(row[tok]), m, logz);
  }
}

LOOM_FLOAT_KERNELS("sample_logprobs", sample_logprobs)

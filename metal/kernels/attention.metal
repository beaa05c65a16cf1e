// Paged attention over a KV cache laid out [num_blocks, block_size,
// kv_heads, head_size] ("NHD"), and the KV write that fills it.
//
// Kernels assume 32-wide SIMD groups (every Apple GPU). The attention
// passes spread each K/V row over a group of lanes (Rows); the reduce's
// lane l holds elements l, l+32, … of a head vector.

#define LOOM_STR(x) #x

// kv_write copies token t's K and V rows into slot slot_mapping[t], if
// kv_slot lets it. The copy is of the stored bits, so it is byte-exact.
template <typename T, typename S>
[[kernel]] void kv_write(
    device T* k_cache [[buffer(0)]],
    device T* v_cache [[buffer(1)]],
    device const T* key [[buffer(2)]],
    device const T* value [[buffer(3)]],
    device const S* slot_mapping [[buffer(4)]],
    constant KVWriteParams& p [[buffer(5)]],
    LOOM_STATUS,
    uint t [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]],
    uint threads [[threads_per_threadgroup]]) {
  if (int(t) >= p.NumTokens) {
    return;
  }
  LOOM_SHARED uint scratch[LOOM_MAX_THREADS];
  int slot = kv_slot(slot_mapping, p.NumTokens, p.NumSlots, t, 4, true, status, scratch, tid, threads);
  if (slot < 0) {
    return;
  }
  uint row = uint(p.KVHeads * p.HeadSize);
  for (uint e = tid; e < row; e += threads) {
    k_cache[ulong(slot) * row + e] = key[ulong(t) * row + e];
    v_cache[ulong(slot) * row + e] = value[ulong(t) * row + e];
  }
}

#define LOOM_KV_WRITE(DT, T) \
  LOOM_KERNEL("kv_write_" DT "_i32", kv_write, T, int) \
  LOOM_KERNEL("kv_write_" DT "_i64", kv_write, T, long)
LOOM_KV_WRITE("f32", float)
LOOM_KV_WRITE("f16", half)
LOOM_KV_WRITE("bf16", bfloat)

// KeyRange is what query token t sees: keys [lo, hi) of sequence seq, the
// causal frontier hi = seq_len − q_len + q_pos + 1 and, with a sliding
// window, lo = max(0, hi − window). ok is false when the metadata is bad
// (reported: cu_seqlens_q that does not place t, or a seq_len below 0,
// above max_seq_len or above what a block-table row holds); lo == hi when
// the token sees no key. seq_lens and cu_seqlens_q are buffer arguments
// cu_arg − 1 and cu_arg.
struct KeyRange {
  int seq, lo, hi;
  bool ok;
};

inline KeyRange key_range(constant PagedAttentionParams& p, device const int* seq_lens, device const int* cu, int t,
                          device atomic_uint* status, uint cu_arg) {
  KeyRange r = {0, 0, 0, false};
  // cu_seqlens_q is non-decreasing from 0: find s with cu[s] ≤ t < cu[s+1].
  int lo = 0, hi = p.NumSeqs;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (cu[mid + 1] <= t) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo >= p.NumSeqs || cu[lo] > t || cu[lo + 1] <= t) {
    report_bad_index(status, cu_arg, uint(lo), t);
    return r;
  }
  r.seq = lo;
  int len = seq_lens[lo];
  if (len < 0 || len > p.MaxSeqLen || long(len) > long(p.MaxBlocksPerSeq) * p.BlockSize) {
    report_bad_index(status, cu_arg - 1, uint(lo), len);
    return r;
  }
  int qLen = cu[lo + 1] - cu[lo];
  r.hi = len - qLen + (t - cu[lo]) + 1;
  if (r.hi <= 0) {
    r.hi = 0;
  } else if (p.SlidingWindow > 0) {
    r.lo = max(0, r.hi - p.SlidingWindow);
  }
  r.ok = true;
  return r;
}

// Rows<T, HS> is how a SIMD group spreads a cache row (one key's head
// vector, HS·sizeof(T) bytes, a multiple of 16) over its lanes: LANES
// lanes, a power of two, hold one row, 16 bytes (VEC elements, in 4-element
// vectors) per load and NV loads each, so the group reads 32 / LANES rows at
// once, each a contiguous run. Lane i of a group holds vectors i, i +
// LANES, …; lanes past the row's NVEC vectors (head sizes 80 and 96) idle.
// The vectors need rows aligned to their size: the caches are whole
// buffers and every row is a whole number of 16-byte vectors.
template <typename T, int HS>
struct Rows {
  static constexpr int VEC = 16 / int(sizeof(T));
  static constexpr int NVEC = HS / VEC;
  static constexpr int LANES = NVEC > 16 ? 32 : NVEC > 8 ? 16 : NVEC > 4 ? 8 : NVEC > 2 ? 4 : NVEC > 1 ? 2 : 1;
  static constexpr int NV = (NVEC + LANES - 1) / LANES;
  // Loads of one lane in flight per batch: enough to cover the memory's
  // latency, few enough for the registers.
  static constexpr int BATCH = NV > 1 ? 4 : 8;
  static_assert(HS * int(sizeof(T)) % 16 == 0, "rows must be whole 16-byte vectors");
  static_assert(LANES % BATCH == 0, "steps must be whole batches");
};

// Chunk is the 16 bytes of a row a lane loads at once, as T's 4-vectors.
template <typename T>
struct Chunk {
  vec<T, 4> v[16 / int(sizeof(T)) / 4];
};

// load_chunk loads the chunk at element e of p (16-byte aligned).
template <typename T>
inline Chunk<T> load_chunk(device const T* p, ulong e) {
  return *(device const Chunk<T>*)(p + e);
}

// widen_chunk writes the chunk's elements to f as float.
template <typename T>
inline void widen_chunk(thread const Chunk<T>& c, thread float* f) {
  for (int u = 0; u < 16 / int(sizeof(T)) / 4; u++) {
    f[4 * u] = float(c.v[u].x);
    f[4 * u + 1] = float(c.v[u].y);
    f[4 * u + 2] = float(c.v[u].z);
    f[4 * u + 3] = float(c.v[u].w);
  }
}

// Softmax is the online softmax state of one query head, per lane: running
// max m and sum l (in the log2 domain's units, uniform across the SIMD
// group), the scaled query and the un-normalised output, both for the dims
// of the lane's vectors (Rows).
template <typename T, int HS>
struct Softmax {
  typedef Rows<T, HS> R;
  float m, l;
  float q[R::NV][R::VEC];
  float o[R::NV][R::VEC];
};

// slot_of returns the cache slot of key k of sequence seq, −1 if k ≥ to,
// and −2 after reporting a block-table entry outside the cache.
template <int BS>
inline int slot_of(constant PagedAttentionParams& p, device const int* block_tables, device atomic_uint* status, int seq,
                   int k, int to) {
  if (k >= to) {
    return -1;
  }
  int block = k / BS;
  int entry = seq * p.MaxBlocksPerSeq + block;
  int phys = block < p.MaxBlocksPerSeq ? block_tables[entry] : -1;
  if (phys < 0 || phys >= p.NumBlocks) {
    report_bad_index(status, 3, uint(entry), phys);
    return -2;
  }
  return phys * BS + k % BS;
}

// attend folds keys [from, to) of sequence seq into st for its query head,
// 32 keys at a time. Lane j finds key j's cache slot. The scores go 32 /
// LANES keys per step: group s of LANES lanes takes key s·LANES + i at step
// i with 16-byte loads, its dot product summed within the group, so that
// lane j itself keeps key j's score (lane j is lane i = j mod LANES of group
// s = j / LANES); a batch of steps' loads is issued before any is used. The
// online softmax runs on the SIMD group with one score per lane, scaled into
// the log2 domain so that every exponential is an exp2. The values go the
// same way, each lane adding p_key · V_key to the dims it holds, and the
// groups' sums are added at the end. (The CUDA kernels take the same layout;
// there it streamed long contexts 1.4–1.8 times faster than a key at a time
// with a SIMD-wide sum per key, which is what this kernel did before. On
// Apple GPUs it is unmeasured.) Returns false after reporting a
// block-table entry outside the cache.
template <typename T, int HS, int BS>
bool attend(constant PagedAttentionParams& p, device const T* k_cache, device const T* v_cache,
            device const int* block_tables, device atomic_uint* status, int seq, int kvh, int from, int to,
            thread Softmax<T, HS>& st, uint lane) {
  typedef Rows<T, HS> R;
  constexpr int LOADS = R::BATCH * R::NV;
  const int li = int(lane) % R::LANES;
  const ushort first = ushort(int(lane) - li); // the group's first lane
  const bool capped = p.Softcap > 0.0f;
  const ulong head = ulong(kvh) * HS, stride = ulong(p.NumKVHeads) * HS;
  for (int k0 = from; k0 < to; k0 += 32) {
    int slot = slot_of<BS>(p, block_tables, status, seq, k0 + int(lane), to);
    if (simd_max(slot == -2 ? 1 : 0) > 0) {
      return false;
    }
    float s = 0.0f;
    for (int b = 0; b < R::LANES; b += R::BATCH) {
      Chunk<T> kc[LOADS];
      int sl[R::BATCH];
      for (int i = 0; i < R::BATCH; i++) {
        sl[i] = simd_shuffle(slot, ushort(first + b + i));
        for (int v = 0; v < R::NV; v++) {
          int vi = v * R::LANES + li;
          if (sl[i] >= 0 && vi < R::NVEC) {
            kc[i * R::NV + v] = load_chunk(k_cache, ulong(sl[i]) * stride + head + ulong(vi) * R::VEC);
          }
        }
      }
      for (int i = 0; i < R::BATCH; i++) {
        float dot = 0.0f;
        for (int v = 0; v < R::NV; v++) {
          int vi = v * R::LANES + li;
          if (sl[i] >= 0 && vi < R::NVEC) {
            float f[R::VEC];
            widen_chunk(kc[i * R::NV + v], f);
            for (int e = 0; e < R::VEC; e++) {
              dot += st.q[v][e] * f[e];
            }
          }
        }
        for (int o = R::LANES / 2; o > 0; o /= 2) {
          dot += simd_shuffle_xor(dot, ushort(o));
        }
        if (b + i == li) {
          s = dot;
        }
      }
    }
    s = capped ? tanh(s * p.Scale / p.Softcap) * p.Softcap * LOG2E : s * p.Scale * LOG2E;
    if (slot < 0) {
      s = -INFINITY;
    }
    float m = max(st.m, simd_max(s));
    if (m == -INFINITY) {
      continue; // no key yet
    }
    float c = exp2(st.m - m); // 0 on the first keys (st.m = -inf)
    float pr = slot >= 0 ? exp2(s - m) : 0.0f;
    st.l = st.l * c + simd_sum(pr);
    st.m = m;
    for (int v = 0; v < R::NV; v++) {
      for (int e = 0; e < R::VEC; e++) {
        st.o[v][e] *= c;
      }
    }
    for (int b = 0; b < R::LANES; b += R::BATCH) {
      Chunk<T> vc[LOADS];
      float w[R::BATCH];
      for (int i = 0; i < R::BATCH; i++) {
        int sl = simd_shuffle(slot, ushort(first + b + i));
        w[i] = simd_shuffle(pr, ushort(first + b + i));
        for (int v = 0; v < R::NV; v++) {
          int vi = v * R::LANES + li;
          if (w[i] != 0.0f && vi < R::NVEC) {
            vc[i * R::NV + v] = load_chunk(v_cache, ulong(sl) * stride + head + ulong(vi) * R::VEC);
          }
        }
      }
      for (int i = 0; i < R::BATCH; i++) {
        for (int v = 0; v < R::NV; v++) {
          int vi = v * R::LANES + li;
          if (w[i] != 0.0f && vi < R::NVEC) {
            float f[R::VEC];
            widen_chunk(vc[i * R::NV + v], f);
            for (int e = 0; e < R::VEC; e++) {
              st.o[v][e] += w[i] * f[e];
            }
          }
        }
      }
    }
  }
  // Each group summed its own keys: add the groups' sums.
  for (int v = 0; v < R::NV; v++) {
    for (int e = 0; e < R::VEC; e++) {
      for (int o = R::LANES; o < 32; o *= 2) {
        st.o[v][e] += simd_shuffle_xor(st.o[v][e], ushort(o));
      }
    }
  }
  return true;
}

// start loads this lane's dims of query head h of token t as float and
// clears the rest of st.
template <typename T, int HS>
inline void start(constant PagedAttentionParams& p, device const T* q, int t, int h, uint lane,
                  thread Softmax<T, HS>& st) {
  typedef Rows<T, HS> R;
  const int li = int(lane) % R::LANES;
  for (int v = 0; v < R::NV; v++) {
    int vi = v * R::LANES + li;
    for (int e = 0; e < R::VEC; e++) {
      st.q[v][e] = vi < R::NVEC ? float(q[(ulong(t) * p.NumHeads + h) * HS + ulong(vi) * R::VEC + e]) : 0.0f;
      st.o[v][e] = 0.0f;
    }
  }
  st.m = -INFINITY;
  st.l = 0.0f;
}

// finish writes st's output times factor to row base of out, from the
// lanes of the first group (which hold the whole row after attend).
template <typename T, int HS>
inline void finish(device T* out, ulong base, thread const Softmax<T, HS>& st, float factor, uint lane) {
  typedef Rows<T, HS> R;
  if (int(lane) >= R::LANES) {
    return;
  }
  for (int v = 0; v < R::NV; v++) {
    int vi = v * R::LANES + int(lane);
    if (vi < R::NVEC) {
      for (int e = 0; e < R::VEC; e++) {
        out[base + ulong(vi) * R::VEC + e] = T(st.o[v][e] * factor);
      }
    }
  }
}

// paged_attention_rows is the single pass: one threadgroup per (KV head,
// query token), one SIMD group per query head of the KV head's group
// (GQA-shared: the group's query heads read each K/V row together). A row
// with no keys gets zeros; sinks join the denominator once, at the end.
template <typename T, int HS, int BS>
void paged_attention_rows(constant PagedAttentionParams& p, device const T* q, device const T* k_cache,
                          device const T* v_cache, device const int* block_tables, device const int* seq_lens,
                          device const int* cu_seqlens_q, device const float* sinks, device T* out,
                          device atomic_uint* status, uint2 group, uint sg, uint sgs, uint lane) {
  int kvh = int(group.x), t = int(group.y);
  if (t >= p.NumTokens || kvh >= p.NumKVHeads) {
    return;
  }
  KeyRange r = key_range(p, seq_lens, cu_seqlens_q, t, status, 5);
  int G = p.NumHeads / p.NumKVHeads;
  for (int g = int(sg); g < G; g += int(sgs)) {
    int h = kvh * G + g;
    Softmax<T, HS> st;
    start<T, HS>(p, q, t, h, lane, st);
    bool ok = r.ok && attend<T, HS, BS>(p, k_cache, v_cache, block_tables, status, r.seq, kvh, r.lo, r.hi, st, lane);
    float factor = 0.0f; // rows with no keys, or bad metadata, get zeros
    if (ok && st.l > 0.0f) {
      if (sinks) {
        float sink = sinks[h] * LOG2E;
        float top = max(st.m, sink);
        float c = exp2(st.m - top);
        factor = c / (st.l * c + exp2(sink - top));
      } else {
        factor = 1.0f / st.l;
      }
    }
    finish<T, HS>(out, (ulong(t) * p.NumHeads + h) * HS, st, factor, lane);
  }
}

template <typename T, int HS, int BS>
[[kernel]] void paged_attention(
    device const T* q [[buffer(0)]],
    device const T* k_cache [[buffer(1)]],
    device const T* v_cache [[buffer(2)]],
    device const int* block_tables [[buffer(3)]],
    device const int* seq_lens [[buffer(4)]],
    device const int* cu_seqlens_q [[buffer(5)]],
    device T* out [[buffer(6)]],
    constant PagedAttentionParams& p [[buffer(7)]],
    LOOM_STATUS,
    uint2 group [[threadgroup_position_in_grid]],
    uint sg [[simdgroup_index_in_threadgroup]],
    uint sgs [[simdgroups_per_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]) {
  paged_attention_rows<T, HS, BS>(p, q, k_cache, v_cache, block_tables, seq_lens, cu_seqlens_q, nullptr, out,
                                  status, group, sg, sgs, lane);
}

template <typename T, int HS, int BS>
[[kernel]] void paged_attention_sinks(
    device const T* q [[buffer(0)]],
    device const T* k_cache [[buffer(1)]],
    device const T* v_cache [[buffer(2)]],
    device const int* block_tables [[buffer(3)]],
    device const int* seq_lens [[buffer(4)]],
    device const int* cu_seqlens_q [[buffer(5)]],
    device const float* sinks [[buffer(6)]],
    device T* out [[buffer(7)]],
    constant PagedAttentionParams& p [[buffer(8)]],
    LOOM_STATUS,
    uint2 group [[threadgroup_position_in_grid]],
    uint sg [[simdgroup_index_in_threadgroup]],
    uint sgs [[simdgroups_per_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]) {
  paged_attention_rows<T, HS, BS>(p, q, k_cache, v_cache, block_tables, seq_lens, cu_seqlens_q, sinks, out,
                                  status, group, sg, sgs, lane);
}

// paged_attention_partition is the split-KV pass: threadgroup (KV head,
// token, partition) covers keys [part·PartitionSize, (part+1)·PartitionSize)
// of each row's range and writes, for each query head, the partition's max
// logit m_p and sum l_p (log2 domain, fp32) and its normalised output
// O_p / l_p (activation dtype). Partitions outside a row's range are not
// written; the reduce never reads them.
template <typename T, int HS, int BS>
[[kernel]] void paged_attention_partition(
    device const T* q [[buffer(0)]],
    device const T* k_cache [[buffer(1)]],
    device const T* v_cache [[buffer(2)]],
    device const int* block_tables [[buffer(3)]],
    device const int* seq_lens [[buffer(4)]],
    device const int* cu_seqlens_q [[buffer(5)]],
    device float* max_logits [[buffer(6)]],
    device float* exp_sums [[buffer(7)]],
    device T* tmp_out [[buffer(8)]],
    constant PagedAttentionParams& p [[buffer(9)]],
    LOOM_STATUS,
    uint3 group [[threadgroup_position_in_grid]],
    uint sg [[simdgroup_index_in_threadgroup]],
    uint sgs [[simdgroups_per_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]) {
  int kvh = int(group.x), t = int(group.y), part = int(group.z);
  if (t >= p.NumTokens || kvh >= p.NumKVHeads || part >= p.NumPartitions) {
    return;
  }
  KeyRange r = key_range(p, seq_lens, cu_seqlens_q, t, status, 5);
  int from = max(r.lo, part * p.PartitionSize), to = min(r.hi, (part + 1) * p.PartitionSize);
  if (!r.ok || from >= to) {
    return;
  }
  int G = p.NumHeads / p.NumKVHeads;
  for (int g = int(sg); g < G; g += int(sgs)) {
    int h = kvh * G + g;
    Softmax<T, HS> st;
    start<T, HS>(p, q, t, h, lane, st);
    if (!attend<T, HS, BS>(p, k_cache, v_cache, block_tables, status, r.seq, kvh, from, to, st, lane)) {
      return;
    }
    ulong row = (ulong(t) * p.NumHeads + h) * p.NumPartitions + part;
    if (lane == 0) {
      max_logits[row] = st.m;
      exp_sums[row] = st.l;
    }
    finish<T, HS>(tmp_out, row * HS, st, 1.0f / st.l, lane);
  }
}

// paged_attention_merge merges the partitions of (query token, head): with
// M the largest partition max (and the sink), w_p = l_p·2^(m_p − M) and
// out = Σ_p w_p·tmp_out_p / (Σ_p w_p + 2^(sink − M)), in fp32. It reads
// exactly the partitions the row's key range touches; one partition without
// sinks is copied exactly; a row with no keys gets zeros. One SIMD group per
// (head, token).
template <typename T, int HS>
void paged_attention_merge(constant PagedAttentionParams& p, device const T* tmp_out, device const float* max_logits,
                           device const float* exp_sums, device const int* seq_lens, device const int* cu_seqlens_q,
                           device const float* sinks, device T* out, device atomic_uint* status, uint2 group,
                           uint lane) {
  int h = int(group.x), t = int(group.y);
  if (t >= p.NumTokens || h >= p.NumHeads) {
    return;
  }
  constexpr int PER_LANE = (HS + 31) / 32; // lane l holds elements l, l+32, …
  KeyRange r = key_range(p, seq_lens, cu_seqlens_q, t, status, 4);
  ulong dst = (ulong(t) * p.NumHeads + h) * HS;
  int pLo = 0, pHi = 0;
  if (r.ok && r.lo < r.hi) {
    pLo = r.lo / p.PartitionSize;
    pHi = min((r.hi + p.PartitionSize - 1) / p.PartitionSize, p.NumPartitions);
  }
  ulong base = (ulong(t) * p.NumHeads + h) * p.NumPartitions;
  if (pHi - pLo == 1 && !sinks) {
    for (int j = 0; j < PER_LANE; j++) {
      int d = int(lane) + 32 * j;
      if (d < HS) {
        out[dst + d] = tmp_out[(base + pLo) * HS + d];
      }
    }
    return;
  }
  float acc[PER_LANE];
  for (int j = 0; j < PER_LANE; j++) {
    acc[j] = 0.0f;
  }
  float factor = 0.0f;
  if (pLo < pHi) {
    float top = sinks ? sinks[h] * LOG2E : -INFINITY;
    for (int q = pLo; q < pHi; q++) {
      top = max(top, max_logits[base + q]);
    }
    float sum = 0.0f;
    for (int q = pLo; q < pHi; q++) {
      float w = exp_sums[base + q] * exp2(max_logits[base + q] - top);
      sum += w;
      for (int j = 0; j < PER_LANE; j++) {
        int d = int(lane) + 32 * j;
        if (d < HS) {
          acc[j] += w * float(tmp_out[(base + q) * HS + d]);
        }
      }
    }
    if (sinks) {
      sum += exp2(sinks[h] * LOG2E - top);
    }
    factor = 1.0f / sum;
  }
  for (int j = 0; j < PER_LANE; j++) {
    int d = int(lane) + 32 * j;
    if (d < HS) {
      out[dst + d] = T(acc[j] * factor);
    }
  }
}

template <typename T, int HS>
[[kernel]] void paged_attention_reduce(
    device const T* tmp_out [[buffer(0)]],
    device const float* max_logits [[buffer(1)]],
    device const float* exp_sums [[buffer(2)]],
    device const int* seq_lens [[buffer(3)]],
    device const int* cu_seqlens_q [[buffer(4)]],
    device T* out [[buffer(5)]],
    constant PagedAttentionParams& p [[buffer(6)]],
    LOOM_STATUS,
    uint2 group [[threadgroup_position_in_grid]],
    uint lane [[thread_index_in_simdgroup]]) {
  paged_attention_merge<T, HS>(p, tmp_out, max_logits, exp_sums, seq_lens, cu_seqlens_q, nullptr, out, status,
                               group, lane);
}

template <typename T, int HS>
[[kernel]] void paged_attention_reduce_sinks(
    device const T* tmp_out [[buffer(0)]],
    device const float* max_logits [[buffer(1)]],
    device const float* exp_sums [[buffer(2)]],
    device const int* seq_lens [[buffer(3)]],
    device const int* cu_seqlens_q [[buffer(4)]],
    device const float* sinks [[buffer(5)]],
    device T* out [[buffer(6)]],
    constant PagedAttentionParams& p [[buffer(7)]],
    LOOM_STATUS,
    uint2 group [[threadgroup_position_in_grid]],
    uint lane [[thread_index_in_simdgroup]]) {
  paged_attention_merge<T, HS>(p, tmp_out, max_logits, exp_sums, seq_lens, cu_seqlens_q, sinks, out, status,
                               group, lane);
}

// Instantiations: every dtype × head size × block size of the catalog.
#define LOOM_ATTENTION_BS(DT, T, HS, BS) \
  LOOM_KERNEL("paged_attention_" DT "_hs" LOOM_STR(HS) "_bs" LOOM_STR(BS), paged_attention, T, HS, BS) \
  LOOM_KERNEL("paged_attention_" DT "_hs" LOOM_STR(HS) "_bs" LOOM_STR(BS) "_sinks", paged_attention_sinks, T, HS, BS) \
  LOOM_KERNEL("paged_attention_partition_" DT "_hs" LOOM_STR(HS) "_bs" LOOM_STR(BS), paged_attention_partition, T, HS, BS)
#define LOOM_ATTENTION_HS(DT, T, HS) \
  LOOM_ATTENTION_BS(DT, T, HS, 8) \
  LOOM_ATTENTION_BS(DT, T, HS, 16) \
  LOOM_ATTENTION_BS(DT, T, HS, 32) \
  LOOM_KERNEL("paged_attention_reduce_" DT "_hs" LOOM_STR(HS), paged_attention_reduce, T, HS) \
  LOOM_KERNEL("paged_attention_reduce_" DT "_hs" LOOM_STR(HS) "_sinks", paged_attention_reduce_sinks, T, HS)
#define LOOM_ATTENTION(DT, T) \
  LOOM_ATTENTION_HS(DT, T, 64) \
  LOOM_ATTENTION_HS(DT, T, 80) \
  LOOM_ATTENTION_HS(DT, T, 96) \
  LOOM_ATTENTION_HS(DT, T, 128) \
  LOOM_ATTENTION_HS(DT, T, 256)

LOOM_ATTENTION("f32", float)
LOOM_ATTENTION("f16", half)
LOOM_ATTENTION("bf16", bfloat)

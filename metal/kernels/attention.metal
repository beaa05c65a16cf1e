// Paged attention over a KV cache laid out [num_blocks, block_size,
// kv_heads, head_size] ("NHD"), and the KV write that fills it.
//
// Kernels assume 32-wide SIMD groups (every Apple GPU): lane l of a SIMD
// group holds elements l, l+32, … of a head vector.

#define LOOM_STR(x) #x

// kv_write copies token t's K and V rows into slot slot_mapping[t]; a slot
// < 0 is padding and skipped, a slot past the cache is reported. The copy is
// of the stored bits, so it is byte-exact.
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
  S slot = slot_mapping[t];
  if (slot < 0) {
    return;
  }
  if (slot >= S(p.NumSlots)) {
    if (tid == 0) {
      report_bad_index(status, 4, t, int(slot));
    }
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
// (reported); lo == hi when the token sees no key.
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
  int qLen = cu[lo + 1] - cu[lo];
  r.hi = seq_lens[lo] - qLen + (t - cu[lo]) + 1;
  if (r.hi <= 0) {
    r.hi = 0;
  } else if (p.SlidingWindow > 0) {
    r.lo = max(0, r.hi - p.SlidingWindow);
  }
  r.ok = true;
  return r;
}

// Online softmax state of one query head, per lane: running max m and sum l
// (both in the log2 domain's units, uniform across the SIMD group), and the
// lane's share of the un-normalised output.
template <int HS>
struct Softmax {
  static constexpr int PER_LANE = (HS + 31) / 32;
  float m, l;
  float o[PER_LANE];
};

// attend folds keys [from, to) of sequence seq into st for query head h of
// token t (q already in registers as qv). Scores are scaled into the log2
// domain once so that every exponential is an exp2. Returns false after
// reporting a block-table entry outside the cache.
template <typename T, int HS, int BS>
bool attend(constant PagedAttentionParams& p, device const T* k_cache, device const T* v_cache,
            device const int* block_tables, device atomic_uint* status, int seq, int kvh, int from, int to,
            thread const float* qv, thread Softmax<HS>& st, uint lane) {
  constexpr int PER_LANE = Softmax<HS>::PER_LANE;
  const bool capped = p.Softcap > 0.0f;
  for (int k = from; k < to; k++) {
    int block = k / BS;
    int entry = seq * p.MaxBlocksPerSeq + block;
    int phys = block < p.MaxBlocksPerSeq ? block_tables[entry] : -1;
    if (phys < 0 || phys >= p.NumBlocks) {
      if (lane == 0) {
        report_bad_index(status, 3, uint(entry), phys);
      }
      return false;
    }
    ulong row = ((ulong(phys) * BS + ulong(k % BS)) * ulong(p.NumKVHeads) + ulong(kvh)) * HS;
    float dot = 0.0f;
    for (int j = 0; j < PER_LANE; j++) {
      int d = int(lane) + 32 * j;
      if (d < HS) {
        dot += qv[j] * float(k_cache[row + d]);
      }
    }
    float s = simd_sum(dot);
    s = capped ? tanh(s * p.Scale / p.Softcap) * p.Softcap * LOG2E : s * p.Scale * LOG2E;
    float m = max(st.m, s);
    float c = exp2(st.m - m); // 0 on the first key (st.m = -inf)
    float e = exp2(s - m);
    st.l = st.l * c + e;
    st.m = m;
    for (int j = 0; j < PER_LANE; j++) {
      int d = int(lane) + 32 * j;
      if (d < HS) {
        st.o[j] = st.o[j] * c + e * float(v_cache[row + d]);
      }
    }
  }
  return true;
}

// load_q loads this lane's elements of query head h of token t as float.
template <typename T, int HS>
inline void load_q(constant PagedAttentionParams& p, device const T* q, int t, int h, uint lane, thread float* qv) {
  for (int j = 0; j < Softmax<HS>::PER_LANE; j++) {
    int d = int(lane) + 32 * j;
    qv[j] = d < HS ? float(q[(ulong(t) * p.NumHeads + h) * HS + d]) : 0.0f;
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
    float qv[Softmax<HS>::PER_LANE];
    load_q<T, HS>(p, q, t, h, lane, qv);
    Softmax<HS> st;
    st.m = -INFINITY;
    st.l = 0.0f;
    for (int j = 0; j < Softmax<HS>::PER_LANE; j++) {
      st.o[j] = 0.0f;
    }
    bool ok = r.ok && attend<T, HS, BS>(p, k_cache, v_cache, block_tables, status, r.seq, kvh, r.lo, r.hi, qv, st, lane);
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
    for (int j = 0; j < Softmax<HS>::PER_LANE; j++) {
      int d = int(lane) + 32 * j;
      if (d < HS) {
        out[(ulong(t) * p.NumHeads + h) * HS + d] = T(st.o[j] * factor);
      }
    }
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
    float qv[Softmax<HS>::PER_LANE];
    load_q<T, HS>(p, q, t, h, lane, qv);
    Softmax<HS> st;
    st.m = -INFINITY;
    st.l = 0.0f;
    for (int j = 0; j < Softmax<HS>::PER_LANE; j++) {
      st.o[j] = 0.0f;
    }
    if (!attend<T, HS, BS>(p, k_cache, v_cache, block_tables, status, r.seq, kvh, from, to, qv, st, lane)) {
      return;
    }
    ulong row = (ulong(t) * p.NumHeads + h) * p.NumPartitions + part;
    if (lane == 0) {
      max_logits[row] = st.m;
      exp_sums[row] = st.l;
    }
    float inv = 1.0f / st.l;
    for (int j = 0; j < Softmax<HS>::PER_LANE; j++) {
      int d = int(lane) + 32 * j;
      if (d < HS) {
        tmp_out[row * HS + d] = T(st.o[j] * inv);
      }
    }
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
  constexpr int PER_LANE = Softmax<HS>::PER_LANE;
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

// Paged attention over a KV cache laid out [num_blocks, block_size,
// kv_heads, head_size] ("NHD"), and the KV write that fills it.
//
// Kernels assume 32-wide SIMD groups (every Apple GPU). The attention
// passes spread each K/V row over a group of lanes (Rows); the merge of a
// row's partitions (split path) gives lane l elements l, l+32, … of a head
// vector.

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

// Heads is one SIMD group's share of a pass over GH query heads of a KV
// head's group, per lane: each head's running max m and sum l (in the log2
// domain's units, uniform across the SIMD group), scaled query and
// un-normalised output, both for the dims of the lane's vectors (Rows).
// Heads of the pass past the group's (odd ratios) have zero queries; their
// results are not written.
template <typename T, int HS, int GH>
struct Heads {
  typedef Rows<T, HS> R;
  float m[GH], l[GH];
  float q[GH][R::NV][R::VEC];
  float o[GH][R::NV][R::VEC];
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

// attend folds this SIMD group's keys of [from, to) of sequence seq into
// the GH heads of st: the 32-key chunks from + 32·c for c = sg, sg + sgs, …,
// so that every K and V row is read once, by one SIMD group, for all query
// heads of its KV head's group. Lane j finds key j's cache slot. The scores
// go 32 / LANES keys per step: group s of LANES lanes takes key
// s·LANES + i at step i with 16-byte loads, widened once and dotted with
// each head's query, each dot product summed within the group, so that
// lane j itself keeps key j's scores (lane j is lane i = j mod LANES of
// group s = j / LANES); a batch of steps' loads is issued before any is
// used. The online softmax runs on the SIMD group with one score per lane
// and head, scaled into the log2 domain so that every exponential is an
// exp2. The values go the same way, each lane adding p_key · V_key to each
// head's dims it holds, and the groups' sums are added at the end. Which
// keys a SIMD group takes depends on the row alone, never on the grid.
// Returns false after reporting a block-table entry outside the cache.
template <typename T, int HS, int BS, int GH>
bool attend(constant PagedAttentionParams& p, device const T* k_cache, device const T* v_cache,
            device const int* block_tables, device atomic_uint* status, int seq, int kvh, int from, int to,
            thread Heads<T, HS, GH>& st, uint lane, uint sg, uint sgs) {
  typedef Rows<T, HS> R;
  constexpr int LOADS = R::BATCH * R::NV;
  const int li = int(lane) % R::LANES;
  const ushort first = ushort(int(lane) - li); // the group's first lane
  const bool capped = p.Softcap > 0.0f;
  const ulong head = ulong(kvh) * HS, stride = ulong(p.NumKVHeads) * HS;
  for (int k0 = from + 32 * int(sg); k0 < to; k0 += 32 * int(sgs)) {
    int slot = slot_of<BS>(p, block_tables, status, seq, k0 + int(lane), to);
    if (simd_max(slot == -2 ? 1 : 0) > 0) {
      return false;
    }
    float s[GH];
    for (int j = 0; j < GH; j++) {
      s[j] = 0.0f;
    }
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
        float f[R::NV][R::VEC];
        for (int v = 0; v < R::NV; v++) {
          int vi = v * R::LANES + li;
          if (sl[i] >= 0 && vi < R::NVEC) {
            widen_chunk(kc[i * R::NV + v], f[v]);
          } else {
            for (int e = 0; e < R::VEC; e++) {
              f[v][e] = 0.0f;
            }
          }
        }
        for (int j = 0; j < GH; j++) {
          float dot = 0.0f;
          for (int v = 0; v < R::NV; v++) {
            for (int e = 0; e < R::VEC; e++) {
              dot += st.q[j][v][e] * f[v][e];
            }
          }
          for (int o = R::LANES / 2; o > 0; o /= 2) {
            dot += simd_shuffle_xor(dot, ushort(o));
          }
          if (b + i == li) {
            s[j] = dot;
          }
        }
      }
    }
    float pr[GH];
    for (int j = 0; j < GH; j++) {
      s[j] = capped ? tanh(s[j] * p.Scale / p.Softcap) * p.Softcap * LOG2E : s[j] * p.Scale * LOG2E;
      if (slot < 0) {
        s[j] = -INFINITY;
      }
      float m = max(st.m[j], simd_max(s[j]));
      bool none = m == -INFINITY; // no key yet
      float c = none ? 1.0f : exp2(st.m[j] - m); // 0 on the first keys (st.m = -inf)
      pr[j] = none || slot < 0 ? 0.0f : exp2(s[j] - m);
      st.l[j] = st.l[j] * c + simd_sum(pr[j]);
      if (!none) {
        st.m[j] = m;
      }
      for (int v = 0; v < R::NV; v++) {
        for (int e = 0; e < R::VEC; e++) {
          st.o[j][v][e] *= c;
        }
      }
    }
    for (int b = 0; b < R::LANES; b += R::BATCH) {
      Chunk<T> vc[LOADS];
      int sl[R::BATCH];
      for (int i = 0; i < R::BATCH; i++) {
        sl[i] = simd_shuffle(slot, ushort(first + b + i));
        for (int v = 0; v < R::NV; v++) {
          int vi = v * R::LANES + li;
          if (sl[i] >= 0 && vi < R::NVEC) {
            vc[i * R::NV + v] = load_chunk(v_cache, ulong(sl[i]) * stride + head + ulong(vi) * R::VEC);
          }
        }
      }
      for (int i = 0; i < R::BATCH; i++) {
        float f[R::NV][R::VEC];
        for (int v = 0; v < R::NV; v++) {
          int vi = v * R::LANES + li;
          if (sl[i] >= 0 && vi < R::NVEC) {
            widen_chunk(vc[i * R::NV + v], f[v]);
          } else {
            for (int e = 0; e < R::VEC; e++) {
              f[v][e] = 0.0f;
            }
          }
        }
        for (int j = 0; j < GH; j++) {
          float w = simd_shuffle(pr[j], ushort(first + b + i));
          for (int v = 0; v < R::NV; v++) {
            for (int e = 0; e < R::VEC; e++) {
              st.o[j][v][e] += w * f[v][e];
            }
          }
        }
      }
    }
  }
  // Each group summed its own keys: add the groups' sums.
  for (int j = 0; j < GH; j++) {
    for (int v = 0; v < R::NV; v++) {
      for (int e = 0; e < R::VEC; e++) {
        for (int o = R::LANES; o < 32; o *= 2) {
          st.o[j][v][e] += simd_shuffle_xor(st.o[j][v][e], ushort(o));
        }
      }
    }
  }
  return true;
}

// start loads this lane's dims of query heads h0 … h0 + nh − 1 of token t
// as float and clears the rest of st; heads past nh get zero queries.
template <typename T, int HS, int GH>
inline void start(constant PagedAttentionParams& p, device const T* q, int t, int h0, int nh, uint lane,
                  thread Heads<T, HS, GH>& st) {
  typedef Rows<T, HS> R;
  const int li = int(lane) % R::LANES;
  for (int j = 0; j < GH; j++) {
    for (int v = 0; v < R::NV; v++) {
      int vi = v * R::LANES + li;
      for (int e = 0; e < R::VEC; e++) {
        st.q[j][v][e] =
            j < nh && vi < R::NVEC ? float(q[(ulong(t) * p.NumHeads + h0 + j) * HS + ulong(vi) * R::VEC + e]) : 0.0f;
        st.o[j][v][e] = 0.0f;
      }
    }
    st.m[j] = -INFINITY;
    st.l[j] = 0.0f;
  }
}

// MERGE_ROW is a SIMD group's row of the merge memory: HS output dims,
// then m, l and whether its keys' block-table entries were all good.
#define MERGE_ROW(HS) ((HS) + 3)

// attention_pass attends query token t's heads h0 … h0 + nh − 1 (of KV
// head kvh) to keys [from, to) with the threadgroup's SIMD groups (see
// attend), then merges each head's states through merge (MERGE_ROW(HS)
// floats per SIMD group), in SIMD-group order, one output dim a thread:
// with M the largest maximum, l = Σ l_w·2^(m_w − M) and
// o = Σ o_w·2^(m_w − M); a SIMD group without keys (m = −∞) adds nothing.
// The single pass (parts false) writes o normalised, with the sinks
// folded in, to out (zeros for a row without keys, or after a bad
// block-table entry); the partition pass writes M, l and o / l to the
// split scratch at partition part (nothing after a bad entry). Every
// thread of the threadgroup must call it.
template <typename T, int HS, int BS, int GH>
void attention_pass(constant PagedAttentionParams& p, device const T* q, device const T* k_cache,
                    device const T* v_cache, device const int* block_tables, device const float* sinks,
                    device T* out, device float* max_logits, device float* exp_sums, device atomic_uint* status,
                    threadgroup float* merge, bool parts, int seq, int kvh, int t, int part, int from, int to, int h0,
                    int nh, uint tid, uint threads, uint sg, uint sgs, uint lane) {
  typedef Rows<T, HS> R;
  Heads<T, HS, GH> st;
  start<T, HS, GH>(p, q, t, h0, nh, lane, st);
  bool good = attend<T, HS, BS, GH>(p, k_cache, v_cache, block_tables, status, seq, kvh, from, to, st, lane, sg, sgs);
  for (int j = 0; j < GH && j < nh; j++) {
    threadgroup float* mine = merge + sg * MERGE_ROW(HS);
    if (int(lane) < R::LANES) {
      for (int v = 0; v < R::NV; v++) {
        int vi = v * R::LANES + int(lane);
        if (vi < R::NVEC) {
          for (int e = 0; e < R::VEC; e++) {
            mine[vi * R::VEC + e] = st.o[j][v][e];
          }
        }
      }
    }
    if (lane == 0) {
      mine[HS] = st.m[j];
      mine[HS + 1] = st.l[j];
      mine[HS + 2] = good ? 1.0f : 0.0f;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    int h = h0 + j;
    float top = -INFINITY, l = 0.0f;
    bool all_good = true;
    for (uint w = 0; w < sgs; w++) {
      top = max(top, merge[w * MERGE_ROW(HS) + HS]);
      all_good = all_good && merge[w * MERGE_ROW(HS) + HS + 2] != 0.0f;
    }
    if (top != -INFINITY) {
      for (uint w = 0; w < sgs; w++) {
        float m = merge[w * MERGE_ROW(HS) + HS];
        if (m != -INFINITY) {
          l += merge[w * MERGE_ROW(HS) + HS + 1] * exp2(m - top);
        }
      }
    }
    float factor = 0.0f;
    ulong dst;
    if (parts) {
      ulong row = (ulong(t) * p.NumHeads + h) * p.NumPartitions + part;
      if (all_good && tid == 0) {
        max_logits[row] = top;
        exp_sums[row] = l;
      }
      factor = 1.0f / l;
      dst = row * HS;
    } else {
      if (all_good && l > 0.0f) {
        if (sinks) {
          float sink = sinks[h] * LOG2E;
          float m = max(top, sink);
          float c = exp2(top - m);
          factor = c / (l * c + exp2(sink - m));
        } else {
          factor = 1.0f / l;
        }
      }
      dst = (ulong(t) * p.NumHeads + h) * HS;
    }
    if (all_good || !parts) {
      for (uint d = tid; d < uint(HS); d += threads) {
        float o = 0.0f;
        if (top != -INFINITY) {
          for (uint w = 0; w < sgs; w++) {
            float m = merge[w * MERGE_ROW(HS) + HS];
            if (m != -INFINITY) {
              o += merge[w * MERGE_ROW(HS) + d] * exp2(m - top);
            }
          }
        }
        out[dst + d] = T(o * factor);
      }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup); // the next head may overwrite the rows
  }
}

// attention_rows attends token t's query heads of KV head kvh to keys
// [from, to) in passes of the smallest number of heads that holds the
// group (an odd ratio rounds up), or of 4 for larger groups, which then
// read their K and V rows again: a pass's state takes registers in
// proportion to its heads.
template <typename T, int HS, int BS>
void attention_rows(constant PagedAttentionParams& p, device const T* q, device const T* k_cache,
                    device const T* v_cache, device const int* block_tables, device const float* sinks, device T* out,
                    device float* max_logits, device float* exp_sums, device atomic_uint* status,
                    threadgroup float* merge, bool parts, int seq, int kvh, int t, int part, int from, int to, uint tid,
                    uint threads, uint sg, uint sgs, uint lane) {
  int G = p.NumHeads / p.NumKVHeads;
  for (int j0 = 0; j0 < G; j0 += 4) {
    int h0 = kvh * G + j0, nh = min(4, G - j0);
    if (G == 1) {
      attention_pass<T, HS, BS, 1>(p, q, k_cache, v_cache, block_tables, sinks, out, max_logits, exp_sums, status, merge,
                                   parts, seq, kvh, t, part, from, to, h0, nh, tid, threads, sg, sgs, lane);
    } else if (G == 2) {
      attention_pass<T, HS, BS, 2>(p, q, k_cache, v_cache, block_tables, sinks, out, max_logits, exp_sums, status, merge,
                                   parts, seq, kvh, t, part, from, to, h0, nh, tid, threads, sg, sgs, lane);
    } else {
      attention_pass<T, HS, BS, 4>(p, q, k_cache, v_cache, block_tables, sinks, out, max_logits, exp_sums, status, merge,
                                   parts, seq, kvh, t, part, from, to, h0, nh, tid, threads, sg, sgs, lane);
    }
  }
}

// paged_attention_single is the single pass: one threadgroup per (KV head,
// query token), its SIMD groups sharing the keys for every query head of
// the KV head's group (attention_pass). A row with no keys gets zeros;
// sinks join the denominator once, at the end.
template <typename T, int HS, int BS>
void paged_attention_single(constant PagedAttentionParams& p, device const T* q, device const T* k_cache,
                            device const T* v_cache, device const int* block_tables, device const int* seq_lens,
                            device const int* cu_seqlens_q, device const float* sinks, device T* out,
                            device atomic_uint* status, threadgroup float* merge, uint2 group, uint tid, uint threads,
                            uint sg, uint sgs, uint lane) {
  int kvh = int(group.x), t = int(group.y);
  if (t >= p.NumTokens || kvh >= p.NumKVHeads) {
    return;
  }
  KeyRange r = key_range(p, seq_lens, cu_seqlens_q, t, status, 5);
  if (!r.ok) {
    r.lo = r.hi = 0; // zeros
  }
  attention_rows<T, HS, BS>(p, q, k_cache, v_cache, block_tables, sinks, out, nullptr, nullptr, status, merge, false,
                            r.seq, kvh, t, 0, r.lo, r.hi, tid, threads, sg, sgs, lane);
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
    uint tid [[thread_index_in_threadgroup]],
    uint threads [[threads_per_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]],
    uint sgs [[simdgroups_per_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]) {
  LOOM_SHARED float merge[LOOM_ATTENTION_WARPS * MERGE_ROW(HS)];
  paged_attention_single<T, HS, BS>(p, q, k_cache, v_cache, block_tables, seq_lens, cu_seqlens_q, nullptr, out,
                                    status, merge, group, tid, threads, sg, sgs, lane);
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
    uint tid [[thread_index_in_threadgroup]],
    uint threads [[threads_per_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]],
    uint sgs [[simdgroups_per_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]) {
  LOOM_SHARED float merge[LOOM_ATTENTION_WARPS * MERGE_ROW(HS)];
  paged_attention_single<T, HS, BS>(p, q, k_cache, v_cache, block_tables, seq_lens, cu_seqlens_q, sinks, out,
                                    status, merge, group, tid, threads, sg, sgs, lane);
}

// partition_keys is the keys per partition of row r on the split path
// (primitives.AttentionPartitionKeys): p.PartitionSize, or the least
// multiple of it that makes at most p.NumPartitions partitions of the row.
// It depends on the row alone.
inline int partition_keys(constant PagedAttentionParams& p, KeyRange r) {
  long span = long(p.PartitionSize) * max(p.NumPartitions, 1);
  return p.PartitionSize * int(max(1L, (long(r.hi) + span - 1) / span));
}

// paged_attention_merge merges the partitions of row r (query token t, head
// h) into out with the calling SIMD group: with M the largest partition max
// (and the sink), w_p = l_p·2^(m_p − M) and out = Σ_p w_p·tmp_out_p /
// (Σ_p w_p + 2^(sink − M)), in fp32, the partitions added in order. It
// reads exactly the partitions the row's key range touches; one partition
// without sinks is copied exactly; a row with no keys gets zeros.
template <typename T, int HS>
void paged_attention_merge(constant PagedAttentionParams& p, device const T* tmp_out, device const float* max_logits,
                           device const float* exp_sums, KeyRange r, device const float* sinks, device T* out, int t,
                           int h, uint lane) {
  constexpr int PER_LANE = (HS + 31) / 32; // lane l holds elements l, l+32, …
  ulong dst = (ulong(t) * p.NumHeads + h) * HS;
  int pLo = 0, pHi = 0;
  if (r.ok && r.lo < r.hi) {
    int size = partition_keys(p, r);
    pLo = r.lo / size;
    pHi = min((r.hi + size - 1) / size, p.NumPartitions);
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

// paged_attention_split_rows is the split-KV path: threadgroup (KV head,
// token, partition) covers keys [part·n, (part+1)·n), n = partition_keys,
// of the row's range and writes, for each query head, the partition's max
// logit m_p and sum l_p (log2 domain, fp32) and its normalised output
// O_p / l_p (activation dtype) to the scratch (partitions outside the
// row's range write nothing; the merge never reads them). Then every
// threadgroup of the row (token t, KV head kvh) counts itself in
// counters[t·NumKVHeads + kvh], and the one that counts last merges the
// partitions of the group's heads (paged_attention_merge, a SIMD group a
// head) and sets the counter back to zero, so that the next dispatch,
// which the runtime orders after this one, finds it zero
// (primitives.Lowering.NewZeroedScratch). The threadgroup's device writes
// are ordered before its count by threadgroup_barrier(mem_device), and the
// merge reads the partials after the count (MSL 3.1 has no device-scope
// fence; this has not run on Apple hardware yet).
template <typename T, int HS, int BS>
void paged_attention_split_rows(constant PagedAttentionParams& p, device const T* q, device const T* k_cache,
                                device const T* v_cache, device const int* block_tables, device const int* seq_lens,
                                device const int* cu_seqlens_q, device const float* sinks, device float* max_logits,
                                device float* exp_sums, device T* tmp_out, device atomic_uint* counters, device T* out,
                                device atomic_uint* status, threadgroup float* merge, uint3 group, uint tid,
                                uint threads, uint sg, uint sgs, uint lane) {
  int kvh = int(group.x), t = int(group.y), part = int(group.z);
  if (t >= p.NumTokens || kvh >= p.NumKVHeads || part >= p.NumPartitions) {
    return; // outside the grid the lowering makes
  }
  KeyRange r = key_range(p, seq_lens, cu_seqlens_q, t, status, 5);
  int size = partition_keys(p, r);
  int from = max(r.lo, part * size), to = min(r.hi, (part + 1) * size);
  if (r.ok && from < to) {
    attention_rows<T, HS, BS>(p, q, k_cache, v_cache, block_tables, nullptr, tmp_out, max_logits, exp_sums, status,
                              merge, true, r.seq, kvh, t, part, from, to, tid, threads, sg, sgs, lane);
  }
  threadgroup_barrier(mem_flags::mem_device | mem_flags::mem_threadgroup);
  if (tid == 0) {
    device atomic_uint* count = counters + ulong(t) * p.NumKVHeads + kvh;
    bool last = atomic_fetch_add_explicit(count, 1u, memory_order_relaxed) == uint(p.NumPartitions - 1);
    if (last) {
      atomic_store_explicit(count, 0u, memory_order_relaxed); // every threadgroup of the row has counted
    }
    merge[0] = last ? 1.0f : 0.0f;
  }
  threadgroup_barrier(mem_flags::mem_device | mem_flags::mem_threadgroup);
  if (merge[0] == 0.0f) {
    return;
  }
  int G = p.NumHeads / p.NumKVHeads;
  for (int j = int(sg); j < G; j += int(sgs)) {
    paged_attention_merge<T, HS>(p, tmp_out, max_logits, exp_sums, r, sinks, out, t, kvh * G + j, lane);
  }
}

template <typename T, int HS, int BS>
[[kernel]] void paged_attention_split(
    device const T* q [[buffer(0)]],
    device const T* k_cache [[buffer(1)]],
    device const T* v_cache [[buffer(2)]],
    device const int* block_tables [[buffer(3)]],
    device const int* seq_lens [[buffer(4)]],
    device const int* cu_seqlens_q [[buffer(5)]],
    device float* max_logits [[buffer(6)]],
    device float* exp_sums [[buffer(7)]],
    device T* tmp_out [[buffer(8)]],
    device atomic_uint* counters [[buffer(9)]],
    device T* out [[buffer(10)]],
    constant PagedAttentionParams& p [[buffer(11)]],
    LOOM_STATUS,
    uint3 group [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]],
    uint threads [[threads_per_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]],
    uint sgs [[simdgroups_per_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]) {
  LOOM_SHARED float merge[LOOM_ATTENTION_WARPS * MERGE_ROW(HS)];
  paged_attention_split_rows<T, HS, BS>(p, q, k_cache, v_cache, block_tables, seq_lens, cu_seqlens_q, nullptr,
                                        max_logits, exp_sums, tmp_out, counters, out, status, merge, group, tid,
                                        threads, sg, sgs, lane);
}

template <typename T, int HS, int BS>
[[kernel]] void paged_attention_split_sinks(
    device const T* q [[buffer(0)]],
    device const T* k_cache [[buffer(1)]],
    device const T* v_cache [[buffer(2)]],
    device const int* block_tables [[buffer(3)]],
    device const int* seq_lens [[buffer(4)]],
    device const int* cu_seqlens_q [[buffer(5)]],
    device const float* sinks [[buffer(6)]],
    device float* max_logits [[buffer(7)]],
    device float* exp_sums [[buffer(8)]],
    device T* tmp_out [[buffer(9)]],
    device atomic_uint* counters [[buffer(10)]],
    device T* out [[buffer(11)]],
    constant PagedAttentionParams& p [[buffer(12)]],
    LOOM_STATUS,
    uint3 group [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]],
    uint threads [[threads_per_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]],
    uint sgs [[simdgroups_per_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]) {
  LOOM_SHARED float merge[LOOM_ATTENTION_WARPS * MERGE_ROW(HS)];
  paged_attention_split_rows<T, HS, BS>(p, q, k_cache, v_cache, block_tables, seq_lens, cu_seqlens_q, sinks,
                                        max_logits, exp_sums, tmp_out, counters, out, status, merge, group, tid,
                                        threads, sg, sgs, lane);
}

// Instantiations: every dtype × head size × block size of the catalog.
#define LOOM_ATTENTION_BS(DT, T, HS, BS) \
  LOOM_KERNEL("paged_attention_" DT "_hs" LOOM_STR(HS) "_bs" LOOM_STR(BS), paged_attention, T, HS, BS) \
  LOOM_KERNEL("paged_attention_" DT "_hs" LOOM_STR(HS) "_bs" LOOM_STR(BS) "_sinks", paged_attention_sinks, T, HS, BS) \
  LOOM_KERNEL("paged_attention_split_" DT "_hs" LOOM_STR(HS) "_bs" LOOM_STR(BS), paged_attention_split, T, HS, BS) \
  LOOM_KERNEL("paged_attention_split_" DT "_hs" LOOM_STR(HS) "_bs" LOOM_STR(BS) "_sinks", paged_attention_split_sinks, T, HS, BS)
#define LOOM_ATTENTION_HS(DT, T, HS) \
  LOOM_ATTENTION_BS(DT, T, HS, 8) \
  LOOM_ATTENTION_BS(DT, T, HS, 16) \
  LOOM_ATTENTION_BS(DT, T, HS, 32)
#define LOOM_ATTENTION(DT, T) \
  LOOM_ATTENTION_HS(DT, T, 64) \
  LOOM_ATTENTION_HS(DT, T, 80) \
  LOOM_ATTENTION_HS(DT, T, 96) \
  LOOM_ATTENTION_HS(DT, T, 128) \
  LOOM_ATTENTION_HS(DT, T, 256)

LOOM_ATTENTION("f32", float)
LOOM_ATTENTION("f16", half)
LOOM_ATTENTION("bf16", bfloat)

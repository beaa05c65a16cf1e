// Paged attention over a KV cache laid out [num_blocks, block_size, kv_heads,
// head_size] (one token's head vector contiguous), and the KV write that
// fills it. See primitives/attention.go for the masking rules.
//
// A block serves one KV head g = blockIdx.x of one query token t =
// blockIdx.y (and, on the split path, one partition blockIdx.z of its keys),
// with a warp per query head of g's group: every query head of the group
// reads the same K and V rows, which come from memory once and from the L1
// cache for the other warps. A warp walks its keys 32 at a time:
//   - scores: lane i holds dims 2i, 2i+1 (+64, +128, …) of q and of each
//     key's row; each key's partial dot products are summed across the warp
//     and lane j keeps key j's score;
//   - online softmax in log2 units (q is scaled by Scale·log2(e) when it is
//     loaded, so every exponential is an exp2): running maximum m, sum l and
//     the lane's dims of the unnormalised output O;
//   - values: each lane adds p_j · V_j for its dims, p_j broadcast from
//     lane j.
// The kernels are specialised on the head size (the registers a lane holds
// depend on it) but not on the block size, which only enters index
// arithmetic: the catalog's per-block-size and with/without-sinks kernels
// call one instantiation, kept out of line so that it is compiled once.
//
// Block (0,0,0) of each kernel also checks the metadata the way the CPU
// device does (cu_seqlens_q, then seq_lens, then the block-table entries in
// use) and reports the first problem. Every block guards its own reads, so
// bad metadata never make a kernel read or write outside its buffers.

// The status codes of metadata reports, ordered by key: cu_seqlens_q
// (entry i at key 2i, the final entry's mismatch at 2·NumSeqs+1), then
// seq_lens (key 2^40 + s), then block tables (key 2^41 + s·max_blocks + b).
#define KEY_SEQ_LENS (1ull << 40)
#define KEY_TABLES (1ull << 41)

// Argument indices of the metadata, shared by the attention kernels'
// signatures (the reduce kernel has its own).
#define ARG_BLOCK_TABLES 3
#define ARG_SEQ_LENS 4
#define ARG_CU 5

// ---- metadata ------------------------------------------------------------------

// check_meta checks cu_seqlens_q, seq_lens and, when tables is not null, the
// block-table entries each sequence uses, with all threads of the block.
__device__ void check_meta(const int* tables, const int* seq_lens, const int* cu, const PagedAttentionParams& p,
                           u32 arg_seq_lens, u32 arg_cu, Status* status) {
  const int n = p.NumSeqs;
  for (int i = threadIdx.x; i <= n; i += blockDim.x) {
    const int c = cu[i];
    if (i == 0 && c != 0) report_status(status, LOOM_CU_START, arg_cu, 0, 0, c, 0);
    if (i > 0 && c < cu[i - 1]) report_status(status, LOOM_CU_DECREASING, arg_cu, 2ull * i, i, c, cu[i - 1]);
  }
  if (threadIdx.x == 0 && cu[n] != p.NumTokens) {
    report_status(status, LOOM_CU_LAST, arg_cu, 2ull * n + 1, n, cu[n], p.NumTokens);
  }
  const i64 max_keys = (i64)p.MaxBlocksPerSeq * p.BlockSize;
  for (int s = threadIdx.x; s < n; s += blockDim.x) {
    const int len = seq_lens[s];
    if (len < 0 || len > p.MaxSeqLen || len > max_keys) {
      report_status(status, LOOM_SEQ_LEN, arg_seq_lens, KEY_SEQ_LENS + s, s, len, 0);
    }
  }
  if (tables == nullptr) return;
  for (int s = 0; s < n; s++) {
    const int len = seq_lens[s];
    if (len < 0 || len > p.MaxSeqLen || len > max_keys) continue;  // reported above; its entries are not read
    const int blocks = (len + p.BlockSize - 1) / p.BlockSize;
    for (int b = threadIdx.x; b < blocks; b += blockDim.x) {
      const u32 entry = (u32)s * p.MaxBlocksPerSeq + b;
      const int e = tables[entry];
      if (e < 0 || e >= p.NumBlocks) report_status(status, LOOM_BLOCK_TABLE, ARG_BLOCK_TABLES, KEY_TABLES + entry, entry, e, len);
    }
  }
}

__device__ __forceinline__ bool first_block() { return blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0; }

// Row is what query token t sees: keys [lo, hi) of sequence seq (lo == hi
// when none). hi is clamped to what max_seq_len and a block-table row allow,
// which changes nothing for valid metadata and keeps bad ones in bounds.
struct Row {
  int seq, lo, hi;
};

__device__ Row row_of(const int* seq_lens, const int* cu, const PagedAttentionParams& p, int t) {
  Row r = {0, 0, 0};
  if (p.NumSeqs <= 0) return r;
  // The last sequence s with cu[s] ≤ t; with valid offsets t < cu[s+1].
  int lo = 0, hi = p.NumSeqs - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (cu[mid] <= t) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  r.seq = lo;
  const i64 q_len = (i64)cu[lo + 1] - cu[lo];
  i64 end = (i64)seq_lens[lo] - q_len + (t - cu[lo]) + 1;
  end = min(end, min((i64)p.MaxSeqLen, (i64)p.MaxBlocksPerSeq * p.BlockSize));
  if (end <= 0) return r;
  r.hi = (int)end;
  if (p.SlidingWindow > 0) r.lo = max(0, r.hi - p.SlidingWindow);
  return r;
}

// partitions returns the partitions [first, last) holding keys [lo, hi).
__device__ __forceinline__ void partitions(const Row& r, int part_size, int& first, int& last) {
  if (r.lo >= r.hi) {
    first = last = 0;
    return;
  }
  first = r.lo / part_size;
  last = (r.hi + part_size - 1) / part_size;
}

// ---- pairs of elements ---------------------------------------------------------

// load_pair reads elements i and i+1 (i even, rows of even length) as floats.
__device__ __forceinline__ float2 load_pair(const float* p, u64 i) { return *(const float2*)(p + i); }
__device__ __forceinline__ float2 load_pair(const half_t* p, u64 i) {
  const u32 w = *(const u32*)(p + i);
  return make_float2(f16_to_f32((u16)(w & 0xffffu)), f16_to_f32((u16)(w >> 16)));
}
__device__ __forceinline__ float2 load_pair(const bf16_t* p, u64 i) {
  const u32 w = *(const u32*)(p + i);
  return make_float2(bf16_to_f32((u16)(w & 0xffffu)), bf16_to_f32((u16)(w >> 16)));
}

template <typename T> __device__ __forceinline__ void store_pair(T* p, u64 i, float a, float b) {
  store_f(p, i, a);
  store_f(p, i + 1, b);
}

__device__ __forceinline__ float warp_max_f(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// ---- attention -------------------------------------------------------------------

// Head is one warp's query head: its scaled query and online-softmax state.
// Lane i holds pairs i, i+32, … (dims 2i, 2i+1, 2i+64, …).
template <int HS> struct Head {
  static constexpr int NP = (HS / 2 + 31) / 32;  // pairs per lane
  float2 q[NP];
  float2 o[NP];
  float m, l;
};

// attend folds keys [lo, hi) of row r into head st (KV head g). Keys whose
// block-table entry is outside the cache are skipped (check_meta reports
// them).
template <typename T, int HS>
__device__ void attend(const T* k_cache, const T* v_cache, const int* tables, const PagedAttentionParams& p, int g,
                       const Row& r, int lo, int hi, Head<HS>& st) {
  constexpr int NP = Head<HS>::NP;
  const int lane = threadIdx.x % 32;
  const bool capped = p.Softcap > 0.0f;
  const float cap_inv = capped ? 1.0f / p.Softcap : 0.0f, cap_mul = p.Softcap * LOG2E;
  const int* table = tables + (u64)r.seq * p.MaxBlocksPerSeq;
  for (int k0 = lo; k0 < hi; k0 += 32) {
    // Lane j finds the row of key k0 + j.
    const int key = k0 + lane;
    u64 row = 0;
    bool valid = key < hi;
    if (valid) {
      const int e = table[key / p.BlockSize];
      valid = e >= 0 && e < p.NumBlocks;
      row = (((u64)e * p.BlockSize + key % p.BlockSize) * p.NumKVHeads + g) * HS;
    }
    // Scores: key j's dot product is summed across the warp and kept by
    // lane j. Unrolling by 8 keeps 8 rows' loads in flight.
    float s = 0.0f;
#pragma unroll 8
    for (int j = 0; j < 32; j++) {
      const u64 rj = __shfl_sync(0xffffffffu, row, j);
      const bool vj = __shfl_sync(0xffffffffu, valid, j);
      float acc = 0.0f;
      if (vj) {
#pragma unroll
        for (int i = 0; i < NP; i++) {
          const int pair = lane + 32 * i;
          if (pair < HS / 2) {
            const float2 kv = load_pair(k_cache, rj + 2 * pair);
            acc += st.q[i].x * kv.x + st.q[i].y * kv.y;
          }
        }
      }
      acc = warp_sum(acc);
      if (lane == j) s = acc;
    }
    if (capped) s = tanhf(s * cap_inv) * cap_mul;
    if (!valid) s = -LOOM_INF;
    const float m_new = fmaxf(st.m, warp_max_f(s));
    if (m_new == -LOOM_INF) continue;  // no visible key yet
    const float c = exp2f(st.m - m_new);  // 0 while m is −∞
    const float pr = valid ? exp2f(s - m_new) : 0.0f;
    st.l = st.l * c + warp_sum(pr);
    st.m = m_new;
#pragma unroll
    for (int i = 0; i < NP; i++) {
      st.o[i].x *= c;
      st.o[i].y *= c;
    }
#pragma unroll 8
    for (int j = 0; j < 32; j++) {
      const float pj = __shfl_sync(0xffffffffu, pr, j);
      const u64 rj = __shfl_sync(0xffffffffu, row, j);
      if (pj != 0.0f) {
#pragma unroll
        for (int i = 0; i < NP; i++) {
          const int pair = lane + 32 * i;
          if (pair < HS / 2) {
            const float2 vv = load_pair(v_cache, rj + 2 * pair);
            st.o[i].x += pj * vv.x;
            st.o[i].y += pj * vv.y;
          }
        }
      }
    }
  }
}

// load_head loads query head h of token t, scaled into log2 units (without
// softcap: with it, the log2 factor comes after the tanh).
template <typename T, int HS> __device__ void load_head(const T* q, const PagedAttentionParams& p, int t, int h, Head<HS>& st) {
  const int lane = threadIdx.x % 32;
  const float scale = p.Softcap > 0.0f ? p.Scale : p.Scale * LOG2E;
  const u64 base = ((u64)t * p.NumHeads + h) * HS;
#pragma unroll
  for (int i = 0; i < Head<HS>::NP; i++) {
    const int pair = lane + 32 * i;
    float2 v = make_float2(0.0f, 0.0f);
    if (pair < HS / 2) {
      v = load_pair(q, base + 2 * pair);
      v.x *= scale;
      v.y *= scale;
    }
    st.q[i] = v;
    st.o[i] = make_float2(0.0f, 0.0f);
  }
  st.m = -LOOM_INF;
  st.l = 0.0f;
}

// attention: the single pass (PARTS false: every visible key, normalised
// output with the sinks folded in) or the split path's partition kernel
// (PARTS true: the keys of partition blockIdx.z, written as max, sum and
// normalised output to the scratch).
template <typename T, int HS, bool PARTS>
__device__ __noinline__ void attention(const T* q, const T* k_cache, const T* v_cache, const int* tables, const int* seq_lens,
                          const int* cu, const float* sinks, T* out, float* max_logits, float* exp_sums, T* tmp_out,
                          const PagedAttentionParams& p, Status* status) {
  if (first_block()) check_meta(tables, seq_lens, cu, p, ARG_SEQ_LENS, ARG_CU, status);
  const int g = blockIdx.x, t = blockIdx.y, part = blockIdx.z;
  const int lane = threadIdx.x % 32, warps = blockDim.x / 32;
  const int group = p.NumHeads / p.NumKVHeads;
  const Row r = row_of(seq_lens, cu, p, t);
  int lo = r.lo, hi = r.hi;
  if (PARTS) {
    int first, last;
    partitions(r, p.PartitionSize, first, last);
    if (part < first || part >= last) return;  // the reduce skips this partition
    lo = max(lo, part * p.PartitionSize);
    hi = min(hi, (part + 1) * p.PartitionSize);
  }
  for (int j = threadIdx.x / 32; j < group; j += warps) {
    const int h = g * group + j;
    Head<HS> st;
    load_head(q, p, t, h, st);
    attend<T, HS>(k_cache, v_cache, tables, p, g, r, lo, hi, st);
    float scale;
    if (PARTS) {
      const u64 idx = ((u64)t * p.NumHeads + h) * p.NumPartitions + part;
      if (lane == 0) {
        max_logits[idx] = st.m;
        exp_sums[idx] = st.l;
      }
      scale = 1.0f / st.l;
#pragma unroll
      for (int i = 0; i < Head<HS>::NP; i++) {
        const int pair = lane + 32 * i;
        if (pair < HS / 2) store_pair(tmp_out, idx * HS + 2 * pair, st.o[i].x * scale, st.o[i].y * scale);
      }
      continue;
    }
    if (st.l == 0.0f) {
      scale = 0.0f;
    } else if (sinks != nullptr) {
      const float sink = sinks[h] * LOG2E, top = fmaxf(st.m, sink), c = exp2f(st.m - top);
      scale = c / (st.l * c + exp2f(sink - top));
    } else {
      scale = 1.0f / st.l;
    }
    const u64 base = ((u64)t * p.NumHeads + h) * HS;
#pragma unroll
    for (int i = 0; i < Head<HS>::NP; i++) {
      const int pair = lane + 32 * i;
      if (pair < HS / 2) store_pair(out, base + 2 * pair, st.o[i].x * scale, st.o[i].y * scale);
    }
  }
}

// reduce merges the partitions of row (t = blockIdx.y, h = blockIdx.x), one
// warp per row: with M the largest partition maximum (and sink),
// w_p = l_p·2^(m_p − M) and out = Σ w_p·tmp_out_p / (Σ w_p + 2^(sink − M)).
// A row without keys is zero; a single partition without sinks is copied.
template <typename T, int HS>
__device__ __noinline__ void reduce(const T* tmp_out, const float* max_logits, const float* exp_sums, const int* seq_lens, const int* cu,
                       const float* sinks, T* out, const PagedAttentionParams& p, Status* status) {
  if (first_block()) check_meta(nullptr, seq_lens, cu, p, 3, 4, status);
  constexpr int NP = Head<HS>::NP;
  const int h = blockIdx.x, t = blockIdx.y, lane = threadIdx.x % 32;
  if (threadIdx.x >= 32) return;
  const Row r = row_of(seq_lens, cu, p, t);
  int first, last;
  partitions(r, p.PartitionSize, first, last);
  last = min(last, p.NumPartitions);
  const u64 base = ((u64)t * p.NumHeads + h) * p.NumPartitions;
  const u64 dst = ((u64)t * p.NumHeads + h) * HS;
  float2 acc[NP];
  for (int i = 0; i < NP; i++) acc[i] = make_float2(0.0f, 0.0f);
  float scale = 0.0f;
  if (first < last && last - first == 1 && sinks == nullptr) {
    for (int i = 0; i < NP; i++) {
      const int pair = lane + 32 * i;
      if (pair < HS / 2) acc[i] = load_pair(tmp_out, (base + first) * HS + 2 * pair);
    }
    scale = 1.0f;
  } else if (first < last) {
    float top = sinks != nullptr ? sinks[h] * LOG2E : -LOOM_INF;
    for (int q = first; q < last; q++) top = fmaxf(top, max_logits[base + q]);
    float sum = 0.0f;
    for (int q = first; q < last; q++) {
      const float w = exp_sums[base + q] * exp2f(max_logits[base + q] - top);
      sum += w;
      for (int i = 0; i < NP; i++) {
        const int pair = lane + 32 * i;
        if (pair < HS / 2) {
          const float2 v = load_pair(tmp_out, (base + q) * HS + 2 * pair);
          acc[i].x += w * v.x;
          acc[i].y += w * v.y;
        }
      }
    }
    if (sinks != nullptr) sum += exp2f(sinks[h] * LOG2E - top);
    scale = 1.0f / sum;
  }
  for (int i = 0; i < NP; i++) {
    const int pair = lane + 32 * i;
    if (pair < HS / 2) store_pair(out, dst + 2 * pair, acc[i].x * scale, acc[i].y * scale);
  }
}

#define ATTENTION_KERNELS(SHORT, T, HS, BS)                                                                      \
  extern "C" __global__ void paged_attention_##SHORT##_hs##HS##_bs##BS(                                         \
      const T* q, const T* k_cache, const T* v_cache, const int* block_tables, const int* seq_lens,             \
      const int* cu_seqlens_q, T* out, const PagedAttentionParams p, Status* status) {                          \
    attention<T, HS, false>(q, k_cache, v_cache, block_tables, seq_lens, cu_seqlens_q, nullptr, out,        \
                                nullptr, nullptr, nullptr, p, status);                                          \
  }                                                                                                             \
  extern "C" __global__ void paged_attention_##SHORT##_hs##HS##_bs##BS##_sinks(                                 \
      const T* q, const T* k_cache, const T* v_cache, const int* block_tables, const int* seq_lens,             \
      const int* cu_seqlens_q, const float* sinks, T* out, const PagedAttentionParams p, Status* status) {       \
    attention<T, HS, false>(q, k_cache, v_cache, block_tables, seq_lens, cu_seqlens_q, sinks, out, nullptr, \
                                nullptr, nullptr, p, status);                                                   \
  }                                                                                                             \
  extern "C" __global__ void paged_attention_partition_##SHORT##_hs##HS##_bs##BS(                               \
      const T* q, const T* k_cache, const T* v_cache, const int* block_tables, const int* seq_lens,             \
      const int* cu_seqlens_q, float* max_logits, float* exp_sums, T* tmp_out, const PagedAttentionParams p,    \
      Status* status) {                                                                                         \
    attention<T, HS, true>(q, k_cache, v_cache, block_tables, seq_lens, cu_seqlens_q, nullptr, nullptr,     \
                               max_logits, exp_sums, tmp_out, p, status);                                       \
  }

#define REDUCE_KERNELS(SHORT, T, HS)                                                                             \
  extern "C" __global__ void paged_attention_reduce_##SHORT##_hs##HS(                                           \
      const T* tmp_out, const float* max_logits, const float* exp_sums, const int* seq_lens,                    \
      const int* cu_seqlens_q, T* out, const PagedAttentionParams p, Status* status) {                          \
    reduce<T, HS>(tmp_out, max_logits, exp_sums, seq_lens, cu_seqlens_q, nullptr, out, p, status);              \
  }                                                                                                             \
  extern "C" __global__ void paged_attention_reduce_##SHORT##_hs##HS##_sinks(                                   \
      const T* tmp_out, const float* max_logits, const float* exp_sums, const int* seq_lens,                    \
      const int* cu_seqlens_q, const float* sinks, T* out, const PagedAttentionParams p, Status* status) {       \
    reduce<T, HS>(tmp_out, max_logits, exp_sums, seq_lens, cu_seqlens_q, sinks, out, p, status);                \
  }

#define ATTENTION_HS(SHORT, T, HS) \
  ATTENTION_KERNELS(SHORT, T, HS, 8) ATTENTION_KERNELS(SHORT, T, HS, 16) ATTENTION_KERNELS(SHORT, T, HS, 32) REDUCE_KERNELS(SHORT, T, HS)
#define ATTENTION_DTYPE(SHORT, T) \
  ATTENTION_HS(SHORT, T, 64) ATTENTION_HS(SHORT, T, 80) ATTENTION_HS(SHORT, T, 96) ATTENTION_HS(SHORT, T, 128) ATTENTION_HS(SHORT, T, 256)
LOOM_FLOATS(ATTENTION_DTYPE)

// ---- KV write ----------------------------------------------------------------------

// kv_write: block t copies token t's K and V rows into slot slot_mapping[t]
// (a negative slot is padding, skipped), as raw bits. Every block checks
// every slot's range first, so a slot past the cache writes nothing at all.
// A slot used twice is reported at its second use (naming the first) and
// neither token writes it; the other tokens' rows are written — unlike the
// CPU device, which writes nothing then, as that would take a scan of all
// pairs of slots in every block.
template <typename T, typename S>
__device__ void kv_write(T* k_cache, T* v_cache, const T* key, const T* value, const S* slot_mapping,
                         const KVWriteParams& p, Status* status) {
  const int t = blockIdx.x;
  const i64 mine = slot_mapping[t];
  __shared__ int skip;
  if (threadIdx.x == 0) skip = 0;
  __syncthreads();
  for (int i = threadIdx.x; i < p.NumTokens; i += blockDim.x) {
    const i64 s = slot_mapping[i];
    if (s >= p.NumSlots) skip = 1;
    if (mine >= 0 && i != t && s == mine) {
      skip = 1;
      if (i < t) report_status(status, LOOM_SLOT_DUP, 4, t, t, mine, i);
    }
  }
  if (threadIdx.x == 0 && mine >= p.NumSlots) report_status(status, LOOM_SLOT_RANGE, 4, t, t, mine, p.NumSlots);
  __syncthreads();
  if (skip || mine < 0) return;
  const u64 row = (u64)p.KVHeads * p.HeadSize;
  for (u64 e = threadIdx.x; e < row; e += blockDim.x) {
    k_cache[(u64)mine * row + e] = key[(u64)t * row + e];
    v_cache[(u64)mine * row + e] = value[(u64)t * row + e];
  }
}

#define KV_WRITE_KERNEL(SHORT, T, SS, S)                                                                      \
  extern "C" __global__ void kv_write_##SHORT##_##SS(T* k_cache, T* v_cache, const T* key, const T* value,    \
                                                     const S* slot_mapping, const KVWriteParams p,            \
                                                     Status* status) {                                        \
    kv_write(k_cache, v_cache, key, value, slot_mapping, p, status);                                          \
  }
#define KV_WRITE(SHORT, T) KV_WRITE_KERNEL(SHORT, T, i32, int) KV_WRITE_KERNEL(SHORT, T, i64, i64)
LOOM_FLOATS(KV_WRITE)

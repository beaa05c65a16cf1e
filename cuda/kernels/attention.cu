// Paged attention over a KV cache laid out [num_blocks, block_size, kv_heads,
// head_size] (one token's head vector contiguous), and the KV write that
// fills it. See primitives/attention.go for the masking rules.
//
// A block serves one KV head g = blockIdx.x of one query token t =
// blockIdx.y (and, on the split path, one partition blockIdx.z of its
// keys) with LOOM_ATTENTION_WARPS warps (primitives.AttentionWarps), which
// take the row's chunks of CHUNK (8) keys in turn, each warp for every
// query head of g's group: every K and V row comes from memory once, for
// all the heads that read it (GQA-shared). A warp reads a chunk's K and V
// rows with 16-byte loads by groups of lanes, all in flight together (see
// attend), with an online softmax in log2 units across its chunks; then
// the warps' states merge in warp order. The split of the keys over the
// warps and partitions depends on the row alone, so a row's result does
// not depend on the batch it is in. On the split path the last of a row's
// partition blocks to finish merges the row's partitions, in partition
// order (see attention).
//
// The kernels are specialised on the head size and on the heads of a pass
// (the registers a lane holds depend on them) but not on the block size,
// which only enters index arithmetic (p.BlockSize): one kernel here serves
// the catalog's kernels of every block size (see ATTENTION_SINGLE). The
// with/without-sinks and single/split kernels call one instantiation per
// pass size, kept out of line.
//
// The kernels also check the metadata the way the CPU device does
// (cu_seqlens_q, then seq_lens, then the block-table entries in use: block
// (0,0,0) the first two, every thread a share of the entries) and report
// the first problem. Every block guards its own reads, so
// bad metadata never make a kernel read or write outside its buffers.

// The status codes of metadata reports, ordered by key: cu_seqlens_q
// (entry i at key 2i, the final entry's mismatch at 2·NumSeqs+1), then
// seq_lens (key 2^40 + s), then block tables (key 2^41 + s·max_blocks + b).
#define KEY_SEQ_LENS (1ull << 40)
#define KEY_TABLES (1ull << 41)

// Argument indices of the metadata, shared by the attention kernels'
// signatures.
#define ARG_BLOCK_TABLES 3
#define ARG_SEQ_LENS 4
#define ARG_CU 5

// ---- metadata ------------------------------------------------------------------

// check_meta checks cu_seqlens_q and seq_lens, with all threads of the
// block.
__device__ void check_meta(const int* seq_lens, const int* cu, const PagedAttentionParams& p, u32 arg_seq_lens, u32 arg_cu,
                           Status* status) {
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
}

// check_tables checks the block-table entries each sequence uses, a share
// of them in every thread of the grid: one block checking them all took
// longer than the rest of a long decode's attention (a sequential loop of
// dependent loads, 16 Ki entries at B = 32 and 8 Ki keys). Which block
// reports an entry does not matter: the smallest key is kept.
__device__ void check_tables(const int* tables, const int* seq_lens, const PagedAttentionParams& p, Status* status) {
  const u64 threads = (u64)gridDim.x * gridDim.y * gridDim.z * blockDim.x;
  const u64 first = (((u64)blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x) * blockDim.x + threadIdx.x;
  const u64 entries = (u64)p.NumSeqs * p.MaxBlocksPerSeq;
  const i64 max_keys = (i64)p.MaxBlocksPerSeq * p.BlockSize;
  for (u64 entry = first; entry < entries; entry += threads) {
    const int s = (int)(entry / p.MaxBlocksPerSeq), b = (int)(entry % p.MaxBlocksPerSeq);
    const int len = seq_lens[s];
    if (len < 0 || len > p.MaxSeqLen || len > max_keys) continue;  // reported by check_meta; its entries are not read
    if ((i64)b * p.BlockSize >= len) continue;                      // not in use
    const int e = tables[entry];
    if (e < 0 || e >= p.NumBlocks) report_status(status, LOOM_BLOCK_TABLE, ARG_BLOCK_TABLES, KEY_TABLES + entry, (u32)entry, e, len);
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

// partitions returns the partitions [first, last) holding row r's keys and
// their size (primitives.AttentionPartitionKeys: p.PartitionSize keys, or
// the least multiple of it that makes at most p.NumPartitions partitions
// of the row), which depends on the row alone.
__device__ __forceinline__ void partitions(const Row& r, const PagedAttentionParams& p, int& size, int& first, int& last) {
  const i64 span = (i64)p.PartitionSize * max(p.NumPartitions, 1);
  size = p.PartitionSize * (int)max((i64)1, ((i64)r.hi + span - 1) / span);
  if (r.lo >= r.hi) {
    first = last = 0;
    return;
  }
  first = r.lo / size;
  last = min((r.hi + size - 1) / size, p.NumPartitions);
}

// ---- pairs of elements ---------------------------------------------------------

// load_pair reads elements i and i+1 (i even, rows of even length) as
// floats, from the L2 cache (ld.global.cg): the merge reads what other
// blocks of the grid wrote, which a multiprocessor's L1 may hold stale.
__device__ __forceinline__ float2 load_pair(const float* p, u64 i) { return __ldcg((const float2*)(p + i)); }
__device__ __forceinline__ float2 load_pair(const half_t* p, u64 i) {
  const u32 w = __ldcg((const unsigned int*)(p + i));
  return make_float2(f16_to_f32((u16)(w & 0xffffu)), f16_to_f32((u16)(w >> 16)));
}
__device__ __forceinline__ float2 load_pair(const bf16_t* p, u64 i) {
  const u32 w = __ldcg((const unsigned int*)(p + i));
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

// ATTENTION_BLOCKS_<HS> is the blocks of a kernel of head size HS that its
// launch bounds ask to fit on a multiprocessor (ATTENTION_BOUNDS): for
// head sizes up to 128 LOOM_ATTENTION_BLOCKS, 2 unless
// LOOM_CUDA_ATTENTION_BLOCKS sets it (cuda/variants.go), which caps them at
// 128 registers a thread so that one block's fixed latencies (its row,
// slots, count and merge) overlap the other's loads: on an H100 the long
// decode cases went from 0.917 to 0.590 ms and decode-typical from 0.110
// to 0.073 (docs/BENCHMARKS.md). The passes of 4 heads then spill (96
// bytes a thread for a bfloat16 row of 128); 1 block (162 registers) does
// not. Larger heads keep 1 block: their rows need the registers.
// (One constant a head size: the launch bounds must read as plain
// numbers, without parentheses, for cuda/signature.go.)
#ifndef LOOM_ATTENTION_BLOCKS
#define LOOM_ATTENTION_BLOCKS 2
#endif
#define ATTENTION_BLOCKS_64 LOOM_ATTENTION_BLOCKS
#define ATTENTION_BLOCKS_80 LOOM_ATTENTION_BLOCKS
#define ATTENTION_BLOCKS_96 LOOM_ATTENTION_BLOCKS
#define ATTENTION_BLOCKS_128 LOOM_ATTENTION_BLOCKS
#define ATTENTION_BLOCKS_256 1

// CHUNK is the keys a warp takes at a time: the warps of a block take a
// partition's chunks in turn, so that a partition of 64 keys (the CUDA
// device's, primitives.Caps.Partitions) keeps all 8 warps busy.
#define CHUNK 8

// Rows<T, HS> is how a warp spreads a cache row (one key's head vector,
// HS·sizeof(T) bytes, a multiple of 16) over its lanes: LANES lanes, a
// power of two, hold one row, 16 bytes (VEC elements) per load and NV loads
// each, so a warp reads KEYS rows at once, each a contiguous run, and a
// chunk in STEPS such loads. Lane i of a group holds vectors i, i + LANES,
// …; lanes past the row's NVEC vectors (head sizes 80 and 96) idle. The
// vector loads need 16-byte aligned rows: the caches are whole buffers
// from cuMemAlloc (256-byte aligned) and every row is a whole number of
// vectors.
template <typename T, int HS> struct Rows {
  static constexpr int VEC = 16 / (int)sizeof(T);
  static constexpr int NVEC = HS / VEC;
  static constexpr int LANES = NVEC > 16 ? 32 : NVEC > 8 ? 16 : NVEC > 4 ? 8 : NVEC > 2 ? 4 : NVEC > 1 ? 2 : 1;
  static constexpr int NV = (NVEC + LANES - 1) / LANES;
  static constexpr int KEYS = 32 / LANES;
  static constexpr int STEPS = CHUNK / KEYS;
  static_assert(HS * (int)sizeof(T) % 16 == 0, "rows must be whole 16-byte vectors");
  static_assert(CHUNK % KEYS == 0 && STEPS <= LANES, "a chunk must be whole steps, a score a lane");
};

// widen turns a 16-byte vector of T into floats. float16 converts in
// hardware (a NaN stays a NaN, its payload aside: only arithmetic follows).
__device__ __forceinline__ void widen(const uint4& w, float* f, const float*) {
  f[0] = __uint_as_float(w.x);
  f[1] = __uint_as_float(w.y);
  f[2] = __uint_as_float(w.z);
  f[3] = __uint_as_float(w.w);
}
__device__ __forceinline__ void widen2(u32 w, float* f, const half_t*) {
  asm("cvt.f32.f16 %0, %1;" : "=f"(f[0]) : "h"((u16)(w & 0xffffu)));
  asm("cvt.f32.f16 %0, %1;" : "=f"(f[1]) : "h"((u16)(w >> 16)));
}
__device__ __forceinline__ void widen2(u32 w, float* f, const bf16_t*) {
  f[0] = __uint_as_float(w << 16);
  f[1] = __uint_as_float(w & 0xffff0000u);
}
template <typename T> __device__ __forceinline__ void widen(const uint4& w, float* f, const T* tag) {
  widen2(w.x, f, tag);
  widen2(w.y, f + 2, tag);
  widen2(w.z, f + 4, tag);
  widen2(w.w, f + 6, tag);
}

// Heads is one warp's share of a pass over GH query heads of a KV head's
// group: their scaled queries and online-softmax states, for the dims of
// the lane's vectors (Rows). Heads of the pass past the group's (odd
// ratios) have zero queries; their results are not written.
template <typename T, int HS, int GH> struct Heads {
  typedef Rows<T, HS> R;
  float q[GH][R::NV][R::VEC];
  float o[GH][R::NV][R::VEC];
  float m[GH], l[GH];
};

// slot_of returns the cache slot of key (−1 if key ≥ hi or its block-table
// entry is outside the cache).
__device__ __forceinline__ i64 slot_of(const int* table, const PagedAttentionParams& p, int key, int hi) {
  if (key >= hi) return -1;
  const int e = table[key / p.BlockSize];
  if (e < 0 || e >= p.NumBlocks) return -1;
  return (i64)e * p.BlockSize + key % p.BlockSize;
}

// load_rows loads the rows of a chunk's keys from cache (K or V) into
// rows: at step i, group s of LANES lanes reads the row of the key whose
// slot lane s·LANES + i holds (none where that slot is −1), all steps'
// loads issued before any is used.
template <typename T, int HS>
__device__ __forceinline__ void load_rows(const T* cache, i64 slot, u64 head, u64 stride,
                                          uint4 (&rows)[Rows<T, HS>::STEPS][Rows<T, HS>::NV]) {
  typedef Rows<T, HS> R;
  const int li = threadIdx.x % 32 % R::LANES;
#pragma unroll
  for (int i = 0; i < R::STEPS; i++) {
    const i64 sl = __shfl_sync(0xffffffffu, slot, i, R::LANES);
#pragma unroll
    for (int v = 0; v < R::NV; v++) {
      const int vi = v * R::LANES + li;
      rows[i][v] = make_uint4(0u, 0u, 0u, 0u);
      if (sl >= 0 && vi < R::NVEC) rows[i][v] = *(const uint4*)(cache + (u64)sl * stride + head + (u64)vi * R::VEC);
    }
  }
}

// attend folds this warp's keys of [lo, hi) of row r (KV head g) into the
// GH heads of st: the chunks of CHUNK keys lo + CHUNK·c for c = warp,
// warp + W, … (W warps in the block), so that every K and V row is read
// once, by one warp, for all query heads of its group. Group s of LANES
// lanes takes key s·STEPS + i of the chunk at step i, and lane s·LANES + i
// finds its cache slot and keeps its scores (lanes with i ≥ STEPS hold no
// key). The rows are widened once and dotted with each head's query, each
// dot product summed within the group. The online softmax runs on the
// warp with one score per lane and head (running maximum m and sum l, in
// log2 units: q is scaled by Scale·log2(e) when it is loaded, so every
// exponential is an exp2). The values go the same way, each lane adding
// p_key · V_key to each head's dims it holds, and the groups' sums are
// added at the end. Keys whose block-table entry is outside the cache are
// skipped (check_meta reports them). Which keys a warp takes and the order
// it takes them in depend on the row alone, never on the grid: a row's
// result is the same in any batch.
template <typename T, int HS, int GH>
__device__ void attend(const T* k_cache, const T* v_cache, const int* tables, const PagedAttentionParams& p, int g,
                       const Row& r, int lo, int hi, Heads<T, HS, GH>& st) {
  typedef Rows<T, HS> R;
  const unsigned FULL = 0xffffffffu;
  const int lane = threadIdx.x % 32, li = lane % R::LANES;
  const int warp = threadIdx.x / 32, warps = blockDim.x / 32;
  const bool capped = p.Softcap > 0.0f;
  const float cap_inv = capped ? 1.0f / p.Softcap : 0.0f, cap_mul = p.Softcap * LOG2E;
  const int* table = tables + (u64)r.seq * p.MaxBlocksPerSeq;
  const u64 head = (u64)g * HS;
  const u64 stride = (u64)p.NumKVHeads * HS;
  const int key = (lane / R::LANES) * R::STEPS + li;  // this lane's key of a chunk, if li < STEPS
  const int step = CHUNK * warps;
  // The chunk's V rows load with its K rows (one memory latency a chunk,
  // not two) where the registers allow: up to 8 loads a lane of each under
  // 128 registers (two blocks, ATTENTION_BLOCKS_*), 16 otherwise; else
  // after the scores.
  constexpr bool early_v = R::STEPS * R::NV * GH <= (HS <= 128 && LOOM_ATTENTION_BLOCKS > 1 ? 8 : 16);
  i64 next = li < R::STEPS ? slot_of(table, p, lo + CHUNK * warp + key, hi) : -1;
  for (int k0 = lo + CHUNK * warp; k0 < hi; k0 += step) {
    const i64 slot = next;
    uint4 kv[R::STEPS][R::NV], vv[R::STEPS][R::NV];
    load_rows<T, HS>(k_cache, slot, head, stride, kv);
    if constexpr (early_v) load_rows<T, HS>(v_cache, slot, head, stride, vv);
    // The next chunk's slots, looked up while this chunk's rows load.
    next = li < R::STEPS ? slot_of(table, p, k0 + step + key, hi) : -1;
    if (!__any_sync(FULL, slot >= 0)) continue;  // no visible key in this chunk
    float s[GH];
#pragma unroll
    for (int j = 0; j < GH; j++) s[j] = 0.0f;
#pragma unroll
    for (int i = 0; i < R::STEPS; i++) {
      float f[R::NV][R::VEC];
#pragma unroll
      for (int v = 0; v < R::NV; v++) widen(kv[i][v], f[v], k_cache);
#pragma unroll
      for (int j = 0; j < GH; j++) {
        float acc = 0.0f;
#pragma unroll
        for (int v = 0; v < R::NV; v++) {
#pragma unroll
          for (int e = 0; e < R::VEC; e++) acc += st.q[j][v][e] * f[v][e];
        }
#pragma unroll
        for (int o = R::LANES / 2; o > 0; o >>= 1) acc += __shfl_xor_sync(FULL, acc, o);
        if (i == li) s[j] = acc;
      }
    }
    if constexpr (!early_v) load_rows<T, HS>(v_cache, slot, head, stride, vv);
    float pr[GH];
#pragma unroll
    for (int j = 0; j < GH; j++) {
      if (capped) s[j] = tanhf(s[j] * cap_inv) * cap_mul;
      if (slot < 0) s[j] = -LOOM_INF;
      const float m_new = fmaxf(st.m[j], warp_max_f(s[j]));
      const bool none = m_new == -LOOM_INF;  // no visible key yet
      const float c = none ? 1.0f : exp2f(st.m[j] - m_new);  // 0 while m is −∞
      pr[j] = none || slot < 0 ? 0.0f : exp2f(s[j] - m_new);
      st.l[j] = st.l[j] * c + warp_sum(pr[j]);
      if (!none) st.m[j] = m_new;
#pragma unroll
      for (int v = 0; v < R::NV; v++) {
#pragma unroll
        for (int e = 0; e < R::VEC; e++) st.o[j][v][e] *= c;
      }
    }
#pragma unroll
    for (int i = 0; i < R::STEPS; i++) {
      float f[R::NV][R::VEC];
#pragma unroll
      for (int v = 0; v < R::NV; v++) widen(vv[i][v], f[v], v_cache);
#pragma unroll
      for (int j = 0; j < GH; j++) {
        const float pj = __shfl_sync(FULL, pr[j], i, R::LANES);
#pragma unroll
        for (int v = 0; v < R::NV; v++) {
#pragma unroll
          for (int e = 0; e < R::VEC; e++) st.o[j][v][e] += pj * f[v][e];
        }
      }
    }
  }
  // Each group summed its own keys: add the groups' sums.
#pragma unroll
  for (int j = 0; j < GH; j++) {
#pragma unroll
    for (int v = 0; v < R::NV; v++) {
#pragma unroll
      for (int e = 0; e < R::VEC; e++) {
#pragma unroll
        for (int o = R::LANES; o < 32; o <<= 1) st.o[j][v][e] += __shfl_xor_sync(FULL, st.o[j][v][e], o);
      }
    }
  }
}

// load_heads loads query heads h0 … h0 + nh − 1 of token t into st, scaled
// into log2 units (without softcap: with it, the log2 factor comes after
// the tanh), and clears their states; heads past nh get zero queries.
template <typename T, int HS, int GH>
__device__ void load_heads(const T* q, const PagedAttentionParams& p, int t, int h0, int nh, Heads<T, HS, GH>& st) {
  typedef Rows<T, HS> R;
  const int li = threadIdx.x % 32 % R::LANES;
  const float scale = p.Softcap > 0.0f ? p.Scale : p.Scale * LOG2E;
#pragma unroll
  for (int j = 0; j < GH; j++) {
    const u64 base = ((u64)t * p.NumHeads + h0 + j) * HS;
#pragma unroll
    for (int v = 0; v < R::NV; v++) {
      const int vi = v * R::LANES + li;
#pragma unroll
      for (int e = 0; e < R::VEC; e++) {
        st.q[j][v][e] = j < nh && vi < R::NVEC ? load_f(q, base + (u64)vi * R::VEC + e) * scale : 0.0f;
        st.o[j][v][e] = 0.0f;
      }
    }
    st.m[j] = -LOOM_INF;
    st.l[j] = 0.0f;
  }
}

// Merge is the shared memory through which the block's warps merge their
// states of one head: a row of HS output dims, then m and l, per warp.
template <int HS> struct Merge {
  float row[LOOM_ATTENTION_WARPS][HS + 2];
};

// merge_rows merges partitions [first, last) of the rows of query token t
// and heads h0 … h0 + nh − 1 into out, with the whole block, a thread per
// pair of output dims: with M the largest partition maximum (and sink),
// w_p = l_p·2^(m_p − M) and out = Σ w_p·tmp_out_p / (Σ w_p + 2^(sink −
// M)), the partitions added in order. A thread loads the maxima, sums and
// pairs of MERGE_TILE partitions at once (one memory latency for the CUDA
// device's rows of at most 16 partitions), and rescales its sums to each
// later tile's maximum.
#define MERGE_TILE 16
template <typename T, int HS>
__device__ void merge_rows(const T* tmp_out, const float* max_logits, const float* exp_sums, const float* sinks, T* out,
                           const PagedAttentionParams& p, int t, int h0, int nh, int first, int last) {
  for (int i = threadIdx.x; i < nh * HS / 2; i += blockDim.x) {
    const int h = h0 + i / (HS / 2), pair = i % (HS / 2);
    const u64 base = ((u64)t * p.NumHeads + h) * p.NumPartitions;
    float top = sinks != nullptr ? sinks[h] * LOG2E : -LOOM_INF, sum = 0.0f;
    float2 acc = make_float2(0.0f, 0.0f);
    for (int q0 = first; q0 < last; q0 += MERGE_TILE) {
      float m[MERGE_TILE], l[MERGE_TILE];
      float2 v[MERGE_TILE];
#pragma unroll
      for (int k = 0; k < MERGE_TILE; k++) {
        m[k] = -LOOM_INF;
        l[k] = 0.0f;
        v[k] = make_float2(0.0f, 0.0f);
        if (q0 + k < last) {
          m[k] = __ldcg(max_logits + base + q0 + k);
          l[k] = __ldcg(exp_sums + base + q0 + k);
          v[k] = load_pair(tmp_out, (base + q0 + k) * HS + 2 * pair);
        }
      }
      float m_new = top;
#pragma unroll
      for (int k = 0; k < MERGE_TILE; k++) m_new = fmaxf(m_new, m[k]);
      const float c = m_new == top ? 1.0f : exp2f(top - m_new);
      sum *= c;
      acc.x *= c;
      acc.y *= c;
#pragma unroll
      for (int k = 0; k < MERGE_TILE; k++) {
        if (q0 + k >= last) break;
        const float w = l[k] * exp2f(m[k] - m_new);
        sum += w;
        acc.x += w * v[k].x;
        acc.y += w * v[k].y;
      }
      top = m_new;
    }
    if (sinks != nullptr) sum += exp2f(sinks[h] * LOG2E - top);
    const float scale = 1.0f / sum;
    store_pair(out, ((u64)t * p.NumHeads + h) * HS + 2 * pair, acc.x * scale, acc.y * scale);
  }
}

// attention: the single pass (parts false: every visible key, normalised
// output with the sinks folded in) or the split path (parts true: the keys
// of the row's partition blockIdx.z, see partitions), for the query heads
// of KV head blockIdx.x in passes of GH. After a pass each head's W warp
// states merge through shared memory, in warp order, one output dim a
// thread: with M the largest maximum, l = Σ l_w·2^(m_w − M) and o = Σ
// o_w·2^(m_w − M); a warp without keys (m = −∞) adds nothing.
//
// On the split path a block whose partition holds none of the row's keys
// returns (block 0 of a row without keys writes its zeros), and a row of
// one partition is written as the single pass writes it. Otherwise a block
// writes its partition's maximum, sum and normalised output to the
// scratch, counts itself in counters[t·NumKVHeads + g] (after a fence that
// publishes its partials), and the block that counts last of the row's
// partitions merges them (merge_rows) and sets the counter back to zero, so
// that the next launch, which the stream runs after this one, finds it zero
// (primitives.Lowering.NewZeroedScratch). Which block merges depends on
// timing; what it computes does not.
template <typename T, int HS, int GH>
__device__ __noinline__ void attention(bool parts, const T* q, const T* k_cache, const T* v_cache, const int* tables,
                                       const int* seq_lens, const int* cu, const float* sinks, T* out, float* max_logits,
                                       float* exp_sums, T* tmp_out, u32* counters, const PagedAttentionParams& p,
                                       Status* status) {
  typedef Rows<T, HS> R;
  __shared__ Merge<HS> merge;
  __shared__ bool merges;
  if (first_block()) check_meta(seq_lens, cu, p, ARG_SEQ_LENS, ARG_CU, status);
  check_tables(tables, seq_lens, p, status);
  const int g = blockIdx.x, t = blockIdx.y, part = blockIdx.z;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  const int group = p.NumHeads / p.NumKVHeads;
  const Row r = row_of(seq_lens, cu, p, t);
  int lo = r.lo, hi = r.hi, first = 0, last = 0;
  if (parts) {
    int size;
    partitions(r, p, size, first, last);
    if (first >= last) {  // no keys: zeros
      const u64 dst = ((u64)t * p.NumHeads + (u64)g * group) * HS;
      for (int i = threadIdx.x; part == 0 && i < group * HS; i += blockDim.x) store_f(out, dst + i, 0.0f);
      return;
    }
    if (part < first || part >= last) return;
    lo = max(lo, part * size);
    hi = min(hi, (part + 1) * size);
  }
  const bool partial = parts && last - first > 1;  // written to the scratch, then merged
  for (int j0 = 0; j0 < group; j0 += GH) {
    const int h0 = g * group + j0, nh = min(GH, group - j0);
    Heads<T, HS, GH> st;
    load_heads(q, p, t, h0, nh, st);
    attend<T, HS, GH>(k_cache, v_cache, tables, p, g, r, lo, hi, st);
#pragma unroll
    for (int j = 0; j < GH; j++) {
      if (j >= nh) break;
      float* mine = merge.row[warp];
      if (lane < R::LANES) {
#pragma unroll
        for (int v = 0; v < R::NV; v++) {
          const int vi = v * R::LANES + lane;
          if (vi >= R::NVEC) continue;
#pragma unroll
          for (int e = 0; e < R::VEC; e++) mine[vi * R::VEC + e] = st.o[j][v][e];
        }
      }
      if (lane == 0) {
        mine[HS] = st.m[j];
        mine[HS + 1] = st.l[j];
      }
      __syncthreads();
      const int h = h0 + j;
      float top = -LOOM_INF;
      for (int w = 0; w < warps; w++) top = fmaxf(top, merge.row[w][HS]);
      float l = 0.0f;
      if (top != -LOOM_INF) {
        for (int w = 0; w < warps; w++) {
          if (merge.row[w][HS] != -LOOM_INF) l += merge.row[w][HS + 1] * exp2f(merge.row[w][HS] - top);
        }
      }
      float scale;
      u64 dst;
      if (partial) {
        const u64 idx = ((u64)t * p.NumHeads + h) * p.NumPartitions + part;
        if (threadIdx.x == 0) {
          max_logits[idx] = top;
          exp_sums[idx] = l;
        }
        scale = 1.0f / l;
        dst = idx * HS;
      } else {
        if (l == 0.0f) {
          scale = 0.0f;
        } else if (sinks != nullptr) {
          const float sink = sinks[h] * LOG2E, m = fmaxf(top, sink), c = exp2f(top - m);
          scale = c / (l * c + exp2f(sink - m));
        } else {
          scale = 1.0f / l;
        }
        dst = ((u64)t * p.NumHeads + h) * HS;
      }
      for (int d = threadIdx.x; d < HS; d += blockDim.x) {
        float o = 0.0f;
        if (top != -LOOM_INF) {
          for (int w = 0; w < warps; w++) {
            if (merge.row[w][HS] != -LOOM_INF) o += merge.row[w][d] * exp2f(merge.row[w][HS] - top);
          }
        }
        store_f(partial ? tmp_out : out, dst + d, o * scale);
      }
      __syncthreads();  // the next head may overwrite the rows
    }
  }
  if (!partial) return;
  __threadfence();  // this block's partials, before it counts
  __syncthreads();
  if (threadIdx.x == 0) {
    u32* count = counters + (u64)t * p.NumKVHeads + g;
    merges = atomicAdd(count, 1u) == (u32)(last - first - 1);
    if (merges) *count = 0u;  // every partition of the row has counted
  }
  __syncthreads();
  if (!merges) return;
  __threadfence();  // the other blocks' partials, after their counts
  merge_rows<T, HS>(tmp_out, max_logits, exp_sums, sinks, out, p, t, g * group, group, first, last);
}

// attention_group runs attention with the smallest pass of heads that
// holds the group (an odd ratio rounds up), or passes of 4 for larger
// groups, which then read their K and V rows again, mostly from the L2
// cache: a pass's state takes registers in proportion to its heads, and
// the compile time grows with the passes instantiated.
template <typename T, int HS>
__device__ __forceinline__ void attention_group(bool parts, const T* q, const T* k_cache, const T* v_cache, const int* tables,
                                                const int* seq_lens, const int* cu, const float* sinks, T* out,
                                                float* max_logits, float* exp_sums, T* tmp_out, u32* counters,
                                                const PagedAttentionParams& p, Status* status) {
  const int group = p.NumKVHeads > 0 ? p.NumHeads / p.NumKVHeads : 1;
  if (group <= 1) {
    attention<T, HS, 1>(parts, q, k_cache, v_cache, tables, seq_lens, cu, sinks, out, max_logits, exp_sums, tmp_out, counters, p, status);
  } else if (group == 2) {
    attention<T, HS, 2>(parts, q, k_cache, v_cache, tables, seq_lens, cu, sinks, out, max_logits, exp_sums, tmp_out, counters, p, status);
  } else {
    attention<T, HS, 4>(parts, q, k_cache, v_cache, tables, seq_lens, cu, sinks, out, max_logits, exp_sums, tmp_out, counters, p, status);
  }
}

// Each macro below defines one kernel of a dtype and head size, named like
// its catalog kernels less the block size (paged_attention_bf16_hs128 for
// paged_attention_bf16_hs128_bs8, _bs16 and _bs32; cuda/variants.go maps
// the names): three identical copies of a kernel took three times the
// NVRTC time and cubin (the out-of-line attention is compiled into each
// kernel that calls it).

#define ATTENTION_BOUNDS(HS) __launch_bounds__(32 * LOOM_ATTENTION_WARPS, ATTENTION_BLOCKS_##HS)

#define ATTENTION_SINGLE(SHORT, T, HS)                                                                           \
  extern "C" __global__ void ATTENTION_BOUNDS(HS) paged_attention_##SHORT##_hs##HS(                                                   \
      const T* q, const T* k_cache, const T* v_cache, const int* block_tables, const int* seq_lens,              \
      const int* cu_seqlens_q, T* out, const PagedAttentionParams p, Status* status) {                           \
    grid_dependency_wait();                                                                                      \
    attention_group<T, HS>(false, q, k_cache, v_cache, block_tables, seq_lens, cu_seqlens_q, nullptr, out,       \
                           nullptr, nullptr, nullptr, nullptr, p, status);                                       \
  }

#define ATTENTION_SINGLE_SINKS(SHORT, T, HS)                                                                     \
  extern "C" __global__ void ATTENTION_BOUNDS(HS) paged_attention_##SHORT##_hs##HS##_sinks(                                           \
      const T* q, const T* k_cache, const T* v_cache, const int* block_tables, const int* seq_lens,              \
      const int* cu_seqlens_q, const float* sinks, T* out, const PagedAttentionParams p, Status* status) {       \
    grid_dependency_wait();                                                                                      \
    attention_group<T, HS>(false, q, k_cache, v_cache, block_tables, seq_lens, cu_seqlens_q, sinks, out, nullptr, \
                           nullptr, nullptr, nullptr, p, status);                                                \
  }

#define ATTENTION_SPLIT(SHORT, T, HS)                                                                            \
  extern "C" __global__ void ATTENTION_BOUNDS(HS) paged_attention_split_##SHORT##_hs##HS(                                             \
      const T* q, const T* k_cache, const T* v_cache, const int* block_tables, const int* seq_lens,              \
      const int* cu_seqlens_q, float* max_logits, float* exp_sums, T* tmp_out, u32* counters, T* out,            \
      const PagedAttentionParams p, Status* status) {                                                            \
    grid_dependency_wait();                                                                                      \
    attention_group<T, HS>(true, q, k_cache, v_cache, block_tables, seq_lens, cu_seqlens_q, nullptr, out,        \
                           max_logits, exp_sums, tmp_out, counters, p, status);                                  \
  }

#define ATTENTION_SPLIT_SINKS(SHORT, T, HS)                                                                      \
  extern "C" __global__ void ATTENTION_BOUNDS(HS) paged_attention_split_##SHORT##_hs##HS##_sinks(                                     \
      const T* q, const T* k_cache, const T* v_cache, const int* block_tables, const int* seq_lens,              \
      const int* cu_seqlens_q, const float* sinks, float* max_logits, float* exp_sums, T* tmp_out,               \
      u32* counters, T* out, const PagedAttentionParams p, Status* status) {                                     \
    grid_dependency_wait();                                                                                      \
    attention_group<T, HS>(true, q, k_cache, v_cache, block_tables, seq_lens, cu_seqlens_q, sinks, out,          \
                           max_logits, exp_sums, tmp_out, counters, p, status);                                  \
  }

// The attention kernels are compiled one at a time, each for one dtype and
// head size, when a dispatch first needs it (a variant: cuda/variants.go):
// all of them, 45 instantiations of attention in 60 kernels, take NVRTC
// minutes. A variant's program defines LOOM_ATTENTION_KERNEL (one of the
// macros above), LOOM_ATTENTION_DTYPE (the kernel names' dtype, such as
// bf16) and LOOM_ATTENTION_HS, and holds that kernel alone; without them
// the file holds the KV write kernels, compiled when the device opens.
// (ATTENTION_VARIANT expands the macros before the kernel's macro pastes
// them into its name.)
#ifdef LOOM_ATTENTION_KERNEL
#define ATTENTION_VARIANT(KERNEL, SHORT, T, HS) KERNEL(SHORT, T, HS)
ATTENTION_VARIANT(LOOM_ATTENTION_KERNEL, LOOM_ATTENTION_DTYPE, LOOM_T(LOOM_ATTENTION_DTYPE), LOOM_ATTENTION_HS)
#endif

// ---- KV write ----------------------------------------------------------------------

// kv_write: block t copies token t's K and V rows into slot slot_mapping[t]
// as raw bits, if kv_slot lets it.
template <typename T, typename S>
__device__ void kv_write(T* k_cache, T* v_cache, const T* key, const T* value, const S* slot_mapping,
                         const KVWriteParams& p, Status* status) {
  const int t = blockIdx.x;
  const i64 slot = kv_slot(slot_mapping, p.NumTokens, p.NumSlots, t, 4, true, status);
  if (slot < 0) return;
  const u64 row = (u64)p.KVHeads * p.HeadSize;
  for (u64 e = threadIdx.x; e < row; e += blockDim.x) {
    k_cache[(u64)slot * row + e] = key[(u64)t * row + e];
    v_cache[(u64)slot * row + e] = value[(u64)t * row + e];
  }
}

#define KV_WRITE_KERNEL(SHORT, T, SS, S)                                                                      \
  extern "C" __global__ void kv_write_##SHORT##_##SS(T* k_cache, T* v_cache, const T* key, const T* value,    \
                                                     const S* slot_mapping, const KVWriteParams p,            \
                                                     Status* status) {                                        \
    grid_dependency_wait();                                                                                   \
    kv_write(k_cache, v_cache, key, value, slot_mapping, p, status);                                          \
  }
#define KV_WRITE(SHORT, T) KV_WRITE_KERNEL(SHORT, T, i32, int) KV_WRITE_KERNEL(SHORT, T, i64, i64)
#ifndef LOOM_ATTENTION_KERNEL
LOOM_FLOATS(KV_WRITE)
#endif

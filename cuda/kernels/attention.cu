// Paged attention over a KV cache laid out [num_blocks, block_size, kv_heads,
// head_size] (one token's head vector contiguous), and the KV write that
// fills it. See primitives/attention.go for the masking rules.
//
// A block serves one KV head g = blockIdx.x of one query token t =
// blockIdx.y (and, on the split path, one partition blockIdx.z of its
// keys) with ATTENTION_WARPS warps (Caps.AttentionWarps), which
// take the row's chunks of CHUNK keys (Rows) in turn, each warp for every
// query head of g's group: every K and V row comes from memory once, for
// all the heads that read it (GQA-shared). A warp streams its chunks' K
// and V rows into a ring in shared memory with cp.async, a few chunks
// ahead of the one it computes on (see attend), with an online softmax in
// log2 units across its chunks; then the warps' states merge in warp
// order. The split of the keys over the
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
  // Where token t is sequence t's one query (decode: cu[s] = s), that is
  // t, which one round of loads (its seq_lens entry with them) finds
  // instead of a binary search's chain.
  int lo = 0, hi = p.NumSeqs - 1, len = 0;
  bool decode = false;
  if (t < p.NumSeqs) {
    const int a = cu[t], b = cu[t + 1];
    len = seq_lens[t];
    decode = a == t && b == t + 1;
    if (decode) lo = hi = t;
  }
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (cu[mid] <= t) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  r.seq = lo;
  if (!decode) len = seq_lens[lo];
  const i64 q_len = decode ? 1 : (i64)cu[lo + 1] - cu[lo];
  i64 end = (i64)len - q_len + (t - (decode ? t : cu[lo])) + 1;
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

// ATTENTION_WARPS is the warps of a block, Caps.AttentionWarps: 4 (the
// CUDA device's), or 8 where LOOM_CUDA_ATTENTION_WARPS sets it (a
// variant's LOOM_ATTENTION_BLOCK_WARPS, cuda/variants.go), for
// measurement. On an H100 blocks of 4 warps, four a multiprocessor, ran
// every decode case 3–22 % faster than blocks of 8, two a multiprocessor
// (docs/BENCHMARKS.md): more blocks a multiprocessor overlap more of their
// fixed latencies, and a warp's ring is twice as deep.
#ifdef LOOM_ATTENTION_BLOCK_WARPS
#define ATTENTION_WARPS LOOM_ATTENTION_BLOCK_WARPS
#else
#define ATTENTION_WARPS 4
#endif

// ATTENTION_BLOCKS_<HS> is the blocks of a kernel of head size HS that its
// launch bounds ask to fit on a multiprocessor (ATTENTION_BOUNDS): 16
// warps' worth (4 blocks of 4 warps, 2 of 8), which caps them at 128
// registers a thread, so that one block's fixed latencies (its row, slots,
// count and merge) overlap the others' loads: on an H100 the long decode
// cases went from 0.917 to 0.590 ms and decode-typical from 0.110 to 0.073
// with two blocks instead of one (docs/BENCHMARKS.md), when the rows in
// flight were held in registers. Head size 256 takes 3 blocks of 4 warps
// (168 registers): its tensor-core state (the queries' 32 registers, the
// output's 64) spilled about 100 bytes a thread at 128. With the rows in
// shared memory (48 KB a block, 192 of an H100's 228 a multiprocessor at
// four) every head size fits. LOOM_CUDA_ATTENTION_BLOCKS sets them all
// (LOOM_ATTENTION_BLOCKS, cuda/variants.go), for measurement. (One
// constant a head size: the launch bounds must read as plain numbers,
// without parentheses, for cuda/signature.go.)
#if defined(LOOM_ATTENTION_BLOCKS)
#define ATTENTION_BLOCKS_SMALL LOOM_ATTENTION_BLOCKS
#define ATTENTION_BLOCKS_256 LOOM_ATTENTION_BLOCKS
#elif ATTENTION_WARPS == 4
#define ATTENTION_BLOCKS_SMALL 4
#define ATTENTION_BLOCKS_256 3
#else
#define ATTENTION_BLOCKS_SMALL 2
#define ATTENTION_BLOCKS_256 2
#endif
#define ATTENTION_BLOCKS_64 ATTENTION_BLOCKS_SMALL
#define ATTENTION_BLOCKS_80 ATTENTION_BLOCKS_SMALL
#define ATTENTION_BLOCKS_96 ATTENTION_BLOCKS_SMALL
#define ATTENTION_BLOCKS_128 ATTENTION_BLOCKS_SMALL


// A warp streams its keys through its own ring of STAGES stages in shared
// memory, each the K and V rows of a chunk of keys, copied with cp.async
// (16 bytes a lane, no registers held while they are in flight) STAGES − 1
// chunks ahead of the chunk it computes on: a warp keeps two or more
// chunks' rows in flight without holding them in registers. A warp's ring
// is its share of the 48 KB of static shared memory a block may have, at
// most one stage more than a window of slots serves. In the ring's place a
// warp keeps its softmax states of a pass's heads for the block's merge
// (Smem). float16 and bfloat16 rows are multiplied on tensor cores (Tiles,
// attend_mma), float32 rows on the lanes (Rows, attend).
#define RING_BYTES (48 * 1024 / ATTENTION_WARPS)
#define RING_VECS (RING_BYTES / 16)

// LOOM_ATTENTION_CHUNK_BYTES is the most bytes of a float32 chunk's K rows:
// 1,024 unless LOOM_CUDA_ATTENTION_CHUNK sets it (cuda/variants.go).
#ifndef LOOM_ATTENTION_CHUNK_BYTES
#define LOOM_ATTENTION_CHUNK_BYTES 1024
#endif

// Rows<T, HS> is how a warp of the float32 path spreads a cache row (one
// key's head vector, ROW = HS·sizeof(T) bytes, a multiple of 16) over its
// lanes: LANES lanes, a power of two, hold one row, 16 bytes (VEC
// elements) per vector and NV vectors each, so a warp reads KEYS rows at
// once from shared memory, and a chunk in STEPS such reads. Lane i of a
// group holds vectors i, i + LANES, …; lanes past the row's NVEC vectors
// (head size 80) idle. A chunk is the keys whose K rows take at most
// LOOM_ATTENTION_CHUNK_BYTES, at most 8; a stage (STAGE vectors) its K
// rows, then its V rows. The 16-byte copies need 16-byte aligned rows: the
// caches are whole buffers from cuMemAlloc (256-byte aligned) and every row
// is a whole number of vectors. A warp looks up the cache slots of WINDOW
// chunks at once, a lane a key.
template <typename T, int HS> struct Rows {
  static constexpr int VEC = 16 / (int)sizeof(T);
  static constexpr int NVEC = HS / VEC;
  static constexpr int LANES = NVEC > 16 ? 32 : NVEC > 8 ? 16 : NVEC > 4 ? 8 : NVEC > 2 ? 4 : NVEC > 1 ? 2 : 1;
  static constexpr int NV = (NVEC + LANES - 1) / LANES;
  static constexpr int KEYS = 32 / LANES;
  static constexpr int ROW = HS * (int)sizeof(T);
  static constexpr int FIT = 8 * ROW <= LOOM_ATTENTION_CHUNK_BYTES   ? 8
                             : 4 * ROW <= LOOM_ATTENTION_CHUNK_BYTES ? 4
                             : 2 * ROW <= LOOM_ATTENTION_CHUNK_BYTES ? 2
                                                                     : 1;
  static constexpr int CHUNK = FIT > KEYS ? FIT : KEYS;
  static constexpr int STEPS = CHUNK / KEYS;
  static constexpr int WINDOW = 32 / CHUNK;
  static constexpr int ROWV = NVEC;
  static constexpr int STAGE = 2 * CHUNK * ROWV;
  static constexpr int FILL = RING_VECS / STAGE;
  static constexpr int STAGES = FILL < WINDOW + 1 ? FILL : WINDOW + 1;
  static_assert(HS * (int)sizeof(T) % 16 == 0, "rows must be whole 16-byte vectors");
  static_assert(CHUNK % KEYS == 0 && CHUNK <= 8, "a chunk must be whole steps, its keys a mask of 8 bits");
  static_assert(STAGES >= 2 && STAGES - 1 <= WINDOW && CHUNK * STAGES <= 64,
                "the ring must hold two chunks, its first chunks' slots one window, its masks 64 bits");
  static __device__ __forceinline__ int at(int key, int v) { return key * ROWV + v; }
};

// Tiles<T, HS> is the tensor-core path's geometry (float16, bfloat16; see
// attend_mma). A row is NVEC 16-byte vectors of 8 elements: vector i is
// k-tile i of q·k (mma.m16n8k8) and half of m-tile i / 2 of the output. In
// the ring a key's row takes ROWV vectors, its vector v at at(key, v): at
// key·NVEC + (v xor key % 8) where NVEC is a multiple of 8, else (head sizes
// 80 and 96) at key·ROWV + v with ROWV = NVEC + 1, odd. Either way vector v
// of 8 keys lies in 8 different groups of 4 banks, so an ldmatrix of them
// is conflict-free. A chunk is CHUNK keys: 8 (one tile of keys) where 3
// stages of them fit a warp's ring, else 4 or 2 (the tile's other keys are
// zeros). PASS is the most heads of a pass: 8 (the n8 columns of the
// scores and outputs, see attend_mma), 4 where 8 heads' merge states would
// not fit a warp's ring.
template <typename T, int HS> struct Tiles {
  static constexpr int NVEC = HS / 8;
  static constexpr bool SWIZZLE = NVEC % 8 == 0;
  static constexpr int ROWV = SWIZZLE ? NVEC : NVEC + 1;
  static constexpr int CHUNK = 3 * 2 * 8 * ROWV <= RING_VECS ? 8 : 3 * 2 * 4 * ROWV <= RING_VECS ? 4 : 2;
  static constexpr int STAGE = 2 * CHUNK * ROWV;
  static constexpr int WINDOW = 32 / CHUNK;
  static constexpr int FILL = RING_VECS / STAGE;
  static constexpr int STAGES = FILL < WINDOW + 1 ? FILL : WINDOW + 1;
  static constexpr int PASS = 8 * (HS + 2) * 4 <= RING_BYTES ? 8 : 4;
  static_assert(sizeof(T) == 2 && HS % 16 == 0, "tensor-core rows are 16-bit elements in whole m-tiles");
  static_assert(STAGES >= 2 && STAGES - 1 <= WINDOW && CHUNK * STAGES <= 64,
                "the ring must hold two chunks, its first chunks' slots one window, its masks 64 bits");
  static __device__ __forceinline__ int at(int key, int v) { return key * ROWV + (SWIZZLE ? v ^ (key & 7) : v); }
};

// PassHeads is the most heads of a pass: Tiles::PASS on tensor cores, 4
// on the float32 path (attention_group).
template <typename T, int HS, bool MMA = sizeof(T) == 2> struct PassHeads {
  static constexpr int N = Tiles<T, HS>::PASS;
};
template <typename T, int HS> struct PassHeads<T, HS, false> {
  static constexpr int N = 4;
};

// Smem is a warp's shared memory: the ring of its chunks' K and V rows
// (16-byte vectors), or, once its keys are done, its states of a pass's
// heads for the block's merge (HS output dims, then m and l, a head).
template <typename T, int HS> struct Smem {
  static constexpr int HEADS = PassHeads<T, HS>::N;
  union {
    uint4 ring[RING_VECS];
    float merge[HEADS][HS + 2];
  };
  static_assert(HEADS * (HS + 2) * 4 <= RING_BYTES, "the merge states must fit a warp's ring");
};

// attention_smem is the block's shared memory, a Smem a warp, one array
// for every pass size of the kernel's attention instantiations (a
// __shared__ variable of the attention template itself would be one a
// pass size).
template <typename T, int HS> __device__ __forceinline__ Smem<T, HS>* attention_smem() {
  __shared__ Smem<T, HS> smem[ATTENTION_WARPS];
  return smem;
}

// copy16 copies 16 bytes from src to shared memory at dst with cp.async,
// or zeros if !ok (src is then not read).
__device__ __forceinline__ void copy16(void* dst, const void* src, bool ok) {
  const u32 d = (u32)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(d), "l"(src), "r"(ok ? 16 : 0));
}

// widen turns a 16-byte vector of float32 into floats.
__device__ __forceinline__ void widen(const uint4& w, float* f) {
  f[0] = __uint_as_float(w.x);
  f[1] = __uint_as_float(w.y);
  f[2] = __uint_as_float(w.z);
  f[3] = __uint_as_float(w.w);
}

// Heads is one warp's share of a pass over GH query heads of a KV head's
// group on the float32 path: their scaled queries and online-softmax
// states, for the dims of the lane's vectors (Rows). Heads of the pass
// past the group's (odd ratios) have zero queries; their results are not
// written.
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

// Stream is a warp's walk over its chunks of keys [lo, hi) of row r (KV
// head g): chunks c = 0, 1, … of CHUNK keys from lo + CHUNK·(w + c·W) (warp
// w of W in the block), so that every K and V row is read once, by one
// warp, for all query heads of its group. Chunk c + STAGES − 1 is copied
// into the warp's ring (stages of STAGE vectors, a key's vector v at
// at(key, v) of the K rows, CHUNK·ROWV vectors after it of the V rows)
// while chunk c is computed on. The copies need the chunks' cache slots,
// which the warp looks up a window of WINDOW chunks at a time (lane i the
// slot of key i % CHUNK of chunk i / CHUNK of the window), the next
// window's while the current one's chunks are copied. A chunk's mask (a
// bit a key: a visible key with a block-table entry inside the cache) goes
// with it; keys outside it are copied as zeros and skipped (check_meta
// reports bad entries). Which keys a warp takes and the order it takes
// them in depend on the row alone, never on the grid: a row's result is
// the same in any batch. G is the geometry (Rows or Tiles); run calls
// body(stage's vectors, mask) for each chunk with a visible key.
template <typename T, int HS, typename G> struct Stream {
  template <typename Body>
  static __device__ __forceinline__ void run(const T* k_cache, const T* v_cache, const int* tables, const PagedAttentionParams& p,
                                             int g, const Row& r, int lo, int hi, uint4* ring, Body body) {
    const unsigned FULL = 0xffffffffu;
    const u32 KEYMASK = (1u << G::CHUNK) - 1u;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    const int* table = tables + (u64)r.seq * p.MaxBlocksPerSeq;
    const u64 head = (u64)g * HS;
    const u64 stride = (u64)p.NumKVHeads * HS;
    const int step = G::CHUNK * warps;
    const int start = lo + G::CHUNK * warp;                         // the first key of this warp's chunk 0
    const int n = start < hi ? (hi - start + step - 1) / step : 0;  // this warp's chunks
    // window returns this lane's slot of window w.
    auto window = [&](int w) -> i64 {
      const int c = w * G::WINDOW + lane / G::CHUNK;
      return c < n ? slot_of(table, p, start + c * step + lane % G::CHUNK, hi) : -1;
    };
    // issue copies chunk c's rows into its stage (nothing past the last
    // chunk) and returns its mask; slots holds its window.
    auto issue = [&](int c, i64 slots) -> u32 {
      if (c >= n) return 0u;
      const int base = c % G::WINDOW * G::CHUNK;
      const u32 mask = __ballot_sync(FULL, slots >= 0) >> base & KEYMASK;
      uint4* kr = ring + c % G::STAGES * G::STAGE;
      constexpr int NVEC = HS * (int)sizeof(T) / 16, VEC = 16 / (int)sizeof(T);
#pragma unroll
      for (int x0 = 0; x0 < G::CHUNK * NVEC; x0 += 32) {
        const int x = x0 + lane, key = min(x / NVEC, G::CHUNK - 1), vi = x % NVEC;
        const i64 sl = __shfl_sync(FULL, slots, base + key);
        if (x < G::CHUNK * NVEC) {
          const u64 at = (u64)max(sl, (i64)0) * stride + head + (u64)vi * VEC;
          const int to = G::at(key, vi);
          copy16(kr + to, k_cache + at, sl >= 0);
          copy16(kr + G::CHUNK * G::ROWV + to, v_cache + at, sl >= 0);
        }
      }
      return mask;
    };
    i64 slots = window(0), ahead = window(1);
    u64 masks = 0;  // the masks of the chunks in the ring, CHUNK bits a stage
#pragma unroll
    for (int c = 0; c < G::STAGES - 1; c++) {
      masks |= (u64)issue(c, slots) << (c * G::CHUNK);
      asm volatile("cp.async.commit_group;");
    }
    for (int c = 0; c < n; c++) {
      const int next = c + G::STAGES - 1, stage = c % G::STAGES;
      if (next % G::WINDOW == 0) {
        slots = ahead;
        ahead = window(next / G::WINDOW + 1);
      }
      __syncwarp();  // every lane is done with chunk c − 1, whose stage chunk next takes
      const int at = next % G::STAGES * G::CHUNK;
      masks = (masks & ~((u64)KEYMASK << at)) | (u64)issue(next, slots) << at;
      asm volatile("cp.async.commit_group;");
      asm volatile("cp.async.wait_group %0;" ::"n"(G::STAGES - 1));
      __syncwarp();  // every lane's copies of chunk c, to every lane
      const u32 mask = (u32)(masks >> (stage * G::CHUNK)) & KEYMASK;
      if (mask != 0u) body((const uint4*)(ring + stage * G::STAGE), mask);  // else no visible key in this chunk
    }
    asm volatile("cp.async.wait_group 0;");
    __syncwarp();  // every lane is done with the ring, which the merge reuses
  }
};

// attend folds this warp's keys of [lo, hi) of row r (KV head g) into the
// GH heads of st, on the float32 path (Stream walks the chunks).
//
// Group s of LANES lanes takes key s·STEPS + i of the chunk at step i: the
// rows are dotted with each head's query, each dot product summed within
// the group, so that every lane of the group holds the scores of its keys.
// The online softmax (running maximum m and sum l, in log2 units: q is
// scaled by Scale·log2(e) when it is loaded, so every exponential is an
// exp2) combines the groups' maxima and sums; each lane adds p_key · V_key
// for its group's keys to each head's dims it holds, and the groups' sums
// are added at the end.
template <typename T, int HS, int GH>
__device__ void attend(const T* k_cache, const T* v_cache, const int* tables, const PagedAttentionParams& p, int g,
                       const Row& r, int lo, int hi, Heads<T, HS, GH>& st, Smem<T, HS>& sm) {
  typedef Rows<T, HS> R;
  const unsigned FULL = 0xffffffffu;
  const int lane = threadIdx.x % 32, li = lane % R::LANES, grp = lane / R::LANES;
  const bool capped = p.Softcap > 0.0f;
  const float cap_inv = capped ? 1.0f / p.Softcap : 0.0f, cap_mul = p.Softcap * LOG2E;
  Stream<T, HS, R>::run(k_cache, v_cache, tables, p, g, r, lo, hi, sm.ring, [&](const uint4* ring, u32 mask) {
    const uint4(&kr)[R::CHUNK][R::NVEC] = *(const uint4(*)[R::CHUNK][R::NVEC])ring;
    const uint4(&vr)[R::CHUNK][R::NVEC] = *(const uint4(*)[R::CHUNK][R::NVEC])(ring + R::CHUNK * R::NVEC);
    float s[GH][R::STEPS];
#pragma unroll
    for (int i = 0; i < R::STEPS; i++) {
      const int key = grp * R::STEPS + i;
      float f[R::NV][R::VEC];
#pragma unroll
      for (int v = 0; v < R::NV; v++) {
        const int vi = v * R::LANES + li;
        widen(vi < R::NVEC ? kr[key][vi] : make_uint4(0u, 0u, 0u, 0u), f[v]);
      }
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
        s[j][i] = acc;
      }
    }
    float pr[GH][R::STEPS];
#pragma unroll
    for (int j = 0; j < GH; j++) {
      float top = -LOOM_INF;
#pragma unroll
      for (int i = 0; i < R::STEPS; i++) {
        if (capped) s[j][i] = tanhf(s[j][i] * cap_inv) * cap_mul;
        if ((mask >> (grp * R::STEPS + i) & 1u) == 0u) s[j][i] = -LOOM_INF;
        top = fmaxf(top, s[j][i]);
      }
#pragma unroll
      for (int o = R::LANES; o < 32; o <<= 1) top = fmaxf(top, __shfl_xor_sync(FULL, top, o));
      const float m_new = fmaxf(st.m[j], top);
      const bool none = m_new == -LOOM_INF;  // no visible key yet
      float sum = 0.0f;
#pragma unroll
      for (int i = 0; i < R::STEPS; i++) {
        pr[j][i] = none || s[j][i] == -LOOM_INF ? 0.0f : exp2f(s[j][i] - m_new);
        sum += pr[j][i];
      }
#pragma unroll
      for (int o = R::LANES; o < 32; o <<= 1) sum += __shfl_xor_sync(FULL, sum, o);
      // The state rescales only where the maximum moved (the same on every
      // lane): most chunks past the first few leave it, and a factor of 1
      // would change nothing.
      if (m_new != st.m[j]) {
        const float c = exp2f(st.m[j] - m_new);  // 0 while m is −∞
        st.l[j] *= c;
        st.m[j] = m_new;
#pragma unroll
        for (int v = 0; v < R::NV; v++) {
#pragma unroll
          for (int e = 0; e < R::VEC; e++) st.o[j][v][e] *= c;
        }
      }
      st.l[j] += sum;
    }
#pragma unroll
    for (int i = 0; i < R::STEPS; i++) {
      const int key = grp * R::STEPS + i;
      float f[R::NV][R::VEC];
#pragma unroll
      for (int v = 0; v < R::NV; v++) {
        const int vi = v * R::LANES + li;
        widen(vi < R::NVEC ? vr[key][vi] : make_uint4(0u, 0u, 0u, 0u), f[v]);
      }
#pragma unroll
      for (int j = 0; j < GH; j++) {
#pragma unroll
        for (int v = 0; v < R::NV; v++) {
#pragma unroll
          for (int e = 0; e < R::VEC; e++) st.o[j][v][e] += pr[j][i] * f[v][e];
        }
      }
    }
  });
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

// keep_heads writes the warp's states of st's first nh heads to its merge
// states.
template <typename T, int HS, int GH> __device__ __forceinline__ void keep_heads(const Heads<T, HS, GH>& st, int nh, Smem<T, HS>& sm) {
  typedef Rows<T, HS> R;
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int j = 0; j < GH; j++) {
    if (j >= nh) break;
    if (lane < R::LANES) {
#pragma unroll
      for (int v = 0; v < R::NV; v++) {
        const int vi = v * R::LANES + lane;
        if (vi >= R::NVEC) continue;
#pragma unroll
        for (int e = 0; e < R::VEC; e++) sm.merge[j][vi * R::VEC + e] = st.o[j][v][e];
      }
    }
    if (lane == 0) {
      sm.merge[j][HS] = st.m[j];
      sm.merge[j][HS + 1] = st.l[j];
    }
  }
}

// ---- tensor cores (float16, bfloat16) ---------------------------------------------

// ldsm4 loads four 8×8 matrices of 16-bit elements from shared memory
// (ldmatrix .x4): lane i gives the address of row i % 8 of matrix i / 8, 16
// bytes, and gets r[m] = elements 2(i % 4) and 2(i % 4) + 1 of row i / 4
// of matrix m; ldsm4t gets the transpose's (elements i / 4 of rows 2(i % 4)
// and 2(i % 4) + 1).
__device__ __forceinline__ void ldsm4(u32 (&r)[4], const uint4* row) {
  const u32 a = (u32)__cvta_generic_to_shared(row);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a) : "memory");
}
__device__ __forceinline__ void ldsm4t(u32 (&r)[4], const uint4* row) {
  const u32 a = (u32)__cvta_generic_to_shared(row);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a) : "memory");
}

// mma8 accumulates d += A·B of mma.sync.m16n8k8 (A 16×8, B 8×8 of T's
// pairs packed in u32, d 16×8 floats): for a lane of group gq = lane / 4
// and thread tq = lane % 4, a0 = A[gq][2tq..], a1 = A[gq+8][2tq..], b =
// B[2tq..][gq], d = {D[gq][2tq], D[gq][2tq+1], D[gq+8][2tq],
// D[gq+8][2tq+1]} (PTX ISA, "Matrix fragments for mma.m16n8k8").
__device__ __forceinline__ void mma8(float (&d)[4], u32 a0, u32 a1, u32 b, const bf16_t*) {
  asm("mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]) : "r"(a0), "r"(a1), "r"(b));
}
__device__ __forceinline__ void mma8(float (&d)[4], u32 a0, u32 a1, u32 b, const half_t*) {
  asm("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]) : "r"(a0), "r"(a1), "r"(b));
}

// pack2 rounds a and b to T (nearest even) and packs them, a in the low
// half.
__device__ __forceinline__ u32 pack2(float a, float b, const bf16_t*) {
  u32 r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(b), "f"(a));
  return r;
}
__device__ __forceinline__ u32 pack2(float a, float b, const half_t*) {
  u32 r;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(b), "f"(a));
  return r;
}

// ATTENTION_S_CHAINS is the accumulators a chunk's scores are summed in
// (k-tile i into accumulator i % ATTENTION_S_CHAINS, then added in order):
// 1 unless LOOM_CUDA_ATTENTION_CHAINS sets 2 or 4 (cuda/variants.go), which
// shortens the chain of dependent tensor-core steps of a chunk (32 at head
// size 256) for measurement; not yet run on a GPU.
#ifdef LOOM_ATTENTION_S_CHAINS
#define ATTENTION_S_CHAINS LOOM_ATTENTION_S_CHAINS
#else
#define ATTENTION_S_CHAINS 1
#endif

// transpose8 transposes an 8×8 matrix of 16-bit elements held in a warp's
// lanes as ldmatrix's fragments (lane i: row i / 4, elements 2(i % 4) and
// 2(i % 4) + 1) (movmatrix). LOOM_ATTENTION_SHUFFLE_TRANSPOSE
// (LOOM_CUDA_ATTENTION_TRANSPOSE=shfl, cuda/variants.go) takes two shuffles
// instead: lane (g, t) fetches elements g of rows 2t and 2t + 1 from lanes
// 8t + g / 2 and 8t + 4 + g / 2, for measurement and as a check of the
// instruction's layout on a GPU.
__device__ __forceinline__ u32 transpose8(u32 x) {
  u32 r;
#ifdef LOOM_ATTENTION_SHUFFLE_TRANSPOSE
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4, half = 16 * (g % 2);
  const u32 a = __shfl_sync(0xffffffffu, x, 8 * t + g / 2), b = __shfl_sync(0xffffffffu, x, 8 * t + 4 + g / 2);
  r = (a >> half & 0xffffu) | (b >> half & 0xffffu) << 16;
#else
  asm("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;" : "=r"(r) : "r"(x));
#endif
  return r;
}

// Frags is one warp's state of a pass over up to PASS query heads of a KV
// head's group on the tensor cores, for a lane of group gq = lane / 4 and
// thread tq = lane % 4: o, the output transposed, Oᵀ = Vᵀ·Pᵀ, m-tile i:
// dims 16i + gq and 16i + gq + 8 of heads 2tq and 2tq + 1; m and l, the
// running maxima of heads 2tq and 2tq + 1 and this lane's part of their
// sums, in log2 units. (The pass's queries, qf of load_q, are the B
// operand of Sᵀ = K·Qᵀ: k-tile i, dims 8i + 2tq and 8i + 2tq + 1 of head
// gq, unscaled; heads past the pass are zeros.)
template <typename T, int HS> struct Frags {
  float o[HS / 16][4];
  float m[2], l[2];
};

// attend_mma folds this warp's keys of [lo, hi) of row r (KV head g) into
// the heads of st on tensor cores (Stream walks the chunks). For a chunk
// (8 keys; past CHUNK zeros): Sᵀ = K·Qᵀ, an mma.m16n8k8 a k-tile of 8 dims
// with the K rows, loaded with ldmatrix, as the A operand (rows 8–15
// repeat rows 0–7: a key tile is 8 keys), gives lane (gq, tq) the scores
// of key gq for heads 2tq and 2tq + 1, scaled into log2 units in float (q
// stays exact in T). The online softmax of each head takes its maximum
// over the chunk across the 8 lanes of a column; P, rounded to T and
// transposed (movmatrix), is the B operand of Oᵀ += Vᵀ·Pᵀ, whose A
// operand is the V rows loaded transposed (ldmatrix .trans), an mma a
// 16-dim m-tile. A lane's output and softmax states are of the same two
// heads, so a moved maximum rescales them in the lane. The lanes' sums are
// added at the end.
template <typename T, int HS>
__device__ void attend_mma(const T* k_cache, const T* v_cache, const int* tables, const PagedAttentionParams& p, int g,
                           const Row& r, int lo, int hi, const u32 (&qf)[HS / 8], Frags<T, HS>& st, Smem<T, HS>& sm) {
  typedef Tiles<T, HS> R;
  const unsigned FULL = 0xffffffffu;
  const int lane = threadIdx.x % 32, gq = lane / 4, tq = lane % 4;
  const bool capped = p.Softcap > 0.0f;
  const float mul = capped ? p.Scale / p.Softcap : p.Scale * LOG2E, cap_mul = p.Softcap * LOG2E;
  // This lane's row of the ldmatrix loads: key lane % 8 (keys past the
  // chunk read its first rows, their products masked or zeroed) of matrix
  // lane / 8.
  const int rk = lane % 8 % R::CHUNK, mi = lane / 8;
  Stream<T, HS, R>::run(k_cache, v_cache, tables, p, g, r, lo, hi, sm.ring, [&](const uint4* kr, u32 mask) {
    const uint4* vr = kr + R::CHUNK * R::ROWV;
    float sc[ATTENTION_S_CHAINS][4] = {};
#pragma unroll
    for (int j = 0; j < R::NVEC / 2; j++) {  // k-tiles 2j (matrices 0, 1) and 2j + 1 (2, 3)
      u32 a[4];
      ldsm4(a, kr + R::at(rk, 2 * j + mi / 2));
      mma8(sc[2 * j % ATTENTION_S_CHAINS], a[0], a[1], qf[2 * j], k_cache);
      mma8(sc[(2 * j + 1) % ATTENTION_S_CHAINS], a[2], a[3], qf[2 * j + 1], k_cache);
    }
    float s[2] = {sc[0][0], sc[0][1]};
#pragma unroll
    for (int c = 1; c < ATTENTION_S_CHAINS; c++) {
      s[0] += sc[c][0];
      s[1] += sc[c][1];
    }
    const bool visible = (mask >> gq & 1u) != 0u;
    float pr[2];
#pragma unroll
    for (int i = 0; i < 2; i++) {
      const float x = !visible ? -LOOM_INF : capped ? tanhf(s[i] * mul) * cap_mul : s[i] * mul;
      float top = x;
#pragma unroll
      for (int o = 4; o < 32; o <<= 1) top = fmaxf(top, __shfl_xor_sync(FULL, top, o));
      const float m_new = fmaxf(st.m[i], top);
      pr[i] = x == -LOOM_INF ? 0.0f : exp2f(x - m_new);
      // The state rescales only where the maximum moved: most chunks past
      // the first few leave it.
      if (m_new != st.m[i]) {
        const float c = exp2f(st.m[i] - m_new);  // 0 while m is −∞
        st.l[i] *= c;
        st.m[i] = m_new;
#pragma unroll
        for (int d = 0; d < HS / 16; d++) {
          st.o[d][i] *= c;
          st.o[d][i + 2] *= c;
        }
      }
      st.l[i] += pr[i];
    }
    const u32 pt = transpose8(pack2(pr[0], pr[1], k_cache));  // Pᵀ: heads gq, keys 2tq and 2tq + 1
#pragma unroll
    for (int j = 0; j < R::NVEC / 4 + (R::NVEC % 4 != 0); j++) {  // m-tiles 2j (matrices 0, 1) and 2j + 1 (2, 3)
      u32 a[4];
      ldsm4t(a, vr + R::at(rk, min(4 * j + mi, R::NVEC - 1)));
      if (R::CHUNK < 8 && 2 * tq >= R::CHUNK) a[0] = a[1] = a[2] = a[3] = 0u;  // keys past the chunk
      mma8(st.o[2 * j], a[0], a[1], pt, k_cache);
      if (4 * j + 2 < R::NVEC) mma8(st.o[2 * j + 1], a[2], a[3], pt, k_cache);
    }
  });
#pragma unroll
  for (int i = 0; i < 2; i++) {
#pragma unroll
    for (int o = 4; o < 32; o <<= 1) st.l[i] += __shfl_xor_sync(FULL, st.l[i], o);
  }
}

// load_q loads query heads h0 … h0 + nh − 1 of token t into qf as the B
// fragments of Sᵀ = K·Qᵀ (see Frags; heads past nh are zeros).
template <typename T, int HS>
__device__ __forceinline__ void load_q(const T* q, const PagedAttentionParams& p, int t, int h0, int nh, u32 (&qf)[HS / 8]) {
  const int lane = threadIdx.x % 32, gq = lane / 4, tq = lane % 4;
  const T* row = q + ((u64)t * p.NumHeads + h0 + gq) * HS;
#pragma unroll
  for (int i = 0; i < HS / 8; i++) {
    qf[i] = gq < nh ? (u32)row[8 * i + 2 * tq].bits | (u32)row[8 * i + 2 * tq + 1].bits << 16 : 0u;
  }
}

// clear_frags clears st's states.
template <typename T, int HS> __device__ __forceinline__ void clear_frags(Frags<T, HS>& st) {
#pragma unroll
  for (int i = 0; i < HS / 16; i++) st.o[i][0] = st.o[i][1] = st.o[i][2] = st.o[i][3] = 0.0f;
  st.m[0] = st.m[1] = -LOOM_INF;
  st.l[0] = st.l[1] = 0.0f;
}

// keep_frags writes the warp's states of st's first nh heads to its merge
// states.
template <typename T, int HS> __device__ __forceinline__ void keep_frags(const Frags<T, HS>& st, int nh, Smem<T, HS>& sm) {
  const int lane = threadIdx.x % 32, gq = lane / 4, tq = lane % 4;
#pragma unroll
  for (int i = 0; i < 2; i++) {
    const int h = 2 * tq + i;
    if (h >= nh) continue;
#pragma unroll
    for (int d = 0; d < HS / 16; d++) {
      sm.merge[h][16 * d + gq] = st.o[d][i];
      sm.merge[h][16 * d + gq + 8] = st.o[d][i + 2];
    }
    if (gq == 0) {
      sm.merge[h][HS] = st.m[i];
      sm.merge[h][HS + 1] = st.l[i];
    }
  }
}

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
// of KV head blockIdx.x in passes of GH. After a pass the W warp states of
// each of its heads merge through shared memory, in warp order, one output
// dim a thread: with M the largest maximum, l = Σ l_w·2^(m_w − M) and o =
// Σ o_w·2^(m_w − M); a warp without keys (m = −∞) adds nothing.
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
  Smem<T, HS>* smem = attention_smem<T, HS>();
  const int g = blockIdx.x, t = blockIdx.y;
  const int warp = threadIdx.x / 32, warps = blockDim.x / 32;
  const int group = p.NumHeads / p.NumKVHeads;
  // On tensor cores a group of one pass has its queries loaded first, so
  // that their latency overlaps the row's and the checks' (larger groups
  // load each pass's).
  u32 qf[HS / 8];
  if constexpr (sizeof(T) == 2) {
    if (group <= GH) load_q<T, HS>(q, p, t, g * group, group, qf);
  }
  if (first_block()) check_meta(seq_lens, cu, p, ARG_SEQ_LENS, ARG_CU, status);
  check_tables(tables, seq_lens, p, status);
  const Row r = row_of(seq_lens, cu, p, t);
  int size = 0, first = 0, last = 1;
  if (parts) {
    partitions(r, p, size, first, last);
    if (first >= last) {  // no keys: zeros
      const u64 dst = ((u64)t * p.NumHeads + (u64)g * group) * HS;
      for (int i = threadIdx.x; blockIdx.z == 0 && i < group * HS; i += blockDim.x) store_f(out, dst + i, 0.0f);
      return;
    }
  }
  const bool partial = parts && last - first > 1;  // written to the scratch, then merged
  // This block's partitions of the row: blockIdx.z, blockIdx.z + gridDim.z,
  // … (one where the grid has a block a partition; fewer blocks than
  // partitions share a row's fixed costs, the row and the count, over
  // several). A partition's result does not depend on the block that
  // computes it.
  u32 done = 0;
  for (int part = parts ? (int)blockIdx.z : 0; part < last; part += gridDim.z) {
    if (part < first) continue;
    done++;
    const int lo = parts ? max(r.lo, part * size) : r.lo, hi = parts ? min(r.hi, (part + 1) * size) : r.hi;
    for (int j0 = 0; j0 < group; j0 += GH) {
      const int h0 = g * group + j0, nh = min(GH, group - j0);
      if constexpr (sizeof(T) == 4) {
        Heads<T, HS, GH> st;
        load_heads(q, p, t, h0, nh, st);
        attend<T, HS, GH>(k_cache, v_cache, tables, p, g, r, lo, hi, st, smem[warp]);
        keep_heads(st, nh, smem[warp]);
      } else {
        Frags<T, HS> st;
        if (group > GH) load_q<T, HS>(q, p, t, h0, nh, qf);
        clear_frags(st);
        attend_mma<T, HS>(k_cache, v_cache, tables, p, g, r, lo, hi, qf, st, smem[warp]);
        keep_frags(st, nh, smem[warp]);
      }
      __syncthreads();
      for (int i = threadIdx.x; i < nh * HS; i += blockDim.x) {
        const int j = i / HS, d = i % HS, h = h0 + j;
        float top = -LOOM_INF;
        for (int w = 0; w < warps; w++) top = fmaxf(top, smem[w].merge[j][HS]);
        float l = 0.0f, o = 0.0f;
        if (top != -LOOM_INF) {
          for (int w = 0; w < warps; w++) {
            const float mw = smem[w].merge[j][HS];
            if (mw == -LOOM_INF) continue;
            const float f = exp2f(mw - top);
            l += smem[w].merge[j][HS + 1] * f;
            o += smem[w].merge[j][d] * f;
          }
        }
        if (partial) {
          const u64 idx = ((u64)t * p.NumHeads + h) * p.NumPartitions + part;
          if (d == 0) {
            max_logits[idx] = top;
            exp_sums[idx] = l;
          }
          store_f(tmp_out, idx * HS + d, o * (1.0f / l));
          continue;
        }
        float scale;
        if (l == 0.0f) {
          scale = 0.0f;
        } else if (sinks != nullptr) {
          const float sink = sinks[h] * LOG2E, m = fmaxf(top, sink), c = exp2f(top - m);
          scale = c / (l * c + exp2f(sink - m));
        } else {
          scale = 1.0f / l;
        }
        store_f(out, ((u64)t * p.NumHeads + h) * HS + d, o * scale);
      }
      __syncthreads();  // the next pass may overwrite the states
    }
  }
  if (!partial || done == 0) return;
  __threadfence();  // this block's partials, before it counts
  __syncthreads();
  bool merges = false;
  if (threadIdx.x == 0) {
    u32* count = counters + (u64)t * p.NumKVHeads + g;
    merges = atomicAdd(count, done) + done == (u32)(last - first);
    if (merges) *count = 0u;  // every partition of the row has counted
  }
  if (!__syncthreads_or(merges)) return;
  __threadfence();  // the other blocks' partials, after their counts
  merge_rows<T, HS>(tmp_out, max_logits, exp_sums, sinks, out, p, t, g * group, group, first, last);
}

// attention_group runs attention in passes of heads: on tensor cores
// (float16, bfloat16) passes of Tiles::PASS heads (8: a larger group's
// passes read their K and V rows again, mostly from the L2 cache); on the
// float32 path the smallest pass of 1, 2 or 4 heads that holds the group
// (an odd ratio rounds up), or passes of 4 for larger groups: a pass's
// state takes registers in proportion to its heads, and the compile time
// grows with the passes instantiated.
template <typename T, int HS>
__device__ __forceinline__ void attention_group(bool parts, const T* q, const T* k_cache, const T* v_cache, const int* tables,
                                                const int* seq_lens, const int* cu, const float* sinks, T* out,
                                                float* max_logits, float* exp_sums, T* tmp_out, u32* counters,
                                                const PagedAttentionParams& p, Status* status) {
  if constexpr (sizeof(T) == 2) {
    attention<T, HS, PassHeads<T, HS>::N>(parts, q, k_cache, v_cache, tables, seq_lens, cu, sinks, out, max_logits, exp_sums, tmp_out,
                                         counters, p, status);
  } else {
    const int group = p.NumKVHeads > 0 ? p.NumHeads / p.NumKVHeads : 1;
    if (group <= 1) {
      attention<T, HS, 1>(parts, q, k_cache, v_cache, tables, seq_lens, cu, sinks, out, max_logits, exp_sums, tmp_out, counters, p, status);
    } else if (group == 2) {
      attention<T, HS, 2>(parts, q, k_cache, v_cache, tables, seq_lens, cu, sinks, out, max_logits, exp_sums, tmp_out, counters, p, status);
    } else {
      attention<T, HS, 4>(parts, q, k_cache, v_cache, tables, seq_lens, cu, sinks, out, max_logits, exp_sums, tmp_out, counters, p, status);
    }
  }
}

// Each macro below defines one kernel of a dtype and head size, named like
// its catalog kernels less the block size (paged_attention_bf16_hs128 for
// paged_attention_bf16_hs128_bs8, _bs16 and _bs32; cuda/variants.go maps
// the names): three identical copies of a kernel took three times the
// NVRTC time and cubin (the out-of-line attention is compiled into each
// kernel that calls it).

#define ATTENTION_BOUNDS(HS) __launch_bounds__(32 * ATTENTION_WARPS, ATTENTION_BLOCKS_##HS)

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

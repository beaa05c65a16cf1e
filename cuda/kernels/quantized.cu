// The quantized kernels (primitives/quantized.go, docs/QUANT.md): packed
// weights w [N, K·BITS/32] of uint32 words, each row's codes a
// little-endian bit stream (code i of a word in bits [i·BITS, i·BITS+BITS)),
// and a scale and a bias of T per group of GroupSize elements of a row.

// Floats16<T> widens 32-bit words of packed T to floats, two elements a
// word for the 16-bit types.
template <typename T> struct Floats16;
template <> struct Floats16<float> {
  static constexpr int per = 1;
  static __device__ __forceinline__ void widen(u32 u, float* v) { v[0] = __uint_as_float(u); }
};
template <> struct Floats16<bf16_t> {
  static constexpr int per = 2;
  static __device__ __forceinline__ void widen(u32 u, float* v) {
    v[0] = __uint_as_float(u << 16);
    v[1] = __uint_as_float(u & 0xffff0000u);
  }
};
template <> struct Floats16<half_t> {
  static constexpr int per = 2;
  static __device__ __forceinline__ void widen(u32 u, float* v) {
    v[0] = f16_to_f32((u16)(u & 0xffffu));
    v[1] = f16_to_f32((u16)(u >> 16));
  }
};

// load_x sets v to the E elements of x at p as floats: with loads of 8 or
// 16 bytes where vec (x is 16-byte aligned: rows of K elements, K a
// multiple of 32, and p a whole number of E-element steps into a row keep
// every load aligned), else an element at a time. The lanes of a warp read
// 32 different places of x, so that one load of 2 bytes a lane would take
// the L1 many times more passes than one of 16.
template <typename T, int E> __device__ __forceinline__ void load_x(const T* p, bool vec, float (&v)[E]) {
  constexpr int WORDS = E * (int)sizeof(T) / 4;
  static_assert(WORDS % 2 == 0, "whole 8-byte loads");
  if (!vec) {
#pragma unroll
    for (int i = 0; i < E; i++) v[i] = load_f(p, i);
    return;
  }
  u32 u[WORDS];
  if (WORDS % 4 == 0) {
#pragma unroll
    for (int i = 0; i < WORDS / 4; i++) {
      const uint4 t = __ldg((const uint4*)p + i);
      u[4 * i] = t.x, u[4 * i + 1] = t.y, u[4 * i + 2] = t.z, u[4 * i + 3] = t.w;
    }
  } else {
#pragma unroll
    for (int i = 0; i < WORDS / 2; i++) {
      const uint2 t = __ldg((const uint2*)p + i);
      u[2 * i] = t.x, u[2 * i + 1] = t.y;
    }
  }
#pragma unroll
  for (int i = 0; i < WORDS; i++) Floats16<T>::widen(u[i], v + i * Floats16<T>::per);
}

// codes_f sets q to the PER codes of word as floats, exactly, without a
// conversion instruction (a quarter of the arithmetic's rate on sm_90) or
// a shift a code: code i, at bit BITS·i of the word's low or high half,
// is ORed in place into the mantissa of 2^(23 - BITS·i), whose last place
// is then worth 2^-(BITS·i), so that subtracting 2^(23 - BITS·i) leaves
// the code. One LOP3 and one FADD a code, and one shift a word.
// and_or is (a & b) | c in one instruction: with b and c both constants,
// the compiler makes it two.
__device__ __forceinline__ u32 and_or(u32 a, u32 b, u32 c) {
  u32 r;
  asm("lop3.b32 %0, %1, %2, %3, 0xea;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  return r;
}

template <int BITS> __device__ __forceinline__ void codes_f(u32 word, float (&q)[32 / BITS]) {
  constexpr int PER = 32 / BITS, HALF = PER / 2;
  static_assert(BITS * HALF <= 23, "each half's codes fit the mantissa");
  const u32 hi = word >> 16;
#pragma unroll
  for (int i = 0; i < PER; i++) {
    const int pos = i % HALF;
    const u32 magic = (150u - BITS * pos) << 23;  // 2^(23 - BITS·pos)
    const u32 mask = ((1u << BITS) - 1u) << (BITS * pos);
    q[i] = __fsub_rn(__uint_as_float(and_or(i < HALF ? word : hi, mask, magic)), __uint_as_float(magic));
  }
}

// load_words is a chunk's four words one load each (codes not 16-byte
// aligned), a call apart so that the 16-byte loads' path does not also
// issue these, predicated off.
__device__ __noinline__ uint4 load_words(const u32* p) {
  uint4 v;
  v.x = p[0], v.y = p[1], v.z = p[2], v.w = p[3];
  return v;
}

// warp_sums sums each of v[0..W) over the warp (W = 1, 2 or 4), bit for
// bit as warp_sum sums each (the same pairs in the same order; a + b and
// b + a are the same float), but with W - 1 shuffles fewer a value than
// W warp_sums: at each of the first log2(W) exchanges a lane keeps half
// of its values and sends the other half. v[j]'s sum is returned in lanes
// 32·j/W to 32·(j+1)/W - 1.
template <int W> __device__ __forceinline__ float warp_sums(const float (&v)[W], u32 lane) {
  static_assert(W == 1 || W == 2 || W == 4, "1, 2 or 4 values");
  float a[W];
#pragma unroll
  for (int j = 0; j < W; j++) a[j] = v[j];
  int o = 16;
#pragma unroll
  for (int n = W; n > 1; n /= 2, o /= 2) {
    const bool up = lane & o;  // keeps the upper half
#pragma unroll
    for (int i = 0; i < n / 2; i++) {
      const float keep = up ? a[n / 2 + i] : a[i], send = up ? a[i] : a[n / 2 + i];
      a[i] = keep + __shfl_xor_sync(0xffffffffu, send, o);
    }
  }
  for (; o > 0; o /= 2) a[0] += __shfl_xor_sync(0xffffffffu, a[0], o);
  return a[0];
}

// QUANT_SMEM_X is the floats of shared memory (a multiple of 4) that hold
// a block's row of x in the one-row kernels: rows of K elements take
// K/E·(E + 4) of them, E the elements a chunk (32 in 4 bits, 16 in 8),
// up to K = 8,192 in 4 bits; longer rows are read from global memory by
// each lane. 0 turns it off (a macro for measurement).
#ifndef LOOM_QUANT_SMEM_X
#define LOOM_QUANT_SMEM_X 9216
#endif

// quant_x holds a block's row of x as floats, chunk c's E elements at c·(E
// + 4) (the padding puts the 16-byte reads of 8 lanes of consecutive
// chunks in 8 different bank groups: no conflicts), and quant_xsum each
// chunk's Σ x in order of k: widened and summed once a block (stage_x)
// rather than once a warp. One array for every kernel of the file, so
// that a kernel's instances share it.
__shared__ float4 quant_x[LOOM_QUANT_SMEM_X / 4 + 1];
__shared__ float quant_xsum[LOOM_QUANT_SMEM_X / 20 + 1];

// stage_x fills quant_x and quant_xsum with the row of K elements at x
// (K/E chunks), the whole block taking part (two barriers).
template <typename T, u32 E> __device__ void stage_x(const T* x, u32 K) {
  float* xs = (float*)quant_x;
  for (u32 k = threadIdx.x; k < K; k += blockDim.x) xs[k / E * (E + 4) + k % E] = load_f(x, k);
  __syncthreads();
  for (u32 c = threadIdx.x; c < K / E; c += blockDim.x) {
    float s = 0.0f;
    for (u32 e = 0; e < E; e++) s = __fadd_rn(s, xs[c * (E + 4) + e]);
    quant_xsum[c] = s;
  }
  __syncthreads();
}

// QUANT_WARP_ROWS is the most outputs a warp of the decode GEMV takes at
// once (qgemv_rows's W: 1, 2 or 4; a macro for measurement).
#ifndef LOOM_QUANT_WARP_ROWS
#define LOOM_QUANT_WARP_ROWS 4
#endif

// qmatmul: out[m, n] = Σ_k x[m, k]·(scale·q + bias). Warp w of block b
// takes W consecutive outputs from n = W·(LOOM_GEMV_ROWS·b + w) (then
// grid-strides, for a grid of any width) for the R ≤ LOOM_QUANT_X_ROWS rows
// of x from m0: its lanes stride over the rows' words 16 bytes at a time
// (coalesced; a row is a whole number of 16-byte chunks, as K is a multiple
// of 32, and every chunk lies in one group; one load a chunk where w is
// 16-byte aligned), the W rows' chunks in flight together. Per chunk, in
// float32 and in this order for every output whatever W, R and the grid,
// each code is widened once for all R rows of x, and each x once for the W
// rows: qx = Σ q·x, xs = Σ x (in order of k), acc += scale·qx + bias·xs;
// the lanes' acc are then summed (warp_sum). So an output's bits depend on
// K and the group size alone (batch invariance); the MSL twin sums in the
// same order.
//
// GATED (qmatmul_silu_mul, W = 2): the warp's two rows are the gate row n
// and the up row N + n of output n, which takes their sums rounded to T
// (as the matmul's outputs are) through silu_mul's formula.
template <typename T, int BITS, int W, int R, bool GATED = false>
__device__ void qmatmul_rows(const T* x, const u32* w, const T* scales, const T* biases, T* out, const QuantParams& p,
                             u32 m0, u32 rows) {
  static_assert(!GATED || W == 2, "a gated output's two rows");
  constexpr u32 OUTS = GATED ? 1 : W;  // outputs a warp's step
  constexpr u32 PER = 32 / BITS;
  const u32 warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  constexpr u32 E = 4 * PER;  // codes a chunk
  const u32 words = p.K / PER, chunks = words / 4, groups = p.K / p.GroupSize;
  const u32 gshift = 31 - __clz(p.GroupSize);  // group sizes are powers of two
  // Rows are whole 16-byte chunks, so one check of each buffer's address
  // tells whether every chunk can be one load (a weight bound at an
  // offset might not be aligned).
  const bool wvec = ((u64)w & 15) == 0, xvec = ((u64)x & 15) == 0;
  // A lane's steps over a row: chunk lane + 32·it of it (none past the
  // row's chunks), the same count in every lane, so that the warp meets
  // at each row's warp_sum.
  const u32 steps = (chunks + 31) / 32, stride = OUTS * LOOM_GEMV_ROWS * gridDim.x;
  u32 n0 = OUTS * (blockIdx.x * LOOM_GEMV_ROWS + warp), it = 0;
  // One row of x fits shared memory (stage_x) where xsmem; the block's
  // warps all take part in staging it, even those without an output.
  const bool active = n0 < p.N, xsmem = R == 1 && chunks * (E + 4) <= LOOM_QUANT_SMEM_X;
  if (!active && !xsmem) return;
  // QStep is one step's codes, scales and biases of the W rows. The next
  // step's are loaded before the current one's arithmetic, so that a
  // warp's load latency overlaps its arithmetic (a grid of a few blocks a
  // multiprocessor loops over the rows; with one step a warp, its loads
  // and its arithmetic would run one after the other).
  struct QStep {
    u32 ws[W][4];
    float s[W], b[W];
  };
  auto load = [&](QStep& st, u32 row0, u32 step) {
    const u32 c = lane + 32 * step;
    if (c >= chunks) return;
    // Offsets in 32 bits (the weights hold at most 2^32 - 1 elements,
    // checkQuantWeights): each address is then a multiply-add and a
    // widening one.
    const u32 g = (c * E) >> gshift;
#pragma unroll
    for (int j = 0; j < W; j++) {
      // Rows past N read row N - 1 again and store nothing.
      const u32 rn = GATED ? j * p.N + min(row0, p.N - 1) : min(row0 + j, p.N - 1);
      const u32* wr = w + (rn * words + 4 * c);
      const uint4 v = wvec ? __ldcs((const uint4*)wr) : load_words(wr);
      st.ws[j][0] = v.x, st.ws[j][1] = v.y, st.ws[j][2] = v.z, st.ws[j][3] = v.w;
      const u32 gr = rn * groups + g;
      st.s[j] = load_f(scales, gr), st.b[j] = load_f(biases, gr);
    }
  };
  // One row of x: the step's x as floats and their sum (from shared
  // memory, or loaded and summed by the lane), taken once for all the
  // warp's rows where a row is one step a lane (K = 1,024 in 4 bits);
  // several rows: a word's x at a time, in the arithmetic.
  float xv[R == 1 ? E : 1], xs1 = 0.0f;
  auto load_xs = [&](u32 step) {
    if constexpr (R == 1) {
      const u32 c = lane + 32 * step;
      if (c >= chunks) return;
      if (xsmem) {
        const float4* px = quant_x + c * (E + 4) / 4;
#pragma unroll
        for (int i = 0; i < (int)E / 4; i++) {
          const float4 v = px[i];
          xv[4 * i] = v.x, xv[4 * i + 1] = v.y, xv[4 * i + 2] = v.z, xv[4 * i + 3] = v.w;
        }
        xs1 = quant_xsum[c];
        return;
      }
      load_x<T, E>(x + (u64)m0 * p.K + c * E, xvec, xv);
      xs1 = 0.0f;
#pragma unroll
      for (int e = 0; e < (int)E; e++) xs1 = __fadd_rn(xs1, xv[e]);
    }
  };
  // The first two steps' codes are asked for before x is staged (staging
  // between them delayed a row's second step by the staging's latency:
  // 0.75 and 1.1 µs on the H100's O and down projections, two and three
  // steps a lane); a warp without an output stages x with the others.
  auto stage = [&] {
    if constexpr (R == 1) {
      if (xsmem) stage_x<T, E>(x + (u64)m0 * p.K, p.K);
    }
  };
  if (!active) return stage();
  QStep qa, qb;
  load(qa, n0, 0);
  // The gated kernel stages first: its registers, bounded for three blocks
  // a multiprocessor, do not hold two steps' codes across the staging.
  if constexpr (GATED) stage(), load_xs(0);
  bool first = !GATED;
  float acc[W][R] = {};
  // step computes the current step from cur, having asked for the next
  // one's codes into next; false when there is none.
  auto step = [&](const QStep& cur, QStep& next) {
    u32 nn0 = n0, nit = it + 1;
    if (nit == steps) nn0 += stride, nit = 0;
    const bool more = nn0 < p.N;
    if (more) load(next, nn0, nit);
    if (first) stage(), load_xs(0), first = false;
    const u32 c = lane + 32 * it;
    if (c < chunks) {
      float qx[W][R] = {}, xs[R] = {};
      if constexpr (R == 1) xs[0] = xs1;
#pragma unroll
      for (int i = 0; i < 4; i++) {
        float q[W][PER];
#pragma unroll
        for (int j = 0; j < W; j++) codes_f<BITS>(cur.ws[j][i], q[j]);
        if constexpr (R == 1) {
#pragma unroll
          for (int e = 0; e < (int)PER; e++) {
#pragma unroll
            for (int j = 0; j < W; j++) qx[j][0] = __fmaf_rn(q[j][e], xv[i * PER + e], qx[j][0]);
          }
        } else {
#pragma unroll
          for (int r = 0; r < R; r++) {
            if (r < (int)rows) {
              float xw[PER];
              load_x<T, PER>(x + (u64)(m0 + r) * p.K + c * E + i * PER, xvec, xw);
#pragma unroll
              for (int e = 0; e < (int)PER; e++) {
                xs[r] = __fadd_rn(xs[r], xw[e]);
#pragma unroll
                for (int j = 0; j < W; j++) qx[j][r] = __fmaf_rn(q[j][e], xw[e], qx[j][r]);
              }
            }
          }
        }
      }
#pragma unroll
      for (int j = 0; j < W; j++) {
#pragma unroll
        for (int r = 0; r < R; r++) acc[j][r] = __fadd_rn(acc[j][r], __fmaf_rn(cur.s[j], qx[j][r], __fmul_rn(cur.b[j], xs[r])));
      }
    }
    if (nit == 0) {
      // The row's steps are done: its sums, row j's in lanes 32·j/W on.
#pragma unroll
      for (int r = 0; r < R; r++) {
        if (r >= (int)rows) continue;
        float a[W];
#pragma unroll
        for (int j = 0; j < W; j++) a[j] = acc[j][r];
        const float sum = warp_sums<W>(a, lane);
        if (GATED) {
          const float g = Num<T>::load(Num<T>::store(sum));
          const float u = Num<T>::load(Num<T>::store(__shfl_xor_sync(0xffffffffu, sum, 16)));
          if (lane == 0 && n0 < p.N) store_f(out, (u64)(m0 + r) * p.N + n0, un_silu(g) * u);
          continue;
        }
        const u32 j = lane / (32 / W);
        if (lane % (32 / W) == 0 && n0 + j < p.N) store_f(out, (u64)(m0 + r) * p.N + n0 + j, sum);
      }
#pragma unroll
      for (int j = 0; j < W; j++) {
#pragma unroll
        for (int r = 0; r < R; r++) acc[j][r] = 0.0f;
      }
    }
    if (!more) return false;
    n0 = nn0, it = nit;
    if (steps > 1) load_xs(it);
    return true;
  };
  if constexpr (W == 4) {
    // The steps' codes go to qa and qb in turns (two copies of the loop's
    // body): copying the next step's into the current one's registers
    // took a move a value, some 8 % of the loop at four outputs.
    while (step(qa, qb) && step(qb, qa)) {
    }
  } else {
    // One copy of the body (the gated kernel's registers are bounded).
    while (step(qa, qb)) qa = qb;
  }
}

// qmatmul_warp_rows is the outputs a warp takes for the grid's width (the
// lowering's choice, primitives.QuantizedMatMul) and the block's rows of
// x: 1 or 2, and 1 for several rows (the kernel's registers, which every
// block reserves, are those of its largest instance: 70 with two outputs
// and four rows of x would be about 96, fewer blocks a multiprocessor).
__device__ __forceinline__ u32 qmatmul_warp_rows(u32 N, u32 rows) {
  const u64 warps = (u64)gridDim.x * LOOM_GEMV_ROWS;
  if (rows != 1) return 1;
  if (LOOM_QUANT_WARP_ROWS >= 4 && 8 * warps <= N) return 4;
  return LOOM_QUANT_WARP_ROWS >= 2 && warps < N ? 2 : 1;
}

// qmatmul dispatches to qmatmul_rows by the block's rows of x (one, the
// decode GEMV, or up to LOOM_QUANT_X_ROWS) and the outputs a warp.
template <typename T, int BITS>
__device__ void qmatmul(const T* x, const u32* w, const T* scales, const T* biases, T* out, const QuantParams& p) {
  static_assert(LOOM_GEMV_THREADS == 32 * LOOM_GEMV_ROWS, "a warp per output");
  constexpr u32 R = LOOM_QUANT_X_ROWS;
  const u32 m0 = blockIdx.y * R;
  if (m0 >= p.M) return;
  const u32 rows = min(R, p.M - m0);
  if (rows > 1) return qmatmul_rows<T, BITS, 1, R>(x, w, scales, biases, out, p, m0, rows);
  switch (qmatmul_warp_rows(p.N, rows)) {
    case 4: return qmatmul_rows<T, BITS, 4, 1>(x, w, scales, biases, out, p, m0, rows);
    case 2: return qmatmul_rows<T, BITS, 2, 1>(x, w, scales, biases, out, p, m0, rows);
    default: return qmatmul_rows<T, BITS, 1, 1>(x, w, scales, biases, out, p, m0, rows);
  }
}

// QUANT_PREFETCH_BYTES bounds the code bytes a qmatmul block asks the L2
// for before grid_dependency_wait (common.cuh), as matmul.cu's
// PREFETCH_BYTES bounds a GEMV block's.
#define QUANT_PREFETCH_BYTES (64u << 10)

// qmatmul_span is the code rows of the block's first outputs (its warps'
// first W rows each), for its first rows of x only: the other rows' blocks
// read the same weights.
__device__ __forceinline__ L2Span qmatmul_span(const u32* w, const QuantParams& p, u32 bits) {
  const u32 W = qmatmul_warp_rows(p.N, min((u32)LOOM_QUANT_X_ROWS, p.M)), r0 = blockIdx.x * LOOM_GEMV_ROWS * W;
  if (blockIdx.y != 0 || r0 >= p.N) return L2Span{nullptr, 0};
  const u64 row = (u64)p.K * bits / 8, bytes = (u64)min(LOOM_GEMV_ROWS * W, p.N - r0) * row;
  return L2Span{(const char*)w + r0 * row, bytes < QUANT_PREFETCH_BYTES ? bytes : QUANT_PREFETCH_BYTES};
}

// qmatmul_silu_mul: out[m, n] = SiLU(x[m]·w[n])·(x[m]·w[N + n]) for the N
// outputs of the stacked gate and up weights [2N, K·BITS/32], a warp per
// output (its gate and up rows, qmatmul_rows's GATED), a block per row of x.
template <typename T, int BITS>
__device__ void qmatmul_silu_mul(const T* x, const u32* w, const T* scales, const T* biases, T* out, const QuantParams& p) {
  if (blockIdx.y >= p.M) return;
  qmatmul_rows<T, BITS, 2, 1, true>(x, w, scales, biases, out, p, blockIdx.y, 1);
}

// qmatmul_silu_mul_span is the block's gate (half 0) or up (half 1) code
// rows, for its first row of x only.
__device__ __forceinline__ L2Span qmatmul_silu_mul_span(const u32* w, const QuantParams& p, u32 bits, u32 half) {
  const u32 r0 = blockIdx.x * LOOM_GEMV_ROWS;
  if (blockIdx.y != 0 || r0 >= p.N) return L2Span{nullptr, 0};
  const u64 row = (u64)p.K * bits / 8, bytes = (u64)min((u32)LOOM_GEMV_ROWS, p.N - r0) * row;
  return L2Span{(const char*)w + ((u64)half * p.N + r0) * row, bytes < QUANT_PREFETCH_BYTES ? bytes : QUANT_PREFETCH_BYTES};
}

// dequantize: one thread per word of the N rows, writing its PER
// elements scale·q + bias.
template <typename T, int BITS>
__device__ void dequantize(const u32* w, const T* scales, const T* biases, T* out, const QuantParams& p) {
  constexpr u32 PER = 32 / BITS, MASK = (1u << BITS) - 1u;
  const u64 j = (u64)blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= (u64)p.N * (p.K / PER)) return;
  const u32 word = w[j];
  const u64 e0 = j * PER;  // rows are whole words and whole groups, so flat indices line up
  const u64 g = e0 / p.GroupSize;
  const float s = load_f(scales, g), b = load_f(biases, g);
#pragma unroll
  for (u32 i = 0; i < PER; i++) store_f(out, e0 + i, s * (float)((word >> (BITS * i)) & MASK) + b);
}

// The kernels' launch bounds: qmatmul's registers (up to 128, its four
// outputs a warp with a step in flight) leave two blocks a multiprocessor,
// which the lowering's grid does not exceed (primitives.QuantizedMatMul);
// qmatmul_silu_mul's (80) three, so that the 384 blocks of the Qwen3-0.6B
// shape's MLP run in one wave on 132 multiprocessors.
#define QUANT_MATMUL_BOUNDS __launch_bounds__(LOOM_GEMV_THREADS, 2)
#define QUANT_GATED_BOUNDS __launch_bounds__(LOOM_GEMV_THREADS, 3)

#define QUANT_KERNELS(SHORT, T, BITS)                                                                                  \
  extern "C" __global__ void QUANT_MATMUL_BOUNDS qmatmul_##SHORT##_q##BITS(const T* x, const u32* w, const T* scales,  \
                                                       const T* biases, T* out, const QuantParams p,                   \
                                                       Status* status) {                                               \
    grid_dependency_wait(qmatmul_span(w, p, BITS));                                                                    \
    qmatmul<T, BITS>(x, w, scales, biases, out, p);                                                                    \
  }                                                                                                                    \
  extern "C" __global__ void QUANT_GATED_BOUNDS qmatmul_silu_mul_##SHORT##_q##BITS(const T* x, const u32* w, const T* scales, \
                                                                const T* biases, T* out, const QuantParams p,          \
                                                                Status* status) {                                      \
    grid_dependency_wait(qmatmul_silu_mul_span(w, p, BITS, 0), qmatmul_silu_mul_span(w, p, BITS, 1));                  \
    qmatmul_silu_mul<T, BITS>(x, w, scales, biases, out, p);                                                           \
  }                                                                                                                    \
  extern "C" __global__ void dequantize_##SHORT##_q##BITS(const u32* w, const T* scales, const T* biases,              \
                                                          T* out, const QuantParams p, Status* status) {               \
    grid_dependency_wait();                                                                                            \
    dequantize<T, BITS>(w, scales, biases, out, p);                                                                    \
  }
#define QUANT_KERNELS_4_8(SHORT, T) QUANT_KERNELS(SHORT, T, 4) QUANT_KERNELS(SHORT, T, 8)
LOOM_FLOATS(QUANT_KERNELS_4_8)

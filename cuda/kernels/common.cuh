// Shared by every kernel file. The Go side compiles each kernels/*.cu file
// as its own program: the params structs generated from the Go types first
// (see sourceFiles), then this file, then the kernel file.
//
// Every catalog kernel is an extern "C" __global__ function named like the
// catalog entry, with the catalog's buffer arguments in order, then the
// params struct by value (if the kernel has one), then `Status* status`.
// The device checks each launch's argument count and params type against
// the catalog; the package's tests check the sources' parameters too.

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;
typedef unsigned long long u64;

// Float16 and bfloat16 are storage types: 16 bits, loaded as float.
struct half_t { u16 bits; };
struct bf16_t { u16 bits; };
// LOOM_T(short) is a float dtype's storage type, by the kernel names'
// short, which may be a macro: a variant compiled for one dtype (see
// cuda/variants.go) is given the short alone.
typedef float f32_t;
typedef half_t f16_t;
#define LOOM_T(SHORT) LOOM_T_(SHORT)
#define LOOM_T_(SHORT) SHORT##_t

// Status is a dispatch's status record (see status.go): a kernel that meets
// bad data reports it with report_status and skips the work that entry
// would have done; the device turns the record into the command buffer's
// error. Of all reports the one with the smallest key is kept, so that the
// error names the same entry whatever the schedule. The codes (LOOM_BAD_INDEX
// and others) are generated from the Go side.
struct Status {
  u32 count;  // reports
  u32 lock;   // guards the fields below
  u32 code;   // what the kept report says; 0 if none
  u32 arg;    // its buffer argument's index + 1
  u64 key;    // its order among the reports
  u32 entry;  // the element it is about
  u32 pad;
  i64 value;  // that element's value
  i64 aux;    // a second value, by code (the bound of a bad index)
};
static_assert(sizeof(Status) == 48, "Status: layout differs from statusWords");

// Reports are rare, so a spin lock keeps the kept report's fields
// consistent.
__device__ __noinline__ void report_status(Status* s, u32 code, u32 arg, u64 key, u32 entry, i64 value, i64 aux) {
  atomicAdd(&s->count, 1u);
  while (atomicCAS(&s->lock, 0u, 1u) != 0u) {
  }
  __threadfence();
  volatile Status* v = s;
  if (v->code == 0u || key < v->key) {
    v->code = code;
    v->arg = arg + 1u;
    v->key = key;
    v->entry = entry;
    v->value = value;
    v->aux = aux;
  }
  __threadfence();
  atomicExch(&s->lock, 0u);
}

// report_bad_index records that element `entry` of buffer argument `arg`
// holds `value`, outside [0, limit); the smallest entry is kept.
__device__ __forceinline__ void report_bad_index(Status* s, u32 arg, u32 entry, i64 value, i64 limit) {
  report_status(s, LOOM_BAD_INDEX, arg, entry, entry, value, limit);
}

// ---- programmatic dependent launch -------------------------------------------

// grid_dependency_wait is every catalog kernel's first statement (the tests
// hold the sources to it; docs/CUDA.md, "Programmatic dependent launch").
// In a graph whose kernel nodes depend on the one before programmatically
// (LOOM_CUDA_PDL), a kernel may start while its predecessor still runs:
// griddepcontrol.wait holds the thread until every prerequisite grid has
// completed and its memory operations are visible, so no global memory
// access of the kernel (a read of a predecessor's output, a write to a
// buffer it still reads, a status report) comes before it. As each kernel
// waits before it can complete, a completed kernel implies that all the
// kernels before it in the chain have completed too. launch_dependents
// then lets the next kernel of the chain be scheduled while this one runs:
// it only waits in turn. It comes after the wait, so that a kernel is
// scheduled only once every kernel two nodes or more before it has
// completed: only its immediate predecessor may still run, and the writes
// of all the others were done before it started. Without a programmatic
// prerequisite (a launch outside a graph, an ordinary edge, an older GPU)
// both are no-ops.
//
// Its arguments are spans of global memory the kernel is about to read,
// which the block asks the L2 cache for before the wait (the weight rows
// of a GEMV's first step, matmul.cu), so that the weight stream starts
// while the predecessor finishes. A prefetch returns nothing to the thread
// and writes nothing: it moves lines into the L2, which every
// multiprocessor reads global memory through (the point of coherence), so
// it can neither see nor change a value, whatever the predecessor does to
// those bytes (the weights are not written by any kernel of a step anyway).
// The spans are computed from the params and the block's index alone.
struct L2Span {
  const void* p;
  u64 bytes;
};
__device__ __forceinline__ void prefetch_l2(L2Span s) {
#ifdef __CUDA_ARCH__
  const char* c = (const char*)s.p;
  for (u64 at = (u64)threadIdx.x * 128; at < s.bytes; at += (u64)blockDim.x * 128) {
    asm volatile("prefetch.L2 [%0];" ::"l"(c + at));
  }
#else
  emu_prefetch(s.p, s.bytes);  // the host emulation of matmul.cu checks the spans (emulate_test.go)
#endif
}
__device__ __forceinline__ void grid_dependency_wait(L2Span a = L2Span{nullptr, 0}, L2Span b = L2Span{nullptr, 0}) {
  prefetch_l2(a);
  prefetch_l2(b);
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// kv_slot returns the slot of slot_mapping (buffer argument slot_arg) that
// token t writes its keys and values to, or a negative number when it
// writes none: its slot is negative (padding), or some slot is past the
// cache's num_slots (then no token writes anything), or another token holds
// the same slot (then neither writes it; the later one reports it, naming
// the earlier, while the other tokens write theirs: the CPU device writes
// nothing then, as that would take a scan of all pairs of slots in every
// block). Every thread of the block must call it; the block's reports are
// made when report is set, so that a token's several blocks report once.
template <typename S>
__device__ i64 kv_slot(const S* slot_mapping, int num_tokens, int num_slots, int t, u32 slot_arg, bool report,
                       Status* status) {
  const i64 mine = slot_mapping[t];
  __shared__ int skip;
  if (threadIdx.x == 0) skip = 0;
  __syncthreads();
  for (int i = threadIdx.x; i < num_tokens; i += blockDim.x) {
    const i64 s = slot_mapping[i];
    if (s >= num_slots) skip = 1;
    if (mine >= 0 && i != t && s == mine) {
      skip = 1;
      if (report && i < t) report_status(status, LOOM_SLOT_DUP, slot_arg, t, t, mine, i);
    }
  }
  if (report && threadIdx.x == 0 && mine >= num_slots) report_status(status, LOOM_SLOT_RANGE, slot_arg, t, t, mine, num_slots);
  __syncthreads();
  return skip ? -1 : mine;
}

// ---- float16 / bfloat16 conversions ----------------------------------------

// f16_to_f32 is exact. The hardware converts numbers; a NaN keeps its sign
// and payload (the hardware would make it the canonical NaN), bit for bit
// what graph.F16ToF32 does.
__device__ __forceinline__ float f16_to_f32(u16 h) {
  if ((h & 0x7fffu) > 0x7c00u) return __uint_as_float(((u32)(h & 0x8000u) << 16) | 0x7f800000u | ((u32)(h & 0x3ffu) << 13));
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}

// f32_to_f16 rounds to nearest even, keeping NaN quiet with its sign and
// payload's top bits: bit for bit what graph.F32ToF16 does.
__device__ __forceinline__ u16 f32_to_f16(float f) {
  u32 b = __float_as_uint(f);
  u16 sign = (u16)((b >> 16) & 0x8000u);
  int exp = (int)((b >> 23) & 0xffu);
  u32 mant = b & 0x7fffffu;
  if (exp == 0xff) {
    return mant != 0u ? (u16)(sign | 0x7e00u | (mant >> 13)) : (u16)(sign | 0x7c00u);
  }
  if (exp > 142) {
    return (u16)(sign | 0x7c00u);
  }
  if (exp >= 113) {
    u32 h = ((u32)(exp - 112) << 10) | (mant >> 13);
    u32 rest = mant & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) {
      h++;
    }
    return (u16)(sign | h);
  }
  if (exp >= 102) {
    u32 m = mant | 0x800000u;
    u32 shift = (u32)(126 - exp);
    u32 h = m >> shift;
    u32 rest = m & ((1u << shift) - 1u);
    u32 half = 1u << (shift - 1u);
    if (rest > half || (rest == half && (h & 1u))) {
      h++;
    }
    return (u16)(sign | h);
  }
  return sign;
}

__device__ __forceinline__ float bf16_to_f32(u16 h) { return __uint_as_float((u32)h << 16); }

// f32_to_bf16 rounds to nearest even; NaN stays a quiet NaN (graph.F32ToBF16).
__device__ __forceinline__ u16 f32_to_bf16(float f) {
  u32 b = __float_as_uint(f);
  if ((b & 0x7fffffffu) > 0x7f800000u) {
    return (u16)((b >> 16) | 0x40u);
  }
  b += 0x7fffu + ((b >> 16) & 1u);
  return (u16)(b >> 16);
}

// ---- loading and storing as the compute type --------------------------------

// Num<T> says how elements of storage type T are computed with: floats as
// float; integers as i64 (uint32 zero-extends, so comparisons and min/max are
// unsigned); bool as 0 or 1.
template <typename T> struct Num;
template <> struct Num<float> {
  typedef float C;
  static __device__ __forceinline__ float load(float v) { return v; }
  static __device__ __forceinline__ float store(float v) { return v; }
};
template <> struct Num<half_t> {
  typedef float C;
  static __device__ __forceinline__ float load(half_t v) { return f16_to_f32(v.bits); }
  static __device__ __forceinline__ half_t store(float v) { half_t h; h.bits = f32_to_f16(v); return h; }
};
template <> struct Num<bf16_t> {
  typedef float C;
  static __device__ __forceinline__ float load(bf16_t v) { return bf16_to_f32(v.bits); }
  static __device__ __forceinline__ bf16_t store(float v) { bf16_t h; h.bits = f32_to_bf16(v); return h; }
};
template <> struct Num<int> {
  typedef i64 C;
  static __device__ __forceinline__ i64 load(int v) { return v; }
  static __device__ __forceinline__ int store(i64 v) { return (int)v; }
};
template <> struct Num<i64> {
  typedef i64 C;
  static __device__ __forceinline__ i64 load(i64 v) { return v; }
  static __device__ __forceinline__ i64 store(i64 v) { return v; }
};
template <> struct Num<u32> {
  typedef i64 C;
  static __device__ __forceinline__ i64 load(u32 v) { return (i64)v; }
  static __device__ __forceinline__ u32 store(i64 v) { return (u32)v; }
};
template <> struct Num<u8> {
  typedef i64 C;
  static __device__ __forceinline__ i64 load(u8 v) { return v != 0; }
  static __device__ __forceinline__ u8 store(i64 v) { return v != 0; }
};

template <typename T> __device__ __forceinline__ float load_f(const T* p, u64 i) { return Num<T>::load(p[i]); }
template <typename T> __device__ __forceinline__ void store_f(T* p, u64 i, float v) { p[i] = Num<T>::store(v); }

// The dtypes of kernel names, with their storage types. LOOM_FLOATS(X) calls
// X(short, T) for each float dtype; LOOM_NUMERIC adds the integer dtypes
// that binary arithmetic supports; LOOM_ALL adds bool.
#define LOOM_FLOATS(X) X(f32, float) X(f16, half_t) X(bf16, bf16_t)
#define LOOM_NUMERIC(X) LOOM_FLOATS(X) X(i32, int) X(i64, i64) X(u32, u32)
#define LOOM_ALL(X) LOOM_NUMERIC(X) X(b8, u8)

// NVRTC has no <math.h>: infinity and a quiet NaN by their bits.
#define LOOM_INF __int_as_float(0x7f800000)
#define LOOM_NAN __int_as_float(0x7fc00000)

// log2(e): softmax and attention scale by it once so that every exponential
// is an exp2.
#define LOG2E 1.4426950408889634f

// un_silu is SiLU in double, rounded to float: the unary kernel's and
// silu_mul's (elementwise.cu), and the gated GEMV's epilogue (matmul.cu).
__device__ __forceinline__ float un_silu(float x) { return (float)((double)x / (1.0 + exp(-(double)x))); }

// ---- block-wide reductions ---------------------------------------------------

template <typename T> __device__ __forceinline__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// block_sum returns the sum of v over the block to every thread, combining
// in a fixed order (so results do not depend on the schedule). scratch holds
// a value per warp. blockDim.x must be a multiple of 32.
template <typename T> __device__ T block_sum(T v, T* scratch) {
  v = warp_sum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : (T)0;
  return warp_sum(v);
}

// ---- RMS normalisation of a row ----------------------------------------------

// rms_scale is 1 / sqrt(mean(x²) + eps) of a row of d elements whose
// squares sum to ss.
__device__ __forceinline__ float rms_scale(float ss, u32 d, float eps) {
  return (float)(1.0 / sqrt((double)(ss / (float)d + eps)));
}

// NORM_REGS is how many elements of its row a thread of rms_norm and
// add_rms_norm (norm.cu) holds in registers: up to NORM_REGS · blockDim.x
// (4,096 with primitives.ReduceThreads) elements, every load of a row is
// issued before the first is used, so the kernel waits on memory once; a
// longer row is read again after the reduction.
#define NORM_REGS 16

// add_rms_norm_regs is add_rms_norm's row of d ≤ NORM_REGS · blockDim.x
// elements, by the whole block: sum = x + residual rounded to T, stored
// where sum is not null, and out = the rounded sum · scale · weight. The
// fused GEMVs of matmul.cu normalise their row with it into shared memory
// (out), with blocks of as many threads as add_rms_norm's, so that the
// sums of squares, and so the results, are add_rms_norm's bit for bit.
// scratch is block_sum's.
template <typename T>
__device__ __forceinline__ void add_rms_norm_regs(const T* x, const T* residual, const T* weight, T* sum, T* out, u32 d,
                                                  float eps, float* scratch) {
  float a[NORM_REGS], b[NORM_REGS], w[NORM_REGS];
#pragma unroll
  for (int j = 0; j < NORM_REGS; j++) {
    const u32 k = threadIdx.x + j * blockDim.x;
    a[j] = k < d ? load_f(x, k) : 0.0f;
    b[j] = k < d ? load_f(residual, k) : 0.0f;
    w[j] = k < d ? load_f(weight, k) : 0.0f;
  }
  float ss = 0;
#pragma unroll
  for (int j = 0; j < NORM_REGS; j++) {
    const u32 k = threadIdx.x + j * blockDim.x;
    const T s = Num<T>::store(a[j] + b[j]);
    a[j] = Num<T>::load(s);
    if (sum != nullptr && k < d) sum[k] = s;
    ss += a[j] * a[j];
  }
  const float scale = rms_scale(block_sum(ss, scratch), d, eps);
#pragma unroll
  for (int j = 0; j < NORM_REGS; j++) {
    const u32 k = threadIdx.x + j * blockDim.x;
    if (k < d) store_f(out, k, a[j] * scale * w[j]);
  }
}

// ---- elementwise indexing ----------------------------------------------------

// input_index maps output element i to input k's element index.
__device__ __forceinline__ u32 input_index(const ElementwiseParams& p, int k, u32 i) {
  if (p.Contiguous) return i;
  u32 idx = 0;
  for (int d = (int)p.Rank - 1; d >= 0; d--) {
    u32 n = p.Shape[d];
    idx += (i % n) * p.Strides[k][d];
    i /= n;
  }
  return idx;
}

// thread_index is the thread's index in a one-dimensional grid.
__device__ __forceinline__ u32 thread_index() { return blockIdx.x * blockDim.x + threadIdx.x; }

// ---- random numbers ----------------------------------------------------------

// philox4x32 sets w to the four words of Philox4x32-10 (Salmon et al.,
// 2011) for counter (c, 0, 0, 0) and key (k0, k1): primitives.Philox4x32, the
// generator of sampling and of the random draws.
__device__ __forceinline__ void philox4x32(u32 c, u32 k0, u32 k1, u32* w) {
  u32 x0 = c, x1 = 0, x2 = 0, x3 = 0;
  for (int i = 0; i < 10; i++) {
    if (i > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    const u32 hi0 = __umulhi(0xD2511F53u, x0), lo0 = 0xD2511F53u * x0;
    const u32 hi1 = __umulhi(0xCD9E8D57u, x2), lo1 = 0xCD9E8D57u * x2;
    const u32 y0 = hi1 ^ x1 ^ k0, y2 = hi0 ^ x3 ^ k1;
    x0 = y0;
    x1 = lo1;
    x2 = y2;
    x3 = lo0;
  }
  w[0] = x0;
  w[1] = x1;
  w[2] = x2;
  w[3] = x3;
}

// Shared by every kernel file. The Go side puts this file first in the
// library source, followed by the params structs generated from the Go
// types (see librarySource), then the other files.
#include <metal_stdlib>
using namespace metal;

// LOOM_SHARED declares a kernel's threadgroup-memory arrays. (The Linux
// emulation in msl_emulate_test.go redefines it: there a threadgroup's
// threads share function-static arrays.)
#ifndef LOOM_SHARED
#define LOOM_SHARED threadgroup
#endif

// LOOM_KERNEL makes template kernel FUNC<ARGS...> a library function named
// NAME, the catalog's kernel name. Every kernel is a template with its
// parameters bound by [[buffer(i)]] in the catalog's order; the check in
// msl_test.go holds names, indices and params types to the catalog.
// (The Linux emulation defines it away and instantiates only the kernels
// it calls.)
#ifndef LOOM_KERNEL
#define LOOM_KERNEL(NAME, FUNC, ...) \
  template [[host_name(NAME)]] [[kernel]] decltype(FUNC<__VA_ARGS__>) FUNC<__VA_ARGS__>;
#endif

// LOOM_FLOAT_KERNELS instantiates FUNC for the three float storage types
// under NAME_f32, NAME_f16 and NAME_bf16; extra template arguments follow T.
#define LOOM_FLOAT_KERNELS(NAME, FUNC, ...) \
  LOOM_KERNEL(NAME "_f32", FUNC, float, ##__VA_ARGS__) \
  LOOM_KERNEL(NAME "_f16", FUNC, half, ##__VA_ARGS__) \
  LOOM_KERNEL(NAME "_bf16", FUNC, bfloat, ##__VA_ARGS__)

// LOOM_ALL_KERNELS instantiates FUNC for every dtype, under NAME_<short>.
#define LOOM_ALL_KERNELS(NAME, FUNC) \
  LOOM_FLOAT_KERNELS(NAME, FUNC) \
  LOOM_KERNEL(NAME "_i32", FUNC, int) \
  LOOM_KERNEL(NAME "_i64", FUNC, long) \
  LOOM_KERNEL(NAME "_u32", FUNC, uint) \
  LOOM_KERNEL(NAME "_b8", FUNC, uchar)

// LOOM_STATUS is the status record every dispatch is given at buffer 30
// (statusIndex in Go): error count, argument index + 1, entry, value, what
// the report says (a LOOM_REPORT_* code) and a second entry.
#define LOOM_STATUS device atomic_uint* status [[buffer(30)]]

// The codes of reports (statusError in Go words them).
#define LOOM_REPORT_RANGE 0u // the entry's value is out of range
#define LOOM_REPORT_DUP 1u   // the entry's value is also the second entry's

// report records that entry `entry` of buffer argument `arg` holds `value`,
// which is wrong as code says (with a second entry for LOOM_REPORT_DUP).
// The first report wins; the count keeps growing. The kernel then skips the
// work that entry would have done.
inline void report(device atomic_uint* status, uint code, uint arg, uint entry, int value, uint other) {
  if (atomic_fetch_add_explicit(&status[0], 1u, memory_order_relaxed) == 0u) {
    atomic_store_explicit(&status[1], arg + 1u, memory_order_relaxed);
    atomic_store_explicit(&status[2], entry, memory_order_relaxed);
    atomic_store_explicit(&status[3], as_type<uint>(value), memory_order_relaxed);
    atomic_store_explicit(&status[4], code, memory_order_relaxed);
    atomic_store_explicit(&status[5], other, memory_order_relaxed);
  }
}

// report_bad_index records that entry `entry` of buffer argument `arg`
// holds `value`, which is out of range.
inline void report_bad_index(device atomic_uint* status, uint arg, uint entry, int value) {
  report(status, LOOM_REPORT_RANGE, arg, entry, value, 0u);
}

// Float storage types (half, bfloat) are computed in float; integers in
// their own type.
template <typename T> struct compute { typedef T type; };
template <> struct compute<half> { typedef float type; };
template <> struct compute<bfloat> { typedef float type; };

// log2(e): attention and softmax scale scores by it once so that every
// exponential is an exp2.
constant float LOG2E = 1.4426950408889634f;

// threadgroup_reduce combines v over the n threads of a threadgroup with
// op, in a fixed tree order (so results do not depend on scheduling), and
// returns the result to every thread. scratch has a slot per thread.
template <typename T, typename Op>
T threadgroup_reduce(T v, threadgroup T* scratch, uint tid, uint n, Op op) {
  scratch[tid] = v;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  uint span = 1;
  while (span < n) {
    span <<= 1;
  }
  for (uint s = span / 2; s > 0; s >>= 1) {
    if (tid < s && tid + s < n) {
      scratch[tid] = op(scratch[tid], scratch[tid + s]);
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  T r = scratch[0];
  // Every thread has read the result before scratch can be reused.
  threadgroup_barrier(mem_flags::mem_threadgroup);
  return r;
}

// The largest threadgroup Loom dispatches; threadgroup arrays sized by it
// fit any group.
#define LOOM_MAX_THREADS 1024

struct SumOp {
  template <typename T> T operator()(T a, T b) const { return a + b; }
};
struct MinOp {
  template <typename T> T operator()(T a, T b) const { return a < b ? a : b; }
};
struct MaxNaNOp {
  // NaN is larger than any number, so it wins.
  template <typename T> T operator()(T a, T b) const { return (a != a || a > b) ? a : b; }
};

// Elementwise kernels take ElementwiseParams: N output elements of shape
// Shape[:Rank]; Strides[k][d] is input k's element stride along output
// dimension d (0 where input k is broadcast). Contiguous == 1 means every
// input has the output's shape, so element i of each input is element i.

// elementwise_index returns input k's element index for output element i.
// (A template only so that it can precede the generated ElementwiseParams.)
template <typename Params>
uint elementwise_index(constant Params& p, uint k, uint i) {
  if (p.Contiguous == 1u) {
    return i;
  }
  uint idx = 0;
  for (int d = int(p.Rank) - 1; d >= 0; d--) {
    uint n = p.Shape[d];
    idx += (i % n) * p.Strides[k][d];
    i /= n;
  }
  return idx;
}

// kv_slot returns the slot of slot_mapping (buffer argument slot_arg) that
// token t writes its keys and values to, or -1 when it writes none: its
// slot is negative (padding) or past the cache's num_slots (reported), or
// another token holds the same slot: then neither writes it, and the later
// one reports it, naming the first (the other tokens' rows are written, as
// on the CUDA device; the CPU device writes nothing then): two writes to
// one slot would race. Every thread of the threadgroup must call it, with
// scratch of a slot per thread; only groups with report_errors set report,
// so that a token's several groups report once.
template <typename S>
int kv_slot(device const S* slot_mapping, int num_tokens, int num_slots, uint t, uint slot_arg, bool report_errors,
            device atomic_uint* status, threadgroup uint* scratch, uint tid, uint threads) {
  S slot = slot_mapping[t];
  if (slot < 0) {
    return -1;
  }
  if (slot >= S(num_slots)) {
    if (report_errors && tid == 0) {
      report_bad_index(status, slot_arg, t, int(slot));
    }
    return -1;
  }
  // The first other entry holding the same slot, if any (O(tokens) per
  // token: a decode step's few tokens cost nothing; a long prefill pays).
  uint first = UINT_MAX;
  for (uint i = tid; i < uint(num_tokens); i += threads) {
    if (i != t && slot_mapping[i] == slot) {
      first = min(first, i);
    }
  }
  first = threadgroup_reduce(first, scratch, tid, threads, MinOp());
  if (first != UINT_MAX) {
    if (report_errors && first < t && tid == 0) {
      report(status, LOOM_REPORT_DUP, slot_arg, t, int(slot), first);
    }
    return -1;
  }
  return int(slot);
}

// OpSiLU is SiLU on the compute type: the unary kernel's, silu_mul's and the
// gated GEMV's (matmul.metal) epilogue.
struct OpSiLU {
  float operator()(float x) const { return x / (1.0f + exp(-x)); }
};

// philox4x32 returns the four words of Philox4x32-10 (Salmon et al., 2011)
// for counter (c, 0, 0, 0) and key (k0, k1): primitives.Philox4x32, the
// generator of sampling and of the random draws.
inline uint4 philox4x32(uint c, uint k0, uint k1) {
  uint x0 = c, x1 = 0, x2 = 0, x3 = 0;
  for (int i = 0; i < 10; i++) {
    if (i > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    ulong p0 = ulong(0xD2511F53u) * ulong(x0), p1 = ulong(0xCD9E8D57u) * ulong(x2);
    uint y0 = uint(p1 >> 32) ^ x1 ^ k0, y2 = uint(p0 >> 32) ^ x3 ^ k1;
    x0 = y0;
    x1 = uint(p1);
    x2 = y2;
    x3 = uint(p0);
  }
  return uint4(x0, x1, x2, x3);
}

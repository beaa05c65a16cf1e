// Elementwise kernels: binary arithmetic and comparisons, unary functions,
// the gated silu_mul and where (casts are in cast.cu). One thread per
// output element; inputs are indexed through the broadcast strides of
// ElementwiseParams.

// ---- binary ------------------------------------------------------------------

// Float arithmetic is IEEE float32. maximum and minimum propagate NaN from
// either side.
__device__ __forceinline__ float op_add(float a, float b) { return a + b; }
__device__ __forceinline__ float op_sub(float a, float b) { return a - b; }
__device__ __forceinline__ float op_mul(float a, float b) { return a * b; }
__device__ __forceinline__ float op_div(float a, float b) { return a / b; }
__device__ __forceinline__ float op_maximum(float a, float b) { return (a != a || a > b) ? a : b; }
__device__ __forceinline__ float op_minimum(float a, float b) { return (a != a || a < b) ? a : b; }
// power in double, rounded once, as on the CPU.
__device__ __forceinline__ float op_power(float a, float b) { return (float)pow((double)a, (double)b); }

// Integer arithmetic wraps around (it is done on unsigned bits, then
// truncated to the storage type on store); division by zero gives 0, and so
// does the one overflowing division, MinInt64 / −1.
__device__ __forceinline__ i64 op_add(i64 a, i64 b) { return (i64)((u64)a + (u64)b); }
__device__ __forceinline__ i64 op_sub(i64 a, i64 b) { return (i64)((u64)a - (u64)b); }
__device__ __forceinline__ i64 op_mul(i64 a, i64 b) { return (i64)((u64)a * (u64)b); }
__device__ __forceinline__ i64 op_div(i64 a, i64 b) {
  if (b == 0 || (b == -1 && a == (i64)0x8000000000000000ull)) return 0;
  return a / b;
}
__device__ __forceinline__ i64 op_maximum(i64 a, i64 b) { return a > b ? a : b; }
__device__ __forceinline__ i64 op_minimum(i64 a, i64 b) { return a < b ? a : b; }
// Integer power by repeated squaring, wrapping around; a negative exponent
// gives 0 but for the bases 1 and −1.
__device__ __forceinline__ i64 op_power(i64 a, i64 b) {
  if (b < 0) return a == 1 ? 1 : (a == -1 ? ((b & 1) ? -1 : 1) : 0);
  u64 r = 1, x = (u64)a;
  for (u64 n = (u64)b; n > 0; n >>= 1) {
    if (n & 1) r *= x;
    x *= x;
  }
  return (i64)r;
}

template <typename C> __device__ __forceinline__ bool op_equal(C a, C b) { return a == b; }
template <typename C> __device__ __forceinline__ bool op_not_equal(C a, C b) { return a != b; }
template <typename C> __device__ __forceinline__ bool op_less(C a, C b) { return a < b; }
template <typename C> __device__ __forceinline__ bool op_less_equal(C a, C b) { return a <= b; }
template <typename C> __device__ __forceinline__ bool op_greater(C a, C b) { return a > b; }
template <typename C> __device__ __forceinline__ bool op_greater_equal(C a, C b) { return a >= b; }

// ARITH and COMPARE instantiate one operation for every dtype it supports.
#define ARITH_KERNEL(SHORT, T, OP)                                                                      \
  extern "C" __global__ void OP##_##SHORT(const T* a, const T* b, T* out, const ElementwiseParams p,    \
                                          Status* status) {                                             \
    grid_dependency_wait();                                                                             \
    u32 i = thread_index();                                                                             \
    if (i >= p.N) return;                                                                               \
    out[i] = Num<T>::store(op_##OP(Num<T>::load(a[input_index(p, 0, i)]), Num<T>::load(b[input_index(p, 1, i)]))); \
  }
#define COMPARE_KERNEL(SHORT, T, OP)                                                                    \
  extern "C" __global__ void OP##_##SHORT(const T* a, const T* b, u8* out, const ElementwiseParams p,   \
                                          Status* status) {                                             \
    grid_dependency_wait();                                                                             \
    u32 i = thread_index();                                                                             \
    if (i >= p.N) return;                                                                               \
    out[i] = op_##OP(Num<T>::load(a[input_index(p, 0, i)]), Num<T>::load(b[input_index(p, 1, i)]));     \
  }

#define ARITH(OP)                                                                                       \
  ARITH_KERNEL(f32, float, OP) ARITH_KERNEL(f16, half_t, OP) ARITH_KERNEL(bf16, bf16_t, OP)             \
  ARITH_KERNEL(i32, int, OP) ARITH_KERNEL(i64, i64, OP) ARITH_KERNEL(u32, u32, OP)
#define COMPARE(OP)                                                                                     \
  COMPARE_KERNEL(f32, float, OP) COMPARE_KERNEL(f16, half_t, OP) COMPARE_KERNEL(bf16, bf16_t, OP)       \
  COMPARE_KERNEL(i32, int, OP) COMPARE_KERNEL(i64, i64, OP) COMPARE_KERNEL(u32, u32, OP)

ARITH(add)
ARITH(sub)
ARITH(mul)
ARITH(div)
ARITH(maximum)
ARITH(minimum)
ARITH(power)
COMPARE(equal)
COMPARE(not_equal)
COMPARE(less)
COMPARE(less_equal)
COMPARE(greater)
COMPARE(greater_equal)

// ---- unary -------------------------------------------------------------------

// The transcendental functions are evaluated in double and rounded once, as
// the CPU kernels do, so both give the float32 nearest the exact value in all
// but rare ties. (These kernels are bound by memory, not arithmetic.)
// Negation flips the sign bit, NaN included (the hardware's negation may
// return the canonical NaN).
__device__ __forceinline__ float un_neg(float x) { return __uint_as_float(__float_as_uint(x) ^ 0x80000000u); }
__device__ __forceinline__ float un_exp(float x) { return (float)exp((double)x); }
__device__ __forceinline__ float un_log(float x) { return (float)log((double)x); }
__device__ __forceinline__ float un_sqrt(float x) { return (float)sqrt((double)x); }
__device__ __forceinline__ float un_rsqrt(float x) { return (float)(1.0 / sqrt((double)x)); }
__device__ __forceinline__ float un_tanh(float x) { return (float)tanh((double)x); }
__device__ __forceinline__ float un_sigmoid(float x) { return (float)(1.0 / (1.0 + exp(-(double)x))); }
__device__ __forceinline__ float un_gelu(float x) {
  double v = x;
  return (float)(0.5 * v * (1.0 + erf(v * 0.70710678118654752440)));
}
// abs clears the sign bit, NaN included.
__device__ __forceinline__ float un_abs(float x) { return __uint_as_float(__float_as_uint(x) & 0x7fffffffu); }
__device__ __forceinline__ float un_sin(float x) { return (float)sin((double)x); }
__device__ __forceinline__ float un_cos(float x) { return (float)cos((double)x); }
__device__ __forceinline__ float un_erf(float x) { return (float)erf((double)x); }
__device__ __forceinline__ float un_floor(float x) { return floorf(x); }
// Integer negation and abs wrap around (uint32 negates modulo 2^32; it is
// loaded zero-extended, so its abs is itself).
__device__ __forceinline__ i64 un_neg(i64 x) { return (i64)(0ull - (u64)x); }
__device__ __forceinline__ i64 un_abs(i64 x) { return x < 0 ? un_neg(x) : x; }

#define UNARY_KERNEL(SHORT, T, OP)                                                                    \
  extern "C" __global__ void OP##_##SHORT(const T* a, T* out, const ElementwiseParams p, Status* status) { \
    grid_dependency_wait();                                                                           \
    u32 i = thread_index();                                                                           \
    if (i >= p.N) return;                                                                             \
    out[i] = Num<T>::store(un_##OP(Num<T>::load(a[input_index(p, 0, i)])));                           \
  }
#define UNARY_FLOAT(OP) UNARY_KERNEL(f32, float, OP) UNARY_KERNEL(f16, half_t, OP) UNARY_KERNEL(bf16, bf16_t, OP)

UNARY_FLOAT(neg)
UNARY_KERNEL(i32, int, neg)
UNARY_KERNEL(i64, i64, neg)
UNARY_KERNEL(u32, u32, neg)
UNARY_FLOAT(exp)
UNARY_FLOAT(log)
UNARY_FLOAT(sqrt)
UNARY_FLOAT(rsqrt)
UNARY_FLOAT(tanh)
UNARY_FLOAT(sigmoid)
UNARY_FLOAT(silu)
UNARY_FLOAT(gelu)
UNARY_FLOAT(abs)
UNARY_KERNEL(i32, int, abs)
UNARY_KERNEL(i64, i64, abs)
UNARY_KERNEL(u32, u32, abs)
UNARY_FLOAT(sin)
UNARY_FLOAT(cos)
UNARY_FLOAT(erf)
UNARY_FLOAT(floor)

// silu_mul: out[r, i] = silu(a[r, i]) · a[r, N + i] for rows of 2N (the
// gate half, then the up half), a thread per output element; silu as
// above, the product in float32, rounded once.
#define SILU_MUL_KERNEL(SHORT, T)                                                                       \
  extern "C" __global__ void silu_mul_##SHORT(const T* a, T* out, const SiLUMulParams p, Status* status) { \
    grid_dependency_wait();                                                                           \
    u32 i = thread_index();                                                                           \
    if (i >= p.Rows * p.N) return;                                                                    \
    const u64 g = (u64)(i / p.N) * 2 * p.N + i % p.N;                                                 \
    out[i] = Num<T>::store(un_silu(Num<T>::load(a[g])) * Num<T>::load(a[g + p.N]));                    \
  }
LOOM_FLOATS(SILU_MUL_KERNEL)

// ---- where -------------------------------------------------------------------

#define WHERE_KERNEL(SHORT, T)                                                                         \
  extern "C" __global__ void where_##SHORT(const u8* cond, const T* a, const T* b, T* out,             \
                                           const ElementwiseParams p, Status* status) {                \
    grid_dependency_wait();                                                                            \
    u32 i = thread_index();                                                                            \
    if (i >= p.N) return;                                                                              \
    out[i] = cond[input_index(p, 0, i)] ? a[input_index(p, 1, i)] : b[input_index(p, 2, i)];           \
  }
LOOM_ALL(WHERE_KERNEL)

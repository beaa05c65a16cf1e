// Reductions over one axis (sum, mean, prod, max, min, their arg forms,
// logsumexp) and softmax. The input is viewed as
// [Outer, N, Inner] (AxisParams); block b reduces or normalises the row
// (o, ·, i) with o = b / Inner, i = b % Inner, its threads striding over k.
// Combining goes through a fixed tree, so results do not depend on the
// schedule.

// row_at is the element index of (o, k, i) for block b's row.
__device__ __forceinline__ u64 row_at(const AxisParams& p, u32 k) {
  u32 o = blockIdx.x / p.Inner, i = blockIdx.x % p.Inner;
  return ((u64)o * p.N + k) * p.Inner + i;
}

// ---- sum and mean --------------------------------------------------------------

// sum_vec returns the sum of the elements of T in a 16-byte vector.
template <typename T> __device__ __forceinline__ double sum_vec(const uint4& w) {
  const T* e = (const T*)&w;
  double s = 0;
#pragma unroll
  for (int i = 0; i < 16 / (int)sizeof(T); i++) s += (double)Num<T>::load(e[i]);
  return s;
}

// Float sums accumulate in double, like the CPU kernels, and round once. A
// contiguous row that starts 16-byte aligned (sum's common case, and the
// read-bandwidth figure of `loom bench membw`) is read as 16-byte vectors,
// four per thread in flight, then its tail element by element: loads of
// one element streamed at about 70 % of what the vectors reach on an H100.
template <typename T> __device__ __forceinline__ double sum_row(const T* a, const AxisParams& p) {
  __shared__ double scratch[32];
  constexpr u32 VEC = 16 / sizeof(T);
  double s = 0;
  u32 k0 = 0;  // elements before k0 are summed as vectors
  const T* row = a + row_at(p, 0);
  if (p.Inner == 1 && ((u64)row & 15) == 0) {
    const uint4* v = (const uint4*)row;
    const u32 nv = p.N / VEC, step = blockDim.x;
    u32 j = threadIdx.x;
    for (; j + 3 * step < nv; j += 4 * step) {
      uint4 w[4];
#pragma unroll
      for (int u = 0; u < 4; u++) w[u] = v[j + u * step];
#pragma unroll
      for (int u = 0; u < 4; u++) s += sum_vec<T>(w[u]);
    }
    for (; j < nv; j += step) s += sum_vec<T>(v[j]);
    k0 = nv * VEC;
  }
  for (u32 k = k0 + threadIdx.x; k < p.N; k += blockDim.x) s += (double)load_f(a, row_at(p, k));
  return block_sum(s, scratch);
}

#define SUM_FLOAT(SHORT, T)                                                                             \
  extern "C" __global__ void sum_##SHORT(const T* a, T* out, const AxisParams p, Status* status) {     \
    grid_dependency_wait();                                                                            \
    double s = sum_row(a, p);                                                                           \
    if (threadIdx.x == 0) store_f(out, blockIdx.x, (float)s);                                           \
  }                                                                                                     \
  extern "C" __global__ void mean_##SHORT(const T* a, T* out, const AxisParams p, Status* status) {    \
    grid_dependency_wait();                                                                            \
    double s = sum_row(a, p);                                                                           \
    if (threadIdx.x == 0) store_f(out, blockIdx.x, (float)(s / (double)p.N));                           \
  }
LOOM_FLOATS(SUM_FLOAT)

// Integer sums wrap around like integer addition.
#define SUM_INT(SHORT, T)                                                                               \
  extern "C" __global__ void sum_##SHORT(const T* a, T* out, const AxisParams p, Status* status) {     \
    grid_dependency_wait();                                                                            \
    __shared__ u64 scratch[32];                                                                         \
    u64 s = 0;                                                                                          \
    for (u32 k = threadIdx.x; k < p.N; k += blockDim.x) s += (u64)Num<T>::load(a[row_at(p, k)]);       \
    s = block_sum(s, scratch);                                                                          \
    if (threadIdx.x == 0) out[blockIdx.x] = Num<T>::store((i64)s);                                      \
  }
SUM_INT(i32, int)
SUM_INT(i64, i64)
SUM_INT(u32, u32)

// ---- product ---------------------------------------------------------------------

// block_prod returns the product of v over the block to every thread, in a
// fixed order, as block_sum does for sums.
template <typename T> __device__ T block_prod(T v, T* scratch) {
  for (int o = 16; o > 0; o >>= 1) v *= __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : (T)1;
  for (int o = 16; o > 0; o >>= 1) v *= __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Float products accumulate in double, like the CPU kernels; integer
// products wrap around.
#define PROD_FLOAT(SHORT, T)                                                                            \
  extern "C" __global__ void prod_##SHORT(const T* a, T* out, const AxisParams p, Status* status) {    \
    grid_dependency_wait();                                                                            \
    __shared__ double scratch[32];                                                                      \
    double s = 1;                                                                                       \
    for (u32 k = threadIdx.x; k < p.N; k += blockDim.x) s *= (double)load_f(a, row_at(p, k));          \
    s = block_prod(s, scratch);                                                                         \
    if (threadIdx.x == 0) store_f(out, blockIdx.x, (float)s);                                           \
  }
LOOM_FLOATS(PROD_FLOAT)
#define PROD_INT(SHORT, T)                                                                              \
  extern "C" __global__ void prod_##SHORT(const T* a, T* out, const AxisParams p, Status* status) {    \
    grid_dependency_wait();                                                                            \
    __shared__ u64 scratch[32];                                                                         \
    u64 s = 1;                                                                                          \
    for (u32 k = threadIdx.x; k < p.N; k += blockDim.x) s *= (u64)Num<T>::load(a[row_at(p, k)]);       \
    s = block_prod(s, scratch);                                                                         \
    if (threadIdx.x == 0) out[blockIdx.x] = Num<T>::store((i64)s);                                      \
  }
PROD_INT(i32, int)
PROD_INT(i64, i64)
PROD_INT(u32, u32)

// ---- max, min, argmax and argmin -------------------------------------------------

// Best is a candidate maximum (or minimum): a value and its index along the
// axis. NaN counts as larger than any number for the maximum and smaller
// for the minimum: it wins both; among equals the first index wins, so
// the value and the index agree with a sequential scan.
template <typename C> struct Best {
  C v;
  u32 k;  // 0xffffffff: no candidate yet
};

template <typename C> __device__ __forceinline__ bool is_nan(C v) { return v != v; }

// better reports whether b replaces a; Min picks the minimum.
template <bool Min, typename C> __device__ __forceinline__ bool better(const Best<C>& b, const Best<C>& a) {
  if (b.k == 0xffffffffu) return false;
  if (a.k == 0xffffffffu) return true;
  bool nb = is_nan(b.v), na = is_nan(a.v);
  if (nb != na) return nb;
  if (!nb && b.v != a.v) return Min ? b.v < a.v : b.v > a.v;
  return b.k < a.k;
}

template <bool Min, typename C> __device__ Best<C> block_best(Best<C> x) {
  __shared__ C sv[32];
  __shared__ u32 sk[32];
  for (int o = 16; o > 0; o >>= 1) {
    Best<C> y = {__shfl_xor_sync(0xffffffffu, x.v, o), __shfl_xor_sync(0xffffffffu, x.k, o)};
    if (better<Min>(y, x)) x = y;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  if (lane == 0) {
    sv[warp] = x.v;
    sk[warp] = x.k;
  }
  __syncthreads();
  if (lane < warps) {
    x.v = sv[lane];
    x.k = sk[lane];
  } else {
    x.k = 0xffffffffu;
  }
  for (int o = 16; o > 0; o >>= 1) {
    Best<C> y = {__shfl_xor_sync(0xffffffffu, x.v, o), __shfl_xor_sync(0xffffffffu, x.k, o)};
    if (better<Min>(y, x)) x = y;
  }
  return x;
}

template <bool Min, typename T>
__device__ __forceinline__ Best<typename Num<T>::C> best_row(const T* a, const AxisParams& p) {
  typedef typename Num<T>::C C;
  Best<C> x = {(C)0, 0xffffffffu};
  for (u32 k = threadIdx.x; k < p.N; k += blockDim.x) {
    Best<C> y = {Num<T>::load(a[row_at(p, k)]), k};
    if (better<Min>(y, x)) x = y;
  }
  return block_best<Min>(x);
}

#define BEST_KERNELS(SHORT, T, NAME, ARG, MIN)                                                          \
  extern "C" __global__ void NAME##_##SHORT(const T* a, T* out, const AxisParams p, Status* status) {  \
    grid_dependency_wait();                                                                            \
    Best<Num<T>::C> x = best_row<MIN>(a, p);                                                            \
    if (threadIdx.x == 0) out[blockIdx.x] = Num<T>::store(x.v);                                         \
  }                                                                                                     \
  extern "C" __global__ void ARG##_##SHORT(const T* a, int* out, const AxisParams p, Status* status) { \
    grid_dependency_wait();                                                                            \
    Best<Num<T>::C> x = best_row<MIN>(a, p);                                                            \
    if (threadIdx.x == 0) out[blockIdx.x] = (int)x.k;                                                   \
  }
#define MAX_KERNELS(SHORT, T) BEST_KERNELS(SHORT, T, max, argmax, false)
#define MIN_KERNELS(SHORT, T) BEST_KERNELS(SHORT, T, min, argmin, true)
LOOM_NUMERIC(MAX_KERNELS)
LOOM_NUMERIC(MIN_KERNELS)

// ---- logsumexp -------------------------------------------------------------------

// logsumexp: the maximum (a NaN sticks), then max + log(Σ exp(x − max)) in
// double, as on the CPU; an infinite or NaN maximum is the result.
#define LOGSUMEXP_KERNEL(SHORT, T)                                                                      \
  extern "C" __global__ void logsumexp_##SHORT(const T* a, T* out, const AxisParams p, Status* status) { \
    grid_dependency_wait();                                                                             \
    __shared__ double scratch[32];                                                                      \
    const float m = best_row<false>(a, p).v;                                                            \
    const bool empty = p.N == 0;                                                                        \
    if (empty || m != m || m == LOOM_INF || m == -LOOM_INF) {                                           \
      if (threadIdx.x == 0) store_f(out, blockIdx.x, empty ? -LOOM_INF : m);                            \
      return;                                                                                           \
    }                                                                                                   \
    double s = 0;                                                                                       \
    for (u32 k = threadIdx.x; k < p.N; k += blockDim.x) s += exp((double)load_f(a, row_at(p, k)) - m); \
    s = block_sum(s, scratch);                                                                          \
    if (threadIdx.x == 0) store_f(out, blockIdx.x, (float)((double)m + log(s)));                        \
  }
LOOM_FLOATS(LOGSUMEXP_KERNEL)

// ---- softmax ---------------------------------------------------------------------

// softmax: three passes over the row — the maximum (a NaN sticks and makes
// the row NaN), the sum of exponentials, the output exp(x − max) / sum — in
// float32.
template <typename T> __device__ void softmax(const T* a, T* out, const AxisParams& p) {
  __shared__ float scratch[32];
  __shared__ int any_nan;
  if (threadIdx.x == 0) any_nan = 0;
  __syncthreads();
  float m = -LOOM_INF;
  for (u32 k = threadIdx.x; k < p.N; k += blockDim.x) {
    float v = load_f(a, row_at(p, k));
    if (v != v) any_nan = 1;
    m = fmaxf(m, v);
  }
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  __syncthreads();
  if (lane == 0) scratch[warp] = m;
  __syncthreads();
  m = lane < warps ? scratch[lane] : -LOOM_INF;
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  if (any_nan) m = LOOM_NAN;
  float s = 0;
  for (u32 k = threadIdx.x; k < p.N; k += blockDim.x) s += expf(load_f(a, row_at(p, k)) - m);
  s = block_sum(s, scratch);
  const float inv = 1.0f / s;
  for (u32 k = threadIdx.x; k < p.N; k += blockDim.x) {
    u64 at = row_at(p, k);
    store_f(out, at, expf(load_f(a, at) - m) * inv);
  }
}

#define SOFTMAX_KERNEL(SHORT, T)                                                                         \
  extern "C" __global__ void softmax_##SHORT(const T* a, T* out, const AxisParams p, Status* status) { \
    grid_dependency_wait();                                                                            \
    softmax(a, out, p);                                                                                 \
  }
LOOM_FLOATS(SOFTMAX_KERNEL)

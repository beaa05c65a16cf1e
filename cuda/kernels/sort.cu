// Operations along an axis, one thread per line or element: the running
// sum (cumsum), the sort (sort: values and indices), the gather along an
// axis (take_along_axis) and the row scatter that adds (scatter_add_rows).
// Each thread's work has a fixed order, so results do not depend on the
// schedule.

// scan_add adds in the compute type: floats in float, integers wrapping.
__device__ __forceinline__ float scan_add(float a, float b) { return a + b; }
__device__ __forceinline__ i64 scan_add(i64 a, i64 b) { return (i64)((u64)a + (u64)b); }

// ---- cumsum ------------------------------------------------------------------

// A thread per line (o, ·, i) of AxisParams, summing in order: floats in
// double, as the CPU kernels do, rounded once per element.
#define CUMSUM_FLOAT(SHORT, T)                                                                          \
  extern "C" __global__ void cumsum_##SHORT(const T* a, T* out, const AxisParams p, Status* status) {  \
    grid_dependency_wait();                                                                            \
    u32 line = thread_index();                                                                          \
    if (line >= p.Outer * p.Inner) return;                                                              \
    const u64 first = (u64)(line / p.Inner) * p.N * p.Inner + line % p.Inner;                           \
    double s = 0;                                                                                       \
    for (u32 k = 0; k < p.N; k++) {                                                                     \
      const u64 at = first + (u64)k * p.Inner;                                                          \
      s += (double)load_f(a, at);                                                                       \
      store_f(out, at, (float)s);                                                                       \
    }                                                                                                   \
  }
LOOM_FLOATS(CUMSUM_FLOAT)
#define CUMSUM_INT(SHORT, T)                                                                            \
  extern "C" __global__ void cumsum_##SHORT(const T* a, T* out, const AxisParams p, Status* status) {  \
    grid_dependency_wait();                                                                            \
    u32 line = thread_index();                                                                          \
    if (line >= p.Outer * p.Inner) return;                                                              \
    const u64 first = (u64)(line / p.Inner) * p.N * p.Inner + line % p.Inner;                           \
    i64 s = 0;                                                                                          \
    for (u32 k = 0; k < p.N; k++) {                                                                     \
      const u64 at = first + (u64)k * p.Inner;                                                          \
      s = scan_add(s, Num<T>::load(a[at]));                                                             \
      out[at] = Num<T>::store(s);                                                                       \
    }                                                                                                   \
  }
CUMSUM_INT(i32, int)
CUMSUM_INT(i64, i64)
CUMSUM_INT(u32, u32)

// ---- sort --------------------------------------------------------------------

// sort_before reports whether element j (value x) comes before element k
// (value y) of a line: NaN is the largest value, and equal values keep
// their order.
template <typename C> __device__ __forceinline__ bool sort_before(C x, u32 j, C y, u32 k, bool desc) {
  const bool xn = x != x, yn = y != y;
  if (xn || yn) return xn && yn ? j < k : (desc ? xn : yn);
  if (x != y) return desc ? x > y : x < y;
  return j < k;
}

// A thread per element counts the elements of its line that come before
// it, its rank, and writes itself there: O(N) reads per element.
#define SORT_KERNEL(SHORT, T)                                                                           \
  extern "C" __global__ void sort_##SHORT(const T* a, T* values, int* indices, const SortParams p,      \
                                          Status* status) {                                             \
    grid_dependency_wait();                                                                             \
    u32 t = thread_index();                                                                             \
    if (t >= p.Outer * p.N * p.Inner) return;                                                           \
    const u32 k = (t / p.Inner) % p.N;                                                                  \
    const u64 first = (u64)(t / (p.N * p.Inner)) * p.N * p.Inner + t % p.Inner;                         \
    const Num<T>::C x = Num<T>::load(a[t]);                                                             \
    u32 rank = 0;                                                                                       \
    for (u32 j = 0; j < p.N; j++) rank += sort_before(Num<T>::load(a[first + (u64)j * p.Inner]), j, x, k, p.Descending != 0); \
    const u64 at = first + (u64)rank * p.Inner;                                                         \
    values[at] = a[t];                                                                                  \
    indices[at] = (int)k;                                                                               \
  }
LOOM_NUMERIC(SORT_KERNEL)

// ---- take_along_axis ---------------------------------------------------------

// A thread per output element e of [Outer, M, Inner] (TakeParams) moves
// a's element at indices[e] along the axis, by its bits; a negative index
// counts from the end, one outside [−N, N) is reported and its element
// left unwritten.
#define TAKE_KERNEL(SHORT, T, IS, I)                                                                    \
  extern "C" __global__ void take_along_axis_##SHORT##_##IS(const T* a, const I* indices, T* out,      \
                                                            const TakeParams p, Status* status) {      \
    grid_dependency_wait();                                                                            \
    u32 e = thread_index();                                                                             \
    if (e >= p.Outer * p.M * p.Inner) return;                                                           \
    const i64 v = indices[e], k = v < 0 ? v + (i64)p.N : v;                                             \
    if (k < 0 || k >= (i64)p.N) {                                                                       \
      report_bad_index(status, 1, e, v, p.N);                                                           \
      return;                                                                                           \
    }                                                                                                   \
    out[e] = a[((u64)(e / (p.M * p.Inner)) * p.N + (u64)k) * p.Inner + e % p.Inner];                    \
  }
#define TAKE_KERNELS(SHORT, T) TAKE_KERNEL(SHORT, T, i32, int) TAKE_KERNEL(SHORT, T, i64, i64)
LOOM_ALL(TAKE_KERNELS)

// ---- scatter_add_rows --------------------------------------------------------

// A thread per element e of a row walks the indices in order and adds row
// j's element to dst row indices[j] (skipping negative indices), each sum
// rounded to the dtype. Every thread checks every index first: if one is
// ≥ TableRows nothing is written, and element 0's thread reports the first.
#define SCATTER_ADD_KERNEL(SHORT, T, IS, I)                                                             \
  extern "C" __global__ void scatter_add_rows_##SHORT##_##IS(T* dst, const I* indices, const T* rows,  \
                                                             const RowsParams p, Status* status) {     \
    grid_dependency_wait();                                                                            \
    u32 e = thread_index();                                                                             \
    if (e >= p.RowElems) return;                                                                        \
    for (u32 j = 0; j < p.Rows; j++) {                                                                  \
      if ((i64)indices[j] >= (i64)p.TableRows) {                                                        \
        if (e == 0) report_bad_index(status, 1, j, indices[j], p.TableRows);                            \
        return;                                                                                         \
      }                                                                                                 \
    }                                                                                                   \
    for (u32 j = 0; j < p.Rows; j++) {                                                                  \
      const i64 r = indices[j];                                                                         \
      if (r < 0) continue;                                                                              \
      const u64 at = (u64)r * p.RowElems + e;                                                           \
      dst[at] = Num<T>::store(scan_add(Num<T>::load(dst[at]), Num<T>::load(rows[(u64)j * p.RowElems + e]))); \
    }                                                                                                   \
  }
#define SCATTER_ADD_KERNELS(SHORT, T) SCATTER_ADD_KERNEL(SHORT, T, i32, int) SCATTER_ADD_KERNEL(SHORT, T, i64, i64)
LOOM_NUMERIC(SCATTER_ADD_KERNELS)

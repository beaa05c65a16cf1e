// Operations along an axis, one thread per line or element: the running
// sum (cumsum), the sort (values and indices), the gather along an axis
// (take_along_axis) and the row scatter that adds (scatter_add_rows).
// Each thread's work has a fixed order, so results do not depend on the
// schedule.

// scan_acc is what sums of T accumulate in: float for the float types,
// long for the integers, added as ulong so that they wrap.
template <typename T> struct scan_acc { typedef long type; };
template <> struct scan_acc<float> { typedef float type; };
template <> struct scan_acc<half> { typedef float type; };
template <> struct scan_acc<bfloat> { typedef float type; };
inline float scan_add(float a, float b) { return a + b; }
inline long scan_add(long a, long b) { return long(ulong(a) + ulong(b)); }

// cumsum: a thread per line (o, ·, i) of AxisParams, summing in order.
template <typename T>
[[kernel]] void cumsum(
    device const T* a [[buffer(0)]],
    device T* out [[buffer(1)]],
    constant AxisParams& p [[buffer(2)]],
    uint gid [[thread_position_in_grid]]) {
  if (gid >= p.Outer * p.Inner) {
    return;
  }
  typedef typename scan_acc<T>::type A;
  uint first = (gid / p.Inner) * p.N * p.Inner + gid % p.Inner;
  A s = A(0);
  for (uint k = 0; k < p.N; k++) {
    uint at = first + k * p.Inner;
    s = scan_add(s, A(a[at]));
    out[at] = T(s);
  }
}

LOOM_FLOAT_KERNELS("cumsum", cumsum)
LOOM_KERNEL("cumsum_i32", cumsum, int)
LOOM_KERNEL("cumsum_i64", cumsum, long)
LOOM_KERNEL("cumsum_u32", cumsum, uint)

// sort_before reports whether element j (value x) comes before element k
// (value y) of a line: NaN is the largest value, and equal values keep
// their order.
template <typename C>
bool sort_before(C x, uint j, C y, uint k, bool desc) {
  bool xn = x != x, yn = y != y;
  if (xn || yn) {
    return xn && yn ? j < k : (desc ? xn : yn);
  }
  if (x != y) {
    return desc ? x > y : x < y;
  }
  return j < k;
}

// sort_rank: a thread per element counts the elements of its line that come
// before it, its rank, and writes itself there (SortParams).
template <typename T>
[[kernel]] void sort_rank(
    device const T* a [[buffer(0)]],
    device T* values [[buffer(1)]],
    device int* indices [[buffer(2)]],
    constant SortParams& p [[buffer(3)]],
    uint gid [[thread_position_in_grid]]) {
  if (gid >= p.Outer * p.N * p.Inner) {
    return;
  }
  typedef typename compute<T>::type C;
  uint k = (gid / p.Inner) % p.N;
  uint first = gid / (p.N * p.Inner) * p.N * p.Inner + gid % p.Inner;
  C x = C(a[gid]);
  uint rank = 0;
  for (uint j = 0; j < p.N; j++) {
    rank += sort_before(C(a[first + j * p.Inner]), j, x, k, p.Descending != 0u) ? 1u : 0u;
  }
  uint at = first + rank * p.Inner;
  values[at] = a[gid];
  indices[at] = int(k);
}

LOOM_FLOAT_KERNELS("sort", sort_rank)
LOOM_KERNEL("sort_i32", sort_rank, int)
LOOM_KERNEL("sort_i64", sort_rank, long)
LOOM_KERNEL("sort_u32", sort_rank, uint)

// take_along_axis: a thread per output element e of [Outer, M, Inner]
// (TakeParams) moves a's element at indices[e] along the axis; a negative
// index counts from the end, one outside [−N, N) is reported and its
// element left unwritten.
template <typename T, typename I>
[[kernel]] void take_along_axis(
    device const T* a [[buffer(0)]],
    device const I* indices [[buffer(1)]],
    device T* out [[buffer(2)]],
    constant TakeParams& p [[buffer(3)]],
    LOOM_STATUS,
    uint gid [[thread_position_in_grid]]) {
  if (gid >= p.Outer * p.M * p.Inner) {
    return;
  }
  long v = long(indices[gid]);
  long k = v < 0 ? v + long(p.N) : v;
  if (k < 0 || k >= long(p.N)) {
    report_bad_index(status, 1, gid, int(v));
    return;
  }
  out[gid] = a[(gid / (p.M * p.Inner) * p.N + uint(k)) * p.Inner + gid % p.Inner];
}

// scatter_add_rows: a thread per element e of a row walks the indices in
// order and adds row j's element to dst row indices[j] (skipping negative
// indices), each sum rounded to the dtype. Every thread checks every index
// first: if one is ≥ TableRows nothing is written, and element 0's thread
// reports the first.
template <typename T, typename I>
[[kernel]] void scatter_add_rows(
    device T* dst [[buffer(0)]],
    device const I* indices [[buffer(1)]],
    device const T* rows [[buffer(2)]],
    constant RowsParams& p [[buffer(3)]],
    LOOM_STATUS,
    uint gid [[thread_position_in_grid]]) {
  if (gid >= p.RowElems) {
    return;
  }
  for (uint j = 0; j < p.Rows; j++) {
    if (long(indices[j]) >= long(p.TableRows)) {
      if (gid == 0) {
        report_bad_index(status, 1, j, int(indices[j]));
      }
      return;
    }
  }
  typedef typename scan_acc<T>::type A;
  for (uint j = 0; j < p.Rows; j++) {
    I r = indices[j];
    if (r < 0) {
      continue;
    }
    uint at = uint(r) * p.RowElems + gid;
    dst[at] = T(scan_add(A(dst[at]), A(rows[j * p.RowElems + gid])));
  }
}

// LOOM_ROWS and LOOM_ROWS_ALL are rows.metal's.
LOOM_ROWS_ALL("take_along_axis", take_along_axis)
LOOM_ROWS("scatter_add_rows", scatter_add_rows, "f32", float)
LOOM_ROWS("scatter_add_rows", scatter_add_rows, "f16", half)
LOOM_ROWS("scatter_add_rows", scatter_add_rows, "bf16", bfloat)
LOOM_ROWS("scatter_add_rows", scatter_add_rows, "i32", int)
LOOM_ROWS("scatter_add_rows", scatter_add_rows, "i64", long)
LOOM_ROWS("scatter_add_rows", scatter_add_rows, "u32", uint)

// Row gather and scatter over a table viewed as [TableRows, RowElems]: one
// thread per element of the Rows moved rows. An index outside the table is
// reported through the status record (once per row) and its row is left
// alone, never read or written out of bounds.

template <typename T, typename I>
[[kernel]] void gather_rows(
    device const T* table [[buffer(0)]],
    device const I* indices [[buffer(1)]],
    device T* out [[buffer(2)]],
    constant RowsParams& p [[buffer(3)]],
    LOOM_STATUS,
    uint gid [[thread_position_in_grid]]) {
  if (gid >= p.Rows * p.RowElems) {
    return;
  }
  uint r = gid / p.RowElems, j = gid % p.RowElems;
  I idx = indices[r];
  if (idx < 0 || idx >= I(p.TableRows)) {
    if (j == 0) {
      report_bad_index(status, 1, r, int(idx));
    }
    return;
  }
  out[gid] = table[uint(idx) * p.RowElems + j];
}

// scatter_rows writes row r of rows into row indices[r] of dst, in place;
// an index < 0 skips the row.
template <typename T, typename I>
[[kernel]] void scatter_rows(
    device T* dst [[buffer(0)]],
    device const I* indices [[buffer(1)]],
    device const T* rows [[buffer(2)]],
    constant RowsParams& p [[buffer(3)]],
    LOOM_STATUS,
    uint gid [[thread_position_in_grid]]) {
  if (gid >= p.Rows * p.RowElems) {
    return;
  }
  uint r = gid / p.RowElems, j = gid % p.RowElems;
  I idx = indices[r];
  if (idx < 0) {
    return;
  }
  if (idx >= I(p.TableRows)) {
    if (j == 0) {
      report_bad_index(status, 1, r, int(idx));
    }
    return;
  }
  dst[uint(idx) * p.RowElems + j] = rows[gid];
}

#define LOOM_ROWS(NAME, FUNC, DT, T) \
  LOOM_KERNEL(NAME "_" DT "_i32", FUNC, T, int) \
  LOOM_KERNEL(NAME "_" DT "_i64", FUNC, T, long)
#define LOOM_ROWS_ALL(NAME, FUNC) \
  LOOM_ROWS(NAME, FUNC, "f32", float) \
  LOOM_ROWS(NAME, FUNC, "f16", half) \
  LOOM_ROWS(NAME, FUNC, "bf16", bfloat) \
  LOOM_ROWS(NAME, FUNC, "i32", int) \
  LOOM_ROWS(NAME, FUNC, "i64", long) \
  LOOM_ROWS(NAME, FUNC, "u32", uint) \
  LOOM_ROWS(NAME, FUNC, "b8", uchar)

LOOM_ROWS_ALL("gather_rows", gather_rows)
LOOM_ROWS_ALL("scatter_rows", scatter_rows)

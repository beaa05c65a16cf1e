// Row gathers and scatters (RowsParams). One thread per element of the rows
// moved: thread t moves element t % RowElems of row t / RowElems. Elements
// are moved as raw bits, so one kernel serves each element size.

// GATHER: out row r = table row indices[r]. An index outside [0, TableRows)
// is reported (by its row's first thread) and its row is left unwritten.
#define GATHER_KERNEL(SHORT, T, IS, I)                                                                  \
  extern "C" __global__ void gather_rows_##SHORT##_##IS(const T* table, const I* indices, T* out,      \
                                                        const RowsParams p, Status* status) {          \
    grid_dependency_wait();                                                                            \
    u64 t = thread_index();                                                                             \
    if (t >= (u64)p.Rows * p.RowElems) return;                                                          \
    u32 r = (u32)(t / p.RowElems), e = (u32)(t % p.RowElems);                                           \
    i64 v = indices[r];                                                                                 \
    if (v < 0 || v >= (i64)p.TableRows) {                                                               \
      if (e == 0) report_bad_index(status, 1, r, v, p.TableRows);                                       \
      return;                                                                                           \
    }                                                                                                   \
    out[t] = table[(u64)v * p.RowElems + e];                                                            \
  }

// SCATTER: dst row indices[i] = rows row i, for every i with indices[i] ≥ 0.
// Every thread checks every index first: if any is ≥ TableRows nothing is
// written (and each bad row's first thread reports it). When indices repeat,
// the last wins: a thread skips its row if a later index names the same one.
// The scan costs O(Rows) per thread, which is small for the few rows of a
// decode step; a prefill of thousands of rows pays Rows² reads of indices
// (from cache).
#define SCATTER_KERNEL(SHORT, T, IS, I)                                                                 \
  extern "C" __global__ void scatter_rows_##SHORT##_##IS(T* dst, const I* indices, const T* rows,      \
                                                         const RowsParams p, Status* status) {         \
    grid_dependency_wait();                                                                            \
    u64 t = thread_index();                                                                             \
    if (t >= (u64)p.Rows * p.RowElems) return;                                                          \
    u32 r = (u32)(t / p.RowElems), e = (u32)(t % p.RowElems);                                           \
    i64 mine = indices[r];                                                                              \
    bool bad = false, later = false;                                                                    \
    for (u32 j = 0; j < p.Rows; j++) {                                                                  \
      i64 v = indices[j];                                                                               \
      bad |= v >= (i64)p.TableRows;                                                                     \
      later |= j > r && v == mine;                                                                      \
    }                                                                                                   \
    if (mine >= (i64)p.TableRows && e == 0) report_bad_index(status, 1, r, mine, p.TableRows);          \
    if (bad || later || mine < 0) return;                                                               \
    dst[(u64)mine * p.RowElems + e] = rows[t];                                                          \
  }

#define ROWS_KERNELS(SHORT, T)                                                                          \
  GATHER_KERNEL(SHORT, T, i32, int) GATHER_KERNEL(SHORT, T, i64, i64)                                   \
  SCATTER_KERNEL(SHORT, T, i32, int) SCATTER_KERNEL(SHORT, T, i64, i64)
LOOM_ALL(ROWS_KERNELS)

// Row normalisations: one threadgroup per row, its threads striding over
// the row, combined with threadgroup_reduce.

// softmax over the axis of an array viewed as [Outer, N, Inner]: row
// (o, i) is the N elements at (o·N + k)·Inner + i. Exponentials are exp2 of
// scores pre-scaled by log2(e). A NaN makes the row NaN; a row of -inf is
// NaN too (as on the CPU).
template <typename T>
[[kernel]] void softmax(
    device const T* a [[buffer(0)]],
    device T* out [[buffer(1)]],
    constant AxisParams& p [[buffer(2)]],
    uint group [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]],
    uint threads [[threads_per_threadgroup]]) {
  LOOM_SHARED float scratch[LOOM_MAX_THREADS];
  uint base = (group / p.Inner) * p.N * p.Inner + group % p.Inner;
  float m = -INFINITY;
  for (uint k = tid; k < p.N; k += threads) {
    m = MaxNaNOp()(float(a[base + k * p.Inner]) * LOG2E, m);
  }
  m = threadgroup_reduce(m, scratch, tid, threads, MaxNaNOp());
  float sum = 0.0f;
  for (uint k = tid; k < p.N; k += threads) {
    sum += exp2(float(a[base + k * p.Inner]) * LOG2E - m);
  }
  sum = threadgroup_reduce(sum, scratch, tid, threads, SumOp());
  float inv = 1.0f / sum;
  for (uint k = tid; k < p.N; k += threads) {
    uint at = base + k * p.Inner;
    out[at] = T(exp2(float(a[at]) * LOG2E - m) * inv);
  }
}

LOOM_FLOAT_KERNELS("softmax", softmax)

// rms_scale is rsqrt(mean(x²) + eps) of a row of d elements whose squares
// sum to ss.
inline float rms_scale(float ss, uint d, float eps) {
  return rsqrt(ss / float(d) + eps);
}

// rms_norm: out = x · rsqrt(mean(x²) + eps) · weight over rows of D.
template <typename T>
[[kernel]] void rms_norm(
    device const T* x [[buffer(0)]],
    device const T* weight [[buffer(1)]],
    device T* out [[buffer(2)]],
    constant RMSNormParams& p [[buffer(3)]],
    uint row [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]],
    uint threads [[threads_per_threadgroup]]) {
  LOOM_SHARED float scratch[LOOM_MAX_THREADS];
  if (row >= p.Rows) {
    return;
  }
  device const T* xr = x + row * p.D;
  float ss = 0.0f;
  for (uint k = tid; k < p.D; k += threads) {
    float v = float(xr[k]);
    ss += v * v;
  }
  float r = rms_scale(threadgroup_reduce(ss, scratch, tid, threads, SumOp()), p.D, p.Eps);
  for (uint k = tid; k < p.D; k += threads) {
    out[row * p.D + k] = T(float(xr[k]) * r * float(weight[k]));
  }
}

LOOM_FLOAT_KERNELS("rms_norm", rms_norm)

// add_rms_norm_row is add_rms_norm's row of D by the threadgroup: sum =
// x + residual rounded to T (stored where store_sum) and out = the rounded
// sum · scale · weight, out in device or threadgroup memory (OP). (Each
// thread reads back only the elements of out it wrote.)
template <typename T, typename OP>
inline void add_rms_norm_row(device const T* x, device const T* residual, device const T* weight, device T* sum, bool store_sum,
                             OP out, uint D, float eps, uint tid, uint threads, threadgroup float* scratch) {
  float ss = 0.0f;
  for (uint k = tid; k < D; k += threads) {
    T s = T(float(x[k]) + float(residual[k]));
    if (store_sum) {
      sum[k] = s;
    }
    out[k] = s;
    float v = float(s);
    ss += v * v;
  }
  float r = rms_scale(threadgroup_reduce(ss, scratch, tid, threads, SumOp()), D, eps);
  for (uint k = tid; k < D; k += threads) {
    out[k] = T(float(out[k]) * r * float(weight[k]));
  }
}

// add_rms_norm: rms_norm of sum = x + residual, rounded to T and stored;
// the norm reads the rounded sum, as rms_norm after add does.
template <typename T>
[[kernel]] void add_rms_norm(
    device const T* x [[buffer(0)]],
    device const T* residual [[buffer(1)]],
    device const T* weight [[buffer(2)]],
    device T* sum [[buffer(3)]],
    device T* out [[buffer(4)]],
    constant RMSNormParams& p [[buffer(5)]],
    uint row [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]],
    uint threads [[threads_per_threadgroup]]) {
  LOOM_SHARED float scratch[LOOM_MAX_THREADS];
  if (row >= p.Rows) {
    return;
  }
  ulong base = ulong(row) * p.D;
  add_rms_norm_row(x + base, residual + base, weight, sum + base, true, out + base, p.D, p.Eps, tid, threads, scratch);
}

LOOM_FLOAT_KERNELS("add_rms_norm", add_rms_norm)

// layer_norm: out = (x − mean) · rsqrt(var + eps) · weight + bias over rows
// of D, the mean and then the biased variance summed in float.
template <typename T>
[[kernel]] void layer_norm(
    device const T* x [[buffer(0)]],
    device const T* weight [[buffer(1)]],
    device const T* bias [[buffer(2)]],
    device T* out [[buffer(3)]],
    constant RMSNormParams& p [[buffer(4)]],
    uint row [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]],
    uint threads [[threads_per_threadgroup]]) {
  LOOM_SHARED float scratch[LOOM_MAX_THREADS];
  if (row >= p.Rows) {
    return;
  }
  device const T* xr = x + row * p.D;
  float s = 0.0f;
  for (uint k = tid; k < p.D; k += threads) {
    s += float(xr[k]);
  }
  float mean = threadgroup_reduce(s, scratch, tid, threads, SumOp()) / float(p.D);
  float ss = 0.0f;
  for (uint k = tid; k < p.D; k += threads) {
    float v = float(xr[k]) - mean;
    ss += v * v;
  }
  float r = rsqrt(threadgroup_reduce(ss, scratch, tid, threads, SumOp()) / float(p.D) + p.Eps);
  for (uint k = tid; k < p.D; k += threads) {
    out[row * p.D + k] = T((float(xr[k]) - mean) * r * float(weight[k]) + float(bias[k]));
  }
}

LOOM_FLOAT_KERNELS("layer_norm", layer_norm)

// add_rms_norm_matmul and add_rms_norm_matmul_silu_mul
// (primitives.AddRMSNormLinear): x and delta, one row of K ≤
// LOOM_NORM_GEMV_MAX_K, the norm's weight [K], w [N, K] (gated: [2N, K]).
// Each threadgroup normalises the row into threadgroup memory as
// add_rms_norm does (add_rms_norm_row, with as many threads: the same
// bits; threadgroup 0 also stores the sum), then computes its outputs from
// there as matmul_gemv (gemv_columns) or matmul_silu_mul (gated_output)
// would from the stored norm.
template <typename T>
[[kernel]] void add_rms_norm_matmul(
    device const T* x [[buffer(0)]],
    device const T* delta [[buffer(1)]],
    device const T* norm_weight [[buffer(2)]],
    device const T* w [[buffer(3)]],
    device T* sum [[buffer(4)]],
    device T* out [[buffer(5)]],
    constant AddRMSNormLinearParams& p [[buffer(6)]],
    uint3 group [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]],
    uint threads [[threads_per_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]) {
  LOOM_SHARED T xn[LOOM_NORM_GEMV_MAX_K];
  LOOM_SHARED float scratch[LOOM_MAX_THREADS];
  LOOM_SHARED float xs[SM_ROWS * SM_K];
  LOOM_SHARED float ws[SM_COLS * SM_K];
  add_rms_norm_row(x, delta, norm_weight, sum, group.x == 0, &xn[0], p.K, p.Eps, tid, threads, scratch);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  gemv_columns(&xn[0], w, out, 1, p.N, p.K, false, true, group.x * SM_COLS, tid, sg, lane, xs, ws);
}

LOOM_FLOAT_KERNELS("add_rms_norm_matmul", add_rms_norm_matmul)

template <typename T>
[[kernel]] void add_rms_norm_matmul_silu_mul(
    device const T* x [[buffer(0)]],
    device const T* delta [[buffer(1)]],
    device const T* norm_weight [[buffer(2)]],
    device const T* w [[buffer(3)]],
    device T* sum [[buffer(4)]],
    device T* out [[buffer(5)]],
    constant AddRMSNormLinearParams& p [[buffer(6)]],
    uint3 group [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]],
    uint threads [[threads_per_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]],
    uint sgs [[simdgroups_per_threadgroup]],
    uint lane [[thread_index_in_simdgroup]],
    uint width [[threads_per_simdgroup]]) {
  LOOM_SHARED T xn[LOOM_NORM_GEMV_MAX_K];
  LOOM_SHARED float scratch[LOOM_MAX_THREADS];
  add_rms_norm_row(x, delta, norm_weight, sum, group.x == 0, &xn[0], p.K, p.Eps, tid, threads, scratch);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  uint j = group.x * sgs + sg;
  if (j < p.N) {
    gated_output(&xn[0], w, out, p.N, p.K, j, lane, width);
  }
}

LOOM_FLOAT_KERNELS("add_rms_norm_matmul_silu_mul", add_rms_norm_matmul_silu_mul)

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

// add_rms_norm: rms_norm of sum = x + residual, rounded to T and stored;
// the norm reads the rounded sum, as rms_norm after add does. (Each thread
// reads back only the elements it wrote.)
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
  float ss = 0.0f;
  for (uint k = tid; k < p.D; k += threads) {
    T s = T(float(x[base + k]) + float(residual[base + k]));
    sum[base + k] = s;
    float v = float(s);
    ss += v * v;
  }
  float r = rms_scale(threadgroup_reduce(ss, scratch, tid, threads, SumOp()), p.D, p.Eps);
  for (uint k = tid; k < p.D; k += threads) {
    out[base + k] = T(float(sum[base + k]) * r * float(weight[k]));
  }
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

// Reductions over one axis of an array viewed as [Outer, N, Inner]: one
// threadgroup per output element (o, i), its threads striding over k, then
// a tree over the threadgroup. Float sums accumulate in float; integer sums
// in long and wrap to the type on store, as on the CPU.

template <typename T> struct accumulator { typedef long type; };
template <> struct accumulator<float> { typedef float type; };
template <> struct accumulator<half> { typedef float type; };
template <> struct accumulator<bfloat> { typedef float type; };

struct ReduceSum {
  template <typename A> static A init() { return A(0); }
  template <typename A> static A add(A acc, A v) { return acc + v; }
  template <typename A> static A finish(A acc, uint) { return acc; }
  typedef SumOp combine;
};
struct ReduceMax {
  template <typename A> static A init() { return lowest<A>(); }
  template <typename A> static A add(A acc, A v) { return MaxNaNOp()(v, acc); }
  template <typename A> static A finish(A acc, uint) { return acc; }
  typedef MaxNaNOp combine;
  template <typename A> static A lowest();
};
template <> inline float ReduceMax::lowest<float>() { return -INFINITY; }
template <> inline long ReduceMax::lowest<long>() { return LONG_MIN; }

// MinNaNOp is the minimum with NaN counted as smaller than any number, so
// that it wins.
struct MinNaNOp {
  template <typename T> T operator()(T a, T b) const { return (a != a || a < b) ? a : b; }
};
struct ReduceMin {
  template <typename A> static A init() { return highest<A>(); }
  template <typename A> static A add(A acc, A v) { return MinNaNOp()(v, acc); }
  template <typename A> static A finish(A acc, uint) { return acc; }
  typedef MinNaNOp combine;
  template <typename A> static A highest();
};
template <> inline float ReduceMin::highest<float>() { return INFINITY; }
template <> inline long ReduceMin::highest<long>() { return LONG_MAX; }

// Integer products wrap: they multiply as ulong, where overflow is defined.
struct ProdOp {
  float operator()(float a, float b) const { return a * b; }
  long operator()(long a, long b) const { return long(ulong(a) * ulong(b)); }
};
struct ReduceProd {
  template <typename A> static A init() { return A(1); }
  template <typename A> static A add(A acc, A v) { return ProdOp()(acc, v); }
  template <typename A> static A finish(A acc, uint) { return acc; }
  typedef ProdOp combine;
};

// Mean is a sum divided by N at the end (0/0 = NaN for an empty axis).
struct ReduceMean : ReduceSum {
  static float finish(float acc, uint n) { return acc / float(n); }
};

template <typename T, typename Op>
[[kernel]] void reduce(
    device const T* a [[buffer(0)]],
    device T* out [[buffer(1)]],
    constant AxisParams& p [[buffer(2)]],
    uint group [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]],
    uint threads [[threads_per_threadgroup]]) {
  typedef typename accumulator<T>::type A;
  LOOM_SHARED A scratch[LOOM_MAX_THREADS];
  uint o = group / p.Inner, i = group % p.Inner;
  device const T* row = a + o * p.N * p.Inner + i;
  A acc = Op::template init<A>();
  for (uint k = tid; k < p.N; k += threads) {
    acc = Op::add(acc, A(row[k * p.Inner]));
  }
  acc = threadgroup_reduce(acc, scratch, tid, threads, typename Op::combine());
  if (tid == 0) {
    out[group] = T(Op::finish(acc, p.N));
  }
}

#define LOOM_REDUCE(NAME, OP) \
  LOOM_FLOAT_KERNELS(NAME, reduce, OP) \
  LOOM_KERNEL(NAME "_i32", reduce, int, OP) \
  LOOM_KERNEL(NAME "_i64", reduce, long, OP) \
  LOOM_KERNEL(NAME "_u32", reduce, uint, OP)

LOOM_REDUCE("sum", ReduceSum)
LOOM_REDUCE("max", ReduceMax)
LOOM_FLOAT_KERNELS("mean", reduce, ReduceMean)
LOOM_REDUCE("min", ReduceMin)
LOOM_REDUCE("prod", ReduceProd)

// argmax and argmin: the int32 index of the first maximum or minimum; NaN
// wins both, and between equal values the lower index wins.
template <typename A>
struct ArgBest {
  A v;
  int k;
};
template <bool Min>
struct ArgBestOp {
  template <typename A> ArgBest<A> operator()(ArgBest<A> x, ArgBest<A> y) const {
    bool xnan = x.v != x.v, ynan = y.v != y.v;
    if (ynan != xnan) {
      return ynan ? y : x;
    }
    bool wins = Min ? y.v < x.v : y.v > x.v;
    if (wins || (y.v == x.v && y.k < x.k) || (ynan && y.k < x.k)) {
      return y;
    }
    return x;
  }
};

typedef ArgBestOp<false> ArgmaxOp;

template <typename T, bool Min>
[[kernel]] void argbest(
    device const T* a [[buffer(0)]],
    device int* out [[buffer(1)]],
    constant AxisParams& p [[buffer(2)]],
    uint group [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]],
    uint threads [[threads_per_threadgroup]]) {
  typedef typename accumulator<T>::type A;
  LOOM_SHARED ArgBest<A> scratch[LOOM_MAX_THREADS];
  uint o = group / p.Inner, i = group % p.Inner;
  device const T* row = a + o * p.N * p.Inner + i;
  ArgBest<A> best = {A(0), -1};
  for (uint k = tid; k < p.N; k += threads) {
    ArgBest<A> v = {A(row[k * p.Inner]), int(k)};
    best = best.k < 0 ? v : ArgBestOp<Min>()(best, v);
  }
  // Threads past N hold no candidate: make them lose to any real one.
  if (best.k < 0) {
    best.v = Min ? ReduceMin::highest<A>() : ReduceMax::lowest<A>();
    best.k = INT_MAX;
  }
  best = threadgroup_reduce(best, scratch, tid, threads, ArgBestOp<Min>());
  if (tid == 0) {
    out[group] = best.k;
  }
}

#define LOOM_ARGBEST(NAME, MIN) \
  LOOM_FLOAT_KERNELS(NAME, argbest, MIN) \
  LOOM_KERNEL(NAME "_i32", argbest, int, MIN) \
  LOOM_KERNEL(NAME "_i64", argbest, long, MIN) \
  LOOM_KERNEL(NAME "_u32", argbest, uint, MIN)

LOOM_ARGBEST("argmax", false)
LOOM_ARGBEST("argmin", true)

// logsumexp: the maximum (NaN wins), then max + log(Σ exp(x − max)) in
// float; an infinite or NaN maximum is the result (−Inf over an empty axis).
template <typename T>
[[kernel]] void logsumexp(
    device const T* a [[buffer(0)]],
    device T* out [[buffer(1)]],
    constant AxisParams& p [[buffer(2)]],
    uint group [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]],
    uint threads [[threads_per_threadgroup]]) {
  LOOM_SHARED float scratch[LOOM_MAX_THREADS];
  uint o = group / p.Inner, i = group % p.Inner;
  device const T* row = a + o * p.N * p.Inner + i;
  float m = -INFINITY;
  for (uint k = tid; k < p.N; k += threads) {
    m = MaxNaNOp()(float(row[k * p.Inner]), m);
  }
  m = threadgroup_reduce(m, scratch, tid, threads, MaxNaNOp());
  if (isinf(m) || isnan(m)) {
    if (tid == 0) {
      out[group] = T(m);
    }
    return;
  }
  float s = 0.0f;
  for (uint k = tid; k < p.N; k += threads) {
    s += exp(float(row[k * p.Inner]) - m);
  }
  s = threadgroup_reduce(s, scratch, tid, threads, SumOp());
  if (tid == 0) {
    out[group] = T(m + log(s));
  }
}

LOOM_FLOAT_KERNELS("logsumexp", logsumexp)

// Elementwise kernels over ElementwiseParams: N output elements of shape
// Shape[:Rank]; Strides[k][d] is input k's element stride along output
// dimension d (0 where input k is broadcast). Contiguous == 1 means every
// input has the output's shape, so element i of each input is element i.

// elementwise_index returns input k's element index for output element i.
inline uint elementwise_index(constant ElementwiseParams& p, uint k, uint i) {
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

// Binary operations. Integer arithmetic wraps (it is done unsigned, where
// overflow is defined); an integer division by zero gives 0, as on the CPU.
// The operator is given the compute type (float for half and bfloat).
struct ArithmeticOp {
  template <typename T> using result = T;
};
struct ComparisonOp {
  template <typename T> using result = uchar;
};

struct OpAdd : ArithmeticOp {
  float operator()(float a, float b) const { return a + b; }
  int operator()(int a, int b) const { return int(uint(a) + uint(b)); }
  long operator()(long a, long b) const { return long(ulong(a) + ulong(b)); }
  uint operator()(uint a, uint b) const { return a + b; }
};
struct OpSub : ArithmeticOp {
  float operator()(float a, float b) const { return a - b; }
  int operator()(int a, int b) const { return int(uint(a) - uint(b)); }
  long operator()(long a, long b) const { return long(ulong(a) - ulong(b)); }
  uint operator()(uint a, uint b) const { return a - b; }
};
struct OpMul : ArithmeticOp {
  float operator()(float a, float b) const { return a * b; }
  int operator()(int a, int b) const { return int(uint(a) * uint(b)); }
  long operator()(long a, long b) const { return long(ulong(a) * ulong(b)); }
  uint operator()(uint a, uint b) const { return a * b; }
};
struct OpDiv : ArithmeticOp {
  float operator()(float a, float b) const { return a / b; }
  // INT_MIN / -1 wraps to INT_MIN, as the CPU's int64 division truncated.
  int operator()(int a, int b) const { return b == 0 ? 0 : (b == -1 ? int(0u - uint(a)) : a / b); }
  // LONG_MIN / -1 gives 0, as on the CPU.
  long operator()(long a, long b) const { return (b == 0 || (b == -1L && a == LONG_MIN)) ? 0L : a / b; }
  uint operator()(uint a, uint b) const { return b == 0u ? 0u : a / b; }
};
// Maximum and Minimum let NaN win.
struct OpMaximum : ArithmeticOp {
  template <typename T> T operator()(T a, T b) const { return (a != a || a > b) ? a : b; }
};
struct OpMinimum : ArithmeticOp {
  template <typename T> T operator()(T a, T b) const { return (a != a || a < b) ? a : b; }
};
struct OpEqual : ComparisonOp {
  template <typename T> bool operator()(T a, T b) const { return a == b; }
};
struct OpNotEqual : ComparisonOp {
  template <typename T> bool operator()(T a, T b) const { return a != b; }
};
struct OpLess : ComparisonOp {
  template <typename T> bool operator()(T a, T b) const { return a < b; }
};
struct OpLessEqual : ComparisonOp {
  template <typename T> bool operator()(T a, T b) const { return a <= b; }
};
struct OpGreater : ComparisonOp {
  template <typename T> bool operator()(T a, T b) const { return a > b; }
};
struct OpGreaterEqual : ComparisonOp {
  template <typename T> bool operator()(T a, T b) const { return a >= b; }
};

template <typename T, typename Op>
[[kernel]] void binary(
    device const T* a [[buffer(0)]],
    device const T* b [[buffer(1)]],
    device typename Op::template result<T>* out [[buffer(2)]],
    constant ElementwiseParams& p [[buffer(3)]],
    uint gid [[thread_position_in_grid]]) {
  if (gid >= p.N) {
    return;
  }
  typedef typename compute<T>::type C;
  typedef typename Op::template result<T> R;
  C x = C(a[elementwise_index(p, 0, gid)]);
  C y = C(b[elementwise_index(p, 1, gid)]);
  out[gid] = R(Op()(x, y));
}

#define LOOM_BINARY(NAME, OP) \
  LOOM_FLOAT_KERNELS(NAME, binary, OP) \
  LOOM_KERNEL(NAME "_i32", binary, int, OP) \
  LOOM_KERNEL(NAME "_i64", binary, long, OP) \
  LOOM_KERNEL(NAME "_u32", binary, uint, OP)

LOOM_BINARY("add", OpAdd)
LOOM_BINARY("sub", OpSub)
LOOM_BINARY("mul", OpMul)
LOOM_BINARY("div", OpDiv)
LOOM_BINARY("maximum", OpMaximum)
LOOM_BINARY("minimum", OpMinimum)
LOOM_BINARY("equal", OpEqual)
LOOM_BINARY("not_equal", OpNotEqual)
LOOM_BINARY("less", OpLess)
LOOM_BINARY("less_equal", OpLessEqual)
LOOM_BINARY("greater", OpGreater)
LOOM_BINARY("greater_equal", OpGreaterEqual)

// Unary operations, on the compute type.
struct OpNeg {
  float operator()(float x) const { return -x; }
  int operator()(int x) const { return int(0u - uint(x)); }
  long operator()(long x) const { return long(0ul - ulong(x)); }
  uint operator()(uint x) const { return 0u - x; }
};
struct OpExp {
  float operator()(float x) const { return exp(x); }
};
struct OpLog {
  float operator()(float x) const { return log(x); }
};
struct OpSqrt {
  float operator()(float x) const { return sqrt(x); }
};
struct OpRsqrt {
  float operator()(float x) const { return rsqrt(x); }
};
struct OpTanh {
  float operator()(float x) const { return tanh(x); }
};
struct OpSigmoid {
  float operator()(float x) const { return 1.0f / (1.0f + exp(-x)); }
};
struct OpSiLU {
  float operator()(float x) const { return x / (1.0f + exp(-x)); }
};

// erf_approx is erf(x) with a relative error below 1.2e-7 (a Chebyshev
// fit of erfc; Metal's standard library has no erf).
inline float erf_approx(float x) {
  float z = fabs(x);
  float t = 1.0f / (1.0f + 0.5f * z);
  float poly = -z * z - 1.26551223f +
               t * (1.00002368f + t * (0.37409196f + t * (0.09678418f + t * (-0.18628806f + t * (0.27886807f +
               t * (-1.13520398f + t * (1.48851587f + t * (-0.82215223f + t * 0.17087277f))))))));
  float erfc = t * exp(poly);
  return x >= 0.0f ? 1.0f - erfc : erfc - 1.0f;
}

// GELU in its exact form, 0.5·x·(1 + erf(x/√2)).
struct OpGELU {
  float operator()(float x) const { return 0.5f * x * (1.0f + erf_approx(x * 0.70710678118654752f)); }
};

template <typename T, typename Op>
[[kernel]] void unary(
    device const T* a [[buffer(0)]],
    device T* out [[buffer(1)]],
    constant ElementwiseParams& p [[buffer(2)]],
    uint gid [[thread_position_in_grid]]) {
  if (gid >= p.N) {
    return;
  }
  typedef typename compute<T>::type C;
  out[gid] = T(Op()(C(a[elementwise_index(p, 0, gid)])));
}

LOOM_FLOAT_KERNELS("neg", unary, OpNeg)
LOOM_KERNEL("neg_i32", unary, int, OpNeg)
LOOM_KERNEL("neg_i64", unary, long, OpNeg)
LOOM_KERNEL("neg_u32", unary, uint, OpNeg)
LOOM_FLOAT_KERNELS("exp", unary, OpExp)
LOOM_FLOAT_KERNELS("log", unary, OpLog)
LOOM_FLOAT_KERNELS("sqrt", unary, OpSqrt)
LOOM_FLOAT_KERNELS("rsqrt", unary, OpRsqrt)
LOOM_FLOAT_KERNELS("tanh", unary, OpTanh)
LOOM_FLOAT_KERNELS("sigmoid", unary, OpSigmoid)
LOOM_FLOAT_KERNELS("silu", unary, OpSiLU)
LOOM_FLOAT_KERNELS("gelu", unary, OpGELU)

// where: out = cond ? a : b, broadcasting the three inputs.
template <typename T>
[[kernel]] void where(
    device const uchar* cond [[buffer(0)]],
    device const T* a [[buffer(1)]],
    device const T* b [[buffer(2)]],
    device T* out [[buffer(3)]],
    constant ElementwiseParams& p [[buffer(4)]],
    uint gid [[thread_position_in_grid]]) {
  if (gid >= p.N) {
    return;
  }
  out[gid] = cond[elementwise_index(p, 0, gid)] != 0 ? a[elementwise_index(p, 1, gid)] : b[elementwise_index(p, 2, gid)];
}

// LOOM_ALL_KERNELS instantiates FUNC for every dtype, under NAME_<short>.
#define LOOM_ALL_KERNELS(NAME, FUNC) \
  LOOM_FLOAT_KERNELS(NAME, FUNC) \
  LOOM_KERNEL(NAME "_i32", FUNC, int) \
  LOOM_KERNEL(NAME "_i64", FUNC, long) \
  LOOM_KERNEL(NAME "_u32", FUNC, uint) \
  LOOM_KERNEL(NAME "_b8", FUNC, uchar)

LOOM_ALL_KERNELS("where", where)

// Casts. A value is widened to float (float types) or long (integers and
// bool), then converted: to floats by rounding to nearest even, to integers
// by truncating toward zero with NaN giving 0 and out-of-range values
// saturating, to bool as value != 0 (NaN is true).
template <typename T> struct widen { typedef long type; };
template <> struct widen<float> { typedef float type; };
template <> struct widen<half> { typedef float type; };
template <> struct widen<bfloat> { typedef float type; };

// saturate_float truncates f toward zero into [lo, hi]; the bounds are
// exact powers of two (hi+1 and lo as floats) so the comparisons are exact.
inline long saturate_float(float f, float lo, float hiPlusOne, long loInt, long hiInt) {
  if (f != f) {
    return 0;
  }
  if (f >= hiPlusOne) {
    return hiInt;
  }
  if (f <= lo) {
    return loInt;
  }
  return long(f);
}

template <typename D> struct convert;
template <> struct convert<float> {
  static float from(float f) { return f; }
  static float from(long v) { return float(v); }
};
template <> struct convert<half> {
  static half from(float f) { return half(f); }
  static half from(long v) { return half(float(v)); }
};
template <> struct convert<bfloat> {
  static bfloat from(float f) { return bfloat(f); }
  static bfloat from(long v) { return bfloat(float(v)); }
};
template <> struct convert<int> {
  static int from(float f) { return int(saturate_float(f, -2147483648.0f, 2147483648.0f, INT_MIN, INT_MAX)); }
  static int from(long v) { return int(clamp(v, long(INT_MIN), long(INT_MAX))); }
};
template <> struct convert<uint> {
  static uint from(float f) { return uint(saturate_float(f, 0.0f, 4294967296.0f, 0, long(UINT_MAX))); }
  static uint from(long v) { return uint(clamp(v, 0L, long(UINT_MAX))); }
};
template <> struct convert<long> {
  static long from(float f) { return saturate_float(f, -9223372036854775808.0f, 9223372036854775808.0f, LONG_MIN, LONG_MAX); }
  static long from(long v) { return v; }
};
template <> struct convert<uchar> {
  static uchar from(float f) { return f != 0.0f ? 1 : 0; }
  static uchar from(long v) { return v != 0 ? 1 : 0; }
};

template <typename S, typename D>
[[kernel]] void cast(
    device const S* a [[buffer(0)]],
    device D* out [[buffer(1)]],
    constant ElementwiseParams& p [[buffer(2)]],
    uint gid [[thread_position_in_grid]]) {
  if (gid >= p.N) {
    return;
  }
  typedef typename widen<S>::type W;
  out[gid] = convert<D>::from(W(a[elementwise_index(p, 0, gid)]));
}

#define LOOM_CAST_FROM(FROM, S) \
  LOOM_KERNEL("cast_" FROM "_f32", cast, S, float) \
  LOOM_KERNEL("cast_" FROM "_f16", cast, S, half) \
  LOOM_KERNEL("cast_" FROM "_bf16", cast, S, bfloat) \
  LOOM_KERNEL("cast_" FROM "_i32", cast, S, int) \
  LOOM_KERNEL("cast_" FROM "_i64", cast, S, long) \
  LOOM_KERNEL("cast_" FROM "_u32", cast, S, uint) \
  LOOM_KERNEL("cast_" FROM "_b8", cast, S, uchar)

LOOM_CAST_FROM("f32", float)
LOOM_CAST_FROM("f16", half)
LOOM_CAST_FROM("bf16", bfloat)
LOOM_CAST_FROM("i32", int)
LOOM_CAST_FROM("i64", long)
LOOM_CAST_FROM("u32", uint)
LOOM_CAST_FROM("b8", uchar)

// Binary and where kernels: one thread per output element, inputs indexed
// through elementwise_index (common.metal).

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
  // x / -1 is a wrapping negation, so INT_MIN / -1 wraps to INT_MIN (a
  // plain division would overflow).
  int operator()(int a, int b) const { return b == 0 ? 0 : (b == -1 ? int(0u - uint(a)) : a / b); }
  long operator()(long a, long b) const { return b == 0 ? 0L : (b == -1L ? long(0ul - ulong(a)) : a / b); }
  uint operator()(uint a, uint b) const { return b == 0u ? 0u : a / b; }
};
// Maximum and Minimum let NaN win.
struct OpMaximum : ArithmeticOp {
  template <typename T> T operator()(T a, T b) const { return (a != a || a > b) ? a : b; }
};
struct OpMinimum : ArithmeticOp {
  template <typename T> T operator()(T a, T b) const { return (a != a || a < b) ? a : b; }
};
// Power: the float form takes |a|^b and restores the sign of an odd
// integer power of a negative base (a non-integer one is NaN), as C's pow.
// Integers multiply by repeated squaring, wrapping; a negative exponent
// gives 0 but for the bases 1 and −1.
template <typename U> U power_bits(U x, U n) {
  U r = U(1);
  for (; n > U(0); n >>= 1) {
    if ((n & U(1)) != U(0)) {
      r *= x;
    }
    x *= x;
  }
  return r;
}
struct OpPower : ArithmeticOp {
  float operator()(float a, float b) const {
    if (a >= 0.0f || a != a || b != b) {
      return pow(a, b);
    }
    if (floor(b) != b) {
      return NAN;
    }
    float r = pow(-a, b);
    return floor(b * 0.5f) != b * 0.5f ? -r : r;
  }
  int operator()(int a, int b) const { return b < 0 ? negative_exponent(a, b) : int(power_bits(uint(a), uint(b))); }
  long operator()(long a, long b) const {
    return b < 0 ? long(negative_exponent(a, b)) : long(power_bits(ulong(a), ulong(b)));
  }
  uint operator()(uint a, uint b) const { return power_bits(a, b); }
  template <typename T> static T negative_exponent(T a, T b) {
    return a == T(1) ? T(1) : (a == T(-1) ? ((b & T(1)) != T(0) ? T(-1) : T(1)) : T(0));
  }
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
LOOM_BINARY("power", OpPower)
LOOM_BINARY("equal", OpEqual)
LOOM_BINARY("not_equal", OpNotEqual)
LOOM_BINARY("less", OpLess)
LOOM_BINARY("less_equal", OpLessEqual)
LOOM_BINARY("greater", OpGreater)
LOOM_BINARY("greater_equal", OpGreaterEqual)

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

LOOM_ALL_KERNELS("where", where)

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

// Abs of the most negative integer wraps around to itself, as on the CPU.
struct OpAbs {
  float operator()(float x) const { return fabs(x); }
  int operator()(int x) const { return x < 0 ? int(0u - uint(x)) : x; }
  long operator()(long x) const { return x < 0 ? long(0ul - ulong(x)) : x; }
  uint operator()(uint x) const { return x; }
};
struct OpSin {
  float operator()(float x) const { return sin(x); }
};
struct OpCos {
  float operator()(float x) const { return cos(x); }
};
struct OpErf {
  float operator()(float x) const { return erf_approx(x); }
};
struct OpFloor {
  float operator()(float x) const { return floor(x); }
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
LOOM_FLOAT_KERNELS("abs", unary, OpAbs)
LOOM_KERNEL("abs_i32", unary, int, OpAbs)
LOOM_KERNEL("abs_i64", unary, long, OpAbs)
LOOM_KERNEL("abs_u32", unary, uint, OpAbs)
LOOM_FLOAT_KERNELS("sin", unary, OpSin)
LOOM_FLOAT_KERNELS("cos", unary, OpCos)
LOOM_FLOAT_KERNELS("erf", unary, OpErf)
LOOM_FLOAT_KERNELS("floor", unary, OpFloor)

// silu_mul: out[r, i] = silu(a[r, i]) · a[r, N + i] for rows of 2N (the
// gate half, then the up half), a thread per output element, in float,
// rounded once.
template <typename T>
[[kernel]] void silu_mul(
    device const T* a [[buffer(0)]],
    device T* out [[buffer(1)]],
    constant SiLUMulParams& p [[buffer(2)]],
    uint gid [[thread_position_in_grid]]) {
  if (gid >= p.Rows * p.N) {
    return;
  }
  ulong g = ulong(gid / p.N) * 2 * p.N + gid % p.N;
  out[gid] = T(OpSiLU()(float(a[g])) * float(a[g + p.N]));
}

LOOM_FLOAT_KERNELS("silu_mul", silu_mul)

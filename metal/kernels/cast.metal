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

// round_significand rounds v to nearest even at `bits` significant bits, in
// integer arithmetic, so that the float it then converts to exactly is the
// correctly rounded half or bfloat (going through float first would round
// twice).
inline float round_significand(long v, uint bits) {
  ulong u = v < 0 ? 0ul - ulong(v) : ulong(v);
  uint n = 64u - uint(clz(u));
  if (n > bits) {
    uint shift = n - bits;
    ulong q = u >> shift, rest = u & ((1ul << shift) - 1ul), halfway = 1ul << (shift - 1u);
    if (rest > halfway || (rest == halfway && (q & 1ul) != 0ul)) {
      q++;
    }
    u = q << shift;
  }
  float f = float(u);
  return v < 0 ? -f : f;
}

template <typename D> struct convert;
template <> struct convert<float> {
  static float from(float f) { return f; }
  static float from(long v) { return float(v); }
};
template <> struct convert<half> {
  static half from(float f) { return half(f); }
  static half from(long v) { return half(round_significand(v, 11)); }
};
template <> struct convert<bfloat> {
  static bfloat from(float f) { return bfloat(f); }
  static bfloat from(long v) { return bfloat(round_significand(v, 8)); }
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

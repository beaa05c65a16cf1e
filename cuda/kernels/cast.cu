// Casts between every pair of dtypes, one thread per element (indexed like
// the other elementwise kernels, through ElementwiseParams).
//
// Casts follow primitives.Cast: floats round to nearest even; floats to
// integers truncate toward zero, NaN gives 0 and out-of-range values
// saturate; integers saturate; integers to floats round once, to nearest
// even, in the target's precision; anything nonzero (NaN included) is true.

// int_range is the range of an integer storage type.
template <typename T> struct IntRange;
template <> struct IntRange<int> { static constexpr i64 lo = -2147483648ll, hi = 2147483647ll; };
template <> struct IntRange<u32> { static constexpr i64 lo = 0, hi = 4294967295ll; };
template <> struct IntRange<i64> { static constexpr i64 lo = (i64)0x8000000000000000ull, hi = 0x7fffffffffffffffll; };

// Significand bits of the float storage types.
template <typename T> struct Precision;
template <> struct Precision<float> { static constexpr int bits = 24; };
template <> struct Precision<half_t> { static constexpr int bits = 11; };
template <> struct Precision<bf16_t> { static constexpr int bits = 8; };

// int_to_float rounds v to nearest even with the target's precision and
// returns it as a float that holds the rounded value exactly: rounding to
// float32 first and then to float16 could round twice.
template <typename T> __device__ __forceinline__ float int_to_float(i64 v) {
  const int prec = Precision<T>::bits;
  if (prec == 24) return (float)v;
  u64 u = v < 0 ? 0ull - (u64)v : (u64)v;
  int n = 64 - __clzll((i64)u);
  if (n > prec) {
    int shift = n - prec;
    u64 q = u >> shift, rest = u & ((1ull << shift) - 1), half = 1ull << (shift - 1);
    if (rest > half || (rest == half && (q & 1))) q++;
    u = q << shift;
  }
  float f = (float)u;  // exact: at most prec + 1 significant bits
  return v < 0 ? -f : f;
}

template <typename T> __device__ __forceinline__ i64 float_to_int(float v) {
  if (v != v) return 0;
  double t = trunc((double)v);
  if (t <= (double)IntRange<T>::lo) return IntRange<T>::lo;
  if (t >= (double)IntRange<T>::hi) return IntRange<T>::hi;
  return (i64)t;
}

template <typename T> __device__ __forceinline__ i64 saturate(i64 v) {
  return v < IntRange<T>::lo ? IntRange<T>::lo : (v > IntRange<T>::hi ? IntRange<T>::hi : v);
}

// Convert<From, To>::cast converts one element; the kind of each side picks
// the rule.
template <typename T> struct Kind { static constexpr int k = 1; };  // integer
template <> struct Kind<float> { static constexpr int k = 0; };
template <> struct Kind<half_t> { static constexpr int k = 0; };
template <> struct Kind<bf16_t> { static constexpr int k = 0; };
template <> struct Kind<u8> { static constexpr int k = 2; };

template <typename From, typename To, int FK = Kind<From>::k, int TK = Kind<To>::k> struct Convert;
template <typename From, typename To> struct Convert<From, To, 0, 0> {  // float → float
  static __device__ __forceinline__ To cast(From x) { return Num<To>::store(Num<From>::load(x)); }
};
template <typename From, typename To> struct Convert<From, To, 0, 1> {  // float → integer
  static __device__ __forceinline__ To cast(From x) { return (To)float_to_int<To>(Num<From>::load(x)); }
};
template <typename From, typename To> struct Convert<From, To, 0, 2> {  // float → bool
  static __device__ __forceinline__ To cast(From x) { return Num<From>::load(x) != 0.0f; }
};
template <typename From, typename To, int FK> struct Convert<From, To, FK, 0> {  // integer or bool → float
  static __device__ __forceinline__ To cast(From x) { return Num<To>::store(int_to_float<To>(Num<From>::load(x))); }
};
template <typename From, typename To, int FK> struct Convert<From, To, FK, 1> {  // integer or bool → integer
  static __device__ __forceinline__ To cast(From x) { return (To)saturate<To>(Num<From>::load(x)); }
};
template <typename From, typename To, int FK> struct Convert<From, To, FK, 2> {  // integer or bool → bool
  static __device__ __forceinline__ To cast(From x) { return Num<From>::load(x) != 0; }
};

#define CAST_KERNEL(FS, FT, TS, TT)                                                                    \
  extern "C" __global__ void cast_##FS##_##TS(const FT* a, TT* out, const ElementwiseParams p,         \
                                              Status* status) {                                        \
    grid_dependency_wait();                                                                            \
    u32 i = thread_index();                                                                            \
    if (i >= p.N) return;                                                                              \
    out[i] = Convert<FT, TT>::cast(a[input_index(p, 0, i)]);                                           \
  }
#define CAST_FROM(FS, FT) \
  CAST_KERNEL(FS, FT, f32, float) CAST_KERNEL(FS, FT, f16, half_t) CAST_KERNEL(FS, FT, bf16, bf16_t)   \
  CAST_KERNEL(FS, FT, i32, int) CAST_KERNEL(FS, FT, i64, i64) CAST_KERNEL(FS, FT, u32, u32)            \
  CAST_KERNEL(FS, FT, b8, u8)
LOOM_ALL(CAST_FROM)

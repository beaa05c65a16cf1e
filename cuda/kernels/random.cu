// Random draws (primitives.RandomDist): a thread per element i, from the
// words of Philox4x32-10 for counter (i, 0, 0, 0) and the key.

// philox4x32 sets w to the four words of Philox4x32-10 for counter
// (c, 0, 0, 0) and key (k0, k1).
__device__ __forceinline__ void philox4x32(u32 c, u32 k0, u32 k1, u32* w) {
  u32 x0 = c, x1 = 0, x2 = 0, x3 = 0;
  for (int i = 0; i < 10; i++) {
    if (i > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    const u32 hi0 = __umulhi(0xD2511F53u, x0), lo0 = 0xD2511F53u * x0;
    const u32 hi1 = __umulhi(0xCD9E8D57u, x2), lo1 = 0xCD9E8D57u * x2;
    const u32 y0 = hi1 ^ x1 ^ k0, y2 = hi0 ^ x3 ^ k1;
    x0 = y0;
    x1 = lo1;
    x2 = y2;
    x3 = lo0;
  }
  w[0] = x0;
  w[1] = x1;
  w[2] = x2;
  w[3] = x3;
}

// 2^-24: a uniform of 24 bits is (w >> 8) times it.
#define RANDOM_ULP 5.9604644775390625e-08

extern "C" __global__ void random_bits_u32(const u32* key, u32* out, const RandomParams p, Status* status) {
  const u32 i = thread_index();
  if (i >= p.N) return;
  u32 w[4];
  philox4x32(i, key[0], key[1], w);
  out[i] = w[0];
}

// The value Shift + Scale·v is rounded after the product and after the sum
// (never fused), as on the CPU.
#define RANDOM_FLOAT_KERNELS(SHORT, T)                                                                  \
  extern "C" __global__ void random_uniform_##SHORT(const u32* key, T* out, const RandomParams p,       \
                                                    Status* status) {                                  \
    const u32 i = thread_index();                                                                       \
    if (i >= p.N) return;                                                                               \
    u32 w[4];                                                                                           \
    philox4x32(i, key[0], key[1], w);                                                                   \
    const float u = (float)(w[0] >> 8) * (float)RANDOM_ULP;                                             \
    store_f(out, i, __fadd_rn(p.Shift, __fmul_rn(p.Scale, u)));                                         \
  }                                                                                                     \
  extern "C" __global__ void random_normal_##SHORT(const u32* key, T* out, const RandomParams p,        \
                                                   Status* status) {                                   \
    const u32 i = thread_index();                                                                       \
    if (i >= p.N) return;                                                                               \
    u32 w[4];                                                                                           \
    philox4x32(i, key[0], key[1], w);                                                                   \
    const double u1 = ((double)(w[0] >> 8) + 1.0) * RANDOM_ULP, u2 = (double)(w[1] >> 8) * RANDOM_ULP;  \
    const float z = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));                        \
    store_f(out, i, __fadd_rn(p.Shift, __fmul_rn(p.Scale, z)));                                         \
  }
LOOM_FLOATS(RANDOM_FLOAT_KERNELS)

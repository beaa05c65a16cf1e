// Random draws (primitives.RandomDist): a thread per element i, from the
// words of Philox4x32-10 for counter (i, 0, 0, 0) and the key (philox4x32,
// common.cuh).

// 2^-24: a uniform of 24 bits is (w >> 8) times it.
#define RANDOM_ULP 5.9604644775390625e-08

extern "C" __global__ void random_bits_u32(const u32* key, u32* out, const RandomParams p, Status* status) {
  grid_dependency_wait();
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
    grid_dependency_wait();                                                                            \
    const u32 i = thread_index();                                                                       \
    if (i >= p.N) return;                                                                               \
    u32 w[4];                                                                                           \
    philox4x32(i, key[0], key[1], w);                                                                   \
    const float u = (float)(w[0] >> 8) * (float)RANDOM_ULP;                                             \
    store_f(out, i, __fadd_rn(p.Shift, __fmul_rn(p.Scale, u)));                                         \
  }                                                                                                     \
  extern "C" __global__ void random_normal_##SHORT(const u32* key, T* out, const RandomParams p,        \
                                                   Status* status) {                                   \
    grid_dependency_wait();                                                                            \
    const u32 i = thread_index();                                                                       \
    if (i >= p.N) return;                                                                               \
    u32 w[4];                                                                                           \
    philox4x32(i, key[0], key[1], w);                                                                   \
    const double u1 = ((double)(w[0] >> 8) + 1.0) * RANDOM_ULP, u2 = (double)(w[1] >> 8) * RANDOM_ULP;  \
    const float z = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));                        \
    store_f(out, i, __fadd_rn(p.Shift, __fmul_rn(p.Scale, z)));                                         \
  }
LOOM_FLOATS(RANDOM_FLOAT_KERNELS)

// Random draws (primitives.RandomDist): a thread per element i, from the
// words of Philox4x32-10 for counter (i, 0, 0, 0) and the key (philox4x32,
// common.metal).

// 2^-24: a uniform of 24 bits is (w >> 8) times it.
constant float RANDOM_ULP = 5.9604644775390625e-08f;

[[kernel]] void random_bits_u32(
    device const uint* key [[buffer(0)]],
    device uint* out [[buffer(1)]],
    constant RandomParams& p [[buffer(2)]],
    uint gid [[thread_position_in_grid]]) {
  if (gid >= p.N) {
    return;
  }
  out[gid] = philox4x32(gid, key[0], key[1]).x;
}

template <typename T>
[[kernel]] void random_uniform(
    device const uint* key [[buffer(0)]],
    device T* out [[buffer(1)]],
    constant RandomParams& p [[buffer(2)]],
    uint gid [[thread_position_in_grid]]) {
  if (gid >= p.N) {
    return;
  }
  float u = float(philox4x32(gid, key[0], key[1]).x >> 8) * RANDOM_ULP;
  out[gid] = T(p.Shift + p.Scale * u);
}

// random_normal: Box and Muller's transform in float.
template <typename T>
[[kernel]] void random_normal(
    device const uint* key [[buffer(0)]],
    device T* out [[buffer(1)]],
    constant RandomParams& p [[buffer(2)]],
    uint gid [[thread_position_in_grid]]) {
  if (gid >= p.N) {
    return;
  }
  uint4 w = philox4x32(gid, key[0], key[1]);
  float u1 = (float(w.x >> 8) + 1.0f) * RANDOM_ULP, u2 = float(w.y >> 8) * RANDOM_ULP;
  float z = sqrt(-2.0f * log(u1)) * cos(6.2831853071795864f * u2);
  out[gid] = T(p.Shift + p.Scale * z);
}

LOOM_FLOAT_KERNELS("random_uniform", random_uniform)
LOOM_FLOAT_KERNELS("random_normal", random_normal)

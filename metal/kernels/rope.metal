// rope: the half-rotation form (Qwen3, Llama). For token t at position
// pos, head h and i < D/2, the pair (x_i, x_{i+D/2}) rotates by
// pos·Theta^(−2i/D). One threadgroup per (token, head). The angle is a
// float32 product, so its absolute error grows with the position (about
// pos·6e-8 rad); the CPU computes it in float64.
template <typename T>
[[kernel]] void rope(
    device const T* x [[buffer(0)]],
    device const int* positions [[buffer(1)]],
    device T* out [[buffer(2)]],
    constant RoPEParams& p [[buffer(3)]],
    uint group [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]],
    uint threads [[threads_per_threadgroup]]) {
  if (group >= p.T * p.H) {
    return;
  }
  uint half_d = p.D / 2;
  float pos = float(positions[group / p.H]);
  uint base = group * p.D;
  for (uint i = tid; i < half_d; i += threads) {
    float inv = pow(p.Theta, -2.0f * float(i) / float(p.D));
    float angle = pos * inv;
    float c = cos(angle), s = sin(angle);
    float u = float(x[base + i]), v = float(x[base + i + half_d]);
    out[base + i] = T(u * c - v * s);
    out[base + i + half_d] = T(v * c + u * s);
  }
}

LOOM_FLOAT_KERNELS("rope", rope)

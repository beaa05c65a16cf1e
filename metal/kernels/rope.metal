// rope: the half-rotation form (Qwen3, Llama). For token t at position
// pos, head h and i < D/2, the pair (x_i, x_{i+D/2}) rotates by
// pos·Theta^(−2i/D). The angle is a float32 product, so its absolute error
// grows with the position (about pos·6e-8 rad); the CPU computes it in
// float64.

// rope_angle is the angle of pair i of a head of d elements at position
// pos.
inline float rope_angle(float pos, uint i, uint d, float theta) {
  return pos * pow(theta, -2.0f * float(i) / float(d));
}

// rope_scale is primitives.RoPEScaling.Scale (Llama 3.1's scaling of the
// inverse frequency f), in float32.
inline float rope_scale(float f, constant RoPEParams& p) {
  float w = 6.28318530717958647692f / f;
  if (w > p.OriginalMaxPositions / p.LowFreqFactor) {
    return f / p.Factor;
  }
  if (w >= p.OriginalMaxPositions / p.HighFreqFactor) {
    float sm = (p.OriginalMaxPositions / w - p.LowFreqFactor) / (p.HighFreqFactor - p.LowFreqFactor);
    return (1.0f - sm) * f / p.Factor + sm * f;
  }
  return f;
}

// One threadgroup per (token, head); the frequency of pair i is scaled
// first when p.Factor is set.
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
    float f = pow(p.Theta, -2.0f * float(i) / float(p.D));
    if (p.Factor != 0.0f) {
      f = rope_scale(f, p);
    }
    float angle = pos * f;
    float c = cos(angle), s = sin(angle);
    float u = float(x[base + i]), v = float(x[base + i + half_d]);
    out[base + i] = T(u * c - v * s);
    out[base + i + half_d] = T(v * c + u * s);
  }
}

LOOM_FLOAT_KERNELS("rope", rope)

// qk_norm_rope_kv_write: one threadgroup per (head, token) of qkv's heads
// (the query heads, the key heads, the value heads). A query or key head is
// normalised as rms_norm does, kept in float (the unfused chain rounds it
// to T here), and rotated as rope does; queries go to q, keys and values to
// the token's slot of the caches, which kv_slot checks as kv_write does
// (the first key head's group reports). Values are copied as stored bits.
template <typename T, typename S>
[[kernel]] void qk_norm_rope_kv_write(
    device const T* qkv [[buffer(0)]],
    device const T* q_norm [[buffer(1)]],
    device const T* k_norm [[buffer(2)]],
    device const int* positions [[buffer(3)]],
    device T* k_cache [[buffer(4)]],
    device T* v_cache [[buffer(5)]],
    device const S* slot_mapping [[buffer(6)]],
    device T* q [[buffer(7)]],
    constant QKNormRoPEKVWriteParams& p [[buffer(8)]],
    LOOM_STATUS,
    uint2 group [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]],
    uint threads [[threads_per_threadgroup]]) {
  int head = int(group.x), t = int(group.y);
  if (head >= p.Heads + 2 * p.KVHeads || t >= p.NumTokens) {
    return;
  }
  LOOM_SHARED float scratch[LOOM_MAX_THREADS];
  LOOM_SHARED uint slot_scratch[LOOM_MAX_THREADS];
  uint d = uint(p.HeadSize), half_d = d / 2;
  ulong src = (ulong(t) * ulong(p.Heads + 2 * p.KVHeads) + ulong(head)) * d;
  device T* dst = q + (ulong(t) * ulong(p.Heads) + ulong(head)) * d;
  device const T* w = q_norm;
  if (head >= p.Heads) {
    int slot = kv_slot(slot_mapping, p.NumTokens, p.NumSlots, uint(t), 6, head == p.Heads, status, slot_scratch, tid, threads);
    if (slot < 0) {
      return;
    }
    int g = head - p.Heads;
    ulong at = ulong(slot) * ulong(p.KVHeads) * d;
    if (g >= p.KVHeads) {
      device T* v = v_cache + at + ulong(g - p.KVHeads) * d;
      for (uint e = tid; e < d; e += threads) {
        v[e] = qkv[src + e];
      }
      return;
    }
    dst = k_cache + at + ulong(g) * d;
    w = k_norm;
  }
  float ss = 0.0f;
  for (uint e = tid; e < d; e += threads) {
    float v = float(qkv[src + e]);
    ss += v * v;
  }
  float r = rms_scale(threadgroup_reduce(ss, scratch, tid, threads, SumOp()), d, p.Eps);
  float pos = float(positions[t]);
  for (uint i = tid; i < half_d; i += threads) {
    float angle = rope_angle(pos, i, d, p.Theta);
    float c = cos(angle), s = sin(angle);
    float u = float(qkv[src + i]) * r * float(w[i]);
    float v = float(qkv[src + i + half_d]) * r * float(w[i + half_d]);
    dst[i] = T(u * c - v * s);
    dst[i + half_d] = T(v * c + u * s);
  }
}

#define LOOM_QK_NORM_ROPE_KV_WRITE(DT, T) \
  LOOM_KERNEL("qk_norm_rope_kv_write_" DT "_i32", qk_norm_rope_kv_write, T, int) \
  LOOM_KERNEL("qk_norm_rope_kv_write_" DT "_i64", qk_norm_rope_kv_write, T, long)
LOOM_QK_NORM_ROPE_KV_WRITE("f32", float)
LOOM_QK_NORM_ROPE_KV_WRITE("f16", half)
LOOM_QK_NORM_ROPE_KV_WRITE("bf16", bfloat)

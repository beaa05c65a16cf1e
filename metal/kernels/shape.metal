// copy_strided: the copy behind Transpose, Slice, Concatenate, BroadcastTo
// and Pad. Element i of the N-element shape Shape[:Rank] is read at
// SrcBase + Σ idx_d·Src[d] and written at DstBase + Σ idx_d·Dst[d]
// (element strides, negative for a reversed slice, 0 for a broadcast; the
// runtime binds both buffers at the lowest element the copy touches, and
// the sums, modulo 2^32, end in range).
template <typename T>
[[kernel]] void copy_strided(
    device const T* src [[buffer(0)]],
    device T* dst [[buffer(1)]],
    constant StridedCopyParams& p [[buffer(2)]],
    uint gid [[thread_position_in_grid]]) {
  if (gid >= p.N) {
    return;
  }
  uint i = gid, s = p.SrcBase, d = p.DstBase;
  for (int k = int(p.Rank) - 1; k >= 0; k--) {
    uint n = p.Shape[k];
    uint idx = i % n;
    i /= n;
    s += idx * uint(p.Src[k]);
    d += idx * uint(p.Dst[k]);
  }
  dst[d] = src[s];
}

LOOM_ALL_KERNELS("copy_strided", copy_strided)

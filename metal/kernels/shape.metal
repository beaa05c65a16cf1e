// copy_strided: the copy behind Transpose, Slice and Concatenate. Element
// i of the N-element shape Shape[:Rank] is read at Σ idx_d·Src[d] and
// written at Σ idx_d·Dst[d] (element strides; the runtime binds both
// buffers at the copy's first element).
template <typename T>
[[kernel]] void copy_strided(
    device const T* src [[buffer(0)]],
    device T* dst [[buffer(1)]],
    constant StridedCopyParams& p [[buffer(2)]],
    uint gid [[thread_position_in_grid]]) {
  if (gid >= p.N) {
    return;
  }
  uint i = gid, s = 0, d = 0;
  for (int k = int(p.Rank) - 1; k >= 0; k--) {
    uint n = p.Shape[k];
    uint idx = i % n;
    i /= n;
    s += idx * p.Src[k];
    d += idx * p.Dst[k];
  }
  dst[d] = src[s];
}

LOOM_ALL_KERNELS("copy_strided", copy_strided)

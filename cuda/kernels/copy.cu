// Copies: raw bytes (copy_bytes, used by the runtime when a donation is
// refused) and strided element copies (transpose, slice, concatenate).

// copy_bytes: each thread copies 16 bytes, as one vector when both pointers
// are 16-byte aligned (buffers are; bound offsets may not be).
extern "C" __global__ void copy_bytes(const u8* src, u8* dst, const CopyParams p, Status* status) {
  grid_dependency_wait();
  u64 at = (u64)thread_index() * 16;
  if (at >= p.Bytes) return;
  u64 n = p.Bytes - at < 16 ? p.Bytes - at : 16;
  if (n == 16 && (((u64)src | (u64)dst) & 15) == 0) {
    *(uint4*)(dst + at) = *(const uint4*)(src + at);
    return;
  }
  for (u64 i = 0; i < n; i++) dst[at + i] = src[at + i];
}

// copy_strided copies element (i0, i1, …) of the index space Shape from
// SrcBase + Σ i_d·Src[d] to DstBase + Σ i_d·Dst[d]. Strides may be negative:
// the sums are taken modulo 2^32 and end in the bound range. Elements are
// moved as raw bits of their size.
template <typename T>
__device__ __forceinline__ void copy_strided(const T* src, T* dst, const StridedCopyParams& p) {
  u32 i = thread_index();
  if (i >= p.N) return;
  u32 s = p.SrcBase, d = p.DstBase;
  for (int k = (int)p.Rank - 1; k >= 0; k--) {
    u32 n = p.Shape[k], c = i % n;
    s += c * (u32)p.Src[k];
    d += c * (u32)p.Dst[k];
    i /= n;
  }
  dst[d] = src[s];
}

#define COPY_STRIDED(SHORT, T)                                                                    \
  extern "C" __global__ void copy_strided_##SHORT(const T* src, T* dst, const StridedCopyParams p, \
                                                  Status* status) {                               \
    grid_dependency_wait();                                                                       \
    copy_strided(src, dst, p);                                                                    \
  }
LOOM_ALL(COPY_STRIDED)

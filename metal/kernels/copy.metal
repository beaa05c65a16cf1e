// copy_bytes: the runtime's copy for an in-place update whose input buffer
// cannot be donated. Each thread copies 16 bytes.
[[kernel]] void copy_bytes(
    device const uchar* src [[buffer(0)]],
    device uchar* dst [[buffer(1)]],
    constant CopyParams& p [[buffer(2)]],
    uint gid [[thread_position_in_grid]]) {
  uint start = gid * 16u;
  if (start >= p.Bytes) {
    return;
  }
  if (start + 16u <= p.Bytes) {
    // Buffers are bound at offset 0 and allocated page-aligned.
    ((device uint4*)dst)[gid] = ((device const uint4*)src)[gid];
    return;
  }
  for (uint i = start; i < p.Bytes; i++) {
    dst[i] = src[i];
  }
}

// The SIMD-group functions beside the reductions, one result per thread.
#include <metal_stdlib>
using namespace metal;

kernel void simd_functions(device const int* in [[buffer(0)]],
                           device int* out [[buffer(1)]],
                           uint gid [[thread_position_in_grid]],
                           uint lane [[thread_index_in_simdgroup]])
{
    int x = in[gid];
    device int* o = out + 8 * gid;
    o[0] = simd_prefix_inclusive_sum(x);
    o[1] = simd_prefix_exclusive_sum(x);
    o[2] = simd_shuffle_down(x, ushort(3));
    o[3] = simd_shuffle_up(x, ushort(5));
    o[4] = simd_broadcast_first(x);
    o[5] = simd_all(x > 0) ? 1 : 0;
    o[6] = simd_any(x > 90) ? 1 : 0;
    o[7] = simd_shuffle(x, ushort(lane ^ 1u));
}

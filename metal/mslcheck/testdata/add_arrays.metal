// A kernel in the style of Apple's "Performing Calculations on a GPU":
// the kernel keyword, device pointers and a grid position.
#include <metal_stdlib>
using namespace metal;

kernel void add_arrays(device const float* inA [[buffer(0)]],
                       device const float* inB [[buffer(1)]],
                       device float* result [[buffer(2)]],
                       uint index [[thread_position_in_grid]])
{
    result[index] = inA[index] + inB[index];
}

// Vector types, swizzles and a params struct in the constant address
// space.
struct Blend {
    float4 tint;
    float amount;
    uint count;
};

kernel void blend_colors(device const float4* src [[buffer(0)]],
                         device float4* dst [[buffer(1)]],
                         constant Blend& blend [[buffer(2)]],
                         uint2 pos [[thread_position_in_grid]],
                         uint2 size [[threads_per_grid]])
{
    uint i = pos.y * size.x + pos.x;
    if (i >= blend.count) {
        return;
    }
    float4 c = src[i];
    float3 rgb = c.rgb * (1.0f - blend.amount) + blend.tint.xyz * blend.amount;
    float4 out = float4(rgb, c.a);
    out.xy = out.yx;
    float4 other = float4(1.0f);
    other.zw = out.zw;
    out += other;
    out.z += dot(c.zw, blend.tint.xy);
    dst[i] = out;
}

kernel void scale_half(device half4* data [[buffer(0)]],
                       constant half& factor [[buffer(1)]],
                       uint gid [[thread_position_in_grid]])
{
    half4 v = data[gid];
    data[gid] = v * factor + half4(half(0.5f));
}

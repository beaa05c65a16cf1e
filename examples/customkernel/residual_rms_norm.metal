// The MSL kernel of customkernel.ResidualRMSNorm. The Metal device puts
// Loom's common.metal and the params structs generated from the Go types
// (ResidualRMSNormParams among them) before this file, and compiles it on
// first use.
//
// One threadgroup per row, Threads (256) threads: each thread adds and
// squares a strided share of the row, the group sums the squares in a fixed
// tree (so the result does not depend on scheduling), and each thread
// scales its share.
#include <metal_stdlib>
using namespace metal;

[[kernel]] void example_residual_rms_norm_f32(
    device const float* x [[buffer(0)]],
    device const float* residual [[buffer(1)]],
    device const float* weight [[buffer(2)]],
    device float* sum [[buffer(3)]],
    device float* out [[buffer(4)]],
    constant ResidualRMSNormParams& p [[buffer(5)]],
    uint row [[threadgroup_position_in_grid]],
    uint tid [[thread_position_in_threadgroup]],
    uint threads [[threads_per_threadgroup]]) {
  threadgroup float partial[256];
  const ulong base = ulong(row) * p.D;
  float sq = 0.0f;
  for (uint i = tid; i < p.D; i += threads) {
    const float s = x[base + i] + residual[base + i];
    sum[base + i] = s;
    sq += s * s;
  }
  partial[tid] = sq;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  for (uint stride = threads / 2; stride > 0; stride /= 2) {
    if (tid < stride) {
      partial[tid] += partial[tid + stride];
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  const float inv = rsqrt(partial[0] / float(p.D) + p.Eps);
  for (uint i = tid; i < p.D; i += threads) {
    out[base + i] = (x[base + i] + residual[base + i]) * inv * weight[i];
  }
}

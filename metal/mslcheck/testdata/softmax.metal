// A row softmax in the style of MLX's kernels: a template instantiated
// under host names, a params struct in the constant address space,
// threadgroup memory, SIMD-group reductions and metal:: names. One
// threadgroup per row, whose threads are a multiple of the SIMD width (the
// butterfly reads every lane: in a partial SIMD group that is undefined in
// Metal, and the emulation stops the process).
#include <metal_stdlib>
using namespace metal;

struct SoftmaxParams {
  uint cols;
  float scale;
};

constant constexpr int SIMD_SIZE = 32;

template <typename T>
[[kernel]] void scaled_softmax(
    const device T* in [[buffer(0)]],
    device T* out [[buffer(1)]],
    constant SoftmaxParams& params [[buffer(2)]],
    uint row [[threadgroup_position_in_grid]],
    uint lid [[thread_position_in_threadgroup]],
    uint lsize [[threads_per_threadgroup]],
    uint simd_lane_id [[thread_index_in_simdgroup]],
    uint simd_group_id [[simdgroup_index_in_threadgroup]]) {
  threadgroup float partial[SIMD_SIZE];
  const device T* x = in + row * params.cols;
  device T* y = out + row * params.cols;
  uint groups = (lsize + SIMD_SIZE - 1) / SIMD_SIZE;

  float local_max = -INFINITY;
  for (uint i = lid; i < params.cols; i += lsize) {
    local_max = metal::max(local_max, float(x[i]) * params.scale);
  }
  local_max = simd_max(local_max);
  if (simd_lane_id == 0) {
    partial[simd_group_id] = local_max;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  // Every SIMD group reduces the partial maxima, by butterfly, itself.
  float m = simd_lane_id < groups ? partial[simd_lane_id] : -INFINITY;
  for (ushort d = SIMD_SIZE / 2; d > 0; d /= 2) {
    m = metal::max(m, simd_shuffle_xor(m, d));
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);

  float local_sum = 0.0f;
  for (uint i = lid; i < params.cols; i += lsize) {
    local_sum += metal::fast::exp(float(x[i]) * params.scale - m);
  }
  local_sum = simd_sum(local_sum);
  if (simd_lane_id == 0) {
    partial[simd_group_id] = local_sum;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  float s = simd_lane_id < groups ? partial[simd_lane_id] : 0.0f;
  s = simd_broadcast(simd_sum(s), 0);

  for (uint i = lid; i < params.cols; i += lsize) {
    y[i] = T(metal::fast::exp(float(x[i]) * params.scale - m) / s);
  }
}

template [[host_name("scaled_softmax_float")]] [[kernel]] decltype(scaled_softmax<float>) scaled_softmax<float>;
template [[host_name("scaled_softmax_half")]] [[kernel]] decltype(scaled_softmax<half>) scaled_softmax<half>;

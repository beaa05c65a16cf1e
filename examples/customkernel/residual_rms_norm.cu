// The CUDA kernel of customkernel.ResidualRMSNorm. The CUDA device puts
// the params structs generated from the Go types (ResidualRMSNormParams
// among them) and Loom's common.cuh (u32, Status) before this file, and
// compiles it with NVRTC on first use.
//
// One block per row, Threads (256) threads: each thread adds and squares a
// strided share of the row, the block sums the squares in a fixed tree
// (so the result does not depend on scheduling), and each thread scales
// its share.
extern "C" __global__ void example_residual_rms_norm_f32(const float* x, const float* residual, const float* weight,
                                                         float* sum, float* out, const ResidualRMSNormParams p, Status* status) {
  __shared__ float partial[256];
  const unsigned long long base = (unsigned long long)blockIdx.x * p.D;
  float sq = 0.0f;
  for (u32 i = threadIdx.x; i < p.D; i += blockDim.x) {
    const float s = x[base + i] + residual[base + i];
    sum[base + i] = s;
    sq += s * s;
  }
  partial[threadIdx.x] = sq;
  __syncthreads();
  for (u32 stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  const float inv = rsqrtf(partial[0] / (float)p.D + p.Eps);
  for (u32 i = threadIdx.x; i < p.D; i += blockDim.x) {
    out[base + i] = (x[base + i] + residual[base + i]) * inv * weight[i];
  }
}

// Host emulation of the CUDA subset the GEMVs use (see
// cuda/emulate_test.go): a block's threads are std::threads, and a warp's
// lanes meet at barriers for mma.sync (emu_mma) and shuffles.
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <mutex>
using std::min; using std::max;
struct uint4 { unsigned x, y, z, w; };
struct uint2 { unsigned x, y; };
static inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return {a, b, c, d}; }
struct float4 { float x, y, z, w; };
struct dim3 { unsigned x = 1, y = 1, z = 1; };
thread_local dim3 threadIdx, blockIdx;
dim3 gridDim, blockDim;
#define __device__
#define __global__
#define __forceinline__ inline
#define __launch_bounds__(a, b)
#define __shared__ static
#define __align__(n) alignas(n)
std::barrier<>* blockBar;
std::barrier<>* warpBar[32];
static inline void __syncthreads() { blockBar->arrive_and_wait(); }
// launch runs a grid's blocks one after another (a block's __shared__
// memory is static storage), each block's threads as std::threads.
static void launch(dim3 grid, unsigned threads, const std::function<void()>& body) {
  gridDim = grid;
  blockDim = {threads, 1, 1};
  for (unsigned z = 0; z < grid.z; z++)
    for (unsigned y = 0; y < grid.y; y++)
      for (unsigned x = 0; x < grid.x; x++) {
        std::barrier<> bb(threads);
        blockBar = &bb;
        for (unsigned w = 0; w < threads / 32; w++) warpBar[w] = new std::barrier<>(32);
        std::vector<std::thread> ts;
        for (unsigned i = 0; i < threads; i++) ts.emplace_back([&, i] { threadIdx = {i, 0, 0}; blockIdx = {x, y, z}; body(); });
        for (auto& t : ts) t.join();
        for (unsigned w = 0; w < threads / 32; w++) delete warpBar[w];
      }
}
// launch of one argument runs blocks of 256 threads, the GEMVs' blocks.
static void launch(dim3 grid, const std::function<void()>& body) { launch(grid, 256, body); }
static inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
static inline int __clz(unsigned u) { return u ? __builtin_clz(u) : 32; }
static inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
static inline float __int_as_float(int u) { float f; memcpy(&f, &u, 4); return f; }
static inline int __float_as_int(float f) { int u; memcpy(&u, &f, 4); return u; }
template <class A, class B> A atomicAdd(A* p, B v) { return __atomic_fetch_add(p, (A)v, __ATOMIC_SEQ_CST); }
template <class A> A atomicCAS(A* p, A c, A v) { __atomic_compare_exchange_n(p, &c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); return c; }
template <class A> A atomicExch(A* p, A v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
static float shflStage[32][32];
static inline float __shfl_xor_sync(unsigned, float v, int o) {
  int w = threadIdx.x / 32, l = threadIdx.x % 32;
  shflStage[w][l] = v;
  warpBar[w]->arrive_and_wait();
  float r = shflStage[w][l ^ o];
  warpBar[w]->arrive_and_wait();
  return r;
}
struct MmaStage { unsigned a[32][4], b[32][2]; };
static MmaStage mmaStage[32];
static inline float bf16f(unsigned short h) { return __uint_as_float((unsigned)h << 16); }
// emu_mma_bf16: D = A·B + C of m16n8k16.bf16 from the 32 lanes' fragments
// (PTX ISA layout), each element summed in float in k order.
static inline void emu_mma_bf16(float* d, unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0, unsigned b1) {
  int w = threadIdx.x / 32, l = threadIdx.x % 32;
  MmaStage& s = mmaStage[w];
  s.a[l][0] = a0; s.a[l][1] = a1; s.a[l][2] = a2; s.a[l][3] = a3; s.b[l][0] = b0; s.b[l][1] = b1;
  warpBar[w]->arrive_and_wait();
  float A[16][16], B[16][8];
  for (int L = 0; L < 32; L++) {
    int g = L / 4, t = L % 4;
    for (int h = 0; h < 2; h++) {
      A[g][2 * t + h] = bf16f(s.a[L][0] >> (16 * h));
      A[g + 8][2 * t + h] = bf16f(s.a[L][1] >> (16 * h));
      A[g][2 * t + 8 + h] = bf16f(s.a[L][2] >> (16 * h));
      A[g + 8][2 * t + 8 + h] = bf16f(s.a[L][3] >> (16 * h));
      B[2 * t + h][g] = bf16f(s.b[L][0] >> (16 * h));
      B[2 * t + 8 + h][g] = bf16f(s.b[L][1] >> (16 * h));
    }
  }
  warpBar[w]->arrive_and_wait();
  int g = l / 4, t = l % 4;
  for (int i = 0; i < 4; i++) {
    int r = g + 8 * (i / 2), c = 2 * t + i % 2;
    float sum = 0;
    for (int k = 0; k < 16; k++) sum += A[r][k] * B[k][c];
    d[i] += sum;
  }
}
#define __noinline__
static inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
static inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
// The rounding-mode intrinsics: one rounding each, as on the device.
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
// The cache-hinted loads of the FMA GEMV are plain loads on the host.
template <typename T> static inline T __ldg(const T* p) { return *p; }
template <typename T> static inline T __ldcs(const T* p) { return *p; }
// The spans common.cuh's prefetch_l2 asks the L2 for before
// grid_dependency_wait: each must lie inside the weights the driver names
// with emu_weights (else emuOutside counts it), and its bytes are marked in
// emuSeen, for the driver to compare with the rows of each block's first
// step. A block's threads share its spans; thread 0 reports them.
static const char* emuW;
static size_t emuWBytes;
static std::vector<unsigned char> emuSeen;
static int emuOutside;
static std::mutex emuMu;
static void emu_weights(const void* w, size_t bytes) {
  emuW = (const char*)w, emuWBytes = bytes, emuOutside = 0;
  emuSeen.assign(bytes, 0);
}
static inline void emu_prefetch(const void* p, unsigned long long n) {
  if (threadIdx.x != 0 || n == 0) return;
  const char* c = (const char*)p;
  std::lock_guard<std::mutex> g(emuMu);
  if (c < emuW || c + n > emuW + emuWBytes) {
    emuOutside++;
    return;
  }
  std::fill(emuSeen.begin() + (c - emuW), emuSeen.begin() + (c - emuW) + n, 1);
}

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
#include <memory>
#include <mutex>
using std::min; using std::max;
struct uint4 { unsigned x, y, z, w; };
struct uint2 { unsigned x, y; };
static inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return {a, b, c, d}; }
struct float4 { float x, y, z, w; };
static inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
struct dim3 { unsigned x = 1, y = 1, z = 1; };
thread_local dim3 threadIdx, blockIdx;
dim3 gridDim, blockDim;
#define __device__
#define __global__
#define __forceinline__ inline
#define __launch_bounds__(a, b)
#define __shared__ static
#define __align__(n) alignas(n)
struct MmaStage { unsigned a[32][4], b[32][2]; };
// A block's barriers and its warps' staging areas, which its threads point
// at (thread_local), so that the blocks of a cluster run at once.
struct EmuBlock {
  std::barrier<> bar;
  std::barrier<>* warps[32] = {};
  float shfl[32][32];
  MmaStage mma[32];
  std::vector<unsigned char> smem;  // the dynamic shared memory
  EmuBlock(unsigned threads, size_t smemBytes) : bar(threads), smem(smemBytes, 0xab) {
    for (unsigned w = 0; w < threads / 32; w++) warps[w] = new std::barrier<>(32);
  }
  ~EmuBlock() {
    for (auto* w : warps) delete w;
  }
};
thread_local std::barrier<>* blockBar;
thread_local std::barrier<>** warpBar;
thread_local float (*shflStage)[32];
thread_local MmaStage* mmaStage;
// The cluster of the block (launch_cluster): its dynamic shared memory,
// rank, barrier and every block's shared memory, by rank.
thread_local unsigned char* emuSmem;
thread_local unsigned emuRank;
thread_local std::barrier<>* emuClusterBar;
thread_local unsigned char* const* emuClusterSmem;
static inline void __syncthreads() { blockBar->arrive_and_wait(); }
static void emu_enter(EmuBlock& b, unsigned i, dim3 block) {
  threadIdx = {i, 0, 0}, blockIdx = block;
  blockBar = &b.bar, warpBar = b.warps, shflStage = b.shfl, mmaStage = b.mma, emuSmem = b.smem.data();
}
// launch runs a grid's blocks one after another (a block's __shared__
// memory is static storage), each block's threads as std::threads.
static void launch(dim3 grid, unsigned threads, const std::function<void()>& body) {
  gridDim = grid;
  blockDim = {threads, 1, 1};
  for (unsigned z = 0; z < grid.z; z++)
    for (unsigned y = 0; y < grid.y; y++)
      for (unsigned x = 0; x < grid.x; x++) {
        EmuBlock b(threads, 0);
        std::vector<std::thread> ts;
        for (unsigned i = 0; i < threads; i++) ts.emplace_back([&, i] { emu_enter(b, i, {x, y, z}); body(); });
        for (auto& t : ts) t.join();
      }
}
// launch_cluster runs a grid's clusters of C blocks along x one after
// another, the blocks of a cluster at once (their threads meet at the
// cluster's barrier and read each other's shared memory), each with smem
// bytes of dynamic shared memory (filled with garbage). A kernel must
// have no static __shared__ memory: the blocks would share it.
static void launch_cluster(dim3 grid, unsigned C, size_t smem, const std::function<void()>& body) {
  const unsigned threads = 256;
  gridDim = grid;
  blockDim = {threads, 1, 1};
  for (unsigned z = 0; z < grid.z; z++)
    for (unsigned y = 0; y < grid.y; y++)
      for (unsigned x0 = 0; x0 < grid.x; x0 += C) {
        std::barrier<> cb(C * threads);
        std::vector<std::unique_ptr<EmuBlock>> bs;
        std::vector<unsigned char*> mems;
        for (unsigned r = 0; r < C; r++) {
          bs.emplace_back(new EmuBlock(threads, smem));
          mems.push_back(bs.back()->smem.data());
        }
        std::vector<std::thread> ts;
        for (unsigned r = 0; r < C; r++)
          for (unsigned i = 0; i < threads; i++)
            ts.emplace_back([&, r, i] {
              emu_enter(*bs[r], i, {x0 + r, y, z});
              emuRank = r, emuClusterBar = &cb, emuClusterSmem = mems.data();
              body();
            });
        for (auto& t : ts) t.join();
      }
}
#define __cluster_dims__(x, y, z)
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
static inline float __shfl_xor_sync(unsigned, float v, int o) {
  int w = threadIdx.x / 32, l = threadIdx.x % 32;
  shflStage[w][l] = v;
  warpBar[w]->arrive_and_wait();
  float r = shflStage[w][l ^ o];
  warpBar[w]->arrive_and_wait();
  return r;
}
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

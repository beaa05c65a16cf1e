// Host emulation of what the paged attention of cuda/kernels/attention.cu
// uses beyond shim.h (see TestPagedAttentionEmulated): shuffles of any
// 4- or 8-byte value from any lane, ballots, warp and block barriers with
// an or, and the L2 loads as plain loads. The test replaces the cp.async
// copies by synchronous ones (zeros where the copy is off) and drops the
// commits and waits: the emulation checks the kernels' indexing, masks,
// rings and merges, not the copies' timing.
#include "shim.h"
struct float2 { float x, y; };
static inline float2 make_float2(float a, float b) { return {a, b}; }
static unsigned long long laneStage[32][32];
template <class T> static inline T __shfl_sync(unsigned, T v, int src, int width = 32) {
  static_assert(sizeof(T) <= 8, "a shuffle moves at most 8 bytes");
  int w = threadIdx.x / 32, l = threadIdx.x % 32;
  unsigned long long b = 0;
  memcpy(&b, &v, sizeof(T));
  laneStage[w][l] = b;
  warpBar[w]->arrive_and_wait();
  unsigned long long r = laneStage[w][l / width * width + src % width];
  warpBar[w]->arrive_and_wait();
  T out;
  memcpy(&out, &r, sizeof(T));
  return out;
}
static inline unsigned __ballot_sync(unsigned, bool p) {
  int w = threadIdx.x / 32, l = threadIdx.x % 32;
  laneStage[w][l] = p;
  warpBar[w]->arrive_and_wait();
  unsigned r = 0;
  for (int i = 0; i < 32; i++) r |= (laneStage[w][i] ? 1u : 0u) << i;
  warpBar[w]->arrive_and_wait();
  return r;
}
static inline void __syncwarp(unsigned = 0xffffffffu) { warpBar[threadIdx.x / 32]->arrive_and_wait(); }
// __syncthreads_or alternates two accumulators, so that a call's reset
// (by thread 0, after every thread has read it) never races the next
// call's ors.
static std::atomic<int> orAcc[2];
static thread_local int orPhase;
static inline int __syncthreads_or(int p) {
  int ph = orPhase;
  orPhase ^= 1;
  if (p) orAcc[ph] = 1;
  blockBar->arrive_and_wait();
  int r = orAcc[ph];
  blockBar->arrive_and_wait();
  if (threadIdx.x == 0) orAcc[ph] = 0;
  return r;
}
template <class T> static inline T __ldcg(const T* p) { return *p; }
#define __cvta_generic_to_shared(p) 0

// Host emulation of what the paged attention of cuda/kernels/attention.cu
// uses beyond shim.h (see TestPagedAttentionEmulated): shuffles of any
// 4- or 8-byte value from any lane, ballots, warp and block
// barriers with an or, the L2 loads as plain loads, and for the
// tensor-core path ldmatrix (.x4, plain and .trans), movmatrix and
// mma.sync.m16n8k8 of bfloat16 from the 32 lanes' fragments (PTX ISA
// layouts). The test replaces the cp.async
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
static int orAcc[2];
static inline int __syncthreads_or(int p) {
  int ph = emuCur->orPhase;
  emuCur->orPhase ^= 1;
  if (p) orAcc[ph] = 1;
  blockBar->arrive_and_wait();
  int r = orAcc[ph];
  blockBar->arrive_and_wait();
  if (threadIdx.x == 0) orAcc[ph] = 0;
  return r;
}
template <class T> static inline T __ldcg(const T* p) { return *p; }
#define __cvta_generic_to_shared(p) 0
// emu_ldsm4: lane l gives the address of row l % 8 of matrix l / 8 (16
// bytes) and gets r[m] = elements 2(l % 4), 2(l % 4) + 1 of row l / 4 of
// matrix m, or with trans element l / 4 of rows 2(l % 4) and 2(l % 4) + 1.
static const void* ldsmStage[32][32];
static inline void emu_ldsm4(unsigned (&r)[4], const void* row, bool trans) {
  int w = threadIdx.x / 32, l = threadIdx.x % 32;
  ldsmStage[w][l] = row;
  warpBar[w]->arrive_and_wait();
  for (int m = 0; m < 4; m++) {
    if (!trans) {
      const unsigned short* e = (const unsigned short*)ldsmStage[w][8 * m + l / 4];
      r[m] = e[2 * (l % 4)] | (unsigned)e[2 * (l % 4) + 1] << 16;
    } else {
      const unsigned short* a = (const unsigned short*)ldsmStage[w][8 * m + 2 * (l % 4)];
      const unsigned short* b = (const unsigned short*)ldsmStage[w][8 * m + 2 * (l % 4) + 1];
      r[m] = a[l / 4] | (unsigned)b[l / 4] << 16;
    }
  }
  warpBar[w]->arrive_and_wait();
}
// emu_movmatrix: the transpose of the 8×8 matrix of 16-bit elements whose
// row l / 4, elements 2(l % 4) and 2(l % 4) + 1, lane l holds.
static inline unsigned emu_movmatrix(unsigned x) {
  int w = threadIdx.x / 32, l = threadIdx.x % 32;
  laneStage[w][l] = x;
  warpBar[w]->arrive_and_wait();
  int row = l / 4, c = 2 * (l % 4);
  auto at = [&](int i, int j) { return (unsigned)(laneStage[w][4 * i + j / 2] >> (16 * (j % 2))) & 0xffffu; };
  unsigned r = at(c, row) | at(c + 1, row) << 16;
  warpBar[w]->arrive_and_wait();
  return r;
}
// emu_mma8_bf16: D = A·B + C of m16n8k8.bf16: a0 = A[g][2t..], a1 =
// A[g+8][2t..], b = B[2t..][g], d = {D[g][2t], D[g][2t+1], D[g+8][2t],
// D[g+8][2t+1]}, each element summed in float in k order.
static inline void emu_mma8_bf16(float* d, unsigned a0, unsigned a1, unsigned b0) {
  int w = threadIdx.x / 32, l = threadIdx.x % 32;
  MmaStage& s = mmaStage[w];
  s.a[l][0] = a0; s.a[l][1] = a1; s.b[l][0] = b0;
  warpBar[w]->arrive_and_wait();
  float A[16][8], B[8][8];
  for (int L = 0; L < 32; L++) {
    int g = L / 4, t = L % 4;
    for (int h = 0; h < 2; h++) {
      A[g][2 * t + h] = bf16f(s.a[L][0] >> (16 * h));
      A[g + 8][2 * t + h] = bf16f(s.a[L][1] >> (16 * h));
      B[2 * t + h][g] = bf16f(s.b[L][0] >> (16 * h));
    }
  }
  warpBar[w]->arrive_and_wait();
  int g = l / 4, t = l % 4;
  for (int i = 0; i < 4; i++) {
    int rr = g + 8 * (i / 2), c = 2 * t + i % 2;
    float sum = 0;
    for (int k = 0; k < 8; k++) sum += A[rr][k] * B[k][c];
    d[i] += sum;
  }
}

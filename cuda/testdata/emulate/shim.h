// Host emulation of the CUDA subset the GEMVs use (see
// cuda/emulate_test.go): a block's threads are fibers, user-level threads
// that one host thread switches between (x86-64 only: loom_emu_switch),
// and a warp's lanes meet at barriers for mma.sync (emu_mma) and shuffles.
// A lane waiting at a barrier yields to the next fiber, so a barrier costs
// a few context switches of nanoseconds each, not a futex wake-up of every
// thread of the block, which made the emulations take minutes.
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <memory>
#include <mutex>
#include <map>
#include <string>
#include <sys/mman.h>
using std::min; using std::max;
struct uint4 { unsigned x, y, z, w; };
struct uint2 { unsigned x, y; };
static inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return {a, b, c, d}; }
struct float4 { float x, y, z, w; };
static inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
struct dim3 { unsigned x = 1, y = 1, z = 1; };
dim3 gridDim, blockDim;
#define __device__
#define __global__
#define __forceinline__ inline
#define __launch_bounds__(a, b)
#define __shared__ static
#define __align__(n) alignas(n)
#include "fiber_switch.h"  // loom_emu_switch (internal/fiberswitch)
static void emu_yield();
// EmuBarrier: n fibers arrive; all but the last yield until the last one
// opens the next generation.
struct EmuBarrier {
  unsigned n, count = 0;
  unsigned long gen = 0;
  explicit EmuBarrier(unsigned n) : n(n) {}
  void arrive_and_wait() {
    const unsigned long g = gen;
    if (++count == n) {
      count = 0;
      gen++;
      return;
    }
    while (gen == g) emu_yield();
  }
};
struct MmaStage { unsigned a[32][4], b[32][2]; };
// The bulk GEMV's per-block state (below): made and checked with its block.
static void emu_bulk_begin(unsigned char* smem, size_t bytes);
static void emu_bulk_end(unsigned char* smem);
// A block's barriers and its warps' staging areas, which its fibers point
// at, so that the blocks of a cluster run at once.
struct EmuBlock {
  EmuBarrier bar;
  EmuBarrier* warps[32] = {};
  float shfl[32][32];
  MmaStage mma[32];
  std::vector<unsigned char> smem;  // the dynamic shared memory
  EmuBlock(unsigned threads, size_t smemBytes) : bar(threads), smem(smemBytes, 0xab) {
    for (unsigned w = 0; w < threads / 32; w++) warps[w] = new EmuBarrier(32);
    emu_bulk_begin(smem.data(), smemBytes);
  }
  ~EmuBlock() {
    for (auto* w : warps) delete w;
    emu_bulk_end(smem.data());
  }
};
// EmuThread is a CUDA thread's own state: its indices and the block and
// cluster it belongs to. The kernels' names for them (threadIdx, blockBar,
// emuSmem, ...) read the running fiber's.
struct EmuThread {
  dim3 tid, bid;
  EmuBarrier* bbar = nullptr;
  EmuBarrier** wbar = nullptr;
  float (*shfl)[32] = nullptr;
  MmaStage* mma = nullptr;
  unsigned char* smem = nullptr;
  unsigned rank = 0;
  EmuBarrier* cbar = nullptr;
  unsigned char* const* csmem = nullptr;
  int orPhase = 0;  // attention_shim.h's __syncthreads_or
};
static EmuThread emuHost;
static EmuThread* emuCur = &emuHost;
#define threadIdx (emuCur->tid)
#define blockIdx (emuCur->bid)
#define blockBar (emuCur->bbar)
#define warpBar (emuCur->wbar)
#define shflStage (emuCur->shfl)
#define mmaStage (emuCur->mma)
#define emuSmem (emuCur->smem)
#define emuRank (emuCur->rank)
#define emuClusterBar (emuCur->cbar)
#define emuClusterSmem (emuCur->csmem)
static inline void __syncthreads() { blockBar->arrive_and_wait(); }
// The fibers of the running launch: each has its stack (untouched pages
// cost nothing), its saved stack pointer and its thread's state.
struct EmuFiber {
  EmuThread t;
  const std::function<void()>* body;
  char* stack;
  void* sp = nullptr;
  bool done = false;
};
static const size_t emuStackBytes = 1 << 20;
static std::vector<EmuFiber*> emuFibers;
static std::vector<char*> emuStacks;  // stacks of finished fibers, for reuse
static EmuFiber* emuRunning;
static void* emuSchedSp;
static void emu_yield() {
  if (!emuRunning) {
    fprintf(stderr, "a barrier waits outside a launch\n");
    abort();
  }
  loom_emu_switch(&emuRunning->sp, emuSchedSp);
}
static void emu_start() {
  (*emuRunning->body)();
  emuRunning->done = true;
  loom_emu_switch(&emuRunning->sp, emuSchedSp);
  abort();  // a finished fiber is never resumed
}
// emu_run runs every thread of one block or cluster, body() each, as
// fibers in turn until all have returned.
static void emu_run(std::vector<EmuThread>& threads, const std::function<void()>& body) {
  emuFibers.clear();
  for (auto& t : threads) {
    char* stack;
    if (!emuStacks.empty()) {
      stack = emuStacks.back();
      emuStacks.pop_back();
    } else {
      stack = (char*)mmap(nullptr, emuStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (stack == MAP_FAILED) {
        perror("mmap");
        abort();
      }
    }
    auto* f = new EmuFiber{t, &body, stack};
    // The first switch to a fiber pops six zeroed registers and returns
    // into emu_start with the stack aligned as after a call.
    void** top = (void**)(f->stack + emuStackBytes);
    *--top = nullptr;
    *--top = (void*)emu_start;
    for (int i = 0; i < 6; i++) *--top = nullptr;
    f->sp = top;
    emuFibers.push_back(f);
  }
  for (size_t live = emuFibers.size(); live > 0;) {
    live = 0;
    for (auto* f : emuFibers) {
      if (f->done) continue;
      emuRunning = f, emuCur = &f->t;
      loom_emu_switch(&emuSchedSp, f->sp);
      if (!f->done) live++;
    }
  }
  emuRunning = nullptr, emuCur = &emuHost;
  for (auto* f : emuFibers) {
    emuStacks.push_back(f->stack);
    delete f;
  }
  emuFibers.clear();
}
static EmuThread emu_thread(EmuBlock& b, unsigned i, dim3 block) {
  EmuThread t;
  t.tid = {i, 0, 0}, t.bid = block;
  t.bbar = &b.bar, t.wbar = b.warps, t.shfl = b.shfl, t.mma = b.mma, t.smem = b.smem.data();
  return t;
}
// launch runs a grid's blocks one after another (a block's __shared__
// memory is static storage), each block's threads as fibers.
static void launch(dim3 grid, unsigned threads, const std::function<void()>& body) {
  gridDim = grid;
  blockDim = {threads, 1, 1};
  for (unsigned z = 0; z < grid.z; z++)
    for (unsigned y = 0; y < grid.y; y++)
      for (unsigned x = 0; x < grid.x; x++) {
        EmuBlock b(threads, 0);
        std::vector<EmuThread> ts;
        for (unsigned i = 0; i < threads; i++) ts.push_back(emu_thread(b, i, {x, y, z}));
        emu_run(ts, body);
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
        EmuBarrier cb(C * threads);
        std::vector<std::unique_ptr<EmuBlock>> bs;
        std::vector<unsigned char*> mems;
        for (unsigned r = 0; r < C; r++) {
          bs.emplace_back(new EmuBlock(threads, smem));
          mems.push_back(bs.back()->smem.data());
        }
        std::vector<EmuThread> ts;
        for (unsigned r = 0; r < C; r++)
          for (unsigned i = 0; i < threads; i++) {
            EmuThread t = emu_thread(*bs[r], i, {x0 + r, y, z});
            t.rank = r, t.cbar = &cb, t.csmem = mems.data();
            ts.push_back(t);
          }
        emu_run(ts, body);
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
static std::vector<unsigned char> emuCopied;  // per weight byte, the bulk copies that read it (emu_bulk_copy)
static void emu_weights(const void* w, size_t bytes) {
  emuW = (const char*)w, emuWBytes = bytes, emuOutside = 0;
  emuSeen.assign(bytes, 0);
  emuCopied.assign(bytes, 0);
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
// The bulk GEMV's mbarriers and 1-D bulk copies (cp.async.bulk), kept
// beside each block (by its dynamic shared memory) with shared addresses as
// offsets into it: an mbarrier's phase, pending arrivals and transaction
// bytes, and the copies in flight. A copy is queued on its mbarrier and
// lands (a memcpy, its bytes off the transaction count) only when a lane
// polls that mbarrier, one copy a poll, so that a wait that returns on the
// wrong phase reads stale bytes (or the garbage the shared memory starts
// with) instead of the copy's; a lane whose poll fails yields to the next.
struct EmuMbar {
  unsigned expected, pending;
  long tx;
  unsigned phase;
};
struct EmuCopy {
  unsigned dst;
  const void* src;
  unsigned bytes, bar;
};
struct EmuBulk {
  size_t bytes;
  std::map<unsigned, EmuMbar> mbars;
  std::vector<EmuCopy> copies;  // in flight
  long polls = 0;               // failed polls since a wait last returned
};
static std::map<unsigned char*, EmuBulk> emuBulk;
// emuBulkFails counts misuses of the mbarriers and bulk copies; the first
// one's message is kept for the driver to print.
static int emuBulkFails;
static std::string emuBulkWhy;
template <typename... A> static void emuBulkFail(const char* fmt, A... a) {
  char msg[256];
  snprintf(msg, sizeof msg, fmt, a...);
  if (emuBulkFails++ == 0) emuBulkWhy = msg;
}
static void emu_bulk_begin(unsigned char* smem, size_t bytes) { emuBulk[smem] = EmuBulk{bytes}; }
// emu_bulk_end checks a block that has exited: no copy in flight, no
// mbarrier waiting for bytes.
static void emu_bulk_end(unsigned char* smem) {
  EmuBulk& b = emuBulk[smem];
  if (!b.copies.empty()) emuBulkFail("a block exited with %zu bulk copies in flight", b.copies.size());
  for (auto& [bar, m] : b.mbars)
    if (m.tx != 0) emuBulkFail("mbarrier at %u still expects %ld bytes at exit", bar, m.tx);
  emuBulk.erase(smem);
}
static void emu_mbar_done(EmuMbar& m) {
  if (m.pending == 0 && m.tx == 0) m.phase++, m.pending = m.expected;
}
static EmuMbar* emu_mbar(unsigned bar) {
  auto& mbars = emuBulk[emuSmem].mbars;
  auto it = mbars.find(bar);
  if (it == mbars.end()) {
    emuBulkFail("mbarrier at %u used before mbarrier.init", bar);
    return nullptr;
  }
  return &it->second;
}
static void emu_mbar_init(unsigned bar, unsigned count) {
  EmuBulk& b = emuBulk[emuSmem];
  if (bar % 8 != 0 || bar + 8 > b.bytes) emuBulkFail("mbarrier at %u: misaligned or past the %zu bytes of shared memory", bar, b.bytes);
  b.mbars[bar] = EmuMbar{count, count, 0, 0};
}
static void emu_mbar_expect(unsigned bar, unsigned bytes) {
  EmuMbar* m = emu_mbar(bar);
  if (m == nullptr) return;
  if (m->pending == 0) emuBulkFail("mbarrier at %u: an arrival past its count", bar);
  m->tx += bytes, m->pending--;
  emu_mbar_done(*m);
}
static void emu_bulk_copy(unsigned dst, const void* src, unsigned bytes, unsigned bar) {
  EmuBulk& b = emuBulk[emuSmem];
  if (dst % 16 != 0 || (uintptr_t)src % 16 != 0 || bytes % 16 != 0 || bytes == 0)
    emuBulkFail("bulk copy to %u of %u bytes from an address %u mod 16: want both 16-byte aligned, a positive multiple of 16 bytes", dst, bytes,
                (unsigned)((uintptr_t)src % 16));
  if ((size_t)dst + bytes > b.bytes) {
    emuBulkFail("bulk copy to %u of %u bytes: past the shared memory's %zu bytes", dst, bytes, b.bytes);
    return;
  }
  const char* c = (const char*)src;
  if (c < emuW || c + bytes > emuW + emuWBytes) {
    emuBulkFail("bulk copy to %u of %u bytes: its source is outside the weights", dst, bytes);
    return;
  }
  for (size_t i = c - emuW; i < (size_t)(c - emuW) + bytes; i++) emuCopied[i]++;
  b.copies.push_back(EmuCopy{dst, src, bytes, bar});
}
// emu_mbar_try_wait lands the first copy in flight on bar, if any, and
// says whether bar's phase of the given parity has completed; else it
// yields. After 10^7 failed polls of a block in a row it reports a
// deadlock and stops.
static bool emu_mbar_try_wait(unsigned bar, unsigned parity) {
  EmuBulk& b = emuBulk[emuSmem];
  EmuMbar* m = emu_mbar(bar);
  if (m == nullptr) return true;
  for (size_t i = 0; i < b.copies.size(); i++) {
    if (b.copies[i].bar != bar) continue;
    memcpy(emuSmem + b.copies[i].dst, b.copies[i].src, b.copies[i].bytes);
    m->tx -= b.copies[i].bytes;
    b.copies.erase(b.copies.begin() + i);
    emu_mbar_done(*m);
    break;
  }
  if ((m->phase & 1) != parity) {
    b.polls = 0;
    return true;
  }
  if (++b.polls > 10000000) {
    fprintf(stderr, "deadlock: thread %u of block %u waits on the mbarrier at %u for parity %u\n", threadIdx.x, blockIdx.x, bar, parity);
    abort();
  }
  emu_yield();
  return false;
}
// emu_bulk_prefetch is cp.async.bulk.prefetch.L2: a prefetch of the span,
// whose address and size must be 16-byte multiples.
static void emu_bulk_prefetch(const void* src, unsigned bytes) {
  if ((uintptr_t)src % 16 != 0 || bytes % 16 != 0 || bytes == 0)
    emuBulkFail("bulk prefetch of %u bytes from an address %u mod 16: want a 16-byte aligned address and a positive multiple of 16 bytes", bytes,
                (unsigned)((uintptr_t)src % 16));
  emu_prefetch(src, bytes);
}

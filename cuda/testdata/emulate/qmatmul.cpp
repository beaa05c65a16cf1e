// The quantized matmul of cuda/kernels/quantized.cu (float32 and bfloat16
// x, 4- and 8-bit codes, groups of 32, 64 and 128) against a float64
// reference on the dequantised weights; bit for bit the same with one and
// two outputs a warp, on narrower grids that loop, with misaligned codes
// and x (the element-at-a-time loads), and for each row of x alone (batch
// invariance), with x staged in shared memory and (long rows) read by each
// lane; the gated kernel (qmatmul_silu_mul) bit for bit the
// matmul's outputs through silu_mul's formula; and the code rows each
// block prefetches before grid_dependency_wait. Prints PASS or FAIL and
// the first failures.
#include "quantized.cu.h"
#include <random>
static std::mt19937 rng(11);
static int fails = 0;
#define CHECK(c, ...) do { if (!(c)) { fails++; if (fails < 20) { printf(__VA_ARGS__); printf("\n"); } } } while (0)
template <typename T> static T from(float v) { return Num<T>::store(v); }
template <typename T> static double F(T v) { return Num<T>::load(v); }
// Quantized weights of N rows of K codes, with their scales and biases.
template <typename T> struct QW {
  std::vector<unsigned> w;
  std::vector<T> s, b;
};
template <typename T> static QW<T> quantized(unsigned N, unsigned K, unsigned bits, unsigned G) {
  QW<T> q;
  q.w.resize((size_t)N * K * bits / 32);
  for (auto& v : q.w) v = rng();
  std::uniform_real_distribution<float> u(-1, 1);
  for (size_t i = 0; i < (size_t)N * K / G; i++) q.s.push_back(from<T>(u(rng) / 8)), q.b.push_back(from<T>(u(rng)));
  return q;
}
template <typename T> static std::vector<T> rnd(size_t n) {
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<T> v(n);
  for (auto& e : v) e = from<T>(u(rng));
  return v;
}
// run launches qmatmul on a grid of the given width (0: the lowering's,
// one output a warp; 2 in two: two a warp), its codes at offset wOff words
// and x at xOff elements of their buffers, and checks the prefetched spans.
template <typename T>
static std::vector<T> run(void (*kernel)(const T*, const u32*, const T*, const T*, T*, const QuantParams, Status*), const std::vector<T>& x,
                          const QW<T>& q, unsigned M, unsigned N, unsigned K, unsigned bits, unsigned G, unsigned grid, unsigned wOff = 0, unsigned xOff = 0) {
  std::vector<unsigned> w(wOff, 0);
  w.insert(w.end(), q.w.begin(), q.w.end());
  std::vector<T> xs(xOff, from<T>(0));
  xs.insert(xs.end(), x.begin(), x.end());
  std::vector<T> out((size_t)M * N, from<T>(12345.f));
  QuantParams p{};
  p.M = M, p.N = N, p.K = K, p.GroupSize = G;
  Status st{};
  const size_t rowBytes = (size_t)K * bits / 8;
  emu_weights(w.data() + wOff, q.w.size() * 4);
  launch({grid, (M + 3) / 4, 1}, [&] { kernel(xs.data() + xOff, w.data() + wOff, q.s.data(), q.b.data(), out.data(), p, &st); });
  // Each block of the first rows of x prefetches the code rows of its
  // first outputs, 8 warps of W each, at most QUANT_PREFETCH_BYTES.
  unsigned W = M != 1 ? 1 : 8 * grid * 8 <= N ? 4 : grid * 8 < N ? 2 : 1;
  std::vector<unsigned char> want(emuSeen.size(), 0);
  for (unsigned bx = 0; bx < grid; bx++) {
    size_t r0 = (size_t)8 * W * bx;
    if (r0 >= N) continue;
    size_t n = std::min<size_t>(std::min<size_t>(8 * W, N - r0) * rowBytes, QUANT_PREFETCH_BYTES);
    std::fill(want.begin() + r0 * rowBytes, want.begin() + r0 * rowBytes + n, 1);
  }
  CHECK(emuOutside == 0, "M=%u N=%u K=%u grid %u: %d prefetches outside the codes", M, N, K, grid, emuOutside);
  size_t diff = 0;
  while (diff < want.size() && want[diff] == emuSeen[diff]) diff++;
  CHECK(diff == want.size(), "M=%u N=%u K=%u grid %u: code byte %zu prefetched %d, want %d", M, N, K, grid, diff,
        diff < want.size() ? emuSeen[diff] : 0, diff < want.size() ? want[diff] : 0);
  return out;
}
// checkGated runs qmatmul_silu_mul on the first 2·(N/2) rows of q (the
// gate rows, then the up rows) and compares it with the matmul's outputs
// mm of those rows (rounded to T) through silu_mul's formula, bit for bit,
// and the gate and up code rows each block prefetches.
template <typename T>
static void checkGated(const char* dt, void (*kernel)(const T*, const u32*, const T*, const T*, T*, const QuantParams, Status*), const std::vector<T>& x,
                       const QW<T>& q, const std::vector<T>& mm, unsigned M, unsigned N, unsigned K, unsigned bits, unsigned G) {
  const unsigned N2 = N / 2, grid = (N2 + 7) / 8;
  const size_t rowBytes = (size_t)K * bits / 8;
  std::vector<T> out((size_t)M * N2, from<T>(12345.f));
  QuantParams p{};
  p.M = M, p.N = N2, p.K = K, p.GroupSize = G;
  Status st{};
  emu_weights(q.w.data(), (size_t)2 * N2 * rowBytes);
  launch({grid, M, 1}, [&] { kernel(x.data(), q.w.data(), q.s.data(), q.b.data(), out.data(), p, &st); });
  for (unsigned m = 0; m < M; m++)
    for (unsigned j = 0; j < N2; j++) {
      T want = from<T>(un_silu(F(mm[(size_t)m * N + j])) * F(mm[(size_t)m * N + N2 + j]));
      CHECK(memcmp(&want, &out[(size_t)m * N2 + j], sizeof(T)) == 0, "%s q%u G=%u gated M=%u N=%u K=%u: out[%u][%u] = %g, want %g", dt, bits, G, M, N2, K, m, j,
            F(out[(size_t)m * N2 + j]), F(want));
    }
  std::vector<unsigned char> want(emuSeen.size(), 0);
  for (unsigned bx = 0; bx < grid; bx++) {
    size_t r0 = (size_t)8 * bx, n = std::min<size_t>(std::min<size_t>(8, N2 - r0) * rowBytes, QUANT_PREFETCH_BYTES);
    for (size_t half : {(size_t)0, (size_t)N2}) std::fill(want.begin() + (half + r0) * rowBytes, want.begin() + (half + r0) * rowBytes + n, 1);
  }
  CHECK(emuOutside == 0 && want == emuSeen, "%s q%u gated N=%u K=%u: the prefetched code rows differ from each block's gate and up rows", dt, bits, N2, K);
}
template <typename T>
static void check(const char* dt, void (*kernel)(const T*, const u32*, const T*, const T*, T*, const QuantParams, Status*),
                  void (*gated)(const T*, const u32*, const T*, const T*, T*, const QuantParams, Status*), unsigned M, unsigned N, unsigned K,
                  unsigned bits, unsigned G) {
  auto q = quantized<T>(N, K, bits, G);
  auto x = rnd<T>((size_t)M * K);
  const unsigned one = (N + 7) / 8;
  auto base = run(kernel, x, q, M, N, K, bits, G, one);
  const unsigned per = 32 / bits, words = K / per, mask = (1u << bits) - 1;
  double tol = sizeof(T) == 4 ? 1e-5 : 1e-2;  // bfloat16 outputs are rounded to 8 bits
  for (unsigned m = 0; m < M; m++)
    for (unsigned n = 0; n < N; n++) {
      double ref = 0, mag = 0;
      for (unsigned k = 0; k < K; k++) {
        unsigned code = (q.w[(size_t)n * words + k / per] >> (bits * (k % per))) & mask;
        size_t g = (size_t)n * (K / G) + k / G;
        double v = F(x[(size_t)m * K + k]) * (F(q.s[g]) * code + F(q.b[g]));
        ref += v, mag += fabs(v);
      }
      double got = F(base[(size_t)m * N + n]);
      CHECK(fabs(got - ref) <= tol * fabs(ref) + 1e-5 * mag + 1e-6, "%s q%u G=%u M=%u N=%u K=%u: out[%u][%u] = %.9g, want %.9g", dt, bits, G, M, N, K, m, n, got, ref);
    }
  auto same = [&](const std::vector<T>& o, const char* what) {
    CHECK(memcmp(o.data(), base.data(), o.size() * sizeof(T)) == 0, "%s q%u G=%u M=%u N=%u K=%u %s: bits differ", dt, bits, G, M, N, K, what);
  };
  same(run(kernel, x, q, M, N, K, bits, G, (N + 15) / 16), "two outputs a warp");
  same(run(kernel, x, q, M, N, K, bits, G, 1), "grid 1");
  same(run(kernel, x, q, M, N, K, bits, G, 3), "grid 3");
  same(run(kernel, x, q, M, N, K, bits, G, one, 1, 0), "codes misaligned");
  same(run(kernel, x, q, M, N, K, bits, G, one, 0, 1), "x misaligned");
  if (N >= 2) {
    // The gated kernel over the first 2·(N/2) rows, against the matmul's
    // outputs of those rows (the same sums: rows are independent).
    const unsigned N2 = N / 2;
    QW<T> h{std::vector<unsigned>(q.w.begin(), q.w.begin() + (size_t)2 * N2 * K * bits / 32), std::vector<T>(q.s.begin(), q.s.begin() + (size_t)2 * N2 * K / G),
            std::vector<T>(q.b.begin(), q.b.begin() + (size_t)2 * N2 * K / G)};
    std::vector<T> mm((size_t)M * 2 * N2);
    for (unsigned m = 0; m < M; m++) std::copy(base.begin() + (size_t)m * N, base.begin() + (size_t)m * N + 2 * N2, mm.begin() + (size_t)m * 2 * N2);
    checkGated(dt, gated, x, h, mm, M, 2 * N2, K, bits, G);
  }
  for (unsigned m : {0u, M - 1}) {
    std::vector<T> xr(x.begin() + (size_t)m * K, x.begin() + (size_t)(m + 1) * K);
    for (unsigned grid : {one, (N + 15) / 16}) {
      auto o = run(kernel, xr, q, 1, N, K, bits, G, grid);
      CHECK(memcmp(o.data(), base.data() + (size_t)m * N, N * sizeof(T)) == 0, "%s q%u G=%u M=%u N=%u K=%u grid %u: row %u alone differs", dt, bits, G, M, N, K, grid, m);
    }
  }
}
int main() {
  struct C { unsigned M, N, K, bits, G; } cases[] = {
      {1, 131, 1024, 4, 64}, {1, 131, 1024, 8, 64}, {3, 37, 384, 4, 128}, {5, 20, 384, 8, 128}, {1, 1, 32, 4, 32},
      {4, 9, 96, 8, 32}, {8, 300, 128, 4, 32}, {1, 300, 3072, 4, 64}, {2, 17, 64, 8, 64},
      // Rows of x too long for shared memory (LOOM_QUANT_SMEM_X): each lane reads its own.
      {1, 7, 9216, 4, 64}, {1, 3, 8192, 8, 128},
  };
  for (auto c : cases) {
    check<float>("f32", c.bits == 4 ? qmatmul_f32_q4 : qmatmul_f32_q8, c.bits == 4 ? qmatmul_silu_mul_f32_q4 : qmatmul_silu_mul_f32_q8, c.M, c.N, c.K, c.bits, c.G);
    check<bf16_t>("bf16", c.bits == 4 ? qmatmul_bf16_q4 : qmatmul_bf16_q8, c.bits == 4 ? qmatmul_silu_mul_bf16_q4 : qmatmul_silu_mul_bf16_q8, c.M, c.N, c.K, c.bits,
                  c.G);
    printf("M=%u N=%u K=%u q%u G=%u done, %d failures so far\n", c.M, c.N, c.K, c.bits, c.G, fails);
    fflush(stdout);
  }
  printf("%s: %d failures\n", fails ? "FAIL" : "PASS", fails);
  return fails != 0;
}

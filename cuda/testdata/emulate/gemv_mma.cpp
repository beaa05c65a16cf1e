// The FMA GEMV and gated GEMV of cuda/kernels/matmul.cu at batch 1
// (float32; checkFMA), the norms fused into them (checkNorm), and the
// tensor-core GEMV and gated GEMV (bfloat16),
// against a float64 reference, with every split, tile height and several
// grids (bit for bit the same), each row alone (batch invariance), and the
// gated GEMV against the matmul's rounded outputs and silu_mul's formula
// (bit for bit). Prints PASS or FAIL and the first failures.
#include "matmul.cu.h"
#include <random>
#include <string>
static std::mt19937 rng(7);
static std::vector<bf16_t> rnd(size_t n) {
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<bf16_t> v(n);
  for (auto& e : v) e = Num<bf16_t>::store(u(rng));
  return v;
}
static float F(bf16_t h) { return Num<bf16_t>::load(h); }
static int fails = 0;
#define CHECK(c, ...) do { if (!(c)) { fails++; if (fails < 20) { printf(__VA_ARGS__); printf("\n"); } } } while (0)
// checkSpans compares the weight bytes the blocks of a launch of width grid
// prefetched (emu_prefetch) with the rows of each block's first step: rows
// [R·b, R·b + R) of the N rows of K elements (eb bytes each), and for the
// gated GEMVs the same rows of the up half (from row N), at most
// PREFETCH_BYTES from each block's first row.
static void checkSpans(const char* what, unsigned grid, unsigned R, unsigned N, unsigned K, size_t eb, bool gated) {
  std::vector<unsigned char> want(emuSeen.size(), 0);
  for (unsigned b = 0; b < grid; b++) {
    const size_t r0 = (size_t)R * b;
    if (r0 >= N) continue;
    const size_t n = std::min<size_t>((size_t)std::min<size_t>(R, N - r0) * K * eb, PREFETCH_BYTES);
    for (size_t half : {(size_t)0, (size_t)N}) {
      if (half > 0 && !gated) continue;
      std::fill(want.begin() + (half + r0) * K * eb, want.begin() + (half + r0) * K * eb + n, 1);
    }
  }
  CHECK(emuOutside == 0, "%s N=%u K=%u grid %u: %d prefetches outside the weights", what, N, K, grid, emuOutside);
  size_t diff = 0;
  while (diff < want.size() && want[diff] == emuSeen[diff]) diff++;
  CHECK(diff == want.size(), "%s N=%u K=%u grid %u rows a block %u: byte %zu of the weights prefetched %d, want %d", what, N, K, grid, R, diff,
        diff < want.size() ? emuSeen[diff] : 0, diff < want.size() ? want[diff] : 0);
}
// mmaSplit is mma_gemv's S for M rows of x and the lowering's split.
static unsigned mmaSplit(unsigned M, unsigned split) {
  unsigned rows = std::min(M, 64u), mt = rows <= 8 ? 1 : rows <= 16 ? 2 : rows <= 32 ? 4 : 8, s = 1;
  while (s < 8 && (s < split || s < mt)) s *= 2;
  return s;
}
// gemv runs the tensor-core GEMV variant with the given split, tile rows and grid (0: as many blocks as tiles need).
// stream sets MatMulParams.Stream (mma_stream where M ≤ 8 and K % 256 == 0).
static std::vector<bf16_t> gemv(const std::vector<bf16_t>& x, const std::vector<bf16_t>& w, unsigned M, unsigned N, unsigned K, unsigned split, unsigned rows, unsigned grid, bool stream = false) {
  std::vector<bf16_t> out(M * N, Num<bf16_t>::store(12345.f));
  MatMulParams p{};
  p.M = M, p.N = N, p.K = K, p.Batch = 1, p.TransposeB = 1, p.MMA = 1, p.Split = split, p.TileRows = rows, p.Stream = stream;
  unsigned tiles = (N + rows - 1) / rows, tb = 8 / std::max(split, 1u);
  if (grid == 0) grid = (tiles + tb - 1) / tb;
  Status st{};
  emu_weights(w.data(), w.size() * 2);
  launch({grid, 1, 1}, [&] { matmul_bf16_gemv_mma(x.data(), w.data(), out.data(), p, &st); });
  checkSpans("mma", grid, 8 / mmaSplit(M, split) * rows, N, K, 2, false);
  return out;
}
static std::vector<bf16_t> gated(const std::vector<bf16_t>& x, const std::vector<bf16_t>& w, unsigned M, unsigned N, unsigned K, unsigned split, unsigned grid) {
  std::vector<bf16_t> out(M * N, Num<bf16_t>::store(12345.f));
  MatMulSiLUMulParams p{};
  p.M = M, p.N = N, p.K = K, p.MMA = 1, p.Split = split;
  unsigned tiles = (N + 7) / 8, tb = 8 / std::max(split, 1u);
  if (grid == 0) grid = (tiles + tb - 1) / tb;
  Status st{};
  emu_weights(w.data(), w.size() * 2);
  launch({grid, 1, 1}, [&] { matmul_silu_mul_bf16_mma(x.data(), w.data(), out.data(), p, &st); });
  checkSpans("gated mma", grid, 8 / mmaSplit(M, split) * 8, N, K, 2, true);
  return out;
}
static std::vector<bf16_t> gated_(const std::vector<bf16_t>& x, const std::vector<bf16_t>& w, unsigned N, unsigned K, unsigned split) {
  return gated(x, w, 1, N, K, split, 0);
}
// fma runs the float32 FMA GEMV (MMA 0) of one row of x on a grid of the
// given width: the kernel lets 8 / (outputs a block) warps share an output.
// (float32, so that a change in the order of the sums shows in the bits.)
static std::vector<float> rndf(size_t n) {
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> v(n);
  for (auto& e : v) e = u(rng);
  return v;
}
static std::vector<float> fma(const std::vector<float>& x, const std::vector<float>& w, unsigned N, unsigned K, unsigned grid) {
  std::vector<float> out(N, 12345.f);
  MatMulParams p{};
  p.M = 1, p.N = N, p.K = K, p.Batch = 1, p.TransposeB = 1;
  Status st{};
  emu_weights(w.data(), w.size() * 4);
  launch({grid, 1, 1}, [&] { matmul_f32_gemv(x.data(), w.data(), out.data(), p, &st); });
  unsigned S = 1;  // gemv_rows's warps an output for this grid
  while (S < 8 && (size_t)grid * (8 / (2 * S)) >= N) S *= 2;
  checkSpans("FMA", grid, 8 / S, N, K, 4, false);
  return out;
}
static std::vector<float> fmaGated(const std::vector<float>& x, const std::vector<float>& w, unsigned N, unsigned K) {
  std::vector<float> out(N, 12345.f);
  MatMulSiLUMulParams p{};
  p.M = 1, p.N = N, p.K = K;
  Status st{};
  emu_weights(w.data(), w.size() * 4);
  launch({(N + 7) / 8, 1, 1}, [&] { matmul_silu_mul_f32(x.data(), w.data(), out.data(), p, &st); });
  checkSpans("FMA gated", (N + 7) / 8, 8, N, K, 4, true);
  return out;
}
// checkFMA: the FMA GEMV against a float64 reference, bit for bit the same
// for every split of K over warps (the grids of 8, 4, 2 and 1 outputs a
// block) and for narrower grids that loop, and the FMA gated GEMV bit for
// bit the GEMV's outputs through silu_mul's formula.
static void checkFMA(unsigned N, unsigned K) {
  auto x = rndf(K), w = rndf((size_t)N * K);
  auto base = fma(x, w, N, K, (N + 7) / 8);
  for (unsigned n = 0; n < N; n++) {
    double ref = 0, mag = 0;
    for (unsigned k = 0; k < K; k++) { double v = (double)x[k] * w[n * K + k]; ref += v; mag += fabs(v); }
    CHECK(fabs(base[n] - ref) <= 1e-5 * mag + 1e-6, "FMA N=%u K=%u out[%u] = %g, want %g", N, K, n, base[n], ref);
  }
  for (unsigned grid : {(N + 3) / 4, (N + 1) / 2, N, 1u, 3u}) {
    auto o = fma(x, w, N, K, grid);
    CHECK(memcmp(o.data(), base.data(), o.size() * 4) == 0, "FMA N=%u K=%u grid %u: bits differ", N, K, grid);
  }
  unsigned N2 = N / 2;
  if (N2 == 0) return;
  std::vector<float> wg(w.begin(), w.begin() + (size_t)2 * N2 * K);
  auto mm = fma(x, wg, 2 * N2, K, (2 * N2 + 7) / 8);
  auto o = fmaGated(x, wg, N2, K);
  for (unsigned j = 0; j < N2; j++) {
    float want = un_silu(mm[j]) * mm[N2 + j];
    CHECK(memcmp(&want, &o[j], 4) == 0, "FMA gated N=%u K=%u: out[%u] = %g, want %g", N2, K, j, o[j], want);
  }
}
// normRow runs add_rms_norm_regs over one row of K with a block of 256
// threads, as norm.cu's add_rms_norm does: the sum and the norm.
template <typename T>
static void normRow(const std::vector<T>& x, const std::vector<T>& d, const std::vector<T>& nw, unsigned K, float eps, std::vector<T>& sum,
                    std::vector<T>& normed) {
  sum.assign(K, T{}), normed.assign(K, T{});
  launch({1, 1, 1}, [&] {
    static float scratch[32];
    add_rms_norm_regs(x.data(), d.data(), nw.data(), sum.data(), normed.data(), K, eps, scratch);
  });
}
static bool sameBits(const void* a, const void* b, size_t n) { return memcmp(a, b, n) == 0; }
// bulkBytes is primitives.BulkSharedBytes: the bulk GEMV's shared memory a
// block.
static size_t bulkBytes(unsigned xRows, unsigned K, unsigned split, unsigned tileRows, unsigned stages) {
  const size_t red = split > 1 ? 8 / split * 8 * 4 * 32 * 4 : 32 * 4;
  return 16 * 8 + red + ((size_t)xRows * K * 2 + 15) / 16 * 16 + (size_t)stages * (8 / split) * tileRows * K * 2;
}
// BulkRun is one launch of a bulk variant: the weights w (N rows of K, or
// the gated GEMV's 2N; misaligned where offset), x, split, tile height,
// stages and grid (0: a block a tile), for the plain, gated or fused
// kernels (norm: x, delta and the norm's weight, the sum stored into sum).
struct BulkRun {
  const bf16_t *x, *w;
  unsigned M, N, K;
  bool gated;
  unsigned split, tileRows, stages, grid;
  const bf16_t *delta = nullptr, *normW = nullptr;
  bf16_t* sum = nullptr;
  float eps = 0;
};
// bulkRun runs the bulk variant, late (the first ring fill copied after
// grid_dependency_wait) or early (before it), and checks its use of the
// shared memory (no byte past bulkBytes written), of the mbarriers and bulk
// copies (shim.h: aligned, in the shared memory, all landed and waited
// for), that every weight byte was copied once (none where the weights are
// misaligned or K is not a multiple of 8: the tile loop's path), and that
// its prefetches stay inside the weights.
static std::vector<bf16_t> bulkRun(const BulkRun& r, bool early) {
  const bool norm = r.normW != nullptr;
  std::vector<bf16_t> out(r.M * r.N, Num<bf16_t>::store(12345.f));
  const unsigned tiles = r.gated ? (r.N + 7) / 8 : (r.N + r.tileRows - 1) / r.tileRows, grid = r.grid ? r.grid : tiles;
  const size_t bytes = bulkBytes(norm ? 0 : r.M, r.K, r.split, r.gated ? 16 : r.tileRows, r.stages), guard = 64;
  const size_t wBytes = (size_t)(r.gated ? 2 : 1) * r.N * r.K * 2;
  std::vector<unsigned char> canary(guard, 0);
  Status st{};
  emu_weights(r.w, wBytes);
  emuBulkFails = 0;
  launch_cluster({grid, 1, 1}, 1, bytes + guard, [&] {
    if (norm) {
      AddRMSNormLinearParams p{};
      p.N = r.N, p.K = r.K, p.Eps = r.eps, p.MMA = 1, p.Split = r.split, p.TileRows = r.tileRows, p.Bulk = r.stages;
      if (r.gated) {
        (early ? add_rms_norm_matmul_silu_mul_bf16_mma_bulk_early : add_rms_norm_matmul_silu_mul_bf16_mma_bulk)(r.x, r.delta, r.normW, r.w, r.sum, out.data(), p, &st);
      } else {
        (early ? add_rms_norm_matmul_bf16_mma_bulk_early : add_rms_norm_matmul_bf16_mma_bulk)(r.x, r.delta, r.normW, r.w, r.sum, out.data(), p, &st);
      }
    } else if (r.gated) {
      MatMulSiLUMulParams p{};
      p.M = r.M, p.N = r.N, p.K = r.K, p.MMA = 1, p.Split = r.split, p.Bulk = r.stages;
      (early ? matmul_silu_mul_bf16_mma_bulk_early : matmul_silu_mul_bf16_mma_bulk)(r.x, r.w, out.data(), p, &st);
    } else {
      MatMulParams p{};
      p.M = r.M, p.N = r.N, p.K = r.K, p.Batch = 1, p.TransposeB = 1, p.MMA = 1, p.Split = r.split, p.TileRows = r.tileRows, p.Bulk = r.stages;
      (early ? matmul_bf16_gemv_mma_bulk_early : matmul_bf16_gemv_mma_bulk)(r.x, r.w, out.data(), p, &st);
    }
    if (threadIdx.x == 0)
      for (size_t i = 0; i < guard; i++)
        if (emuSmem[bytes + i] != 0xab) canary[i] = 1;
  });
  char what[176];
  snprintf(what, sizeof what, "bulk%s%s%s M=%u N=%u K=%u split %u rows %u stages %u grid %u", early ? " early" : "", norm ? " norm" : "", r.gated ? " gated" : "", r.M, r.N, r.K, r.split, r.tileRows, r.stages, grid);
  for (size_t i = 0; i < guard; i++) CHECK(!canary[i], "%s: shared memory written past %zu bytes", what, bytes);
  CHECK(emuBulkFails == 0, "%s: %d misuses of the mbarriers or bulk copies, the first: %s", what, emuBulkFails, emuBulkWhy.c_str());
  CHECK(emuOutside == 0, "%s: %d prefetches outside the weights", what, emuOutside);
  const unsigned char once = r.K > 0 && r.K % 8 == 0 && (uintptr_t)r.w % 16 == 0;
  size_t i = 0;
  while (i < emuCopied.size() && emuCopied[i] == once) i++;
  CHECK(i == emuCopied.size(), "%s: weight byte %zu copied %d times, want %d", what, i, i < emuCopied.size() ? emuCopied[i] : 0, once);
  return out;
}
// bulk runs both bulk variants (bulkRun) and returns the late one's
// outputs, after checking the early one's bits against them.
static std::vector<bf16_t> bulk(const BulkRun& r) {
  auto late = bulkRun(r, false);
  std::vector<bf16_t> sum;
  if (r.sum != nullptr) {
    sum.assign(r.sum, r.sum + r.K);
    std::fill(r.sum, r.sum + r.K, Num<bf16_t>::store(12345.f));  // the early variant stores it again
  }
  auto early = bulkRun(r, true);
  CHECK(memcmp(late.data(), early.data(), late.size() * 2) == 0, "bulk%s M=%u N=%u K=%u split %u rows %u stages %u: the early variant's bits differ from the late one's", r.gated ? " gated" : "", r.M, r.N, r.K, r.split, r.tileRows, r.stages);
  if (r.sum != nullptr) CHECK(memcmp(sum.data(), r.sum, r.K * 2) == 0, "bulk norm M=%u N=%u K=%u: the early variant's sum differs from the late one's", r.M, r.N, r.K);
  return late;
}
// checkNorm: the fused kernels of one row (gated and not, float32 FMA and
// bfloat16 tensor cores) against normRow followed by the GEMV or gated
// GEMV, bit for bit, over splits and grids; the sum stored by block 0.
static void checkNorm(unsigned N, unsigned K) {
  std::uniform_real_distribution<float> u(-3, 3), pos(0.5f, 1.5f);
  const float eps = 1e-6f;
  {  // float32, FMA
    auto x = rndf(K), d = rndf(K), nw = rndf(K), w = rndf((size_t)2 * N * K);
    for (auto& e : nw) e = pos(rng);
    std::vector<float> sum, normed;
    normRow(x, d, nw, K, eps, sum, normed);
    for (bool gated : {false, true}) {
      const unsigned rows = gated ? 2 * N : N;
      std::vector<float> wr(w.begin(), w.begin() + (size_t)rows * K);
      std::vector<float> want = gated ? fmaGated(normed, wr, N, K) : fma(normed, wr, N, K, (N + 7) / 8);
      for (unsigned grid : {(N + 7) / 8, (N + 1) / 2, 1u}) {
        if (gated && grid != (N + 7) / 8) continue;  // the gated FMA GEMV's grid is one block per 8 outputs
        std::vector<float> out(N, 12345.f), s(K, 12345.f);
        AddRMSNormLinearParams p{};
        p.N = N, p.K = K, p.Eps = eps;
        Status st{};
        emu_weights(wr.data(), wr.size() * 4);
        if (gated) {
          launch({grid, 1, 1}, [&] { add_rms_norm_matmul_silu_mul_f32(x.data(), d.data(), nw.data(), wr.data(), s.data(), out.data(), p, &st); });
          checkSpans("FMA norm gated", grid, 8, N, K, 4, true);
        } else {
          launch({grid, 1, 1}, [&] { add_rms_norm_matmul_f32(x.data(), d.data(), nw.data(), wr.data(), s.data(), out.data(), p, &st); });
          unsigned S = 1;
          while (S < 8 && (size_t)grid * (8 / (2 * S)) >= N) S *= 2;
          checkSpans("FMA norm", grid, 8 / S, N, K, 4, false);
        }
        CHECK(sameBits(out.data(), want.data(), N * 4), "FMA norm gated %d N=%u K=%u grid %u: bits differ from the norm and the GEMV", gated, N, K, grid);
        CHECK(sameBits(s.data(), sum.data(), K * 4), "FMA norm gated %d N=%u K=%u grid %u: the sum differs", gated, N, K, grid);
      }
    }
  }
  {  // bfloat16, tensor cores
    auto x = rnd(K), d = rnd(K), nw = rnd(K), w = rnd((size_t)2 * N * K);
    for (auto& e : x) e = Num<bf16_t>::store(u(rng));
    for (auto& e : nw) e = Num<bf16_t>::store(pos(rng));
    std::vector<bf16_t> sum, normed;
    normRow(x, d, nw, K, eps, sum, normed);
    for (unsigned n = 0; n < K; n++) {  // the norm against float64, loosely (the bits are held to the GEMV's below)
      double ss = 0;
      for (unsigned k = 0; k < K; k++) ss += (double)F(sum[k]) * F(sum[k]);
      double want = F(sum[n]) / sqrt(ss / K + eps) * F(nw[n]);
      CHECK(fabs(F(normed[n]) - want) <= 0.01 * fabs(want) + 1e-3, "norm K=%u [%u] = %g, want %g", K, n, F(normed[n]), want);
      if (n > 4) break;
    }
    for (bool gated : {false, true}) {
      const unsigned rows = gated ? 2 * N : N;
      std::vector<bf16_t> wr(w.begin(), w.begin() + (size_t)rows * K);
      for (unsigned split : {1u, 2u, 8u})
        for (unsigned tileRows : {8u, 16u}) {
          if (gated && tileRows == 16) continue;
          std::vector<bf16_t> want = gated ? gated_(normed, wr, N, K, split) : gemv(normed, wr, 1, N, K, split, tileRows, 0);
          std::vector<bf16_t> out(N, Num<bf16_t>::store(12345.f)), s(K, Num<bf16_t>::store(12345.f));
          AddRMSNormLinearParams p{};
          p.N = N, p.K = K, p.Eps = eps, p.MMA = 1, p.Split = split, p.TileRows = tileRows;
          const unsigned tiles = (N + tileRows - 1) / tileRows, tb = 8 / mmaSplit(1, split), grid = (tiles + tb - 1) / tb;
          Status st{};
          emu_weights(wr.data(), wr.size() * 2);
          if (gated) {
            launch({grid, 1, 1}, [&] { add_rms_norm_matmul_silu_mul_bf16_mma(x.data(), d.data(), nw.data(), wr.data(), s.data(), out.data(), p, &st); });
          } else {
            launch({grid, 1, 1}, [&] { add_rms_norm_matmul_bf16_mma(x.data(), d.data(), nw.data(), wr.data(), s.data(), out.data(), p, &st); });
          }
          checkSpans(gated ? "mma norm gated" : "mma norm", grid, tb * tileRows, N, K, 2, gated);
          CHECK(sameBits(out.data(), want.data(), N * 2), "mma norm gated %d N=%u K=%u split %u rows %u: bits differ from the norm and the GEMV", gated, N, K, split, tileRows);
          CHECK(sameBits(s.data(), sum.data(), K * 2), "mma norm gated %d N=%u K=%u split %u: the sum differs", gated, N, K, split);
          // The bulk variant (K a multiple of 8; else the tile loop's path in it), two stages, a grid of 2.
          if (split != 8 || K > 1024) continue;
          std::vector<bf16_t> bs(K, Num<bf16_t>::store(12345.f));
          BulkRun r{x.data(), wr.data(), 1, N, K, gated, split, tileRows, 2, 2};
          r.delta = d.data(), r.normW = nw.data(), r.sum = bs.data(), r.eps = eps;
          auto bo = bulk(r);
          CHECK(sameBits(bo.data(), want.data(), N * 2), "bulk norm gated %d N=%u K=%u split %u rows %u: bits differ from the norm and the GEMV", gated, N, K, split, tileRows);
          CHECK(sameBits(bs.data(), sum.data(), K * 2), "bulk norm gated %d N=%u K=%u split %u: the sum differs", gated, N, K, split);
        }
    }
  }
  printf("norm N=%u K=%u done, %d failures so far\n", N, K, fails);
  fflush(stdout);
}
// ringBytes is primitives.RingSharedBytes: the cluster GEMV's shared
// memory a block.
static size_t ringBytes(unsigned M, unsigned K) {
  const unsigned kc = K / 8, stride = kc % 64 == 0 ? kc + 32 : kc, mt = M <= 16 ? 2 : M <= 32 ? 4 : 8;
  const unsigned mp = (M + 8 * mt - 1) / (8 * mt) * 8 * mt;
  return (size_t)(64 + mp) * stride * 2 + 4 * mt * 32 * 16;
}
// ring runs the cluster GEMV (gated: N outputs of w's 2N rows) over x,
// clusters of 8 blocks of 4 tiles; the shared memory past ringBytes must
// stay unwritten.
static std::vector<bf16_t> ring(const bf16_t* x, const std::vector<bf16_t>& w, unsigned M, unsigned N, unsigned K, bool gatedOut) {
  std::vector<bf16_t> out(M * N, Num<bf16_t>::store(12345.f));
  const unsigned tiles = gatedOut ? (N + 7) / 8 : (N + 15) / 16, grid = (tiles + 3) / 4 * 8;
  const size_t bytes = ringBytes(M, K), guard = 64;
  std::vector<unsigned char> canary(guard, 0);
  Status st{};
  emu_weights(w.data(), w.size() * 2);
  launch_cluster({grid, 1, 1}, 8, bytes + guard, [&] {
    if (gatedOut) {
      MatMulSiLUMulParams p{};
      p.M = M, p.N = N, p.K = K, p.MMA = 1, p.Ring = 1;
      matmul_silu_mul_bf16_mma_ring(x, w.data(), out.data(), p, &st);
    } else {
      MatMulParams p{};
      p.M = M, p.N = N, p.K = K, p.Batch = 1, p.TransposeB = 1, p.MMA = 1, p.TileRows = 16, p.Ring = 1;
      matmul_bf16_gemv_mma_ring(x, w.data(), out.data(), p, &st);
    }
    if (threadIdx.x == 0)
      for (size_t i = 0; i < guard; i++)
        if (emuSmem[bytes + i] != 0xab) canary[i] = 1;
  });
  for (size_t i = 0; i < guard; i++) CHECK(!canary[i], "ring M=%u N=%u K=%u gated %d: shared memory written past %zu bytes", M, N, K, gatedOut, bytes);
  // The cluster's blocks prefetch every weight row once (8 rows a block,
  // less than PREFETCH_BYTES here).
  CHECK(emuOutside == 0, "ring M=%u N=%u K=%u gated %d: %d prefetches outside the weights", M, N, K, gatedOut, emuOutside);
  size_t seen = std::count(emuSeen.begin(), emuSeen.end(), 1);
  CHECK(seen == emuSeen.size(), "ring M=%u N=%u K=%u gated %d: %zu of %zu weight bytes prefetched", M, N, K, gatedOut, seen, emuSeen.size());
  return out;
}
// checkRing: the cluster GEMV and gated GEMV bit for bit the tile loop's
// (split 8, tiles of 16), with x aligned and offset by one element.
static void checkRing(unsigned M, unsigned N, unsigned K) {
  auto x = rnd((size_t)M * K), w = rnd((size_t)2 * N * K);
  std::vector<bf16_t> wn(w.begin(), w.begin() + (size_t)N * K);
  std::vector<bf16_t> off(M * K + 1);
  std::copy(x.begin(), x.end(), off.begin() + 1);
  auto want = gemv(x, wn, M, N, K, 8, 16, 0);
  auto wantGated = gated(x, w, M, N, K, 8, 0);
  for (bool offset : {false, true}) {
    const bf16_t* xp = offset ? off.data() + 1 : x.data();
    auto o = ring(xp, wn, M, N, K, false);
    size_t i = 0;
    while (i < o.size() && o[i].bits == want[i].bits) i++;
    CHECK(i == o.size(), "ring M=%u N=%u K=%u offset %d: out[%zu][%zu] = %g, the tiles' %g", M, N, K, offset, i / N, i % N, F(o[i]), F(want[i]));
    auto g = ring(xp, w, M, N, K, true);
    i = 0;
    while (i < g.size() && g[i].bits == wantGated[i].bits) i++;
    CHECK(i == g.size(), "ring gated M=%u N=%u K=%u offset %d: out[%zu][%zu] = %g, the tiles' %g", M, N, K, offset, i / N, i % N, F(g[i]), F(wantGated[i]));
  }
  printf("ring M=%u N=%u K=%u done, %d failures so far\n", M, N, K, fails);
  fflush(stdout);
}
// checkBulk: the bulk GEMV and gated GEMV bit for bit the tile loop's over
// splits, tile heights, stages (rings that wrap, stages partly past the
// last tile) and grids, with x aligned and offset by one element (copied
// into shared memory an element at a time), and with offset weights or K
// not a multiple of 8 (the tile loop's path in the bulk kernel).
static void checkBulk(unsigned M, unsigned N, unsigned K) {
  auto x = rnd((size_t)M * K), w = rnd((size_t)2 * N * K + 8);
  std::vector<bf16_t> xo(M * K + 1);
  std::copy(x.begin(), x.end(), xo.begin() + 1);
  std::vector<bf16_t> wn(w.begin(), w.begin() + (size_t)N * K), wg(w.begin(), w.begin() + (size_t)2 * N * K);
  auto want = gemv(x, wn, M, N, K, 1, 16, 0);  // (any split: the sums are the same)
  auto wantGated = gated(x, wg, M, N, K, 1, 0);
  struct V { unsigned split, rows, stages, grid; bool offsetX; } vs[] = {{8, 16, 2, 2, false}, {1, 8, 1, 1, true}, {2, 16, 3, 3, false}, {8, 8, 3, 1, false}};
  for (auto v : vs) {
    const bf16_t* xp = v.offsetX ? xo.data() + 1 : x.data();
    auto o = bulk({xp, wn.data(), M, N, K, false, v.split, v.rows, v.stages, v.grid});
    size_t i = 0;
    while (i < o.size() && o[i].bits == want[i].bits) i++;
    CHECK(i == o.size(), "bulk M=%u N=%u K=%u split %u rows %u stages %u grid %u: out[%zu][%zu] = %g, the tiles' %g", M, N, K, v.split, v.rows, v.stages, v.grid, i / N, i % N, F(o[i]), F(want[i]));
    if (v.rows == 16) continue;  // the gated GEMV's tiles are 8 gate and 8 up rows
    auto g = bulk({xp, wg.data(), M, N, K, true, v.split, 8, v.stages, v.grid});
    i = 0;
    while (i < g.size() && g[i].bits == wantGated[i].bits) i++;
    CHECK(i == g.size(), "bulk gated M=%u N=%u K=%u split %u stages %u grid %u: out[%zu][%zu] = %g, the tiles' %g", M, N, K, v.split, v.stages, v.grid, i / N, i % N, F(g[i]), F(wantGated[i]));
  }
  // Weights one element off 16 bytes: the tile loop's path.
  const bf16_t* wOff = w.data() + 1;
  auto wantOff = gemv(x, std::vector<bf16_t>(wOff, wOff + (size_t)N * K), M, N, K, 1, 16, 0);
  auto o = bulk({x.data(), wOff, M, N, K, false, 8, 16, 2, 2});
  CHECK(memcmp(o.data(), wantOff.data(), o.size() * 2) == 0, "bulk M=%u N=%u K=%u, offset weights: bits differ from the tiles'", M, N, K);
  printf("bulk M=%u N=%u K=%u done, %d failures so far\n", M, N, K, fails);
  fflush(stdout);
}
int main(int argc, char** argv) {
  struct B { unsigned M, N, K; } bulkCases[] = {{1, 131, 1000}, {3, 37, 768}, {8, 40, 256}, {2, 24, 1001}};
  for (auto c : bulkCases) checkBulk(c.M, c.N, c.K);
  struct R { unsigned M, N, K; } ringCases[] = {{9, 40, 256}, {16, 33, 512}, {17, 130, 256}, {33, 40, 768}, {64, 20, 512}, {70, 40, 256}, {130, 24, 256}};
  for (auto c : ringCases) checkRing(c.M, c.N, c.K);
  struct NK { unsigned N, K; } normCases[] = {{9, 40}, {131, 1000}, {40, 1024}, {1, 1}, {17, 4096}, {3, 7}};
  for (auto c : normCases) checkNorm(c.N, c.K);
  struct F2 { unsigned N, K; } fmaCases[] = {{131, 1000}, {131, 1001}, {1, 1}, {40, 4104}, {9, 40}, {16, 0}};
  for (auto c : fmaCases) {
    checkFMA(c.N, c.K);
    printf("FMA N=%u K=%u done, %d failures so far\n", c.N, c.K, fails);
  }
  struct C { unsigned M, N, K; } cases[] = {{1, 131, 1000}, {3, 131, 1001}, {8, 9, 40}, {9, 33, 1000}, {17, 20, 264}, {33, 24, 1000}, {64, 17, 96}, {1, 1, 1}, {2, 40, 7}, {5, 16, 0},
                               {1, 131, 512}, {8, 40, 256}, {3, 37, 768}, {1, 300, 256}};
  for (auto c : cases) {
    auto x = rnd((size_t)c.M * c.K), w = rnd((size_t)c.N * c.K);
    auto base = gemv(x, w, c.M, c.N, c.K, 8, 16, 0);
    for (unsigned m = 0; m < c.M; m++)
      for (unsigned n = 0; n < c.N; n++) {
        double ref = 0, mag = 0;
        for (unsigned k = 0; k < c.K; k++) { double v = (double)F(x[m * c.K + k]) * F(w[n * c.K + k]); ref += v; mag += fabs(v); }
        double got = F(base[m * c.N + n]);
        CHECK(fabs(got - ref) <= 0.01 * fabs(ref) + 1e-3 * mag + 1e-6, "M=%u N=%u K=%u out[%u][%u] = %g, want %g", c.M, c.N, c.K, m, n, got, ref);
      }
    // The stream path (M ≤ 8, K % 256 == 0) where it applies, with grids
    // that loop over the tiles, from 1 to 2 and 3 steps a warp.
    const bool streams = c.M <= 8 && c.K % 256 == 0;
    for (bool stream : {false, true}) {
      if (stream && !streams) continue;
      for (unsigned split : {1u, 2u, 4u, 8u})
        for (unsigned rows : {8u, 16u})
          for (unsigned grid : {0u, 1u, 2u}) {
            if (grid == 2 && !stream) continue;
            auto o = gemv(x, w, c.M, c.N, c.K, split, rows, grid, stream);
            CHECK(memcmp(o.data(), base.data(), o.size() * 2) == 0, "M=%u N=%u K=%u split %u rows %u grid %u stream %d: bits differ", c.M, c.N, c.K, split, rows, grid, stream);
          }
    }
    // batch invariance: the first two rows and the last, each alone
    for (unsigned m : {0u, 1u, c.M - 1}) {
      if (m >= c.M) continue;
      std::vector<bf16_t> xr(x.begin() + m * c.K, x.begin() + (m + 1) * c.K);
      for (bool stream : {false, true}) {
        auto o = gemv(xr, w, 1, c.N, c.K, 1, 16, 0, stream);
        CHECK(memcmp(o.data(), base.data() + m * c.N, c.N * 2) == 0, "M=%u N=%u K=%u stream %d: row %u alone differs", c.M, c.N, c.K, stream, m);
      }
    }
    // gated: w as [2N', K] with N' = N/2 (N even) against the matmul's rounded outputs
    unsigned N2 = c.N / 2;
    if (N2 > 0) {
      std::vector<bf16_t> wg(w.begin(), w.begin() + (size_t)2 * N2 * c.K);
      auto mm = gemv(x, wg, c.M, 2 * N2, c.K, 8, 16, 0);
      for (unsigned split : {1u, 2u, 8u})
        for (unsigned grid : {0u, 1u}) {
          auto o = gated(x, wg, c.M, N2, c.K, split, grid);
          for (unsigned m = 0; m < c.M; m++)
            for (unsigned j = 0; j < N2; j++) {
              bf16_t want = Num<bf16_t>::store(un_silu(F(mm[m * 2 * N2 + j])) * F(mm[m * 2 * N2 + N2 + j]));
              CHECK(want.bits == o[m * N2 + j].bits, "gated M=%u N=%u K=%u split %u grid %u: out[%u][%u] = %g, want %g", c.M, N2, c.K, split, grid, m, j, F(o[m * N2 + j]), F(want));
            }
        }
    }
    printf("M=%u N=%u K=%u done, %d failures so far\n", c.M, c.N, c.K, fails);
    fflush(stdout);
  }
  printf("%s: %d failures\n", fails ? "FAIL" : "PASS", fails);
  return fails != 0;
}

// The split paged-attention kernel of cuda/kernels/attention.cu, compiled
// for the host as one variant (the dtype, head size and macros the test
// defines), against a float64 reference: decode rows of one to thousands
// of keys, GQA groups of 1, 2, 4, 5 (a pass and a part) and 8 (two passes),
// varlen rows with a sliding window, softcap, the CUDA device's partitions
// and long ones, grids of a block a partition and of fewer (a block then
// takes several), random block tables. Also checks that no report was made
// and that every counter is back to zero. Prints PASS or FAIL and the
// first failures.
#include "attention.cu.h"
#include <random>
#include <string>
#include <functional>
typedef LOOM_T(LOOM_ATTENTION_DTYPE) T;
#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define KNAME CAT(CAT(CAT(paged_attention_split_, LOOM_ATTENTION_DTYPE), _hs), LOOM_ATTENTION_HS)
static const int HS = LOOM_ATTENTION_HS;
static std::mt19937 rng(11);
static int fails = 0;
static double maxerr = 0;
static void run(int kvh, int group, std::vector<int> lens, std::vector<int> qlens, int bs, int window, float softcap, int pkeys, int pmax, int zgrid = 0) {
  const int S = lens.size(), H = kvh * group;
  std::vector<int> cu(S + 1, 0);
  for (int s = 0; s < S; s++) cu[s + 1] = cu[s] + qlens[s];
  const int Tq = cu[S];
  int maxlen = 0;
  for (int l : lens) maxlen = std::max(maxlen, l);
  const int MB = (maxlen + bs - 1) / bs + 1, NB = S * MB + 3;
  std::uniform_real_distribution<float> u(-1, 1);
  auto rnd = [&](size_t n) { std::vector<T> v(n); for (auto& e : v) e = Num<T>::store(u(rng) * 2); return v; };
  std::vector<T> q = rnd((size_t)Tq * H * HS), kc = rnd((size_t)NB * bs * kvh * HS), vc = rnd((size_t)NB * bs * kvh * HS);
  std::vector<int> perm(NB);
  for (int i = 0; i < NB; i++) perm[i] = i;
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<int> tables((size_t)S * MB, -1);
  for (int s = 0, k = 0; s < S; s++)
    for (int b = 0; b < (lens[s] + bs - 1) / bs; b++) tables[s * MB + b] = perm[k++];
  PagedAttentionParams p{};
  p.NumSeqs = S; p.NumTokens = Tq; p.NumHeads = H; p.NumKVHeads = kvh; p.HeadSize = HS; p.BlockSize = bs; p.NumBlocks = NB;
  p.MaxBlocksPerSeq = MB; p.MaxSeqLen = maxlen; p.PartitionSize = pkeys; p.SlidingWindow = window; p.Scale = 1.0f / sqrtf(HS); p.Softcap = softcap;
  int parts = (std::min(maxlen, MB * bs) + pkeys - 1) / pkeys;
  if (pmax > 0) parts = std::min(parts, pmax);
  parts = std::max(parts, 1);
  p.NumPartitions = parts;
  std::vector<float> ml((size_t)Tq * H * parts), es((size_t)Tq * H * parts);
  std::vector<T> tmp((size_t)Tq * H * parts * HS), out((size_t)Tq * H * HS);
  std::vector<u32> counters((size_t)Tq * kvh, 0);
  Status st{};
  launch({(unsigned)kvh, (unsigned)Tq, (unsigned)(zgrid > 0 ? std::min(zgrid, parts) : parts)}, 32 * ATTENTION_WARPS, [&] {
    KNAME(q.data(), kc.data(), vc.data(), tables.data(), lens.data(), cu.data(), ml.data(), es.data(), tmp.data(), counters.data(), out.data(), p, &st);
  });
  if (st.code != 0) { fails++; printf("status code %u\n", st.code); }
  for (auto c : counters) if (c != 0) { fails++; printf("counter left %u\n", c); break; }
  for (int s = 0; s < S; s++)
    for (int t = cu[s]; t < cu[s + 1]; t++) {
      int hi = lens[s] - qlens[s] + (t - cu[s]) + 1, lo = window > 0 ? std::max(0, hi - window) : 0;
      for (int h = 0; h < H; h++) {
        int g = h / group;
        std::vector<double> sc;
        double m = -1e300;
        for (int k = lo; k < hi; k++) {
          long slot = (long)tables[s * MB + k / bs] * bs + k % bs;
          double d = 0;
          for (int e = 0; e < HS; e++) d += (double)Num<T>::load(q[((size_t)t * H + h) * HS + e]) * Num<T>::load(kc[(slot * kvh + g) * HS + e]);
          d *= p.Scale;
          if (softcap > 0) d = softcap * tanh(d / softcap);
          sc.push_back(d);
          m = std::max(m, d);
        }
        double l = 0;
        for (auto& d : sc) { d = exp(d - m); l += d; }
        for (int e = 0; e < HS; e++) {
          double o = 0;
          for (int k = lo; k < hi; k++) {
            long slot = (long)tables[s * MB + k / bs] * bs + k % bs;
            o += sc[k - lo] * Num<T>::load(vc[(slot * kvh + g) * HS + e]);
          }
          o = hi > lo ? o / l : 0;
          double got = Num<T>::load(out[((size_t)t * H + h) * HS + e]);
          double err = fabs(got - o);
          maxerr = std::max(maxerr, err);
          if (!(err <= 2e-2 + 1e-2 * fabs(o))) {
            if (fails++ < 10) printf("kvh %d group %d seq %d t %d h %d e %d: got %g want %g\n", kvh, group, s, t, h, e, got, o);
          }
        }
      }
    }
}
int main() {
  run(2, 1, {1, 300, 1030}, {1, 1, 1}, 16, 0, 0, 64, 16);
  run(1, 2, {517, 1, 1030}, {1, 1, 2}, 8, 0, 2.5f, 64, 16);
  run(1, 4, {37, 515, 70}, {1, 1, 1}, 32, 0, 0, 64, 16);
  run(1, 5, {200, 45}, {3, 6}, 16, 100, 0, 64, 16);
  run(1, 8, {1100}, {1}, 16, 0, 0, 512, 0);
  run(1, 16, {300, 77}, {1, 1}, 16, 0, 0, 64, 16);
  run(2, 12, {129, 2}, {1, 1}, 8, 0, 1.5f, 64, 16);
  run(2, 1, {3000}, {1}, 16, 0, 0, 64, 16);
  // Fewer blocks than partitions: a block takes partitions z, z + 3, …
  run(2, 2, {1, 300, 1030}, {1, 1, 1}, 16, 0, 0, 64, 16, 3);
  run(1, 5, {200, 45}, {3, 6}, 16, 100, 0, 64, 16, 2);
  printf("max error %g\n", maxerr);
  printf(fails ? "FAIL %d\n" : "PASS\n", fails);
  return fails != 0;
}

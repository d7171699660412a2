// Q4_0 decode (one Q8_1 activation row against a block of weight rows) for CPUs with AVX-512
// VNNI and VBMI. Per group of eight blocks:
//  - the blocks are read with plain 64-byte loads, and vpermt2b (VBMI) gathers each block
//    pair's nibble bytes and the eight f16 scales out of them: no per-block loads, no scalar
//    gathers;
//  - one vpdpbusd (VNNI) per block pair and row: it multiplies unsigned by signed bytes, so it
//    takes the raw nibble q = w + 8, and the offset's contribution, -8 times the activation's
//    sums, is computed once per pair for all rows and becomes the accumulator's starting value.
//    The integer sums are exact (Q8_1's rounded f16 sum s is not used);
//  - the block sums are scaled in float without a horizontal reduction: the pair's two blocks
//    alternate by lane, so its two product scales (d_w * d_a) are one 64-bit broadcast.
// Four rows per pass share the activation's loads, scales and offset sums. (A Q8_0 kernel built
// the same way, with w + 128 as the unsigned side, decoded no faster than the single-row AVX-512
// one with a long prefetch, and was dropped; BENCHMARKS.md.)
#include <array>
#include <cstring>

#include "quant/kernels.h"
#include "quant/simd_avx2.h"

namespace strata::qk::avx512vnni {
namespace {

using avx2::prefetch_rows;
using avx2::unroll;

using Index = std::array<uint8_t, 64>;

// vpermt2b index that gathers block pair p's codes from a 128-byte table starting at byte
// `window` of the group. The two blocks alternate by 32-bit lane (even lanes block 2p, odd lanes
// 2p+1), so after vpdpbusd a broadcast 64-bit pair of scales lines up with the lanes; lanes 0-7
// hold elements 0-15 of both blocks and lanes 8-15 elements 16-31. With len 16 the code byte is
// e % 16: Q4_0's nibble bytes, low nibbles in the first half, high nibbles in the second.
constexpr Index pair_index(int size, int codes_at, int len, int p, int window) {
  Index r{};
  for (int j = 0; j < 64; ++j) {
    const int lane = j / 4, block = 2 * p + lane % 2;
    const int e = lane / 8 * 16 + lane % 8 / 2 * 4 + j % 4;
    r[j] = static_cast<uint8_t>(size * block + codes_at + e % len - window);
  }
  return r;
}
// The f16 scales (at byte 0 of each block) of blocks [first, first + count) into bytes 0..2*count.
constexpr Index scale_index(int size, int first, int count, int window) {
  Index r{};
  for (int j = 0; j < 2 * count; ++j)
    r[j] = static_cast<uint8_t>(size * (first + j / 2) + j % 2 - window);
  return r;
}

// The tables per block layout (GCC warns about function-local static ones used in lambdas).
constexpr Index kQ8_1Pairs[4] = {pair_index(36, 4, 32, 0, 0), pair_index(36, 4, 32, 1, 64),
                                 pair_index(36, 4, 32, 2, 128), pair_index(36, 4, 32, 3, 192)};
// Q4_0: pairs 0, 1 come from bytes [0, 128) of the group, pairs 2, 3 from [64, 144).
constexpr Index kQ4_0Pairs[4] = {pair_index(18, 2, 16, 0, 0), pair_index(18, 2, 16, 1, 0),
                                 pair_index(18, 2, 16, 2, 64), pair_index(18, 2, 16, 3, 64)};
constexpr Index kQ4_0Scales = scale_index(18, 0, 8, 0);
constexpr Index kQ8_1ScalesLo = scale_index(36, 0, 4, 0),
                kQ8_1ScalesHi = scale_index(36, 4, 4, 128);

inline __m512i load_index(const Index& i) {
  return _mm512_loadu_si512(i.data());
}

// Eight consecutive blocks of kSize bytes (Q4_0: 144 bytes, Q8_1: 288) as 64-byte vectors; the
// last one reads only the group's remaining 16 or 32 bytes (zero above), so nothing past the
// eighth block is read.
template <int kSize>
struct Eight {
  static constexpr int kBytes = 8 * kSize, kVecs = (kBytes + 63) / 64;
  __m512i z[kVecs];
  explicit Eight(const uint8_t* p) {
    unroll<kVecs>([&](auto k) {
      constexpr int left = kBytes - 64 * k;
      static_assert(left >= 64 || left == 16 || left == 32);
      if constexpr (left >= 64)
        z[k] = _mm512_loadu_si512(p + 64 * k);
      else if constexpr (left == 16)
        z[k] =
            _mm512_zextsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 64 * k)));
      else
        z[k] = _mm512_zextsi256_si512(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 64 * k)));
    });
  }
};

inline float half(uint16_t h) {
  return _cvtsh_ss(h);
}

// The activation side of a group, shared by every row: each pair's 64 codes, its offset
// accumulator (-bias * the sum of each 4-byte group) and the eight scales.
struct ActGroup {
  __m512i codes[4], start[4];
  __m256 d;
};

// The eight Q8_1 scales: four from the first 128 bytes, four from the next.
inline __m256 q8_1_scales(const Eight<sizeof(BlockQ8_1)>& g) {
  const __m512i a = _mm512_permutex2var_epi8(g.z[0], load_index(kQ8_1ScalesLo), g.z[1]);
  const __m512i b = _mm512_permutex2var_epi8(g.z[2], load_index(kQ8_1ScalesHi), g.z[3]);
  return _mm256_cvtph_ps(_mm_unpacklo_epi64(_mm512_castsi512_si128(a), _mm512_castsi512_si128(b)));
}

// Eight Q8_1 activation blocks against Q4_0 weights, whose nibbles carry an offset of 8.
inline ActGroup act_group(const uint8_t* p) {
  const Eight<sizeof(BlockQ8_1)> g(p);
  ActGroup a;
  const __m512i bias = _mm512_set1_epi8(8);
  unroll<4>([&](auto q) {
    a.codes[q] = _mm512_permutex2var_epi8(g.z[q], load_index(kQ8_1Pairs[q]), g.z[q + 1]);
    a.start[q] = _mm512_sub_epi32(_mm512_setzero_si512(),
                                  _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, a.codes[q]));
  });
  a.d = q8_1_scales(g);
  return a;
}

// acc += each lane's int32 block sum times its block's scale; sc holds the eight d_w * d_a, and
// pair p's two are one 64-bit broadcast.
inline __m512 scale_add(__m512 acc, __m512i sums, const float* sc, int p) {
  double pair;
  std::memcpy(&pair, sc + 2 * p, sizeof pair);
  const __m512 s = _mm512_castpd_ps(_mm512_set1_pd(pair));
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), s, acc);
}

// ---- Q4_0 x Q8_1 --------------------------------------------------------------------------

template <int R>
void q4_0_rows(int64_t n, const uint8_t* w0, int64_t ws, const uint8_t* a, float* out) {
  constexpr int kSize = sizeof(BlockQ4_0), kActSize = sizeof(BlockQ8_1);
  const int64_t nb = n / kQK;
  __m512 acc[R];
  unroll<R>([&](auto r) { acc[r] = _mm512_setzero_ps(); });
  const __m512i low4 = _mm512_set1_epi8(15);
  // Lanes 0-7 take the low nibbles (elements 0-15), lanes 8-15 the high ones (see pair_index).
  const __m512i shift = _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4);
  int64_t i = 0;
  for (; i + 8 <= nb; i += 8) {
    const ActGroup ag = act_group(a + i * kActSize);
    unroll<R>([&](auto r) {
      const uint8_t* wp = w0 + r * ws + i * kSize;
      prefetch_rows<8 * kSize>(wp, R * ws);
      const Eight<kSize> g(wp);
      const __m512i d = _mm512_permutex2var_epi8(g.z[0], load_index(kQ4_0Scales), g.z[1]);
      alignas(32) float sc[8];
      _mm256_store_ps(sc, _mm256_mul_ps(_mm256_cvtph_ps(_mm512_castsi512_si128(d)), ag.d));
      unroll<4>([&](auto q) {
        constexpr int lo = q < 2 ? 0 : 1;
        const __m512i raw =
            _mm512_permutex2var_epi8(g.z[lo], load_index(kQ4_0Pairs[q]), g.z[lo + 1]);
        const __m512i codes = _mm512_and_si512(_mm512_srlv_epi64(raw, shift), low4);
        acc[r] = scale_add(acc[r], _mm512_dpbusd_epi32(ag.start[q], codes, ag.codes[q]), sc, q);
      });
    });
  }
  const BlockQ8_1* ab = reinterpret_cast<const BlockQ8_1*>(a);
  unroll<R>([&](auto r) {
    const BlockQ4_0* w = reinterpret_cast<const BlockQ4_0*>(w0 + r * ws);
    float tail = 0;
    for (int64_t b = i; b < nb; ++b) {
      int s = 0;
      for (int j = 0; j < kQK / 2; ++j)
        s += ((w[b].qs[j] & 15) - 8) * int{ab[b].qs[j]} +
             ((w[b].qs[j] >> 4) - 8) * int{ab[b].qs[j + kQK / 2]};
      tail += half(w[b].d) * half(ab[b].d) * static_cast<float>(s);
    }
    out[r] = _mm512_reduce_add_ps(acc[r]) + tail;
  });
}

template <void (*Rows4)(int64_t, const uint8_t*, int64_t, const uint8_t*, float*),
          void (*Rows1)(int64_t, const uint8_t*, int64_t, const uint8_t*, float*)>
void run_rows(int64_t n, int64_t n_rows, const void* w, int64_t w_stride, const void* act,
              float* out) {
  const uint8_t* p = static_cast<const uint8_t*>(w);
  const uint8_t* a = static_cast<const uint8_t*>(act);
  int64_t r = 0;
  for (; r + 4 <= n_rows; r += 4) Rows4(n, p + r * w_stride, w_stride, a, out + r);
  for (; r < n_rows; ++r) Rows1(n, p + r * w_stride, w_stride, a, out + r);
}

}  // namespace

void vec_dot_rows_q4_0(int64_t n, int64_t n_rows, const void* w, int64_t w_stride, const void* act,
                       float* out) {
  run_rows<q4_0_rows<4>, q4_0_rows<1>>(n, n_rows, w, w_stride, act, out);
}

}  // namespace strata::qk::avx512vnni

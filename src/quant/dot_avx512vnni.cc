// Q4_0 decode (one Q8_1 activation row against a block of weight rows) for CPUs with AVX-512
// VNNI and VBMI. The activation side is prepared once per call (ActQuad, below); then each row is
// one sequential stream, and per group of eight weight blocks (144 bytes):
//  - the group is read with three plain loads, and vpermt2b (VBMI) gathers its eight f16 scales
//    and, per four blocks, their 64 nibble bytes without the scales in between: no per-block
//    loads, no scalar gathers;
//  - the low and high nibbles (and, shift-and) are the unsigned side of vpdpbusd (VNNI), taken
//    raw as q = w + 8; the offset's contribution, -8 times the activation's sums, is the
//    accumulator's prepared starting value. The integer sums are exact (Q8_1's rounded f16 sum
//    s is not used);
//  - the block sums are scaled in float without a horizontal reduction: each 32-bit lane belongs
//    to one block, so one vpermps spreads the eight d_w * d_a over the lanes.
// Single-threaded, 1 GiB of weights on 2 MiB pages: 26.8 GB/s against 24.3 for the former
// four-rows-per-pass kernel, and 46.6 against 34.1 with the rows in L2 (BENCHMARKS.md). (A Q8_0
// kernel built this way, w + 128 as the unsigned side, was faster in cache but streamed from
// memory no faster than the AVX-512 one, and was dropped.)
#include <array>
#include <cstring>
#include <vector>

#include "quant/kernels.h"
#include "quant/simd_avx2.h"

namespace strata::qk::avx512vnni {
namespace {

using avx2::prefetch_ahead;
using avx2::unroll;

using Index = std::array<uint8_t, 64>;

// The f16 scales (at byte 0 of each block) of blocks [first, first + count) into bytes 0..2*count.
constexpr Index scale_index(int size, int first, int count, int window) {
  Index r{};
  for (int j = 0; j < 2 * count; ++j)
    r[j] = static_cast<uint8_t>(size * (first + j / 2) + j % 2 - window);
  return r;
}

// Q4_0's eight scales, from the first 128 bytes of the group.
constexpr Index kQ4_0Scales = scale_index(18, 0, 8, 0);

inline __m512i load_index(const Index& i) {
  return _mm512_loadu_si512(i.data());
}

// Eight consecutive blocks of kSize bytes (Q4_0: 144 bytes) as 64-byte vectors; the last one
// reads only the group's remaining 16 bytes (zero above), so nothing past the eighth block is
// read.
template <int kSize>
struct Eight {
  static constexpr int kBytes = 8 * kSize, kVecs = (kBytes + 63) / 64;
  __m512i z[kVecs];
  explicit Eight(const uint8_t* p) {
    unroll<kVecs>([&](auto k) {
      constexpr int left = kBytes - 64 * k;
      static_assert(left >= 64 || left == 16);
      if constexpr (left >= 64)
        z[k] = _mm512_loadu_si512(p + 64 * k);
      else
        z[k] =
            _mm512_zextsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 64 * k)));
    });
  }
};

inline float half(uint16_t h) {
  return _cvtsh_ss(h);
}

// The activation side of eight blocks, prepared once per call. Four blocks per vector: byte
// 16 * b + e of lo[h] is element e of block 4h + b, of hi[h] element 16 + e. That is the order of
// the weights' nibble bytes once gathered without their scales, whose low nibbles are elements
// 0-15 and high nibbles 16-31, so one vpermt2b gives both. Lane j (4 bytes) belongs to block
// 4h + j / 4 in lo and hi alike, so both products add into one accumulator and share one scale
// vector.
struct alignas(64) ActQuad {
  __m512i lo[2], hi[2], start[2];
  __m256 d;
};

inline ActQuad act_quad(const BlockQ8_1* a) {
  ActQuad q;
  alignas(64) uint8_t lo[2][64], hi[2][64];
  for (int b = 0; b < 8; ++b) {
    std::memcpy(&lo[b / 4][16 * (b % 4)], a[b].qs, 16);
    std::memcpy(&hi[b / 4][16 * (b % 4)], a[b].qs + 16, 16);
  }
  const __m512i bias = _mm512_set1_epi8(8);
  alignas(32) float d[8];
  for (int h = 0; h < 2; ++h) {
    q.lo[h] = _mm512_load_si512(lo[h]);
    q.hi[h] = _mm512_load_si512(hi[h]);
    const __m512i sums = _mm512_dpbusd_epi32(
        _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, q.lo[h]), bias, q.hi[h]);
    q.start[h] = _mm512_sub_epi32(_mm512_setzero_si512(), sums);
  }
  for (int b = 0; b < 8; ++b) d[b] = half(a[b].d);
  q.d = _mm256_load_ps(d);
  return q;
}

// vpermt2b index: the 16 nibble bytes of blocks [4h, 4h + 4) of a Q4_0 group, from the 128-byte
// window at 64h.
constexpr Index quad_index(int h) {
  Index r{};
  for (int j = 0; j < 64; ++j)
    r[j] = static_cast<uint8_t>(18 * (4 * h + j / 16) + 2 + j % 16 - 64 * h);
  return r;
}
constexpr Index kQ4_0Quads[2] = {quad_index(0), quad_index(1)};

void q4_0_row(int64_t n, const uint8_t* w, const ActQuad* aq, const uint8_t* a, float* out) {
  constexpr int kSize = sizeof(BlockQ4_0);
  const int64_t nb = n / kQK;
  const __m512i low4 = _mm512_set1_epi8(15);
  // Scale lane j of quad h: block 4h + j / 4.
  const __m512i spread0 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  const __m512i spread1 = _mm512_add_epi32(spread0, _mm512_set1_epi32(4));
  __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
  int64_t i = 0;
  for (; i + 8 <= nb; i += 8) {
    const ActQuad& q = aq[i / 8];
    const uint8_t* wp = w + i * kSize;
    prefetch_ahead<8 * kSize>(wp);
    const Eight<kSize> g(wp);
    const __m512i dw = _mm512_permutex2var_epi8(g.z[0], load_index(kQ4_0Scales), g.z[1]);
    const __m512 sc =
        _mm512_castps256_ps512(_mm256_mul_ps(_mm256_cvtph_ps(_mm512_castsi512_si128(dw)), q.d));
    const __m512i raw0 = _mm512_permutex2var_epi8(g.z[0], load_index(kQ4_0Quads[0]), g.z[1]);
    const __m512i raw1 = _mm512_permutex2var_epi8(g.z[1], load_index(kQ4_0Quads[1]), g.z[2]);
    const __m512i s0 =
        _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(q.start[0], _mm512_and_si512(raw0, low4), q.lo[0]),
                            _mm512_and_si512(_mm512_srli_epi16(raw0, 4), low4), q.hi[0]);
    const __m512i s1 =
        _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(q.start[1], _mm512_and_si512(raw1, low4), q.lo[1]),
                            _mm512_and_si512(_mm512_srli_epi16(raw1, 4), low4), q.hi[1]);
    acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0), _mm512_permutexvar_ps(spread0, sc), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1), _mm512_permutexvar_ps(spread1, sc), acc1);
  }
  const BlockQ4_0* wb = reinterpret_cast<const BlockQ4_0*>(w);
  const BlockQ8_1* ab = reinterpret_cast<const BlockQ8_1*>(a);
  float tail = 0;
  for (int64_t b = i; b < nb; ++b) {
    int s = 0;
    for (int j = 0; j < kQK / 2; ++j)
      s += ((wb[b].qs[j] & 15) - 8) * int{ab[b].qs[j]} +
           ((wb[b].qs[j] >> 4) - 8) * int{ab[b].qs[j + kQK / 2]};
    tail += half(wb[b].d) * half(ab[b].d) * static_cast<float>(s);
  }
  *out = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + tail;
}

}  // namespace

void vec_dot_rows_q4_0(int64_t n, int64_t n_rows, const void* w, int64_t w_stride, const void* act,
                       float* out) {
  const auto* a = static_cast<const BlockQ8_1*>(act);
  const int64_t groups = n / kQK / 8;
  thread_local std::vector<ActQuad> aq;
  if (static_cast<int64_t>(aq.size()) < groups) aq.resize(static_cast<size_t>(groups));
  for (int64_t g = 0; g < groups; ++g) aq[size_t(g)] = act_quad(a + 8 * g);
  const auto* p = static_cast<const uint8_t*>(w);
  for (int64_t r = 0; r < n_rows; ++r)
    q4_0_row(n, p + r * w_stride, aq.data(), static_cast<const uint8_t*>(act), out + r);
}

}  // namespace strata::qk::avx512vnni

// AVX-512 (F+BW+VL) helpers for the quantized dot kernels. Include only from *_avx512.cc files.
// The kernels mirror the AVX2 ones (simd_avx2.h) with twice the width: two legacy blocks, or two
// K-quant sub-block groups, per 512-bit vector; the 8-block reductions and final FMAs stay 256-bit.
#pragma once
#include <immintrin.h>

#include "quant/simd_avx2.h"  // halves8, half_pairs8, hsum, unroll, 256-bit reduce rounds

namespace strata::qk::avx512 {
namespace {  // internal linkage, see simd_avx2.h

using avx2::half_pairs8;
using avx2::halves8;
using avx2::hsum;
using avx2::prefetch_ahead;
using avx2::unroll;

inline __m512i loadu64(const void* p) {
  return _mm512_loadu_si512(p);
}

// Two 32-byte rows (e.g. the quants of two consecutive legacy blocks) as one 512-bit vector.
inline __m512i load2x32(const void* lo, const void* hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(avx2::loadu(lo)), avx2::loadu(hi), 1);
}

// 32 bytes broadcast to both 256-bit halves (load-only on most cores).
inline __m512i bcast32(const void* p) {
  return _mm512_broadcast_i64x4(avx2::loadu(p));
}

// Two blocks' 16 nibble bytes -> 64 codes: [b0 low nibbles | b0 high | b1 low | b1 high].
inline __m512i nibbles64(const uint8_t* qs0, const uint8_t* qs1) {
  const __m512i v = _mm512_inserti64x4(
      _mm512_castsi256_si512(
          _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs0)))),
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs1))), 1);
  const __m512i sh = _mm512_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4, 0, 0, 0, 0, 4, 4, 4, 4);
  return _mm512_and_si512(_mm512_srlv_epi32(v, sh), _mm512_set1_epi8(15));
}

// Sum over 64 bytes of (unsigned u) * (signed s) as 16 int32 lanes (no saturation for u <= 63).
inline __m512i dot_u8s8(__m512i u, __m512i s) {
  return _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1));
}

// The 256-bit reduce rounds applied to both halves at once (all in-lane, so the same code works
// at 512 bits): for vectors holding blocks (b, b+1) in their halves, pair2(s01, s23) then
// quad(.., ..) leaves blocks 0,2,4,6 in the low half and 1,3,5,7 in the high half, one partial
// per 128-bit lane; fold() adds the two 128-bit partials of each block. Result lane order:
// S0 S2 S4 S6 S1 S3 S5 S7 (see kEvenOdd).
inline __m512i pair2(__m512i a, __m512i b) {
  const __m512i x = _mm512_mask_blend_epi32(0xaaaa, a, b),
                y = _mm512_mask_blend_epi32(0xaaaa, b, a);
  return _mm512_add_epi32(x, _mm512_shuffle_epi32(y, _MM_PERM_CDAB));
}
inline __m512i quad(__m512i p01, __m512i p23) {
  const __m512i x = _mm512_mask_blend_epi32(0xcccc, p01, p23),
                y = _mm512_mask_blend_epi32(0xcccc, p23, p01);
  return _mm512_add_epi32(x, _mm512_shuffle_epi32(y, _MM_PERM_BADC));
}
inline __m256i fold(__m512i q) {
  const __m256i lo = _mm512_castsi512_si256(q), hi = _mm512_extracti64x4_epi64(q, 1);
  return _mm256_add_epi32(_mm256_permute2x128_si256(lo, hi, 0x20),
                          _mm256_permute2x128_si256(lo, hi, 0x31));
}
// Block order of fold()'s lanes; scales gathered with this stride pattern line up with it.
constexpr int kEvenOdd[8] = {0, 2, 4, 6, 1, 3, 5, 7};

// halves8 / half_pairs8 over blocks in kEvenOdd order: the even blocks then the odd ones are
// each evenly spaced, so it is the plain gather at twice the stride, twice.
template <int kStride>
inline __m256 halves8_eo(const void* p) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  const uint64_t lo = avx2::halves4<2 * kStride>(b), hi = avx2::halves4<2 * kStride>(b + kStride);
  return _mm256_cvtph_ps(_mm_set_epi64x(static_cast<int64_t>(hi), static_cast<int64_t>(lo)));
}
template <int kStride>
inline void half_pairs8_eo(const void* p, __m256* first, __m256* second) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  const uint64_t v0 = avx2::pair_words<2 * kStride>(b),
                 v1 = avx2::pair_words<2 * kStride>(b + 4 * kStride);
  const uint64_t v2 = avx2::pair_words<2 * kStride>(b + kStride);
  const uint64_t v3 = avx2::pair_words<2 * kStride>(b + 5 * kStride);
  const __m128i split = _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
  const __m128i lo =
      _mm_shuffle_epi8(_mm_set_epi64x(static_cast<int64_t>(v1), static_cast<int64_t>(v0)), split);
  const __m128i hi =
      _mm_shuffle_epi8(_mm_set_epi64x(static_cast<int64_t>(v3), static_cast<int64_t>(v2)), split);
  *first = _mm256_cvtph_ps(_mm_unpacklo_epi64(lo, hi));
  *second = _mm256_cvtph_ps(_mm_unpackhi_epi64(lo, hi));
}

inline int hsum_i32(__m512i v) {
  const __m256i s = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
  __m128i x = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  x = _mm_add_epi32(x, _mm_unpackhi_epi64(x, x));
  x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 1));
  return _mm_cvtsi128_si32(x);
}

// Drives K<NT>::run over any number of tokens, four at a time (same as avx2::run_tokens).
using avx2::run_tokens;

}  // namespace
}  // namespace strata::qk::avx512

// AVX2 helpers for the quantized dot kernels. Include only from *_avx2.cc files (they are the
// ones compiled with -mavx2 -mfma -mf16c).
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <utility>

#include "quant/blocks.h"

namespace strata::qk::avx2 {
// Internal linkage on purpose (see blocks.h): these are compiled once per ISA file.
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float half(uint16_t h) {
  return _cvtsh_ss(h);
}

// Eight f16 fields `stride` bytes apart (one per block) as eight floats. The halves are gathered
// with scalar loads and shifts, which run on the integer ports the vector code leaves idle.
template <int kStride>
inline uint64_t halves4(const uint8_t* b) {
  uint16_t v0, v1, v2, v3;
  std::memcpy(&v0, b, 2);
  std::memcpy(&v1, b + kStride, 2);
  std::memcpy(&v2, b + 2 * kStride, 2);
  std::memcpy(&v3, b + 3 * kStride, 2);
  uint64_t r = v0 | static_cast<uint64_t>(v1) << 16 | static_cast<uint64_t>(v2) << 32 |
               static_cast<uint64_t>(v3) << 48;
  // Keeps the compiler from "vectorizing" the gather into a chain of shuffles: the point is to
  // do it on the integer ports.
  __asm__("" : "+r"(r));
  return r;
}
template <int kStride>
inline __m256 halves8(const void* p) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  const uint64_t lo = halves4<kStride>(b), hi = halves4<kStride>(b + 4 * kStride);
  return _mm256_cvtph_ps(_mm_set_epi64x(static_cast<int64_t>(hi), static_cast<int64_t>(lo)));
}

// Two adjacent f16 fields (offsets 0 and 2) of 8 blocks `stride` bytes apart: *first gets the
// fields at offset 0, *second those at offset 2 (Q8_1's d and s, Q4_1's d and m). One 32-bit
// load per block, then a byte shuffle separates the two halves.
template <int kStride>
inline uint64_t pair_words(const uint8_t* b) {
  uint32_t x0, x1;
  std::memcpy(&x0, b, 4);
  std::memcpy(&x1, b + kStride, 4);
  uint64_t r = x0 | static_cast<uint64_t>(x1) << 32;
  __asm__("" : "+r"(r));  // stay on the integer ports (see halves4)
  return r;
}
template <int kStride>
inline void half_pairs8(const void* p, __m256* first, __m256* second) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  const uint64_t v0 = pair_words<kStride>(b), v1 = pair_words<kStride>(b + 2 * kStride);
  const uint64_t v2 = pair_words<kStride>(b + 4 * kStride),
                 v3 = pair_words<kStride>(b + 6 * kStride);
  // Each xmm: d0 s0 d1 s1 d2 s2 d3 s3 (16-bit) -> d0 d1 d2 d3 s0 s1 s2 s3.
  const __m128i split = _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
  const __m128i lo =
      _mm_shuffle_epi8(_mm_set_epi64x(static_cast<int64_t>(v1), static_cast<int64_t>(v0)), split);
  const __m128i hi =
      _mm_shuffle_epi8(_mm_set_epi64x(static_cast<int64_t>(v3), static_cast<int64_t>(v2)), split);
  *first = _mm256_cvtph_ps(_mm_unpacklo_epi64(lo, hi));
  *second = _mm256_cvtph_ps(_mm_unpackhi_epi64(lo, hi));
}

// Horizontal sums of 8 int32x8 vectors at once (lane b of the result = sum of the lanes of
// vector b), in three rounds instead of 8 separate reductions, so one cvt + FMA applies 8 block
// scales. Used progressively to keep few vectors live:
//   pair2(s0, s1) -> p01 ... ; quad(p01, p23) -> q0123 ; oct(q0123, q4567) -> result.
// Each round blends the two inputs both ways (vpblendd runs on every vector port), swaps one of
// the blends with a single in-lane or cross-lane shuffle and adds, so only one shuffle-port op
// per round is spent (the shuffle ports are the scarce ones in these kernels).
inline __m256i pair2(__m256i a, __m256i b) {  // lanes: a0+a1, b0+b1, a2+a3, b2+b3, ...
  const __m256i x = _mm256_blend_epi32(a, b, 0xaa), y = _mm256_blend_epi32(b, a, 0xaa);
  return _mm256_add_epi32(x, _mm256_shuffle_epi32(y, 0xb1));
}
inline __m256i quad(__m256i p01, __m256i p23) {  // per 128-bit lane: block 0, 1, 2, 3 partials
  const __m256i x = _mm256_blend_epi32(p01, p23, 0xcc), y = _mm256_blend_epi32(p23, p01, 0xcc);
  return _mm256_add_epi32(x, _mm256_shuffle_epi32(y, 0x4e));
}
inline __m256i oct(__m256i q0, __m256i q1) {  // lanes: blocks 0..7
  const __m256i x = _mm256_blend_epi32(q0, q1, 0xf0), y = _mm256_blend_epi32(q1, q0, 0xf0);
  return _mm256_add_epi32(x, _mm256_permute2x128_si256(y, y, 0x01));
}

// Calls f(integral_constant<int, I>) for I in [0, N): compile-time unrolling.
template <int N, class F>
inline void unroll(F&& f) {
  [&]<int... I>(std::integer_sequence<int, I...>) {
    (f(std::integral_constant<int, I>{}), ...);
  }
  (std::make_integer_sequence<int, N>{});
}

// 16 bytes of packed nibbles -> 32 codes: low 128 bits = the low nibbles (elements 0-15), high
// 128 bits = the high nibbles (elements 16-31). One broadcast load, one variable shift, one and.
inline __m256i nibbles32(const uint8_t* qs) {
  const __m256i v =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
  const __m256i sh = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
  return _mm256_and_si256(_mm256_srlv_epi32(v, sh), _mm256_set1_epi8(15));
}

// Byte j = 0x10 where bit j of x is set (the 5th bit of Q5 codes), else 0.
inline __m256i bit4_bytes(uint32_t x) {
  const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2,
                                        2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
  __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(x)), shuf);
  v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
  return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

// Software prefetch of the kBytes that follow p + ahead (one request per cache line). Called
// once per step of a weight stream with the step's byte count; prefetches past the end of a
// tensor are harmless (they never fault). Kernels that read several rows at once prefetch the
// same place in the next group of rows (rows can be shorter than kPrefetchAhead).
template <int kBytes>
inline void prefetch_rows(const void* p, int64_t ahead) {
  const char* c = static_cast<const char*>(p) + ahead;
#pragma GCC unroll 16
  for (int l = 0; l < kBytes; l += 64) _mm_prefetch(c + l, _MM_HINT_T0);
}
template <int kBytes>
inline void prefetch_ahead(const void* p) {
  prefetch_rows<kBytes>(p, kPrefetchAhead);
}

inline __m256i loadu(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// Sum over 32 bytes of (unsigned u) * (signed s) as 8 int32 lanes. u <= 63, |s| <= 127, so the
// pairwise int16 sums in maddubs cannot saturate.
inline __m256i dot_u8s8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// Drives a kernel K<NT>(n, w, acts[NT], out[NT]) over any number of tokens, four at a time.
template <template <int> class K>
void run_tokens(int64_t n, int64_t n_tok, const void* w, const void* act, int64_t act_stride,
                float* out, int64_t out_stride) {
  const char* a = static_cast<const char*>(act);
  int64_t t = 0;
  auto run = [&]<int NT>() {
    const void* acts[NT];
    float res[NT];
    for (int k = 0; k < NT; ++k) acts[k] = a + (t + k) * act_stride;
    K<NT>::run(n, w, acts, res);
    for (int k = 0; k < NT; ++k) out[(t + k) * out_stride] = res[k];
    t += NT;
  };
  while (n_tok - t >= 4) run.template operator()<4>();
  switch (n_tok - t) {
    case 3:
      run.template operator()<3>();
      break;
    case 2:
      run.template operator()<2>();
      break;
    case 1:
      run.template operator()<1>();
      break;
    default:
      break;
  }
}

}  // namespace
}  // namespace strata::qk::avx2

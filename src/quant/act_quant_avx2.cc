// Activation quantizers (Q8_0, Q8_1, Q8_K) on AVX2: bit-identical to the scalar reference, like
// act_quant_avx512.cc (same operations in the same order, round-to-nearest-even throughout).
#include <immintrin.h>

#include "quant/act_quant_rows.h"
#include "quant/kernels.h"

namespace strata::qk::avx2 {
namespace {

inline __m256 abs8(__m256 v) {
  return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

inline int hsum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

inline float inverse(float d) {
  return d != 0 ? 1.0f / d : 0.0f;
}

// Codes of v * id, in [-127, 127].
inline __m256i codes(__m256 v, __m256 id) {
  const __m256i q = _mm256_cvtps_epi32(_mm256_mul_ps(v, id));
  return _mm256_max_epi32(_mm256_min_epi32(q, _mm256_set1_epi32(127)), _mm256_set1_epi32(-127));
}

// 32 codes in four vectors of eight, stored in order.
inline void store32(const __m256i q[4], int8_t* qs) {
  const __m256i p =
      _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
  // The packs interleave 128-bit lanes: dwords come out as q0a q1a q2a q3a q0b q1b q2b q3b.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs), _mm256_permutevar8x32_epi32(p, order));
}

// One block of 32 values: codes to qs, returns d; *sum gets the sum of the codes.
inline float block32(const float* x, int8_t* qs, int* sum) {
  __m256 v[4];
  __m256 m = _mm256_setzero_ps();
  for (int j = 0; j < 4; ++j) {
    v[j] = _mm256_loadu_ps(x + 8 * j);
    m = _mm256_max_ps(m, abs8(v[j]));
  }
  const float d = hmax(m) / 127.0f;
  const __m256 id = _mm256_set1_ps(inverse(d));
  __m256i q[4];
  for (int j = 0; j < 4; ++j) q[j] = codes(v[j], id);
  store32(q, qs);
  *sum = hsum(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
  return d;
}

}  // namespace

void quantize_act_q8_0(const float* x, void* dst, int64_t n) {
  act_rows_q8_0<block32>(x, dst, n);
}

void quantize_act_q8_1(const float* x, void* dst, int64_t n) {
  act_rows_q8_1<block32>(x, dst, n);
}

void quantize_act_q8_k(const float* x, void* dst, int64_t n) {
  BlockQ8_K* y = static_cast<BlockQ8_K*>(dst);
  constexpr int kVecs = kQKK / 8;
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < kVecs; ++j) m = _mm256_max_ps(m, abs8(_mm256_loadu_ps(x + 8 * j)));
    const float d = hmax(m) / 127.0f;
    const __m256 id = _mm256_set1_ps(inverse(d));
    y[i].d = d;
    for (int j = 0; j < kVecs; j += 4) {
      __m256i q[4];
      for (int u = 0; u < 4; ++u) q[u] = codes(_mm256_loadu_ps(x + 8 * (j + u)), id);
      store32(q, y[i].qs + 8 * j);
      y[i].bsums[j / 2] = static_cast<int16_t>(hsum(_mm256_add_epi32(q[0], q[1])));
      y[i].bsums[j / 2 + 1] = static_cast<int16_t>(hsum(_mm256_add_epi32(q[2], q[3])));
    }
  }
}

}  // namespace strata::qk::avx2

// Activation quantizers (Q8_0, Q8_1, Q8_K) on AVX-512F/BW: bit-identical to the scalar reference
// (quantize.cc): the same max |x|, d = max / 127, 1 / d, products and round-to-nearest-even
// (vcvtps2dq under the default rounding mode, std::nearbyint in the reference), and F16C's
// round-to-nearest-even for the stored f16 scales. Decode quantizes every matrix's input once per
// token; the scalar loop took about 4 us for 2048 values, as long as streaming 250 KB of weights.
#include <immintrin.h>

#include "quant/act_quant_rows.h"
#include "quant/kernels.h"

namespace strata::qk::avx512 {
namespace {

inline float abs_max(__m512 a, __m512 b) {
  return _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
}

// Codes of v * id, in [-127, 127].
inline __m512i codes(__m512 v, __m512 id) {
  const __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(v, id));
  return _mm512_max_epi32(_mm512_min_epi32(q, _mm512_set1_epi32(127)), _mm512_set1_epi32(-127));
}

inline float inverse(float d) {
  return d != 0 ? 1.0f / d : 0.0f;
}

// One block of 32: codes to qs, returns d; *sum gets the sum of the codes.
inline float block32(const float* x, int8_t* qs, int* sum) {
  const __m512 lo = _mm512_loadu_ps(x), hi = _mm512_loadu_ps(x + 16);
  const float d = abs_max(lo, hi) / 127.0f;
  const __m512 id = _mm512_set1_ps(inverse(d));
  const __m512i qlo = codes(lo, id), qhi = codes(hi, id);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(qs), _mm512_cvtepi32_epi8(qlo));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + 16), _mm512_cvtepi32_epi8(qhi));
  *sum = _mm512_reduce_add_epi32(_mm512_add_epi32(qlo, qhi));
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
  constexpr int kVecs = kQKK / 16;
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    __m512 v[kVecs];
    __m512 m = _mm512_setzero_ps();
    for (int j = 0; j < kVecs; ++j) {
      v[j] = _mm512_loadu_ps(x + 16 * j);
      m = _mm512_max_ps(m, _mm512_abs_ps(v[j]));
    }
    const float d = _mm512_reduce_max_ps(m) / 127.0f;
    const __m512 id = _mm512_set1_ps(inverse(d));
    y[i].d = d;
    for (int j = 0; j < kVecs; ++j) {
      const __m512i q = codes(v[j], id);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs + 16 * j), _mm512_cvtepi32_epi8(q));
      y[i].bsums[j] = static_cast<int16_t>(_mm512_reduce_add_epi32(q));
    }
  }
}

}  // namespace strata::qk::avx512

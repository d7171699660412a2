// AVX-512 G4 weight matmul: g4_avx2.cc at twice the width. 16 code bytes (32 columns) zero-extend
// to 16 int32 lanes whose low nibbles are the even columns and high nibbles the odd ones, so xs
// is stored per 32 columns as 16 evens then 16 odds (one vpermt2ps each).
#include <immintrin.h>

#include "quant/g4_kernels.h"

namespace strata::g4 {
namespace {

inline float hsum(__m512 v) {
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v),
                                 _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline __m512 load_half16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

constexpr int64_t kChunk = 32;

float prepare(const Group& G, int64_t in, const float* x, float* xs) {
  const int64_t nc = in / kChunk;
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  __m512 c = _mm512_setzero_ps();
  for (int64_t k = 0; k < nc; ++k) {
    const int64_t i = k * kChunk;
    const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
    const __m512 a = _mm512_mul_ps(load_half16(G.scale + i), x0);
    const __m512 b = _mm512_mul_ps(load_half16(G.scale + i + 16), x1);
    c = _mm512_fmadd_ps(load_half16(G.min + i), x0, c);
    c = _mm512_fmadd_ps(load_half16(G.min + i + 16), x1, c);
    _mm512_storeu_ps(xs + i, _mm512_permutex2var_ps(a, even, b));
    _mm512_storeu_ps(xs + i + 16, _mm512_permutex2var_ps(a, odd, b));
  }
  float cs = hsum(c);
  for (int64_t i = nc * kChunk; i < in; ++i) {
    xs[i] = _cvtsh_ss(G.scale[i]) * x[i];
    cs += _cvtsh_ss(G.min[i]) * x[i];
  }
  return cs;
}

template <int NT>
void rows(const Group& G, int64_t in, const float* const* xs, const float* cs, float* const* y) {
  constexpr int NA = NT == 1 ? 4 : 2;
  const int64_t nc = in / kChunk;
  const __m512i m4 = _mm512_set1_epi32(15);
  for (int64_t r = 0; r < G.rows; ++r) {
    const uint8_t* codes = G.codes + r * (in / 2);
    __m512 acc[NT][NA];
    for (int t = 0; t < NT; ++t)
      for (int a = 0; a < NA; ++a) acc[t][a] = _mm512_setzero_ps();
    auto chunk = [&](int64_t k, int par) {
      const __m512i v =
          _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + 16 * k)));
      const __m512 lo = _mm512_cvtepi32_ps(_mm512_and_si512(v, m4));
      const __m512 hi = _mm512_cvtepi32_ps(_mm512_srli_epi32(v, 4));
      const int a0 = (2 * par) % NA, a1 = (2 * par + 1) % NA;
      for (int t = 0; t < NT; ++t) {
        acc[t][a0] = _mm512_fmadd_ps(lo, _mm512_loadu_ps(xs[t] + k * kChunk), acc[t][a0]);
        acc[t][a1] = _mm512_fmadd_ps(hi, _mm512_loadu_ps(xs[t] + k * kChunk + 16), acc[t][a1]);
      }
    };
    int64_t k = 0;
    for (; k + 2 <= nc; k += 2) chunk(k, 0), chunk(k + 1, 1);
    if (k < nc) chunk(k, 0);
    for (int t = 0; t < NT; ++t) {
      __m512 s = acc[t][0];
      for (int a = 1; a < NA; ++a) s = _mm512_add_ps(s, acc[t][a]);
      float tail = 0;
      for (int64_t i = nc * kChunk; i < in; ++i)
        tail += static_cast<float>((codes[i / 2] >> (4 * (i & 1))) & 15) * xs[t][i];
      y[t][r] = hsum(s) + tail + cs[t];
    }
  }
}

}  // namespace

void matmul_avx512(const void* w, int64_t out, int64_t in, const float* x, int64_t n_tok, float* y,
                   int64_t g0, int64_t g1, float* scratch) {
  for (int64_t g = g0; g < g1; ++g) {
    const Group G = group_at(w, out, in, g);
    for (int64_t t0 = 0; t0 < n_tok; t0 += 4) {
      const int nt = static_cast<int>(n_tok - t0 < 4 ? n_tok - t0 : 4);
      const float* xs[4];
      float* ys[4];
      float cs[4];
      for (int t = 0; t < nt; ++t) {
        float* buf = scratch + t * in;
        cs[t] = prepare(G, in, x + (t0 + t) * in, buf);
        xs[t] = buf;
        ys[t] = y + (t0 + t) * out + g * kG4Group;
      }
      switch (nt) {
        case 1:
          rows<1>(G, in, xs, cs, ys);
          break;
        case 2:
          rows<2>(G, in, xs, cs, ys);
          break;
        case 3:
          rows<3>(G, in, xs, cs, ys);
          break;
        default:
          rows<4>(G, in, xs, cs, ys);
          break;
      }
    }
  }
}

}  // namespace strata::g4

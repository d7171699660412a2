// AVX2 G4 weight matmul. Per group and token, xs = scale * x is formed once in an order that
// matches how the codes unpack: 8 code bytes (16 columns) zero-extend to 8 int32 lanes, whose
// low nibbles are the even columns and high nibbles the odd ones, so xs is stored per 16 columns
// as 8 evens then 8 odds. A row is then 2 FMAs per 16 columns per token, with the unpacked codes
// shared by up to 4 tokens.
#include <immintrin.h>

#include "quant/g4_kernels.h"

namespace strata::g4 {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline __m256 load_half8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

constexpr int64_t kChunk = 16;

// xs (permuted, full chunks) and the min constant for one token.
float prepare(const Group& G, int64_t in, const float* x, float* xs) {
  const int64_t nc = in / kChunk;
  __m256 c = _mm256_setzero_ps();
  for (int64_t k = 0; k < nc; ++k) {
    const int64_t i = k * kChunk;
    const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
    const __m256 a = _mm256_mul_ps(load_half8(G.scale + i), x0);
    const __m256 b = _mm256_mul_ps(load_half8(G.scale + i + 8), x1);
    c = _mm256_fmadd_ps(load_half8(G.min + i), x0, c);
    c = _mm256_fmadd_ps(load_half8(G.min + i + 8), x1, c);
    // evens: a0 a2 a4 a6 b0 b2 b4 b6; odds likewise (shuffle within lanes, then fix lane order).
    const __m256 ev = _mm256_shuffle_ps(a, b, 0x88), od = _mm256_shuffle_ps(a, b, 0xdd);
    _mm256_storeu_ps(xs + i, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), 0xd8)));
    _mm256_storeu_ps(xs + i + 8,
                     _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(od), 0xd8)));
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
  const __m256i m4 = _mm256_set1_epi32(15);
  for (int64_t r = 0; r < G.rows; ++r) {
    const uint8_t* codes = G.codes + r * (in / 2);
    __m256 acc[NT][NA];
    for (int t = 0; t < NT; ++t)
      for (int a = 0; a < NA; ++a) acc[t][a] = _mm256_setzero_ps();
    auto chunk = [&](int64_t k, int par) {
      const __m256i v =
          _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes + 8 * k)));
      const __m256 lo = _mm256_cvtepi32_ps(_mm256_and_si256(v, m4));
      const __m256 hi = _mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4));
      const int a0 = (2 * par) % NA, a1 = (2 * par + 1) % NA;
      for (int t = 0; t < NT; ++t) {
        acc[t][a0] = _mm256_fmadd_ps(lo, _mm256_loadu_ps(xs[t] + k * kChunk), acc[t][a0]);
        acc[t][a1] = _mm256_fmadd_ps(hi, _mm256_loadu_ps(xs[t] + k * kChunk + 8), acc[t][a1]);
      }
    };
    int64_t k = 0;
    for (; k + 2 <= nc; k += 2) chunk(k, 0), chunk(k + 1, 1);
    if (k < nc) chunk(k, 0);
    for (int t = 0; t < NT; ++t) {
      __m256 s = acc[t][0];
      for (int a = 1; a < NA; ++a) s = _mm256_add_ps(s, acc[t][a]);
      float tail = 0;
      for (int64_t i = nc * kChunk; i < in; ++i)
        tail += static_cast<float>((codes[i / 2] >> (4 * (i & 1))) & 15) * xs[t][i];
      y[t][r] = hsum(s) + tail + cs[t];
    }
  }
}

}  // namespace

void matmul_avx2(const void* w, int64_t out, int64_t in, const float* x, int64_t n_tok, float* y,
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

void kv_range_avx2(const float* x, float* lo, float* hi) {
  __m256 mn = _mm256_loadu_ps(x), mx = mn;
  for (int i = 8; i < kG4Group; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    mn = _mm256_min_ps(mn, v);
    mx = _mm256_max_ps(mx, v);
  }
  float a[8], b[8];
  _mm256_storeu_ps(a, mn);
  _mm256_storeu_ps(b, mx);
  for (int i = 1; i < 8; ++i) a[0] = a[i] < a[0] ? a[i] : a[0], b[0] = b[i] > b[0] ? b[i] : b[0];
  *lo = a[0];
  *hi = b[0];
}

// (x - min) / scale rounded to nearest-even and clamped to [0, 15] (the division, not a
// reciprocal, so codes equal the scalar ones), then byte pairs packed into nibbles.
void kv_codes_avx2(const float* x, float scale, float mn, uint8_t* codes) {
  const __m256 s = _mm256_set1_ps(scale), m = _mm256_set1_ps(mn), zero = _mm256_setzero_ps(),
               top = _mm256_set1_ps(15.0f);
  __m256i w[4];  // 16-bit codes, 16 elements each, in order
  for (int j = 0; j < 4; ++j) {
    __m256i c[2];
    for (int h = 0; h < 2; ++h) {
      __m256 q = _mm256_div_ps(_mm256_sub_ps(_mm256_loadu_ps(x + 16 * j + 8 * h), m), s);
      q = _mm256_round_ps(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      c[h] = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(q, zero), top));
    }
    w[j] = _mm256_permute4x64_epi64(_mm256_packus_epi32(c[0], c[1]), 0xd8);
  }
  const __m256i lo4 = _mm256_set1_epi16(0x000f), hi4 = _mm256_set1_epi16(0x00f0);
  __m256i nib[2];
  for (int j = 0; j < 2; ++j) {
    // bytes e0 e1 e2 ... in order; as 16-bit lanes e(2i) | e(2i+1) << 8 -> e(2i) | e(2i+1) << 4
    const __m256i b = _mm256_permute4x64_epi64(_mm256_packus_epi16(w[2 * j], w[2 * j + 1]), 0xd8);
    nib[j] =
        _mm256_or_si256(_mm256_and_si256(b, lo4), _mm256_and_si256(_mm256_srli_epi16(b, 4), hi4));
  }
  const __m256i out = _mm256_permute4x64_epi64(_mm256_packus_epi16(nib[0], nib[1]), 0xd8);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(codes), out);
}

// KV slices: a group's 32 code bytes are two 16-byte halves (32 elements each in code order);
// 8 bytes zero-extend to 8 lanes whose low nibbles are code positions b..b+7 and high nibbles
// 16+b..16+b+7.
float kv_dot_avx2(const void* slice, int64_t groups, const float* qp, const float* qsum) {
  const uint8_t* p = static_cast<const uint8_t*>(slice);
  const __m256i m4 = _mm256_set1_epi32(15);
  __m256 total = _mm256_setzero_ps();
  float mins = 0;
  for (int64_t g = 0; g < groups; ++g, p += kG4KvGroupBytes) {
    uint16_t s, m;
    std::memcpy(&s, p, 2);
    std::memcpy(&m, p + 2, 2);
    const float* q = qp + g * kG4Group;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    for (int c = 0; c < 2; ++c)
      for (int h = 0; h < 2; ++h) {
        const __m256i v = _mm256_cvtepu8_epi32(
            _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 4 + 16 * c + 8 * h)));
        const float* qc = q + 32 * c + 8 * h;
        a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v, m4)), _mm256_loadu_ps(qc), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4)), _mm256_loadu_ps(qc + 16),
                             a1);
      }
    total = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(s)), _mm256_add_ps(a0, a1), total);
    mins += _cvtsh_ss(m) * qsum[g];
  }
  return hsum(total) + mins;
}

void kv_axpy_avx2(const void* slice, int64_t groups, float a, float* op, float* msum) {
  const uint8_t* p = static_cast<const uint8_t*>(slice);
  const __m256i m4 = _mm256_set1_epi32(15);
  for (int64_t g = 0; g < groups; ++g, p += kG4KvGroupBytes) {
    uint16_t s, m;
    std::memcpy(&s, p, 2);
    std::memcpy(&m, p + 2, 2);
    const __m256 as = _mm256_set1_ps(a * _cvtsh_ss(s));
    msum[g] += a * _cvtsh_ss(m);
    float* o = op + g * kG4Group;
    for (int c = 0; c < 2; ++c)
      for (int h = 0; h < 2; ++h) {
        const __m256i v = _mm256_cvtepu8_epi32(
            _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 4 + 16 * c + 8 * h)));
        float* oc = o + 32 * c + 8 * h;
        _mm256_storeu_ps(oc, _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v, m4)), as,
                                             _mm256_loadu_ps(oc)));
        _mm256_storeu_ps(oc + 16, _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4)), as,
                                                  _mm256_loadu_ps(oc + 16)));
      }
  }
}

}  // namespace strata::g4

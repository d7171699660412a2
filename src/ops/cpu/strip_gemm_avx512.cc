// Prefill's f32 GEMM on AVX-512 (float_kernels.h: StripGemm).
//
// A strip of up to 32 weight rows is packed k-major (bp[p * 32 + r]), so the rows sit in the
// lanes of two vectors; the kernel broadcasts one activation per token and k step and adds
// 2 x kTile FMAs into accumulators that are the outputs themselves. Nothing is reduced across
// lanes (a dot-product kernel spends a horizontal sum per output), and per k step only the two
// weight vectors and kTile broadcasts are loaded.
//
// Packing gathers 16 rows at a time: one 32-bit gather reads two consecutive halves of 16 rows
// (16-bit weights) or one float of 16 rows; the strip is packed once per chunk of k and then used
// by every token.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "ops/cpu/float_kernels.h"

namespace strata::cpu {
namespace {

constexpr int kTile = 12;  // tokens per pass: 24 accumulators, two weight vectors

inline __mmask16 lanes(int64_t n) {  // the first n (0..16) lanes
  return n >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << n) - 1u);
}

// Byte offsets of rows [16h, 16h + 16) for the gathers, and which of them exist.
inline __m512i row_offsets(int64_t stride, int h) {
  return _mm512_mullo_epi32(
      _mm512_add_epi32(_mm512_set1_epi32(16 * h),
                       _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)),
      _mm512_set1_epi32(static_cast<int32_t>(stride)));
}

// 16-bit weights (f16 or bf16): Widen turns the low halves of 16 dwords into 16 floats.
template <__m512 (*Widen)(__m512i)>
void pack_half(const void* w, int64_t stride, int64_t nr, int64_t kc, float* bp) {
  const char* base = static_cast<const char*>(w);
  for (int h = 0; h < 2; ++h) {
    const __m512i off = row_offsets(stride, h);
    const __mmask16 m = lanes(std::max<int64_t>(0, nr - 16 * h));
    float* out = bp + 16 * h;
    int64_t p = 0;
    for (; p + 2 <= kc; p += 2) {  // one gather: columns p and p + 1
      const __m512i v =
          _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, off, base + 2 * p, 1);
      _mm512_store_ps(out + 32 * p, Widen(v));
      _mm512_store_ps(out + 32 * (p + 1), Widen(_mm512_srli_epi32(v, 16)));
    }
    if (p < kc) {  // an odd last column: the pair ending there, high halves
      if (kc >= 2) {
        const __m512i v =
            _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, off, base + 2 * (p - 1), 1);
        _mm512_store_ps(out + 32 * p, Widen(_mm512_srli_epi32(v, 16)));
      } else {
        alignas(64) uint16_t one[16] = {};
        for (int r = 0; r < 16 && 16 * h + r < nr; ++r)
          std::memcpy(&one[r], base + (16 * h + r) * stride, 2);
        const __m256i halves = _mm256_load_si256(reinterpret_cast<const __m256i*>(one));
        _mm512_store_ps(out + 32 * p, Widen(_mm512_cvtepu16_epi32(halves)));
      }
    }
  }
}

inline __m512 widen_f16(__m512i v) {
  return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v));
}
inline __m512 widen_bf16(__m512i v) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}

void pack_f16(const void* w, int64_t stride, int64_t nr, int64_t kc, float* bp) {
  pack_half<widen_f16>(w, stride, nr, kc, bp);
}
void pack_bf16(const void* w, int64_t stride, int64_t nr, int64_t kc, float* bp) {
  pack_half<widen_bf16>(w, stride, nr, kc, bp);
}

void pack_f32(const void* w, int64_t stride, int64_t nr, int64_t kc, float* bp) {
  const char* base = static_cast<const char*>(w);
  for (int h = 0; h < 2; ++h) {
    const __m512i off = row_offsets(stride, h);
    const __mmask16 m = lanes(std::max<int64_t>(0, nr - 16 * h));
    for (int64_t p = 0; p < kc; ++p)
      _mm512_store_ps(bp + 32 * p + 16 * h,
                      _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, off, base + 4 * p, 1));
  }
}

template <int T>
void strip_tile(int64_t k, const float* a, int64_t lda, const float* bp, float* c, int64_t ldc,
                bool add, __mmask16 m0, __mmask16 m1) {
  __m512 acc0[T], acc1[T];
  for (int t = 0; t < T; ++t) {
    acc0[t] = add ? _mm512_maskz_loadu_ps(m0, c + t * ldc) : _mm512_setzero_ps();
    acc1[t] = add ? _mm512_maskz_loadu_ps(m1, c + t * ldc + 16) : _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < k; ++p) {
    const __m512 w0 = _mm512_load_ps(bp + 32 * p), w1 = _mm512_load_ps(bp + 32 * p + 16);
    for (int t = 0; t < T; ++t) {
      const __m512 x = _mm512_set1_ps(a[t * lda + p]);
      acc0[t] = _mm512_fmadd_ps(x, w0, acc0[t]);
      acc1[t] = _mm512_fmadd_ps(x, w1, acc1[t]);
    }
  }
  for (int t = 0; t < T; ++t) {
    _mm512_mask_storeu_ps(c + t * ldc, m0, acc0[t]);
    _mm512_mask_storeu_ps(c + t * ldc + 16, m1, acc1[t]);
  }
}

using TileFn = void (*)(int64_t, const float*, int64_t, const float*, float*, int64_t, bool,
                        __mmask16, __mmask16);
template <int... T>
constexpr TileFn kTiles[] = {strip_tile<T>...};
constexpr const TileFn* kTileFor = kTiles<1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12>;

void gemm_strip(int64_t m, int64_t nr, int64_t k, const float* a, int64_t lda, const float* bp,
                float* c, int64_t ldc, bool add) {
  const __mmask16 m0 = lanes(nr), m1 = lanes(std::max<int64_t>(0, nr - 16));
  int64_t t = 0;
  for (; t + kTile <= m; t += kTile)
    strip_tile<kTile>(k, a + t * lda, lda, bp, c + t * ldc, ldc, add, m0, m1);
  if (t < m) kTileFor[m - t - 1](k, a + t * lda, lda, bp, c + t * ldc, ldc, add, m0, m1);
}

}  // namespace

const StripGemm& strip_gemm_avx512() {
  static const StripGemm s{pack_f32, pack_f16, pack_bf16, gemm_strip};
  return s;
}

}  // namespace strata::cpu

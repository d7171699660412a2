// AVX-512 dot products of the K-quants with Q8_K activations; same structure as dot_k_avx2.cc
// with 64 activation bytes per vector. Each 512-bit code vector is built to line up with 64
// consecutive activations: the 32 packed bytes are broadcast to both halves and each half takes
// its own shift (vpsrlvd / vpsllvw / vpsrlvw), so no activation ever needs shuffling. Sub-block
// scales become vpmaddwd operands with one vpermw each.
#include <type_traits>

#include "quant/kernels.h"
#include "quant/simd_avx512.h"

namespace strata::qk::avx512 {
namespace {

inline __m512i mask8(int v) {
  return _mm512_set1_epi8(static_cast<char>(v));
}
inline float half(uint16_t h) {
  return _cvtsh_ss(h);
}

// int16 lanes 0-15 (of 32) = the sub-block scales; lanes above are zero.
inline __m512i widen16(__m256i s16) {
  return _mm512_inserti64x4(_mm512_setzero_si512(), s16, 0);
}

// vpermw index: lane groups of 8 take scales s, s+1, s+2, s+3 (four 16-element sub-blocks of
// 64 consecutive elements).
template <int s>
inline __m512i scales_4x16(__m512i s16) {
  const __m512i idx =
      _mm512_set_epi16(s + 3, s + 3, s + 3, s + 3, s + 3, s + 3, s + 3, s + 3, s + 2, s + 2, s + 2,
                       s + 2, s + 2, s + 2, s + 2, s + 2, s + 1, s + 1, s + 1, s + 1, s + 1, s + 1,
                       s + 1, s + 1, s, s, s, s, s, s, s, s);
  return _mm512_permutexvar_epi16(idx, s16);
}
// Same for two 32-element sub-blocks: lanes 0-15 scale s, 16-31 scale s+1.
template <int s>
inline __m512i scales_2x32(__m512i s16) {
  const __m512i idx = _mm512_set_epi16(s + 1, s + 1, s + 1, s + 1, s + 1, s + 1, s + 1, s + 1,
                                       s + 1, s + 1, s + 1, s + 1, s + 1, s + 1, s + 1, s + 1, s, s,
                                       s, s, s, s, s, s, s, s, s, s, s, s, s, s);
  return _mm512_permutexvar_epi16(idx, s16);
}

// Shift counts per 16-bit lane: low half by a, high half by b.
template <int a, int b>
inline __m512i counts16() {
  return _mm512_inserti64x4(_mm512_set1_epi16(a), _mm256_set1_epi16(b), 1);
}
// Bytes of the low half ANDed with bit a, the high half with bit b (for vptestmb).
template <int a, int b>
inline __m512i bits8() {
  return _mm512_inserti64x4(_mm512_set1_epi8(static_cast<char>(1 << a)),
                            _mm256_set1_epi8(static_cast<char>(1 << b)), 1);
}

template <int NT>
struct Acts {
  const BlockQ8_K* a[NT];
  explicit Acts(const void* const* va) {
    for (int t = 0; t < NT; ++t) a[t] = static_cast<const BlockQ8_K*>(va[t]);
  }
};

inline __m256i fold_halves(__m512i v) {
  return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

// ---- Q4_K / Q5_K ----
template <bool kQ5>
struct K45 {
  using W = std::conditional_t<kQ5, BlockQ5_K, BlockQ4_K>;
  template <int NT>
  struct K {
    static void run(int64_t n, const void* vw, const void* const* va, float* out) {
      const W* w = static_cast<const W*>(vw);
      const Acts<NT> A(va);
      __m256 acc[NT], accm[NT];
      unroll<NT>([&](auto t) { acc[t] = accm[t] = _mm256_setzero_ps(); });
      const __m512i m4 = mask8(15);
      const __m512i nib_shift = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4);
      for (int64_t i = 0; i < n / kQKK; ++i) {
        prefetch_ahead<sizeof(W)>(w + i);
        uint8_t sc[8], mn[8];
        q4k_scales_mins(w[i].scales, sc, mn);
        uint64_t sc64, mn64;
        std::memcpy(&sc64, sc, 8);
        std::memcpy(&mn64, mn, 8);
        const __m512i s16 = widen16(_mm256_zextsi128_si256(
            _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(sc64)))));
        const __m128i mins = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(mn64)));
        __m512i isum[NT];
        __m256i mint[NT];
        unroll<NT>([&](auto t) {
          isum[t] = _mm512_setzero_si512();
          const __m128i* bs = reinterpret_cast<const __m128i*>(A.a[t][i].bsums);
          const __m128i pairs = _mm_hadd_epi16(_mm_loadu_si128(bs), _mm_loadu_si128(bs + 1));
          mint[t] = _mm256_zextsi128_si256(_mm_madd_epi16(pairs, mins));
        });
        __m512i qh;
        if constexpr (kQ5) qh = bcast32(w[i].qh);
        unroll<4>([&](auto k) {  // elements 64k .. 64k+63 = sub-blocks 2k, 2k+1
          __m512i c = _mm512_and_si512(_mm512_srlv_epi32(bcast32(w[i].qs + 32 * k), nib_shift), m4);
          if constexpr (kQ5) {
            const __m512i bit = bits8<2 * k, 2 * k + 1>();
            const __mmask64 hb = _mm512_test_epi8_mask(qh, bit);
            c = _mm512_or_si512(c, _mm512_maskz_mov_epi8(hb, mask8(0x10)));
          }
          const __m512i s = scales_2x32<2 * k>(s16);
          unroll<NT>([&](auto t) {
            const __m512i p = _mm512_maddubs_epi16(c, loadu64(A.a[t][i].qs + 64 * k));
            isum[t] = _mm512_add_epi32(isum[t], _mm512_madd_epi16(p, s));
          });
        });
        unroll<NT>([&](auto t) {
          const float ad = A.a[t][i].d;
          acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(fold_halves(isum[t])),
                                   _mm256_set1_ps(half(w[i].d) * ad), acc[t]);
          accm[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mint[t]),
                                     _mm256_set1_ps(half(w[i].dmin) * ad), accm[t]);
        });
      }
      unroll<NT>([&](auto t) { out[t] = hsum(_mm256_add_ps(acc[t], accm[t])); });
    }
  };
};

// ---- Q6_K ----
template <int NT>
struct Q6K {
  static void run(int64_t n, const void* vw, const void* const* va, float* out) {
    const BlockQ6_K* w = static_cast<const BlockQ6_K*>(vw);
    const Acts<NT> A(va);
    __m256 acc[NT];
    unroll<NT>([&](auto t) { acc[t] = _mm256_setzero_ps(); });
    const __m512i m4 = mask8(15), m30 = mask8(0x30);
    for (int64_t i = 0; i < n / kQKK; ++i) {
      prefetch_ahead<sizeof(BlockQ6_K)>(w + i);
      const __m256i s16h =
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[i].scales)));
      const __m512i s16 = widen16(s16h);
      __m512i isum[NT];
      __m256i bias[NT];
      unroll<NT>([&](auto t) {  // 32 * sum_j sc_j * bsum_j, taken off at the end
        isum[t] = _mm512_setzero_si512();
        bias[t] = _mm256_slli_epi32(_mm256_madd_epi16(avx2::loadu(A.a[t][i].bsums), s16h), 5);
      });
      unroll<2>([&](auto h) {
        const __m512i ql = loadu64(w[i].ql + 64 * h);
        const __m512i qh = bcast32(w[i].qh + 32 * h);
        // [j=0 | j=1]: low nibbles of ql, qh bits 0-1 / 2-3; [j=2 | j=3]: high nibbles, 4-5 / 6-7.
        const __m512i sh01 = counts16<4, 2>(), sh23 = counts16<0, 2>();
        const __m512i c01 = _mm512_or_si512(_mm512_and_si512(ql, m4),
                                            _mm512_and_si512(_mm512_sllv_epi16(qh, sh01), m30));
        const __m512i c23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                            _mm512_and_si512(_mm512_srlv_epi16(qh, sh23), m30));
        const __m512i s01 = scales_4x16<8 * h>(s16), s23 = scales_4x16<8 * h + 4>(s16);
        unroll<NT>([&](auto t) {
          const int8_t* q8 = A.a[t][i].qs + 128 * h;
          const __m512i p0 = _mm512_madd_epi16(_mm512_maddubs_epi16(c01, loadu64(q8)), s01);
          const __m512i p1 = _mm512_madd_epi16(_mm512_maddubs_epi16(c23, loadu64(q8 + 64)), s23);
          isum[t] = _mm512_add_epi32(isum[t], _mm512_add_epi32(p0, p1));
        });
      });
      const float d = half(w[i].d);
      unroll<NT>([&](auto t) {
        const __m256i s = _mm256_sub_epi32(fold_halves(isum[t]), bias[t]);
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * A.a[t][i].d), acc[t]);
      });
    }
    unroll<NT>([&](auto t) { out[t] = hsum(acc[t]); });
  }
};

// ---- Q2_K / Q3_K ----
template <bool kQ3>
struct K23 {
  using W = std::conditional_t<kQ3, BlockQ3_K, BlockQ2_K>;
  template <int NT>
  struct K {
    static void run(int64_t n, const void* vw, const void* const* va, float* out) {
      const W* w = static_cast<const W*>(vw);
      const Acts<NT> A(va);
      __m256 acc[NT], accm[NT];
      unroll<NT>([&](auto t) { acc[t] = accm[t] = _mm256_setzero_ps(); });
      const __m512i m3 = mask8(3);
      for (int64_t i = 0; i < n / kQKK; ++i) {
        prefetch_ahead<sizeof(W)>(w + i);
        __m256i s16h, off16;  // sub-block scales; what multiplies bsums (Q2_K mins, Q3_K 4*scale)
        __m512i hm;
        if constexpr (kQ3) {
          uint32_t sw[4];
          q3k_scale_words(w[i].scales, sw);
          const __m128i s8 =
              _mm_sub_epi8(_mm_setr_epi32(static_cast<int>(sw[0]), static_cast<int>(sw[1]),
                                          static_cast<int>(sw[2]), static_cast<int>(sw[3])),
                           _mm_set1_epi8(32));
          s16h = _mm256_cvtepi8_epi16(s8);
          off16 = _mm256_slli_epi16(s16h, 2);
          hm = bcast32(w[i].hmask);
        } else {
          const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[i].scales));
          s16h = _mm256_cvtepu8_epi16(_mm_and_si128(raw, _mm_set1_epi8(15)));
          off16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(15)));
        }
        const __m512i s16 = widen16(s16h);
        __m512i isum[NT];
        __m256i offs[NT];
        unroll<NT>([&](auto t) {
          isum[t] = _mm512_setzero_si512();
          offs[t] = _mm256_madd_epi16(avx2::loadu(A.a[t][i].bsums), off16);
        });
        unroll<2>([&](auto h) {
          const __m512i v = bcast32(w[i].qs + 32 * h);
          const __m512i sh01 = counts16<0, 2>(), sh23 = counts16<4, 6>();
          __m512i c01 = _mm512_and_si512(_mm512_srlv_epi16(v, sh01), m3);
          __m512i c23 = _mm512_and_si512(_mm512_srlv_epi16(v, sh23), m3);
          if constexpr (kQ3) {  // hmask planes 4h+j give bit 2
            const __m512i p01 = bits8<4 * h, 4 * h + 1>(), p23 = bits8<4 * h + 2, 4 * h + 3>();
            const __mmask64 b01 = _mm512_test_epi8_mask(hm, p01);
            const __mmask64 b23 = _mm512_test_epi8_mask(hm, p23);
            c01 = _mm512_or_si512(c01, _mm512_maskz_mov_epi8(b01, mask8(4)));
            c23 = _mm512_or_si512(c23, _mm512_maskz_mov_epi8(b23, mask8(4)));
          }
          const __m512i s01 = scales_4x16<8 * h>(s16), s23 = scales_4x16<8 * h + 4>(s16);
          unroll<NT>([&](auto t) {
            const int8_t* q8 = A.a[t][i].qs + 128 * h;
            const __m512i p0 = _mm512_madd_epi16(_mm512_maddubs_epi16(c01, loadu64(q8)), s01);
            const __m512i p1 = _mm512_madd_epi16(_mm512_maddubs_epi16(c23, loadu64(q8 + 64)), s23);
            isum[t] = _mm512_add_epi32(isum[t], _mm512_add_epi32(p0, p1));
          });
        });
        const float d = half(w[i].d);
        unroll<NT>([&](auto t) {
          const float ad = A.a[t][i].d;
          const __m256i s = fold_halves(isum[t]);
          if constexpr (kQ3) {  // sum sc (q - 4) a = sum sc q a - 4 sum sc bsum
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(s, offs[t])),
                                     _mm256_set1_ps(d * ad), acc[t]);
          } else {
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * ad), acc[t]);
            accm[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(offs[t]),
                                       _mm256_set1_ps(half(w[i].dmin) * ad), accm[t]);
          }
        });
      }
      unroll<NT>([&](auto t) { out[t] = hsum(_mm256_add_ps(acc[t], accm[t])); });
    }
  };
};

template <template <int> class K>
void one(int64_t n, float* out, const void* w, const void* act) {
  const void* acts[1] = {act};
  K<1>::run(n, w, acts, out);
}

}  // namespace

#define STRATA_AVX512_K(name, KT)                                                      \
  void vec_dot_##name(int64_t n, float* out, const void* w, const void* act) {         \
    one<KT>(n, out, w, act);                                                           \
  }                                                                                    \
  void vec_dot_tokens_##name(int64_t n, int64_t n_tok, const void* w, const void* act, \
                             int64_t act_stride, float* out, int64_t out_stride) {     \
    run_tokens<KT>(n, n_tok, w, act, act_stride, out, out_stride);                     \
  }

STRATA_AVX512_K(q2_k, K23<false>::K)
STRATA_AVX512_K(q3_k, K23<true>::K)
STRATA_AVX512_K(q4_k, K45<false>::K)
STRATA_AVX512_K(q5_k, K45<true>::K)
STRATA_AVX512_K(q6_k, Q6K)

}  // namespace strata::qk::avx512

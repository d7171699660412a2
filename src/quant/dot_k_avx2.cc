// AVX2 dot products of the K-quants with Q8_K activations.
//
// Each super-block is summed exactly in int32: codes as unsigned bytes (vpmaddubsw against the
// int8 activations), sub-block scales applied by vpmaddwd, so one float FMA per super-block and
// token remains. Constant offsets never touch the element loop: the Q3_K (-4) and Q6_K (-32)
// biases and the Q2_K/Q4_K/Q5_K mins multiply Q8_K's per-16 activation sums (bsums) instead.
#include <type_traits>

#include "quant/kernels.h"
#include "quant/simd_avx2.h"

namespace strata::qk::avx2 {
namespace {

inline __m256i mask8(int v) {
  return _mm256_set1_epi8(static_cast<char>(v));
}

// Moves bit `from` of every byte to bit `to` (other bits garbage-free after the caller's mask):
// 16-bit shifts are fine because the caller keeps only bits that did not cross a byte boundary.
template <int kFrom, int kTo>
inline __m256i move_bit(__m256i v) {
  if constexpr (kFrom > kTo)
    return _mm256_srli_epi16(v, kFrom - kTo);
  else if constexpr (kFrom < kTo)
    return _mm256_slli_epi16(v, kTo - kFrom);
  else
    return v;
}

// Scale vector for a pair of 16-element sub-blocks (2p, 2p+1): int16 lanes 0-7 = s[2p], lanes
// 8-15 = s[2p+1], matching a vpmaddubsw result over 32 consecutive elements.
template <bool kSigned>
inline __m256i pair_scales(__m128i s8, int p) {
  const __m128i ctrl =
      _mm_setr_epi8(2 * p, 2 * p, 2 * p, 2 * p, 2 * p, 2 * p, 2 * p, 2 * p, 2 * p + 1, 2 * p + 1,
                    2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1);
  const __m128i b = _mm_shuffle_epi8(s8, ctrl);
  return kSigned ? _mm256_cvtepi8_epi16(b) : _mm256_cvtepu8_epi16(b);
}

// Loads the activation pointers of NT tokens.
template <int NT>
struct Acts {
  const BlockQ8_K* a[NT];
  explicit Acts(const void* const* va) {
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) a[t] = static_cast<const BlockQ8_K*>(va[t]);
  }
};

template <int NT>
inline void finish(const __m256* acc, float* out) {
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) out[t] = hsum(acc[t]);
}

// ---- Q4_K / Q5_K: 8 sub-blocks of 32, 6-bit scales and mins ----

// Per super-block setup shared by Q4_K and Q5_K: the 8 six-bit scales as int16 in both 128-bit
// lanes (so one vpshufb per sub-block broadcasts a scale as a vpmaddwd operand), and the min term
// sum_j m_j * (bsums[2j] + bsums[2j+1]) per token.
template <int NT>
inline __m256i k4_setup(const uint8_t* s12, const Acts<NT>& A, int64_t i, __m256i* min_terms) {
  uint8_t sc[8], mn[8];
  q4k_scales_mins(s12, sc, mn);
  uint64_t sc64, mn64;
  std::memcpy(&sc64, sc, 8);
  std::memcpy(&mn64, mn, 8);
  const __m128i mins = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(mn64)));
  unroll<NT>([&](auto t) {
    const __m128i* bs = reinterpret_cast<const __m128i*>(A.a[t][i].bsums);
    const __m128i pairs = _mm_hadd_epi16(_mm_loadu_si128(bs), _mm_loadu_si128(bs + 1));
    min_terms[t] = _mm256_zextsi128_si256(_mm_madd_epi16(pairs, mins));
  });
  return _mm256_broadcastsi128_si256(
      _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(sc64))));
}

// Word j of each 128-bit lane of s16, in every int16 slot.
template <int j>
inline __m256i bcast_word(__m256i s16) {
  return _mm256_shuffle_epi8(s16,
                             _mm256_set1_epi16(static_cast<int16_t>((2 * j) | (2 * j + 1) << 8)));
}

// A super-block's two f16 scales (d, dmin) times the activation scale, each broadcast.
inline void scale_pair(const uint16_t* dm, float ad, __m256* d, __m256* dmin) {
  uint32_t both;
  std::memcpy(&both, dm, 4);
  const __m128 x =
      _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(both))), _mm_set1_ps(ad));
  *d = _mm256_broadcastss_ps(x);
  *dmin = _mm256_broadcastss_ps(_mm_movehdup_ps(x));
}

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
      const __m256i m4 = mask8(15);
      for (int64_t i = 0; i < n / kQKK; ++i) {
        prefetch_ahead<sizeof(W)>(w + i);
        __m256i min_terms[NT], isum[NT];
        const __m256i s16 = k4_setup<NT>(w[i].scales, A, i, min_terms);
        unroll<NT>([&](auto t) { isum[t] = _mm256_setzero_si256(); });
        __m256i qh;
        if constexpr (kQ5) qh = loadu(w[i].qh);
        unroll<4>([&](auto k) {
          const __m256i v = loadu(w[i].qs + 32 * k);
          __m256i lo = _mm256_and_si256(v, m4);
          __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
          if constexpr (kQ5) {
            lo = _mm256_or_si256(lo, _mm256_and_si256(move_bit<2 * k, 4>(qh), mask8(0x10)));
            hi = _mm256_or_si256(hi, _mm256_and_si256(move_bit<2 * k + 1, 4>(qh), mask8(0x10)));
          }
          const __m256i s0 = bcast_word<2 * k>(s16), s1 = bcast_word<2 * k + 1>(s16);
          unroll<NT>([&](auto t) {
            const int8_t* q8 = A.a[t][i].qs + 64 * k;
            const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, loadu(q8)), s0);
            const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, loadu(q8 + 32)), s1);
            isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(p0, p1));
          });
        });
        unroll<NT>([&](auto t) {  // separate accumulators: two short FMA chains, not one long
          __m256 d, dmin;
          scale_pair(&w[i].d, A.a[t][i].d, &d, &dmin);
          acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), d, acc[t]);
          accm[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(min_terms[t]), dmin, accm[t]);
        });
      }
      unroll<NT>([&](auto t) { acc[t] = _mm256_add_ps(acc[t], accm[t]); });
      finish<NT>(acc, out);
    }
  };
};

// ---- Q6_K: 16 sub-blocks of 16, int8 scales, 6-bit codes biased by 32 ----
template <int NT>
struct Q6K {
  static void run(int64_t n, const void* vw, const void* const* va, float* out) {
    const BlockQ6_K* w = static_cast<const BlockQ6_K*>(vw);
    const Acts<NT> A(va);
    __m256 acc[NT];
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
    const __m256i m4 = mask8(15), m30 = mask8(0x30);
    for (int64_t i = 0; i < n / kQKK; ++i) {
      prefetch_ahead<sizeof(BlockQ6_K)>(w + i);
      const __m128i s8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[i].scales));
      const __m256i s16 = _mm256_cvtepi8_epi16(s8);
      __m256i isum[NT];
#pragma GCC unroll 8
      for (int t = 0; t < NT; ++t) {  // starts at -32 * sum_j sc_j * bsum_j
        const __m256i bias = _mm256_slli_epi32(_mm256_madd_epi16(loadu(A.a[t][i].bsums), s16), 5);
        isum[t] = _mm256_sub_epi32(_mm256_setzero_si256(), bias);
      }
#pragma GCC unroll 8
      for (int h = 0; h < 2; ++h) {
        const __m256i l0 = loadu(w[i].ql + 64 * h), l1 = loadu(w[i].ql + 64 * h + 32);
        const __m256i qh = loadu(w[i].qh + 32 * h);
        const __m256i q[4] = {_mm256_or_si256(_mm256_and_si256(l0, m4),
                                              _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30)),
                              _mm256_or_si256(_mm256_and_si256(l1, m4),
                                              _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30)),
                              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                              _mm256_and_si256(qh, m30)),
                              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                              _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30))};
#pragma GCC unroll 8
        for (int j = 0; j < 4; ++j) {
          const __m256i sc = pair_scales<true>(s8, 4 * h + j);
#pragma GCC unroll 8
          for (int t = 0; t < NT; ++t) {
            const __m256i p = _mm256_maddubs_epi16(q[j], loadu(A.a[t][i].qs + 128 * h + 32 * j));
            isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(p, sc));
          }
        }
      }
      const float d = half(w[i].d);
#pragma GCC unroll 8
      for (int t = 0; t < NT; ++t)
        acc[t] =
            _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(d * A.a[t][i].d), acc[t]);
    }
    finish<NT>(acc, out);
  }
};

// ---- Q2_K / Q3_K: 16 sub-blocks of 16, 2-bit planes (+ Q3_K's high-bit mask) ----
template <bool kQ3>
struct K23 {
  using W = std::conditional_t<kQ3, BlockQ3_K, BlockQ2_K>;
  template <int NT>
  struct K {
    static void run(int64_t n, const void* vw, const void* const* va, float* out) {
      const W* w = static_cast<const W*>(vw);
      const Acts<NT> A(va);
      __m256 acc[NT];
#pragma GCC unroll 8
      for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
      const __m256i m3 = mask8(3);
      for (int64_t i = 0; i < n / kQKK; ++i) {
        prefetch_ahead<sizeof(W)>(w + i);
        __m128i s8;     // sub-block scales as bytes (signed for Q3_K)
        __m256i off16;  // what multiplies bsums: Q2_K mins, Q3_K 4 * scale
        __m256i isum[NT];
        __m256i hm;
        if constexpr (kQ3) {
          uint32_t sw[4];
          q3k_scale_words(w[i].scales, sw);
          s8 = _mm_sub_epi8(_mm_setr_epi32(static_cast<int>(sw[0]), static_cast<int>(sw[1]),
                                           static_cast<int>(sw[2]), static_cast<int>(sw[3])),
                            _mm_set1_epi8(32));
          off16 = _mm256_slli_epi16(_mm256_cvtepi8_epi16(s8), 2);
          hm = loadu(w[i].hmask);
        } else {
          const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[i].scales));
          s8 = _mm_and_si128(raw, _mm_set1_epi8(15));
          off16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(15)));
        }
        __m256i offs[NT];
#pragma GCC unroll 8
        for (int t = 0; t < NT; ++t) {
          offs[t] = _mm256_madd_epi16(loadu(A.a[t][i].bsums), off16);
          isum[t] = _mm256_setzero_si256();
        }
#pragma GCC unroll 8
        for (int h = 0; h < 2; ++h) {
          const __m256i v = loadu(w[i].qs + 32 * h);
          auto plane = [&]<int j>() {
            __m256i q = _mm256_and_si256(_mm256_srli_epi16(v, 2 * j), m3);
            if constexpr (kQ3) {  // third bit: plane 4h + j of hmask -> bit 2
              const __m256i hb = h == 0 ? move_bit<j, 2>(hm) : move_bit<4 + j, 2>(hm);
              q = _mm256_or_si256(q, _mm256_and_si256(hb, mask8(4)));
            }
            const __m256i sc = pair_scales<kQ3>(s8, 4 * h + j);
#pragma GCC unroll 8
            for (int t = 0; t < NT; ++t) {
              const __m256i p = _mm256_maddubs_epi16(q, loadu(A.a[t][i].qs + 128 * h + 32 * j));
              isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(p, sc));
            }
          };
          plane.template operator()<0>();
          plane.template operator()<1>();
          plane.template operator()<2>();
          plane.template operator()<3>();
        }
        const float d = half(w[i].d);
#pragma GCC unroll 8
        for (int t = 0; t < NT; ++t) {
          const float ad = A.a[t][i].d;
          if constexpr (kQ3) {  // sum sc * (q - 4) * a = sum sc q a - 4 sum sc bsum
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(isum[t], offs[t])),
                                     _mm256_set1_ps(d * ad), acc[t]);
          } else {
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(d * ad), acc[t]);
            acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(offs[t]),
                                      _mm256_set1_ps(half(w[i].dmin) * ad), acc[t]);
          }
        }
      }
      finish<NT>(acc, out);
    }
  };
};

template <template <int> class K>
void one(int64_t n, float* out, const void* w, const void* act) {
  const void* acts[1] = {act};
  K<1>::run(n, w, acts, out);
}

}  // namespace

#define STRATA_AVX2_K(name, KT)                                                        \
  void vec_dot_##name(int64_t n, float* out, const void* w, const void* act) {         \
    one<KT>(n, out, w, act);                                                           \
  }                                                                                    \
  void vec_dot_tokens_##name(int64_t n, int64_t n_tok, const void* w, const void* act, \
                             int64_t act_stride, float* out, int64_t out_stride) {     \
    run_tokens<KT>(n, n_tok, w, act, act_stride, out, out_stride);                     \
  }

STRATA_AVX2_K(q2_k, K23<false>::K)
STRATA_AVX2_K(q3_k, K23<true>::K)
STRATA_AVX2_K(q4_k, K45<false>::K)
STRATA_AVX2_K(q5_k, K45<true>::K)
STRATA_AVX2_K(q6_k, Q6K)

}  // namespace strata::qk::avx2

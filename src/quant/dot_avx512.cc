// AVX-512 dot products of the 32-element block types; same structure as dot_avx2.cc with two
// blocks per 512-bit vector: codes of blocks (b, b+1) in the two halves, their activations
// likewise, vpmaddubsw/vpmaddwd per pair, and the 256-bit-per-half reduce rounds leaving the 8
// block sums in kEvenOdd order, which is why the scales are gathered in that order too.
#include "quant/kernels.h"
#include "quant/simd_avx512.h"

namespace strata::qk::avx512 {
namespace {

// Codes of blocks (b, b+1): [b elements 0-15 | b 16-31 | b+1 0-15 | b+1 16-31].
struct Q4_0T {
  using W = BlockQ4_0;
  static constexpr int kBias = 8;
  static __m512i codes(const W& b0, const W& b1) { return nibbles64(b0.qs, b1.qs); }
};
struct Q4_1T {
  using W = BlockQ4_1;
  static constexpr int kBias = 0;
  static __m512i codes(const W& b0, const W& b1) { return nibbles64(b0.qs, b1.qs); }
};
// Q5: bit j of each block's qh is bit 4 of element j; the two 32-bit masks form one byte mask.
template <class B>
inline __m512i q5_codes(const B& b0, const B& b1) {
  uint32_t h0, h1;
  std::memcpy(&h0, b0.qh, 4);
  std::memcpy(&h1, b1.qh, 4);
  const __mmask64 m = static_cast<__mmask64>(h0) | static_cast<__mmask64>(h1) << 32;
  return _mm512_or_si512(nibbles64(b0.qs, b1.qs), _mm512_maskz_mov_epi8(m, _mm512_set1_epi8(0x10)));
}
struct Q5_0T {
  using W = BlockQ5_0;
  static constexpr int kBias = 16;
  static __m512i codes(const W& b0, const W& b1) { return q5_codes(b0, b1); }
};
struct Q5_1T {
  using W = BlockQ5_1;
  static constexpr int kBias = 0;
  static __m512i codes(const W& b0, const W& b1) { return q5_codes(b0, b1); }
};

inline float half(uint16_t h) {
  return _cvtsh_ss(h);
}

template <class T>
struct Legacy {
  using W = typename T::W;
  using A = BlockQ8_1;

  static void scales8(const W* w, __m256* d, __m256* off) {
    if constexpr (T::kBias == 0) {
      half_pairs8_eo<sizeof(W)>(&w->d, d, off);
    } else {
      *d = halves8_eo<sizeof(W)>(&w->d);
      *off = _mm256_mul_ps(*d, _mm256_set1_ps(-static_cast<float>(T::kBias)));
    }
  }
  static float off1(const W& w) {
    if constexpr (T::kBias == 0)
      return half(w.m);
    else
      return -static_cast<float>(T::kBias) * half(w.d);
  }

  template <int NT>
  struct K {
    static void run(int64_t n, const void* vw, const void* const* va, float* out) {
      const W* w = static_cast<const W*>(vw);
      const A* a[NT];
      __m256 acc[NT], acco[NT];
      unroll<NT>([&](auto t) {
        a[t] = static_cast<const A*>(va[t]);
        acc[t] = acco[t] = _mm256_setzero_ps();
      });
      const int64_t nb = n / kQK;
      int64_t i = 0;
      for (; i + 8 <= nb; i += 8) {
        prefetch_ahead<8 * sizeof(W)>(w + i);
        __m256 wd, woff, sc[NT];
        scales8(w + i, &wd, &woff);
        unroll<NT>([&](auto t) {
          __m256 ad, as;
          half_pairs8_eo<sizeof(A)>(&a[t][i].d, &ad, &as);
          sc[t] = _mm256_mul_ps(wd, ad);
          acco[t] = _mm256_fmadd_ps(woff, as, acco[t]);
        });
        __m512i pr[NT][2];
        unroll<2>([&](auto h) {  // block pairs (4h, 4h+1) and (4h+2, 4h+3)
          const int b0 = 4 * h;
          const __m512i q0 = T::codes(w[i + b0], w[i + b0 + 1]);
          const __m512i q1 = T::codes(w[i + b0 + 2], w[i + b0 + 3]);
          unroll<NT>([&](auto t) {
            const __m512i s0 = dot_u8s8(q0, load2x32(a[t][i + b0].qs, a[t][i + b0 + 1].qs));
            const __m512i s1 = dot_u8s8(q1, load2x32(a[t][i + b0 + 2].qs, a[t][i + b0 + 3].qs));
            pr[t][h] = pair2(s0, s1);
          });
        });
        unroll<NT>([&](auto t) {
          const __m256i sums = fold(quad(pr[t][0], pr[t][1]));
          acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), sc[t], acc[t]);
        });
      }
      float tail[NT] = {};
      for (; i < nb; ++i) {  // odd blocks: the second half of the pair repeats block i, unused
        const __m512i q = T::codes(w[i], w[i]);
        for (int t = 0; t < NT; ++t) {
          const __m512i s = dot_u8s8(q, load2x32(a[t][i].qs, a[t][i].qs));
          const float isum = static_cast<float>(hsum_i32(s) / 2);
          tail[t] += half(w[i].d) * half(a[t][i].d) * isum + off1(w[i]) * half(a[t][i].s);
        }
      }
      unroll<NT>([&](auto t) { out[t] = hsum(_mm256_add_ps(acc[t], acco[t])) + tail[t]; });
    }
  };
};

// Q8_0 x Q8_0: |w| as the unsigned operand, w's sign moved onto the activation with a masked
// negate (AVX-512 has no vpsignb). Activations never hold -128, so the negate cannot overflow.
inline __m512i q8_isum(__m512i wq, __m512i aq) {
  const __mmask64 neg = _mm512_movepi8_mask(wq);
  const __m512i as = _mm512_mask_sub_epi8(aq, neg, _mm512_setzero_si512(), aq);
  return dot_u8s8(_mm512_abs_epi8(wq), as);
}

template <int NT>
struct Q8_0K {
  static void run(int64_t n, const void* vw, const void* const* va, float* out) {
    const BlockQ8_0* w = static_cast<const BlockQ8_0*>(vw);
    const BlockQ8_0* a[NT];
    __m256 acc[NT];
    unroll<NT>([&](auto t) {
      a[t] = static_cast<const BlockQ8_0*>(va[t]);
      acc[t] = _mm256_setzero_ps();
    });
    const int64_t nb = n / kQK;
    int64_t i = 0;
    for (; i + 8 <= nb; i += 8) {
      prefetch_ahead<8 * sizeof(BlockQ8_0)>(w + i);
      const __m256 wd = halves8_eo<sizeof(BlockQ8_0)>(&w[i].d);
      __m512i pr[NT][2];
      unroll<2>([&](auto h) {
        const int b0 = 4 * h;
        const __m512i w0 = load2x32(w[i + b0].qs, w[i + b0 + 1].qs);
        const __m512i w1 = load2x32(w[i + b0 + 2].qs, w[i + b0 + 3].qs);
        unroll<NT>([&](auto t) {
          const __m512i s0 = q8_isum(w0, load2x32(a[t][i + b0].qs, a[t][i + b0 + 1].qs));
          const __m512i s1 = q8_isum(w1, load2x32(a[t][i + b0 + 2].qs, a[t][i + b0 + 3].qs));
          pr[t][h] = pair2(s0, s1);
        });
      });
      unroll<NT>([&](auto t) {
        const __m256 sc = _mm256_mul_ps(wd, halves8_eo<sizeof(BlockQ8_0)>(&a[t][i].d));
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(fold(quad(pr[t][0], pr[t][1]))), sc, acc[t]);
      });
    }
    float tail[NT] = {};
    for (; i < nb; ++i) {
      const __m512i wq = load2x32(w[i].qs, w[i].qs);
      for (int t = 0; t < NT; ++t) {
        const int isum = hsum_i32(q8_isum(wq, load2x32(a[t][i].qs, a[t][i].qs))) / 2;
        tail[t] += half(w[i].d) * half(a[t][i].d) * static_cast<float>(isum);
      }
    }
    unroll<NT>([&](auto t) { out[t] = hsum(acc[t]) + tail[t]; });
  }
};

template <template <int> class K>
void one(int64_t n, float* out, const void* w, const void* act) {
  const void* acts[1] = {act};
  K<1>::run(n, w, acts, out);
}

}  // namespace

#define STRATA_AVX512_LEGACY(name, KT)                                                 \
  void vec_dot_##name(int64_t n, float* out, const void* w, const void* act) {         \
    one<KT>(n, out, w, act);                                                           \
  }                                                                                    \
  void vec_dot_tokens_##name(int64_t n, int64_t n_tok, const void* w, const void* act, \
                             int64_t act_stride, float* out, int64_t out_stride) {     \
    run_tokens<KT>(n, n_tok, w, act, act_stride, out, out_stride);                     \
  }

STRATA_AVX512_LEGACY(q4_0, Legacy<Q4_0T>::K)
STRATA_AVX512_LEGACY(q4_1, Legacy<Q4_1T>::K)
STRATA_AVX512_LEGACY(q5_0, Legacy<Q5_0T>::K)
STRATA_AVX512_LEGACY(q5_1, Legacy<Q5_1T>::K)
STRATA_AVX512_LEGACY(q8_0, Q8_0K)

}  // namespace strata::qk::avx512

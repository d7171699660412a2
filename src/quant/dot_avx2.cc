// AVX2 dot products of the 32-element block types with Q8_0 / Q8_1 activations.
//
// Per block the weight codes are unpacked once into 32 unsigned bytes and multiplied with each
// token's int8 activations by vpmaddubsw/vpmaddwd. Eight blocks are then reduced together
// (pair2/quad/oct) so a single cvt + FMA applies their 8 scales d_w * d_a, and the f16 scales of 8
// blocks are gathered with scalar loads and converted at once. Constant offsets (the -8 / -16 of
// Q4_0 / Q5_0, the mins of Q4_1 / Q5_1) never enter the element loop: they multiply the block
// sums s that Q8_1 activations carry, one FMA per 8 blocks.
#include "quant/kernels.h"
#include "quant/simd_avx2.h"

namespace strata::qk::avx2 {
namespace {

// Weight-side description of one legacy type: codes(block) gives the 32 unsigned codes
// (elements 0-15 in the low 128 bits, 16-31 in the high). The dequantized value is
// d * code + off with off = m (Q4_1/Q5_1) or -kBias * d (Q4_0/Q5_0); the dot product is
// sum_b d_b da_b sum(code * a) + sum_b off_b s_b with s_b = da_b * sum(a) from the Q8_1 block.
struct Q4_0T {
  using W = BlockQ4_0;
  static constexpr int kBias = 8;
  static __m256i codes(const W& b) { return nibbles32(b.qs); }
};
struct Q5_0T {
  using W = BlockQ5_0;
  static constexpr int kBias = 16;
  static __m256i codes(const W& b) {
    uint32_t h;
    std::memcpy(&h, b.qh, 4);
    return _mm256_or_si256(nibbles32(b.qs), bit4_bytes(h));
  }
};
struct Q4_1T {
  using W = BlockQ4_1;
  static constexpr int kBias = 0;
  static __m256i codes(const W& b) { return nibbles32(b.qs); }
};
struct Q5_1T {
  using W = BlockQ5_1;
  static constexpr int kBias = 0;
  static __m256i codes(const W& b) {
    uint32_t h;
    std::memcpy(&h, b.qh, 4);
    return _mm256_or_si256(nibbles32(b.qs), bit4_bytes(h));
  }
};

inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

template <class T>
struct Legacy {
  using W = typename T::W;
  using A = BlockQ8_1;

  // d and offset of 8 weight blocks.
  static void scales8(const W* w, __m256* d, __m256* off) {
    if constexpr (T::kBias == 0) {
      half_pairs8<sizeof(W)>(&w->d, d, off);
    } else {
      *d = halves8<sizeof(W)>(&w->d);
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
#pragma GCC unroll 8
      for (int t = 0; t < NT; ++t) {
        a[t] = static_cast<const A*>(va[t]);
        acc[t] = acco[t] = _mm256_setzero_ps();
      }
      const int64_t nb = n / kQK;
      int64_t i = 0;
      for (; i + 8 <= nb; i += 8) {
        prefetch_ahead<8 * sizeof(W)>(w + i);
        __m256 wd, woff, sc[NT];
        scales8(w + i, &wd, &woff);
#pragma GCC unroll 8
        for (int t = 0; t < NT; ++t) {
          __m256 ad, as;
          half_pairs8<sizeof(A)>(&a[t][i].d, &ad, &as);
          sc[t] = _mm256_mul_ps(wd, ad);
          acco[t] = _mm256_fmadd_ps(woff, as, acco[t]);
        }
        // Blocks in pairs -> quads -> all 8, keeping few int32 vectors live.
        __m256i qd[NT][2];
        unroll<2>([&](auto h) {
          __m256i pr[NT][2];
          unroll<2>([&](auto p) {
            const int b0 = 4 * h + 2 * p;
            const __m256i q0 = T::codes(w[i + b0]), q1 = T::codes(w[i + b0 + 1]);
            unroll<NT>([&](auto t) {
              pr[t][p] = pair2(dot_u8s8(q0, loadu(a[t][i + b0].qs)),
                               dot_u8s8(q1, loadu(a[t][i + b0 + 1].qs)));
            });
          });
          unroll<NT>([&](auto t) { qd[t][h] = quad(pr[t][0], pr[t][1]); });
        });
        unroll<NT>([&](auto t) {
          acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(oct(qd[t][0], qd[t][1])), sc[t], acc[t]);
        });
      }
      float tail[NT] = {};
      for (; i < nb; ++i) {
        const __m256i q = T::codes(w[i]);
        for (int t = 0; t < NT; ++t) {
          const float isum = static_cast<float>(hsum_i32(dot_u8s8(q, loadu(a[t][i].qs))));
          tail[t] += half(w[i].d) * half(a[t][i].d) * isum + off1(w[i]) * half(a[t][i].s);
        }
      }
#pragma GCC unroll 8
      for (int t = 0; t < NT; ++t) out[t] = hsum(_mm256_add_ps(acc[t], acco[t])) + tail[t];
    }
  };
};

// Q8_0 x Q8_0: both signed, so |w| goes in the unsigned operand and w's sign is moved onto the
// activation (vpsignb). Activations never hold -128 (see quantize.cc), so that stays exact even
// for a weight code of -128.
inline __m256i q8_isum(const BlockQ8_0& w, const int8_t* aq) {
  const __m256i wq = loadu(w.qs);
  return dot_u8s8(_mm256_abs_epi8(wq), _mm256_sign_epi8(loadu(aq), wq));
}

template <int NT>
struct Q8_0K {
  static void run(int64_t n, const void* vw, const void* const* va, float* out) {
    const BlockQ8_0* w = static_cast<const BlockQ8_0*>(vw);
    const BlockQ8_0* a[NT];
    __m256 acc[NT];
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      a[t] = static_cast<const BlockQ8_0*>(va[t]);
      acc[t] = _mm256_setzero_ps();
    }
    const int64_t nb = n / kQK;
    int64_t i = 0;
    for (; i + 8 <= nb; i += 8) {
      prefetch_ahead<8 * sizeof(BlockQ8_0)>(w + i);
      const __m256 wd = halves8<sizeof(BlockQ8_0)>(&w[i].d);
      __m256i qd[NT][2];
      unroll<2>([&](auto h) {
        __m256i pr[NT][2];
        unroll<2>([&](auto p) {
          const int b0 = 4 * h + 2 * p;
          const __m256i w0 = loadu(w[i + b0].qs), w1 = loadu(w[i + b0 + 1].qs);
          const __m256i aw0 = _mm256_abs_epi8(w0), aw1 = _mm256_abs_epi8(w1);
          unroll<NT>([&](auto t) {
            pr[t][p] = pair2(dot_u8s8(aw0, _mm256_sign_epi8(loadu(a[t][i + b0].qs), w0)),
                             dot_u8s8(aw1, _mm256_sign_epi8(loadu(a[t][i + b0 + 1].qs), w1)));
          });
        });
        unroll<NT>([&](auto t) { qd[t][h] = quad(pr[t][0], pr[t][1]); });
      });
      unroll<NT>([&](auto t) {
        const __m256 sc = _mm256_mul_ps(wd, halves8<sizeof(BlockQ8_0)>(&a[t][i].d));
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(oct(qd[t][0], qd[t][1])), sc, acc[t]);
      });
    }
    float tail[NT] = {};
    for (; i < nb; ++i)
      for (int t = 0; t < NT; ++t)
        tail[t] += half(w[i].d) * half(a[t][i].d) *
                   static_cast<float>(hsum_i32(q8_isum(w[i], a[t][i].qs)));
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) out[t] = hsum(acc[t]) + tail[t];
  }
};

template <template <int> class K>
void one(int64_t n, float* out, const void* w, const void* act) {
  const void* acts[1] = {act};
  K<1>::run(n, w, acts, out);
}

}  // namespace

#define STRATA_AVX2_LEGACY(name, KT)                                                   \
  void vec_dot_##name(int64_t n, float* out, const void* w, const void* act) {         \
    one<KT>(n, out, w, act);                                                           \
  }                                                                                    \
  void vec_dot_tokens_##name(int64_t n, int64_t n_tok, const void* w, const void* act, \
                             int64_t act_stride, float* out, int64_t out_stride) {     \
    run_tokens<KT>(n, n_tok, w, act, act_stride, out, out_stride);                     \
  }

STRATA_AVX2_LEGACY(q4_0, Legacy<Q4_0T>::K)
STRATA_AVX2_LEGACY(q4_1, Legacy<Q4_1T>::K)
STRATA_AVX2_LEGACY(q5_0, Legacy<Q5_0T>::K)
STRATA_AVX2_LEGACY(q5_1, Legacy<Q5_1T>::K)
STRATA_AVX2_LEGACY(q8_0, Q8_0K)

}  // namespace strata::qk::avx2

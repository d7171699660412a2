// AVX2 + FMA + F16C float kernels. Compiled with -mavx2 -mfma -mf16c (see src/CMakeLists.txt);
// only called when the CPU has them.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "core/half.h"
#include "ops/cpu/float_kernels.h"
#include "ops/cpu/gemm_nn.h"

// glibc's 8-lane expf (libmvec; the x86-64 vector function ABI name).
extern "C" __m256 _ZGVdN8v_expf(__m256);

namespace strata::cpu {
namespace {

inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

inline __m256i tail_mask(int64_t r) {  // first r (0..8) lanes set
  static const int32_t m[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(m + 8 - r));
}

inline __m256 load_f16(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m256 load_bf16(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

float dot_f32(int64_t n, const float* a, const float* b) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8)
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s1);
  }
  return hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

template <__m256 (*Load)(const uint16_t*), float (*Cvt)(uint16_t)>
float dot_half(int64_t n, const uint16_t* w, const float* x) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(Load(w + i), _mm256_loadu_ps(x + i), s0);
    s1 = _mm256_fmadd_ps(Load(w + i + 8), _mm256_loadu_ps(x + i + 8), s1);
    s2 = _mm256_fmadd_ps(Load(w + i + 16), _mm256_loadu_ps(x + i + 16), s2);
    s3 = _mm256_fmadd_ps(Load(w + i + 24), _mm256_loadu_ps(x + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(Load(w + i), _mm256_loadu_ps(x + i), s0);
  float s = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; i < n; ++i) s += Cvt(w[i]) * x[i];
  return s;
}

// Two rows anywhere (w and w1), one token: each x vector is loaded once
// for both rows (see the AVX-512 version for why decode pairs far-apart rows).
template <__m256 (*Load)(const uint16_t*), float (*Cvt)(uint16_t)>
void dot2_half(int64_t n, const uint16_t* w, const uint16_t* w1, const float* x, float* out) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, b0 = a0, b1 = a0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
    a0 = _mm256_fmadd_ps(Load(w + i), x0, a0);
    b0 = _mm256_fmadd_ps(Load(w1 + i), x0, b0);
    a1 = _mm256_fmadd_ps(Load(w + i + 8), x1, a1);
    b1 = _mm256_fmadd_ps(Load(w1 + i + 8), x1, b1);
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 x0 = _mm256_loadu_ps(x + i);
    a0 = _mm256_fmadd_ps(Load(w + i), x0, a0);
    b0 = _mm256_fmadd_ps(Load(w1 + i), x0, b0);
  }
  float s0 = hsum(_mm256_add_ps(a0, a1)), s1 = hsum(_mm256_add_ps(b0, b1));
  for (; i < n; ++i) {
    s0 += Cvt(w[i]) * x[i];
    s1 += Cvt(w1[i]) * x[i];
  }
  out[0] = s0;
  out[1] = s1;
}

// R weight rows x T tokens over k elements: R*T accumulators, R converted weight vectors per step,
// each token's x vector loaded once per step and used for R FMAs. Add: accumulate into y.
template <int R, int T, __m256 (*Load)(const uint16_t*), float (*Cvt)(uint16_t)>
inline void few_tile(int64_t k, const uint16_t* w, int64_t ldw, const float* x, int64_t ldx,
                     float* y, int64_t ldy, bool add) {
  __m256 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    __m256 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = Load(w + r * ldw + i);
    for (int t = 0; t < T; ++t) {
      const __m256 xv = _mm256_loadu_ps(x + t * ldx + i);
      for (int r = 0; r < R; ++r) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) {
      float s = hsum(acc[r][t]);
      for (int64_t j = i; j < k; ++j) s += Cvt(w[r * ldw + j]) * x[t * ldx + j];
      y[t * ldy + r] = add ? y[t * ldy + r] + s : s;
    }
}

template <int R, __m256 (*Load)(const uint16_t*), float (*Cvt)(uint16_t)>
inline void few_rows(int64_t nt, int64_t k, const uint16_t* w, int64_t ldw, const float* x,
                     int64_t ldx, float* y, int64_t ldy, bool add) {
  int64_t t = 0;
  for (; t + 2 <= nt; t += 2)
    few_tile<R, 2, Load, Cvt>(k, w, ldw, x + t * ldx, ldx, y + t * ldy, ldy, add);
  if (t < nt) few_tile<R, 1, Load, Cvt>(k, w, ldw, x + t * ldx, ldx, y + t * ldy, ldy, add);
}

// Rows in blocks of four; within a block, k in chunks small enough that the block's weights stay
// in L1 while every token passes over them (the tokens' chunk comes from L2).
template <__m256 (*Load)(const uint16_t*), float (*Cvt)(uint16_t)>
void gemm_few(int64_t nt, int64_t nr, int64_t k, const uint16_t* w, int64_t ldw, const float* x,
              int64_t ldx, float* y, int64_t ldy) {
  constexpr int64_t kChunk = 1024;
  for (int64_t r = 0; r < nr; r += 4) {
    const int64_t rows = std::min<int64_t>(4, nr - r);
    for (int64_t c = 0; c < k; c += kChunk) {
      const int64_t kc = std::min(kChunk, k - c);
      const uint16_t* wr = w + r * ldw + c;
      if (rows == 4) {
        few_rows<4, Load, Cvt>(nt, kc, wr, ldw, x + c, ldx, y + r, ldy, c > 0);
      } else {
        for (int64_t i = 0; i < rows; ++i)
          few_rows<1, Load, Cvt>(nt, kc, wr + i * ldw, ldw, x + c, ldx, y + r + i, ldy, c > 0);
      }
    }
  }
}

void cvt_f16_f32(int64_t n, const uint16_t* s, float* d) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(d + i, load_f16(s + i));
  for (; i < n; ++i) d[i] = fp16_to_f32(s[i]);
}
void cvt_bf16_f32(int64_t n, const uint16_t* s, float* d) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(d + i, load_bf16(s + i));
  for (; i < n; ++i) d[i] = bf16_to_f32(s[i]);
}
void cvt_f32_f16(int64_t n, const float* s, uint16_t* d) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) d[i] = f32_to_fp16(s[i]);
}

float exp_sum(int64_t n, float* x, float shift) {
  const __m256 s = _mm256_set1_ps(shift);
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = _ZGVdN8v_expf(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
    _mm256_storeu_ps(x + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  float sum = hsum(acc);
  for (; i < n; ++i) sum += x[i] = std::exp(x[i] - shift);
  return sum;
}

void silu_mul(int64_t n, float* g, const float* u) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(g + i);
    const __m256 e = _ZGVdN8v_expf(_mm256_sub_ps(_mm256_setzero_ps(), x));
    _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e)),
                                          _mm256_loadu_ps(u + i)));
  }
  for (; i < n; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void axpy(int64_t n, float a, const float* x, float* y) {
  const __m256 av = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

// gemm_nn (gemm_nn.h) on 8-lane vectors, 4 rows per block.
struct Ymm {
  using Reg = __m256;
  using Mask = __m256i;
  static constexpr int64_t kWidth = 8;
  static constexpr int kRows = 4;
  static Mask full() { return _mm256_set1_epi32(-1); }
  static Mask tail(int64_t n) { return tail_mask(n); }
  static Reg load(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  static void store(float* p, Mask m, Reg v) { _mm256_maskstore_ps(p, m, v); }
  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg set1(float x) { return _mm256_set1_ps(x); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
};

}  // namespace

const FloatKernels& float_kernels_avx2() {
  static const FloatKernels k{dot_f32,
                              dot_half<load_f16, fp16_to_f32>,
                              dot_half<load_bf16, bf16_to_f32>,
                              cvt_f16_f32,
                              cvt_bf16_f32,
                              cvt_f32_f16,
                              exp_sum,
                              silu_mul,
                              axpy,
                              dot2_half<load_f16, fp16_to_f32>,
                              dot2_half<load_bf16, bf16_to_f32>,
                              gemm_few<load_f16, fp16_to_f32>,
                              gemm_few<load_bf16, bf16_to_f32>,
                              nn::gemm_nn<Ymm>};
  return k;
}

}  // namespace strata::cpu

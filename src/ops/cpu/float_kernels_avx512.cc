// AVX-512F/BW/VL float kernels (same structure as the AVX2 file, 16 lanes, masked tails).
// Only called when the CPU reports AVX-512; tests compare them with the scalar reference
// wherever they can run.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "core/half.h"
#include "ops/cpu/float_kernels.h"
#include "ops/cpu/gemm_nn.h"

// glibc's 16-lane expf (libmvec; the x86-64 vector function ABI name).
extern "C" __m512 _ZGVeN16v_expf(__m512);

namespace strata::cpu {
namespace {

inline __mmask16 tail16(int64_t r) {
  return static_cast<__mmask16>((1u << r) - 1u);
}

inline __m512 load_f16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline __m512 load_f16_mask(const uint16_t* p, __mmask16 m) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}
inline __m512 load_bf16(const uint16_t* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
inline __m512 load_bf16_mask(const uint16_t* p, __mmask16 m) {
  const __m256i h = _mm256_maskz_loadu_epi16(m, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

float dot_f32(int64_t n, const float* a, const float* b) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
    s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
  }
  for (; i + 16 <= n; i += 16)
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
  if (i < n) {
    const __mmask16 m = tail16(n - i);
    s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

template <__m512 (*Load)(const uint16_t*), __m512 (*LoadM)(const uint16_t*, __mmask16)>
float dot_half(int64_t n, const uint16_t* w, const float* x) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    s0 = _mm512_fmadd_ps(Load(w + i), _mm512_loadu_ps(x + i), s0);
    s1 = _mm512_fmadd_ps(Load(w + i + 16), _mm512_loadu_ps(x + i + 16), s1);
    s2 = _mm512_fmadd_ps(Load(w + i + 32), _mm512_loadu_ps(x + i + 32), s2);
    s3 = _mm512_fmadd_ps(Load(w + i + 48), _mm512_loadu_ps(x + i + 48), s3);
  }
  for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(Load(w + i), _mm512_loadu_ps(x + i), s0);
  if (i < n) {
    const __mmask16 m = tail16(n - i);
    s1 = _mm512_fmadd_ps(LoadM(w + i, m), _mm512_maskz_loadu_ps(m, x + i), s1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

// Two rows anywhere (w and w1), one token: each x vector is loaded once
// for both. Decode gives each thread rows from two far-apart parts of the matrix, so the thread
// reads two sequential streams; with x loaded half as often, x (up to 22 KiB of floats for an
// FFN's down projection) stays in L1 while the weights stream past. Microbenchmark, 2 threads
// against the read test: 0.95 of its bandwidth at k = 5632 where one row at a time got 0.76.
template <__m512 (*Load)(const uint16_t*), __m512 (*LoadM)(const uint16_t*, __mmask16)>
void dot2_half(int64_t n, const uint16_t* w, const uint16_t* w1, const float* x, float* out) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, b0 = a0, b1 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
    a0 = _mm512_fmadd_ps(Load(w + i), x0, a0);
    b0 = _mm512_fmadd_ps(Load(w1 + i), x0, b0);
    a1 = _mm512_fmadd_ps(Load(w + i + 16), x1, a1);
    b1 = _mm512_fmadd_ps(Load(w1 + i + 16), x1, b1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : tail16(n - i);
    const __m512 x0 = _mm512_maskz_loadu_ps(m, x + i);
    a0 = _mm512_fmadd_ps(LoadM(w + i, m), x0, a0);
    b0 = _mm512_fmadd_ps(LoadM(w1 + i, m), x0, b0);
  }
  out[0] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
  out[1] = _mm512_reduce_add_ps(_mm512_add_ps(b0, b1));
}

void cvt_f16_f32(int64_t n, const uint16_t* s, float* d) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(d + i, load_f16(s + i));
  if (i < n) _mm512_mask_storeu_ps(d + i, tail16(n - i), load_f16_mask(s + i, tail16(n - i)));
}
void cvt_bf16_f32(int64_t n, const uint16_t* s, float* d) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(d + i, load_bf16(s + i));
  if (i < n) _mm512_mask_storeu_ps(d + i, tail16(n - i), load_bf16_mask(s + i, tail16(n - i)));
}
void cvt_f32_f16(int64_t n, const float* s, uint16_t* d) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i),
                        _mm512_cvtps_ph(_mm512_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) d[i] = f32_to_fp16(s[i]);
}

float exp_sum(int64_t n, float* x, float shift) {
  const __m512 s = _mm512_set1_ps(shift);
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 e = _ZGVeN16v_expf(_mm512_sub_ps(_mm512_loadu_ps(x + i), s));
    _mm512_storeu_ps(x + i, e);
    acc = _mm512_add_ps(acc, e);
  }
  if (i < n) {  // lanes past n read -inf: exp gives 0
    const __mmask16 m = tail16(n - i);
    const __m512 v = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), m, x + i);
    const __m512 e = _ZGVeN16v_expf(_mm512_sub_ps(v, s));
    _mm512_mask_storeu_ps(x + i, m, e);
    acc = _mm512_add_ps(acc, e);
  }
  return _mm512_reduce_add_ps(acc);
}

inline __m512 silu_mul16(__m512 g, __m512 u) {
  const __m512 e = _ZGVeN16v_expf(_mm512_sub_ps(_mm512_setzero_ps(), g));
  return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}

void silu_mul(int64_t n, float* g, const float* u) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(g + i, silu_mul16(_mm512_loadu_ps(g + i), _mm512_loadu_ps(u + i)));
  if (i < n) {
    const __mmask16 m = tail16(n - i);
    _mm512_mask_storeu_ps(
        g + i, m, silu_mul16(_mm512_maskz_loadu_ps(m, g + i), _mm512_maskz_loadu_ps(m, u + i)));
  }
}

void axpy(int64_t n, float a, const float* x, float* y) {
  const __m512 av = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(av, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

// gemm_nn (gemm_nn.h) on 16-lane vectors, 6 rows per block.
struct Zmm {
  using Reg = __m512;
  using Mask = __mmask16;
  static constexpr int64_t kWidth = 16;
  static constexpr int kRows = 6;
  static Mask full() { return 0xffff; }
  static Mask tail(int64_t n) { return tail16(n); }
  static Reg load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(float* p, Mask m, Reg v) { _mm512_mask_storeu_ps(p, m, v); }
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg set1(float x) { return _mm512_set1_ps(x); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
};

}  // namespace

const FloatKernels& float_kernels_avx512() {
  static const FloatKernels k{
      dot_f32, dot_half<load_f16, load_f16_mask>, dot_half<load_bf16, load_bf16_mask>, cvt_f16_f32,
      cvt_bf16_f32, cvt_f32_f16, exp_sum, silu_mul, axpy, dot2_half<load_f16, load_f16_mask>,
      dot2_half<load_bf16, load_bf16_mask>,
      // AVX-512 machines have AVX2: the AVX2 few-token kernels serve them.
      float_kernels_avx2().gemm_few_f16, float_kernels_avx2().gemm_few_bf16, nn::gemm_nn<Zmm>};
  return k;
}

}  // namespace strata::cpu

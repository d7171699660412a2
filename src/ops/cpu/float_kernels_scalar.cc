// Portable reference float kernels: the definition every vectorised kernel is tested against.
#include <cmath>

#include "core/half.h"
#include "ops/cpu/float_kernels.h"

namespace strata::cpu {
namespace {

float dot_f32(int64_t n, const float* a, const float* b) {
  // Four partial sums: the same association as the vector kernels use per lane group, and
  // fewer rounding steps than one running sum.
  float s[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int j = 0; j < 4; ++j) s[j] += a[i + j] * b[i + j];
  for (; i < n; ++i) s[0] += a[i] * b[i];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

float dot_f16(int64_t n, const uint16_t* w, const float* x) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += fp16_to_f32(w[i]) * x[i];
  return s;
}

float dot_bf16(int64_t n, const uint16_t* w, const float* x) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += bf16_to_f32(w[i]) * x[i];
  return s;
}

void cvt_f16_f32(int64_t n, const uint16_t* s, float* d) {
  for (int64_t i = 0; i < n; ++i) d[i] = fp16_to_f32(s[i]);
}
void cvt_bf16_f32(int64_t n, const uint16_t* s, float* d) {
  for (int64_t i = 0; i < n; ++i) d[i] = bf16_to_f32(s[i]);
}
void cvt_f32_f16(int64_t n, const float* s, uint16_t* d) {
  for (int64_t i = 0; i < n; ++i) d[i] = f32_to_fp16(s[i]);
}

float exp_sum(int64_t n, float* x, float shift) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i] = std::exp(x[i] - shift);
  return s;
}

void silu_mul(int64_t n, float* g, const float* u) {
  for (int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void axpy(int64_t n, float a, const float* x, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void gemm_nn(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
             int64_t ldb, float* c, int64_t ldc, bool add) {
  for (int64_t i = 0; i < m; ++i) {
    float* ci = c + i * ldc;
    if (!add)
      for (int64_t j = 0; j < n; ++j) ci[j] = 0;
    for (int64_t p = 0; p < k; ++p) axpy(n, a[i * lda + p], b + p * ldb, ci);
  }
}

}  // namespace

const FloatKernels& float_kernels_scalar() {
  static const FloatKernels k{dot_f32,     dot_f16, dot_bf16, cvt_f16_f32, cvt_bf16_f32,
                              cvt_f32_f16, exp_sum, silu_mul, axpy,        nullptr,
                              nullptr,     nullptr, nullptr,  gemm_nn};
  return k;
}

}  // namespace strata::cpu

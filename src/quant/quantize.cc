// Reference quantizers for the legacy 32-element types and the activation formats. Weight types
// fit each block with the scale searches in fit.h, then round with the half-precision scale that
// is actually stored, so the codes are the best ones for the dequantizer's d (not for the
// unrounded one).
#include <algorithm>
#include <cmath>

#include "core/half.h"
#include "quant/fit.h"
#include "quant/kernels.h"

namespace strata::qk {
namespace {

inline float round_half(float v) {
  return fp16_to_f32(f32_to_fp16(v));
}

// Symmetric legacy block: codes q + bias in [0, 2*bias), stored d. Returns the codes.
void legacy_symmetric(const float* x, int qmax, uint16_t* d_out, uint8_t* codes) {
  int8_t q[kQK];
  const float d = round_half(fit_symmetric(x, kQK, qmax, q));
  *d_out = f32_to_fp16(d);
  const float id = d != 0 ? 1.0f / d : 0.0f;
  for (int j = 0; j < kQK; ++j)
    codes[j] = static_cast<uint8_t>(round_clamp(x[j] * id, -qmax - 1, qmax) + qmax + 1);
}

void legacy_asymmetric(const float* x, int qmax, uint16_t* d_out, uint16_t* m_out, uint8_t* codes) {
  float a, b;
  fit_asymmetric(x, kQK, qmax, false, &a, &b, codes);
  a = round_half(a);
  b = round_half(b);
  *d_out = f32_to_fp16(a);
  *m_out = f32_to_fp16(b);
  const float ia = a != 0 ? 1.0f / a : 0.0f;
  for (int j = 0; j < kQK; ++j)
    codes[j] = static_cast<uint8_t>(round_clamp((x[j] - b) * ia, 0, qmax));
}

void pack_nibbles(const uint8_t* codes, uint8_t* qs) {
  for (int j = 0; j < 16; ++j)
    qs[j] = static_cast<uint8_t>((codes[j] & 15) | (codes[j + 16] & 15) << 4);
}

void pack_high_bits(const uint8_t* codes, uint8_t* qh) {
  uint32_t h = 0;
  for (int j = 0; j < kQK; ++j) h |= static_cast<uint32_t>((codes[j] >> 4) & 1) << j;
  std::memcpy(qh, &h, 4);
}

// Activation blocks: d = max|x| / 127, codes in [-127, 127] (never -128: the AVX2 kernels take
// the activation's sign with vpsignb, which cannot negate -128).
float quantize_act_block(const float* x, int n, int8_t* qs) {
  float amax = 0;
  for (int j = 0; j < n; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  for (int j = 0; j < n; ++j) qs[j] = static_cast<int8_t>(round_clamp(x[j] * id, -127, 127));
  return d;
}

}  // namespace

void quantize_row_q4_0(const float* x, void* dst, int64_t n) {
  BlockQ4_0* y = static_cast<BlockQ4_0*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    uint8_t c[kQK];
    legacy_symmetric(x, 7, &y[i].d, c);
    pack_nibbles(c, y[i].qs);
  }
}

void quantize_row_q4_1(const float* x, void* dst, int64_t n) {
  BlockQ4_1* y = static_cast<BlockQ4_1*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    uint8_t c[kQK];
    legacy_asymmetric(x, 15, &y[i].d, &y[i].m, c);
    pack_nibbles(c, y[i].qs);
  }
}

void quantize_row_q5_0(const float* x, void* dst, int64_t n) {
  BlockQ5_0* y = static_cast<BlockQ5_0*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    uint8_t c[kQK];
    legacy_symmetric(x, 15, &y[i].d, c);
    pack_nibbles(c, y[i].qs);
    pack_high_bits(c, y[i].qh);
  }
}

void quantize_row_q5_1(const float* x, void* dst, int64_t n) {
  BlockQ5_1* y = static_cast<BlockQ5_1*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    uint8_t c[kQK];
    legacy_asymmetric(x, 31, &y[i].d, &y[i].m, c);
    pack_nibbles(c, y[i].qs);
    pack_high_bits(c, y[i].qh);
  }
}

// Q8_0 doubles as weight and activation format; max/127 is already within a few percent of the
// best symmetric 8-bit scale, so no search.
void quantize_row_q8_0(const float* x, void* dst, int64_t n) {
  BlockQ8_0* y = static_cast<BlockQ8_0*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK)
    y[i].d = f32_to_fp16(quantize_act_block(x, kQK, y[i].qs));
}

void quantize_row_q8_1(const float* x, void* dst, int64_t n) {
  BlockQ8_1* y = static_cast<BlockQ8_1*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    y[i].d = f32_to_fp16(quantize_act_block(x, kQK, y[i].qs));
    int sum = 0;
    for (int j = 0; j < kQK; ++j) sum += y[i].qs[j];
    // s uses the stored (rounded) d so that s == sum of the dequantized values up to f16 rounding.
    y[i].s = f32_to_fp16(fp16_to_f32(y[i].d) * static_cast<float>(sum));
  }
}

void quantize_row_q8_k(const float* x, void* dst, int64_t n) {
  BlockQ8_K* y = static_cast<BlockQ8_K*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    y[i].d = quantize_act_block(x, kQKK, y[i].qs);
    for (int s = 0; s < 16; ++s) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += y[i].qs[16 * s + j];
      y[i].bsums[s] = static_cast<int16_t>(sum);
    }
  }
}

}  // namespace strata::qk

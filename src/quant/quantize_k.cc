// Reference quantizers for the K-quants. Two levels: every sub-block gets a least-squares-searched
// scale (and min) from fit.h; those are then quantized against a per-super-block f16 scale (6, 4
// or 8 bits), and finally every element is re-rounded against the scale/min the dequantizer will
// really use, so the second-level rounding costs as little as possible.
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

// Asymmetric K-quant super-block: n_sub sub-blocks of `sub` elements, codes [0, qmax], scales and
// mins quantized to [0, smax]. Outputs the stored d/dmin, the sub-block scale/min codes and the
// element codes L[256].
void kquant_asymmetric(const float* x, int sub, int qmax, int smax, uint16_t* d_out,
                       uint16_t* dmin_out, uint8_t* sc, uint8_t* mn, uint8_t* L) {
  const int n_sub = kQKK / sub;
  float a[16], m[16];
  float amax = 0, mmax = 0;
  for (int s = 0; s < n_sub; ++s) {
    float b;
    fit_asymmetric(x + s * sub, sub, qmax, true, &a[s], &b, L + s * sub);
    m[s] = -b;
    amax = std::max(amax, a[s]);
    mmax = std::max(mmax, m[s]);
  }
  const float d = round_half(amax / static_cast<float>(smax));
  const float dmin = round_half(mmax / static_cast<float>(smax));
  *d_out = f32_to_fp16(d);
  *dmin_out = f32_to_fp16(dmin);
  const float id = d > 0 ? 1.0f / d : 0.0f, idmin = dmin > 0 ? 1.0f / dmin : 0.0f;
  for (int s = 0; s < n_sub; ++s) {
    sc[s] = static_cast<uint8_t>(round_clamp(a[s] * id, 0, smax));
    mn[s] = static_cast<uint8_t>(round_clamp(m[s] * idmin, 0, smax));
    const float ds = d * sc[s], ms = dmin * mn[s];
    const float ids = ds > 0 ? 1.0f / ds : 0.0f;
    for (int j = s * sub; j < (s + 1) * sub; ++j)
      L[j] = static_cast<uint8_t>(round_clamp((x[j] + ms) * ids, 0, qmax));
  }
}

// Symmetric K-quant super-block of 16 sub-blocks of 16: codes [-qmax-1, qmax], signed sub-block
// scales in [-smax-1, smax]. The scale of largest magnitude maps to -smax-1 (sign folded into d).
// Returns d; sc gets the signed scale codes, L the codes biased by qmax+1.
float kquant_symmetric(const float* x, int qmax, int smax, int8_t* sc, uint8_t* L) {
  float a[16], amax = 0, avmax = 0;
  int8_t q[16];
  for (int s = 0; s < 16; ++s) {
    a[s] = fit_symmetric(x + 16 * s, 16, qmax, q);
    if (std::fabs(a[s]) > amax) amax = std::fabs(a[s]), avmax = a[s];
  }
  const float d = round_half(avmax / static_cast<float>(-smax - 1));
  const float id = d != 0 ? 1.0f / d : 0.0f;
  for (int s = 0; s < 16; ++s) {
    sc[s] = static_cast<int8_t>(round_clamp(a[s] * id, -smax - 1, smax));
    const float ds = d * sc[s];
    const float ids = ds != 0 ? 1.0f / ds : 0.0f;
    for (int j = 16 * s; j < 16 * s + 16; ++j)
      L[j] = static_cast<uint8_t>(round_clamp(x[j] * ids, -qmax - 1, qmax) + qmax + 1);
  }
  return d;
}

// 2-bit planes shared by Q2_K and Q3_K: element 128h + 32j + l -> bits 2j of qs[32h + l].
void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      uint8_t v = 0;
      for (int j = 0; j < 4; ++j)
        v |= static_cast<uint8_t>((L[128 * h + 32 * j + l] & 3) << (2 * j));
      qs[32 * h + l] = v;
    }
}

// Q4_K/Q5_K nibbles: element 64k + l -> low nibble of qs[32k + l], 64k + 32 + l -> high nibble.
void pack_4bit_k(const uint8_t* L, uint8_t* qs) {
  for (int k = 0; k < 4; ++k)
    for (int l = 0; l < 32; ++l)
      qs[32 * k + l] = static_cast<uint8_t>((L[64 * k + l] & 15) | (L[64 * k + 32 + l] & 15) << 4);
}

}  // namespace

void quantize_row_q2_k(const float* x, void* dst, int64_t n) {
  BlockQ2_K* y = static_cast<BlockQ2_K*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    uint8_t sc[16], mn[16], L[kQKK];
    kquant_asymmetric(x, 16, 3, 15, &y[i].d, &y[i].dmin, sc, mn, L);
    for (int s = 0; s < 16; ++s) y[i].scales[s] = static_cast<uint8_t>(sc[s] | mn[s] << 4);
    pack_2bit(L, y[i].qs);
  }
}

void quantize_row_q3_k(const float* x, void* dst, int64_t n) {
  BlockQ3_K* y = static_cast<BlockQ3_K*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    int8_t sc[16];
    uint8_t L[kQKK], biased[16];
    y[i].d = f32_to_fp16(kquant_symmetric(x, 3, 31, sc, L));
    for (int s = 0; s < 16; ++s) biased[s] = static_cast<uint8_t>(sc[s] + 32);
    q3k_pack_scales(biased, y[i].scales);
    // L = q + 4 in [0, 7]: bit 2 goes to hmask (set means "not lowered by 4"), bits 0-1 to qs.
    std::memset(y[i].hmask, 0, sizeof(y[i].hmask));
    for (int j = 0; j < kQKK; ++j) {
      if (L[j] >= 4) {
        const int h = j / 128, jj = (j % 128) / 32, l = j % 32;
        y[i].hmask[l] |= static_cast<uint8_t>(1 << (4 * h + jj));
        L[j] -= 4;
      }
    }
    pack_2bit(L, y[i].qs);
  }
}

void quantize_row_q4_k(const float* x, void* dst, int64_t n) {
  BlockQ4_K* y = static_cast<BlockQ4_K*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    uint8_t sc[8], mn[8], L[kQKK];
    kquant_asymmetric(x, 32, 15, 63, &y[i].d, &y[i].dmin, sc, mn, L);
    q4k_pack_scales_mins(sc, mn, y[i].scales);
    pack_4bit_k(L, y[i].qs);
  }
}

void quantize_row_q5_k(const float* x, void* dst, int64_t n) {
  BlockQ5_K* y = static_cast<BlockQ5_K*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    uint8_t sc[8], mn[8], L[kQKK];
    kquant_asymmetric(x, 32, 31, 63, &y[i].d, &y[i].dmin, sc, mn, L);
    q4k_pack_scales_mins(sc, mn, y[i].scales);
    std::memset(y[i].qh, 0, sizeof(y[i].qh));
    for (int k = 0; k < 4; ++k)
      for (int l = 0; l < 32; ++l) {
        y[i].qh[l] |= static_cast<uint8_t>(((L[64 * k + l] >> 4) & 1) << (2 * k));
        y[i].qh[l] |= static_cast<uint8_t>(((L[64 * k + 32 + l] >> 4) & 1) << (2 * k + 1));
      }
    pack_4bit_k(L, y[i].qs);
  }
}

void quantize_row_q6_k(const float* x, void* dst, int64_t n) {
  BlockQ6_K* y = static_cast<BlockQ6_K*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    uint8_t L[kQKK];
    y[i].d = f32_to_fp16(kquant_symmetric(x, 31, 127, y[i].scales, L));
    for (int h = 0; h < 2; ++h)
      for (int l = 0; l < 32; ++l) {
        const uint8_t* e = L + 128 * h;
        y[i].ql[64 * h + l] = static_cast<uint8_t>((e[l] & 15) | (e[64 + l] & 15) << 4);
        y[i].ql[64 * h + 32 + l] = static_cast<uint8_t>((e[32 + l] & 15) | (e[96 + l] & 15) << 4);
        y[i].qh[32 * h + l] = static_cast<uint8_t>((e[l] >> 4) | (e[32 + l] >> 4) << 2 |
                                                   (e[64 + l] >> 4) << 4 | (e[96 + l] >> 4) << 6);
      }
  }
}

}  // namespace strata::qk

// How the decode mat-vec kernels split a quant block among lanes: lane_<type>(block, part)
// unpacks part `part` of a block into registers once, lane_dot(lane, xb) dots it with one token's
// activations (xb = the activations of the block's first element). Summed over all parts, the
// lane dots are the block's dot product. Host-and-device, so host_check.cu runs exactly this code
// against the CPU dequantizers. (No #pragma unroll here: the host compiler would warn; the loops
// have constant trip counts and nvcc unrolls them at -O3.)
#pragma once
#include <cmath>

#include "ops/cuda/quant_decode.cuh"

namespace strata::cuda::dev {

// Q8_0, 4 parts: part p holds elements 8p .. 8p+7.
constexpr int kQ8_0Parts = 4;
struct LaneQ8_0 {
  float d;
  float q[8];
  int off;
};
STRATA_HD LaneQ8_0 lane_q8_0(const BlockQ8_0& b, int part) {
  LaneQ8_0 L;
  L.d = half_bits(b.d);
  L.off = 8 * part;
  for (int j = 0; j < 8; ++j) L.q[j] = static_cast<float>(b.qs[8 * part + j]);
  return L;
}
STRATA_HD float lane_dot(const LaneQ8_0& L, const float* xb) {
  float s = 0.0f;
  for (int j = 0; j < 8; ++j) s = fmaf(L.q[j], xb[L.off + j], s);
  return L.d * s;
}

// Q4_0, 4 parts: part p holds bytes 4p .. 4p+3, i.e. elements 4p.. (low nibbles) and 16+4p..
// (high nibbles).
constexpr int kQ4_0Parts = 4;
struct LaneQ4_0 {
  float d;
  float lo[4], hi[4];
  int off;
};
STRATA_HD LaneQ4_0 lane_q4_0(const BlockQ4_0& b, int part) {
  LaneQ4_0 L;
  L.d = half_bits(b.d);
  L.off = 4 * part;
  for (int j = 0; j < 4; ++j) {
    const uint8_t byte = b.qs[4 * part + j];
    L.lo[j] = static_cast<float>((byte & 15) - 8);
    L.hi[j] = static_cast<float>((byte >> 4) - 8);
  }
  return L;
}
STRATA_HD float lane_dot(const LaneQ4_0& L, const float* xb) {
  float s = 0.0f;
  for (int j = 0; j < 4; ++j)
    s = fmaf(L.lo[j], xb[L.off + j], fmaf(L.hi[j], xb[L.off + 16 + j], s));
  return L.d * s;
}

// Q4_K, 16 parts: part p takes 64-element chunk k = p/4 and positions l0 .. l0+7 (l0 = 8 (p%4))
// of both its halves: elements 64k + l0.. (low nibbles, sub-block 2k) and 64k + 32 + l0.. (high
// nibbles, sub-block 2k+1).
constexpr int kQ4_KParts = 16;
struct LaneQ4_K {
  float d1, m1, d2, m2;
  float lo[8], hi[8];
  int off;
};
STRATA_HD LaneQ4_K lane_q4_k(const BlockQ4_K& b, int part) {
  const int k = part >> 2, l0 = (part & 3) * 8;
  int sc0, mn0, sc1, mn1;
  q4k_scale_min(b.scales, 2 * k, &sc0, &mn0);
  q4k_scale_min(b.scales, 2 * k + 1, &sc1, &mn1);
  const float d = half_bits(b.d), dmin = half_bits(b.dmin);
  LaneQ4_K L;
  L.d1 = d * static_cast<float>(sc0);
  L.m1 = dmin * static_cast<float>(mn0);
  L.d2 = d * static_cast<float>(sc1);
  L.m2 = dmin * static_cast<float>(mn1);
  L.off = 64 * k + l0;
  for (int j = 0; j < 8; ++j) {
    const uint8_t byte = b.qs[32 * k + l0 + j];
    L.lo[j] = static_cast<float>(byte & 15);
    L.hi[j] = static_cast<float>(byte >> 4);
  }
  return L;
}
STRATA_HD float lane_dot(const LaneQ4_K& L, const float* xb) {
  const float* x = xb + L.off;
  float s_lo = 0.0f, s_hi = 0.0f, x_lo = 0.0f, x_hi = 0.0f;
  for (int j = 0; j < 8; ++j) {
    s_lo = fmaf(L.lo[j], x[j], s_lo);
    s_hi = fmaf(L.hi[j], x[32 + j], s_hi);
    x_lo += x[j];
    x_hi += x[32 + j];
  }
  return L.d1 * s_lo - L.m1 * x_lo + L.d2 * s_hi - L.m2 * x_hi;
}

// Q6_K, 16 parts: part p takes half h = p/8 and positions l0 .. l0+3 (l0 = 4 (p%8)) of the
// half's four 32-element planes j, each with its own scale: elements 128h + 32j + l0 ...
constexpr int kQ6_KParts = 16;
struct LaneQ6_K {
  float dl[4];
  float v[4][4];
  int off;
};
STRATA_HD LaneQ6_K lane_q6_k(const BlockQ6_K& b, int part) {
  const int h = part >> 3, l0 = (part & 7) * 4;
  const float d = half_bits(b.d);
  LaneQ6_K L;
  L.off = 128 * h + l0;
  for (int j = 0; j < 4; ++j) {
    L.dl[j] = d * static_cast<float>(b.scales[8 * h + 2 * j + (l0 >> 4)]);
    for (int l = 0; l < 4; ++l) {
      const uint8_t lb = b.ql[64 * h + l0 + l + 32 * (j & 1)];
      const int lo4 = j >= 2 ? (lb >> 4) : (lb & 15);
      L.v[j][l] = static_cast<float>((lo4 | (((b.qh[32 * h + l0 + l] >> (2 * j)) & 3) << 4)) - 32);
    }
  }
  return L;
}
STRATA_HD float lane_dot(const LaneQ6_K& L, const float* xb) {
  float acc = 0.0f;
  for (int j = 0; j < 4; ++j) {
    const float* x = xb + L.off + 32 * j;
    float s = 0.0f;
    for (int l = 0; l < 4; ++l) s = fmaf(L.v[j][l], x[l], s);
    acc = fmaf(L.dl[j], s, acc);
  }
  return acc;
}

}  // namespace strata::cuda::dev

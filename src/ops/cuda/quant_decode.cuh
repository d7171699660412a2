// Element decoders (host and device) for every weight type strata multiplies with: Elem<T>::at(row,
// i) is element i of a row of type T, computed with the same f32 operations, in the same order, as
// the CPU dequantizers in quant/dequant.cc and quant/g4.cc (__fmul_rn / __fadd_rn stop nvcc from
// contracting them into FMAs), so the GPU reproduces the CPU's dequantized values bit for bit.
//
// The block structs are quant/blocks.h's own (that header compiles under nvcc); the asserts below
// pin the byte offsets the decoders rely on.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "ops/cuda/common.cuh"
#include "quant/blocks.h"

namespace strata::cuda::dev {

static_assert(offsetof(BlockQ4_0, qs) == 2 && sizeof(BlockQ4_0) == 18);
static_assert(offsetof(BlockQ4_1, m) == 2 && offsetof(BlockQ4_1, qs) == 4);
static_assert(offsetof(BlockQ5_0, qh) == 2 && offsetof(BlockQ5_0, qs) == 6);
static_assert(offsetof(BlockQ5_1, qh) == 4 && offsetof(BlockQ5_1, qs) == 8);
static_assert(offsetof(BlockQ8_0, qs) == 2 && sizeof(BlockQ8_0) == 34);
static_assert(offsetof(BlockQ2_K, qs) == 16 && offsetof(BlockQ2_K, d) == 80);
static_assert(offsetof(BlockQ3_K, qs) == 32 && offsetof(BlockQ3_K, scales) == 96 &&
              offsetof(BlockQ3_K, d) == 108);
static_assert(offsetof(BlockQ4_K, scales) == 4 && offsetof(BlockQ4_K, qs) == 16);
static_assert(offsetof(BlockQ5_K, qh) == 16 && offsetof(BlockQ5_K, qs) == 48);
static_assert(offsetof(BlockQ6_K, qh) == 128 && offsetof(BlockQ6_K, scales) == 192 &&
              offsetof(BlockQ6_K, d) == 208);

// Single roundings, never contracted into an FMA (on the host: no FMA without -mfma).
STRATA_HD float mul(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
STRATA_HD float add(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
STRATA_HD float sub(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}

// Q4_K / Q5_K: 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes.
STRATA_HD void q4k_scale_min(const uint8_t* s, int j, int* sc, int* mn) {
  if (j < 4) {
    *sc = s[j] & 63;
    *mn = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
    *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Q3_K: scale j (0..15), bias removed: low 4 bits in byte j (low nibble, j < 8) or byte j-8
// (high nibble), top 2 bits at bit 2*(j/4) of byte 8 + j%4.
STRATA_HD int q3k_scale(const uint8_t* s, int j) {
  const int lo = j < 8 ? (s[j] & 15) : (s[j - 8] >> 4);
  const int hi = (s[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
  return (lo | (hi << 4)) - 32;
}

// kBlock elements per block of kBytes bytes; at(row, i) decodes element i of a row.
template <DType T>
struct Elem;

template <>
struct Elem<DType::F32> {
  static constexpr int kBlock = 1;
  static constexpr int kBytes = 4;  // per block
  STRATA_HD static float at(const uint8_t* row, int i) {
    return reinterpret_cast<const float*>(row)[i];
  }
};
template <>
struct Elem<DType::F16> {
  static constexpr int kBlock = 1;
  static constexpr int kBytes = 2;  // per block
  STRATA_HD static float at(const uint8_t* row, int i) {
    return half_bits(reinterpret_cast<const uint16_t*>(row)[i]);
  }
};
template <>
struct Elem<DType::BF16> {
  static constexpr int kBlock = 1;
  static constexpr int kBytes = 2;  // per block
  STRATA_HD static float at(const uint8_t* row, int i) {
    return bf16_bits(reinterpret_cast<const uint16_t*>(row)[i]);
  }
};

// Legacy blocks of 32: qs[j] low nibble = element j, high nibble = element j + 16.
template <>
struct Elem<DType::Q4_0> {
  static constexpr int kBlock = kQK;
  static constexpr int kBytes = sizeof(BlockQ4_0);  // per block
  STRATA_HD static float at(const uint8_t* row, int i) {
    const BlockQ4_0& b = reinterpret_cast<const BlockQ4_0*>(row)[i / kQK];
    const int j = i % kQK;
    const int q = j < 16 ? (b.qs[j] & 15) : (b.qs[j - 16] >> 4);
    return mul(half_bits(b.d), static_cast<float>(q - 8));
  }
};
template <>
struct Elem<DType::Q4_1> {
  static constexpr int kBlock = kQK;
  static constexpr int kBytes = sizeof(BlockQ4_1);  // per block
  STRATA_HD static float at(const uint8_t* row, int i) {
    const BlockQ4_1& b = reinterpret_cast<const BlockQ4_1*>(row)[i / kQK];
    const int j = i % kQK;
    const int q = j < 16 ? (b.qs[j] & 15) : (b.qs[j - 16] >> 4);
    return add(mul(half_bits(b.d), static_cast<float>(q)), half_bits(b.m));
  }
};
// Q5: bit j of the little-endian 32-bit qh is bit 4 of element j (read byte-wise: qh is only
// 2-byte aligned in a Q5_0 block).
template <>
struct Elem<DType::Q5_0> {
  static constexpr int kBlock = kQK;
  static constexpr int kBytes = sizeof(BlockQ5_0);  // per block
  STRATA_HD static float at(const uint8_t* row, int i) {
    const BlockQ5_0& b = reinterpret_cast<const BlockQ5_0*>(row)[i / kQK];
    const int j = i % kQK;
    const int lo = j < 16 ? (b.qs[j] & 15) : (b.qs[j - 16] >> 4);
    const int hi = ((b.qh[j >> 3] >> (j & 7)) & 1) << 4;
    return mul(half_bits(b.d), static_cast<float>((lo | hi) - 16));
  }
};
template <>
struct Elem<DType::Q5_1> {
  static constexpr int kBlock = kQK;
  static constexpr int kBytes = sizeof(BlockQ5_1);  // per block
  STRATA_HD static float at(const uint8_t* row, int i) {
    const BlockQ5_1& b = reinterpret_cast<const BlockQ5_1*>(row)[i / kQK];
    const int j = i % kQK;
    const int lo = j < 16 ? (b.qs[j] & 15) : (b.qs[j - 16] >> 4);
    const int hi = ((b.qh[j >> 3] >> (j & 7)) & 1) << 4;
    return add(mul(half_bits(b.d), static_cast<float>(lo | hi)), half_bits(b.m));
  }
};
template <>
struct Elem<DType::Q8_0> {
  static constexpr int kBlock = kQK;
  static constexpr int kBytes = sizeof(BlockQ8_0);  // per block
  STRATA_HD static float at(const uint8_t* row, int i) {
    const BlockQ8_0& b = reinterpret_cast<const BlockQ8_0*>(row)[i / kQK];
    return mul(half_bits(b.d), static_cast<float>(b.qs[i % kQK]));
  }
};

// K-quants, super-blocks of 256. Element 128h + 32j + l (h < 2, j < 4, l < 32) for the 2-bit
// planes of Q2_K/Q3_K and for Q6_K; element 64k + 32u + l (u: high nibble) for Q4_K/Q5_K.
template <>
struct Elem<DType::Q2_K> {
  static constexpr int kBlock = kQKK;
  static constexpr int kBytes = sizeof(BlockQ2_K);  // per block
  STRATA_HD static float at(const uint8_t* row, int i) {
    const BlockQ2_K& b = reinterpret_cast<const BlockQ2_K*>(row)[i / kQKK];
    const int e = i % kQKK, h = e >> 7, j = (e >> 5) & 3, l = e & 31;
    const int sc = b.scales[8 * h + 2 * j + (l >> 4)];
    const int q = (b.qs[32 * h + l] >> (2 * j)) & 3;
    const float dl = mul(half_bits(b.d), static_cast<float>(sc & 15));
    const float ml = mul(half_bits(b.dmin), static_cast<float>(sc >> 4));
    return sub(mul(dl, static_cast<float>(q)), ml);
  }
};
template <>
struct Elem<DType::Q3_K> {
  static constexpr int kBlock = kQKK;
  static constexpr int kBytes = sizeof(BlockQ3_K);  // per block
  STRATA_HD static float at(const uint8_t* row, int i) {
    const BlockQ3_K& b = reinterpret_cast<const BlockQ3_K*>(row)[i / kQKK];
    const int e = i % kQKK, h = e >> 7, j = (e >> 5) & 3, l = e & 31;
    const int lo = (b.qs[32 * h + l] >> (2 * j)) & 3;
    const int v = lo - (((b.hmask[l] >> (4 * h + j)) & 1) ? 0 : 4);
    const float dl =
        mul(half_bits(b.d), static_cast<float>(q3k_scale(b.scales, 8 * h + 2 * j + (l >> 4))));
    return mul(dl, static_cast<float>(v));
  }
};
template <>
struct Elem<DType::Q4_K> {
  static constexpr int kBlock = kQKK;
  static constexpr int kBytes = sizeof(BlockQ4_K);  // per block
  STRATA_HD static float at(const uint8_t* row, int i) {
    const BlockQ4_K& b = reinterpret_cast<const BlockQ4_K*>(row)[i / kQKK];
    const int e = i % kQKK, k = e >> 6, u = (e >> 5) & 1, l = e & 31;
    int sc, mn;
    q4k_scale_min(b.scales, 2 * k + u, &sc, &mn);
    const uint8_t byte = b.qs[32 * k + l];
    const int q = u ? (byte >> 4) : (byte & 15);
    const float d1 = mul(half_bits(b.d), static_cast<float>(sc));
    const float m1 = mul(half_bits(b.dmin), static_cast<float>(mn));
    return sub(mul(d1, static_cast<float>(q)), m1);
  }
};
template <>
struct Elem<DType::Q5_K> {
  static constexpr int kBlock = kQKK;
  static constexpr int kBytes = sizeof(BlockQ5_K);  // per block
  STRATA_HD static float at(const uint8_t* row, int i) {
    const BlockQ5_K& b = reinterpret_cast<const BlockQ5_K*>(row)[i / kQKK];
    const int e = i % kQKK, k = e >> 6, u = (e >> 5) & 1, l = e & 31;
    int sc, mn;
    q4k_scale_min(b.scales, 2 * k + u, &sc, &mn);
    const uint8_t byte = b.qs[32 * k + l];
    const int q = (u ? (byte >> 4) : (byte & 15)) | (((b.qh[l] >> (2 * k + u)) & 1) << 4);
    const float d1 = mul(half_bits(b.d), static_cast<float>(sc));
    const float m1 = mul(half_bits(b.dmin), static_cast<float>(mn));
    return sub(mul(d1, static_cast<float>(q)), m1);
  }
};
template <>
struct Elem<DType::Q6_K> {
  static constexpr int kBlock = kQKK;
  static constexpr int kBytes = sizeof(BlockQ6_K);  // per block
  STRATA_HD static float at(const uint8_t* row, int i) {
    const BlockQ6_K& b = reinterpret_cast<const BlockQ6_K*>(row)[i / kQKK];
    const int e = i % kQKK, h = e >> 7, j = (e >> 5) & 3, l = e & 31;
    const uint8_t lb = b.ql[64 * h + l + 32 * (j & 1)];
    const int lo = j >= 2 ? (lb >> 4) : (lb & 15);
    const int v = (lo | (((b.qh[32 * h + l] >> (2 * j)) & 3) << 4)) - 32;
    const float dl = mul(half_bits(b.d), static_cast<float>(b.scales[8 * h + 2 * j + (l >> 4)]));
    return mul(dl, static_cast<float>(v));
  }
};

// G4 weights (quant/g4.h): groups of 64 output rows, each f16 scale[in], f16 min[in], then 64
// rows of in/2 code bytes. Element (row r, column i) of an [out, in] matrix.
STRATA_HD float g4_weight_at(const uint8_t* w, int64_t in, int64_t r, int i) {
  const uint8_t* g = w + (r / 64) * 36 * in;
  const float s = half_bits(reinterpret_cast<const uint16_t*>(g)[i]);
  const float m = half_bits(reinterpret_cast<const uint16_t*>(g + 2 * in)[i]);
  const uint8_t byte = g[4 * in + (r % 64) * (in / 2) + i / 2];
  const int q = (byte >> (4 * (i & 1))) & 15;
  return add(mul(static_cast<float>(q), s), m);
}

// G4 KV-cache rows (groups of 64 along the row, each f16 scale, f16 min, then the codes; the
// last group may be short). Element e of a row; rows may start at odd addresses.
STRATA_HD float g4_kv_at(const uint8_t* row, int e) {
  const uint8_t* g = row + (e / 64) * 36;  // every group before e's is a full one
  const float s = half_bits(load_u16_unaligned(g));
  const float m = half_bits(load_u16_unaligned(g + 2));
  const int c = e % 64;
  const int q = (g[4 + c / 2] >> (4 * (c & 1))) & 15;
  return add(mul(static_cast<float>(q), s), m);
}

// Calls f(TypeTag<T>{}) with the quantized block type T equal to t; false when t is none of them
// (float types, G4 and the activation-only Q8_1 / Q8_K are not).
template <DType T>
struct TypeTag {
  static constexpr DType value = T;
};
template <class F>
bool dispatch_quant_type(DType t, F&& f) {
  switch (t) {
    case DType::Q4_0:
      f(TypeTag<DType::Q4_0>{});
      return true;
    case DType::Q4_1:
      f(TypeTag<DType::Q4_1>{});
      return true;
    case DType::Q5_0:
      f(TypeTag<DType::Q5_0>{});
      return true;
    case DType::Q5_1:
      f(TypeTag<DType::Q5_1>{});
      return true;
    case DType::Q8_0:
      f(TypeTag<DType::Q8_0>{});
      return true;
    case DType::Q2_K:
      f(TypeTag<DType::Q2_K>{});
      return true;
    case DType::Q3_K:
      f(TypeTag<DType::Q3_K>{});
      return true;
    case DType::Q4_K:
      f(TypeTag<DType::Q4_K>{});
      return true;
    case DType::Q5_K:
      f(TypeTag<DType::Q5_K>{});
      return true;
    case DType::Q6_K:
      f(TypeTag<DType::Q6_K>{});
      return true;
    default:
      return false;
  }
}
// The same, float types (F32, F16, BF16) included.
template <class F>
bool dispatch_block_type(DType t, F&& f) {
  switch (t) {
    case DType::F32:
      f(TypeTag<DType::F32>{});
      return true;
    case DType::F16:
      f(TypeTag<DType::F16>{});
      return true;
    case DType::BF16:
      f(TypeTag<DType::BF16>{});
      return true;
    default:
      return dispatch_quant_type(t, f);
  }
}

}  // namespace strata::cuda::dev

// Bit-exact GGUF/GGML quantized block layouts. Every struct is the on-disk byte image of one
// block (little-endian, no padding), so a pointer into a mapped GGUF tensor can be read as an
// array of these. Half-precision fields are raw IEEE binary16 bits (core/half.h converts).
//
// Element order inside each block, as the dequantizers in dequant.cc read it:
//   Q4_0/Q4_1/Q5_*: qs[j] low nibble = element j, high nibble = element j+16 (j < 16);
//                   Q5 high bits: bit j of the little-endian uint32 qh = bit 4 of element j.
//   Q8_0/Q8_1:      qs[j] = element j.
//   Q2_K:           16 sub-blocks of 16; element 128h+32j+l (h<2, j<4, l<32) = bits 2j..2j+1 of
//                   qs[32h+l], sub-block 8h+2j+(l>=16); scales[s] = scale (low 4) | min (high 4).
//   Q3_K:           same 2-bit layout as Q2_K; bit (4h+j) of hmask[l] is the third bit (when it
//                   is clear the value is 4 lower); 16 signed 6-bit scales packed in 12 bytes.
//   Q4_K/Q5_K:      8 sub-blocks of 32; element 64k+l = low nibble of qs[32k+l] (l<32), element
//                   64k+32+l = high nibble; Q5_K: bit 2k / 2k+1 of qh[l] is bit 4. 6-bit scales
//                   and mins packed in 12 bytes (see q4k_scales_mins).
//   Q6_K:           16 sub-blocks of 16; element 128h+32j+l from ql[64h + l + 32(j&1)] nibble
//                   (j>=2 ? high : low) and bits 2j..2j+1 of qh[32h+l]; int8 scale per sub-block.
//   Q8_K:           float d, qs[j] = element j, bsums[s] = sum of qs in sub-block of 16.
#pragma once
#include <cstdint>
#include <cstring>

namespace strata {

constexpr int kQK = 32;    // elements per block of the legacy types (Q4_0 .. Q8_1)
constexpr int kQKK = 256;  // elements per K-quant super-block

// How far ahead (bytes) the dot kernels ask for the weight stream with software prefetches. A
// kernel reads one row at a time with enough arithmetic between loads that the hardware
// prefetcher alone kept too few lines in flight: Q8_0 decode on the 2-core Zen 3 host measured
// 13.4 -> 18.2 GB/s on one thread and 22.8 -> 30.8 GB/s on two (matmul_bench, 4096 x 4096).
// The f16 kernels stream four rows at once and were slower with it, so they do without. 2 KiB
// was the distance chosen there; on the 2-core Zen 5 host (twice the bandwidth) 8 KiB decoded
// Q8_0 6% faster end to end (30-33 against 28-31 tok/s, four alternations, BENCHMARKS.md) and
// 16 KiB slower again. The Zen 3 host was not available to re-check 8 KiB.
constexpr int kPrefetchAhead = 8192;

struct BlockQ4_0 {
  uint16_t d;  // x = d * (q - 8)
  uint8_t qs[kQK / 2];
};
struct BlockQ4_1 {
  uint16_t d, m;  // x = d * q + m
  uint8_t qs[kQK / 2];
};
struct BlockQ5_0 {
  uint16_t d;  // x = d * (q - 16)
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
struct BlockQ5_1 {
  uint16_t d, m;  // x = d * q + m
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
struct BlockQ8_0 {
  uint16_t d;  // x = d * q
  int8_t qs[kQK];
};
struct BlockQ8_1 {
  uint16_t d;  // x = d * q
  uint16_t s;  // d * sum(qs), lets a dot product add the weight block's min cheaply
  int8_t qs[kQK];
};
struct BlockQ2_K {
  uint8_t scales[kQKK / 16];  // low 4 bits scale, high 4 bits min, per sub-block of 16
  uint8_t qs[kQKK / 4];
  uint16_t d, dmin;  // x = d * sc * q - dmin * m
};
struct BlockQ3_K {
  uint8_t hmask[kQKK / 8];
  uint8_t qs[kQKK / 4];
  uint8_t scales[12];  // 16 x 6 bits, stored biased by 32
  uint16_t d;          // x = d * (sc - 32) * (q - 4 * !hbit)
};
struct BlockQ4_K {
  uint16_t d, dmin;    // x = d * sc * q - dmin * m
  uint8_t scales[12];  // 8 x (6-bit scale, 6-bit min)
  uint8_t qs[kQKK / 2];
};
struct BlockQ5_K {
  uint16_t d, dmin;  // x = d * sc * q - dmin * m, q 5 bits
  uint8_t scales[12];
  uint8_t qh[kQKK / 8];
  uint8_t qs[kQKK / 2];
};
struct BlockQ6_K {
  uint8_t ql[kQKK / 2];
  uint8_t qh[kQKK / 4];
  int8_t scales[kQKK / 16];
  uint16_t d;  // x = d * sc * (q - 32)
};
struct BlockQ8_K {
  float d;  // x = d * q
  int8_t qs[kQKK];
  int16_t bsums[kQKK / 16];
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);

// The helpers below are `static` so that every translation unit keeps its own copy: they are
// used from files compiled for different ISAs, and a shared (COMDAT) out-of-line copy built with
// AVX-512 flags must never be what a scalar caller on an older CPU ends up calling.

// Q4_K / Q5_K: the 12 scale bytes hold 8 six-bit scales and 8 six-bit mins. Bytes 0-3 carry
// scales 0-3 in their low 6 bits, bytes 4-7 mins 0-3; bytes 8-11 carry the low nibbles of scales
// 4-7 (low half) and mins 4-7 (high half), whose top 2 bits sit in bits 6-7 of bytes 0-3 / 4-7.
// Works on 32-bit words so the SIMD kernels can use it too: out sc[8], mn[8].
static inline void q4k_scales_mins(const uint8_t* s12, uint8_t* sc, uint8_t* mn) {
  uint32_t a, b, c;
  std::memcpy(&a, s12, 4);
  std::memcpy(&b, s12 + 4, 4);
  std::memcpy(&c, s12 + 8, 4);
  const uint32_t sc_lo = a & 0x3f3f3f3fu;
  const uint32_t mn_lo = b & 0x3f3f3f3fu;
  const uint32_t sc_hi = (c & 0x0f0f0f0fu) | ((a >> 6) & 0x03030303u) << 4;
  const uint32_t mn_hi = ((c >> 4) & 0x0f0f0f0fu) | ((b >> 6) & 0x03030303u) << 4;
  std::memcpy(sc, &sc_lo, 4);
  std::memcpy(sc + 4, &sc_hi, 4);
  std::memcpy(mn, &mn_lo, 4);
  std::memcpy(mn + 4, &mn_hi, 4);
}

// Inverse of q4k_scales_mins (values must be < 64).
static inline void q4k_pack_scales_mins(const uint8_t* sc, const uint8_t* mn, uint8_t* s12) {
  for (int j = 0; j < 4; ++j) {
    s12[j] = static_cast<uint8_t>((sc[j] & 63) | (sc[j + 4] >> 4) << 6);
    s12[j + 4] = static_cast<uint8_t>((mn[j] & 63) | (mn[j + 4] >> 4) << 6);
    s12[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
  }
}

// Q3_K: 16 six-bit scales. Scale j has its low 4 bits in byte j (j < 8, low nibble) or byte j-8
// (high nibble), and its top 2 bits at bit 2*(j/4) of byte 8 + j%4. Writes scale - 32 (signed).
// Word-parallel like q4k_scales_mins: q3k_scale_words gives the 16 biased scales (0..63) as four
// little-endian 32-bit words (bytes in scale order); q3k_scales subtracts the bias.
static inline void q3k_scale_words(const uint8_t* s12, uint32_t* w) {
  uint32_t a, b, c;
  std::memcpy(&a, s12, 4);
  std::memcpy(&b, s12 + 4, 4);
  std::memcpy(&c, s12 + 8, 4);
  constexpr uint32_t kLo = 0x0f0f0f0fu, kHi = 0x03030303u;
  w[0] = (a & kLo) | (c & kHi) << 4;
  w[1] = (b & kLo) | ((c >> 2) & kHi) << 4;
  w[2] = ((a >> 4) & kLo) | ((c >> 4) & kHi) << 4;
  w[3] = ((b >> 4) & kLo) | ((c >> 6) & kHi) << 4;
}
static inline void q3k_scales(const uint8_t* s12, int8_t* out) {
  uint32_t w[4];
  q3k_scale_words(s12, w);
  uint8_t u[16];
  std::memcpy(u, w, 16);
  for (int j = 0; j < 16; ++j) out[j] = static_cast<int8_t>(u[j] - 32);
}

// Inverse of q3k_scales; `biased` values are scale + 32 in [0, 63].
static inline void q3k_pack_scales(const uint8_t* biased, uint8_t* s12) {
  std::memset(s12, 0, 12);
  for (int j = 0; j < 16; ++j) {
    const uint8_t v = biased[j] & 63;
    if (j < 8)
      s12[j] |= v & 15;
    else
      s12[j - 8] |= static_cast<uint8_t>((v & 15) << 4);
    s12[8 + j % 4] |= static_cast<uint8_t>((v >> 4) << (2 * (j / 4)));
  }
}

}  // namespace strata

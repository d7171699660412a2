// Quantized block formats: exact dequantization of hand-built blocks (expected values computed
// here from the format description, not by the library), quantizer error bounds, every fused
// dot product at every ISA this CPU runs against a double-precision dot of the dequantized rows,
// and the G4 weight/KV formats.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/half.h"
#include "quant/blocks.h"
#include "quant/g4.h"
#include "quant/panel_gemm.h"
#include "quant/quant.h"

namespace strata {
namespace {

using Bytes = std::vector<uint8_t>;

std::vector<float> gaussian(int64_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, sigma);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = nd(rng);
  return v;
}

std::vector<Isa> isas_here() {
  std::vector<Isa> r;
  for (Isa i : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni})
    if (vec_dot_for_isa(DType::Q8_0, i)) r.push_back(i);
  return r;
}

// Restores the ISA cap after a test that changes it.
struct IsaGuard {
  ~IsaGuard() { set_isa_cap(kTopIsa); }
};

Bytes quantize(DType t, const std::vector<float>& x) {
  Bytes b(static_cast<size_t>(row_bytes(t, static_cast<int64_t>(x.size()))));
  quant_kernels(t)->quantize_row(x.data(), b.data(), static_cast<int64_t>(x.size()));
  return b;
}

std::vector<float> dequantize(DType t, const Bytes& b, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n));
  quant_kernels(t)->dequantize_row(b.data(), y.data(), n);
  return y;
}

void put16(uint8_t* p, uint16_t v) {
  std::memcpy(p, &v, 2);
}
float h(uint16_t bits) {
  return fp16_to_f32(bits);
}

// A random f16 scale in [lo, hi).
uint16_t rand_half(std::mt19937& rng, float lo, float hi) {
  return f32_to_fp16(std::uniform_real_distribution<float>(lo, hi)(rng));
}
int rand_int(std::mt19937& rng, int lo, int hi) {  // inclusive
  return std::uniform_int_distribution<int>(lo, hi)(rng);
}

const DType kWeightTypes[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0,
                              DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};

TEST(QuantLayout, TableMatchesDTypeInfo) {
  for (DType t : kWeightTypes) {
    const QuantKernels* k = quant_kernels(t);
    ASSERT_NE(k, nullptr) << dtype_name(t);
    EXPECT_EQ(k->type, t);
    EXPECT_NE(k->vec_dot, nullptr);
    EXPECT_NE(k->vec_dot_ref, nullptr);
    EXPECT_NE(k->vec_dot_tokens, nullptr);
    const DType vt = k->vec_dot_type;
    EXPECT_TRUE(vt == DType::Q8_0 || vt == DType::Q8_1 || vt == DType::Q8_K);
    EXPECT_EQ(dtype_info(vt).block_elems, dtype_info(t).block_elems) << dtype_name(t);
  }
  EXPECT_EQ(quant_kernels(DType::F32), nullptr);
  EXPECT_EQ(quant_kernels(DType::G4), nullptr);
  EXPECT_EQ(dtype_info(DType::Q4_K).block_bytes, static_cast<int64_t>(sizeof(BlockQ4_K)));
  EXPECT_EQ(dtype_info(DType::Q6_K).block_bytes, static_cast<int64_t>(sizeof(BlockQ6_K)));
  EXPECT_EQ(dtype_info(DType::Q8_K).block_bytes, static_cast<int64_t>(sizeof(BlockQ8_K)));
}

// ---- (a) hand-built blocks -------------------------------------------------------------------
// Each builder draws codes/scales, writes the bytes following the GGUF layout description and
// returns the values the spec formula gives, evaluated in f32 in the spec's order.

std::vector<float> build_legacy(DType t, std::mt19937& rng, Bytes& out) {
  const bool five = t == DType::Q5_0 || t == DType::Q5_1;
  const bool has_min = t == DType::Q4_1 || t == DType::Q5_1;
  const int bs = static_cast<int>(dtype_info(t).block_bytes);
  out.assign(static_cast<size_t>(bs), 0);
  const uint16_t d = rand_half(rng, -0.1f, 0.1f), m = rand_half(rng, -1.0f, 1.0f);
  int q[32];
  for (int& v : q) v = rand_int(rng, 0, five ? 31 : 15);
  put16(out.data(), d);
  int off = 2;
  if (has_min) put16(out.data() + 2, m), off = 4;
  if (five) {
    uint32_t qh = 0;
    for (int j = 0; j < 32; ++j) qh |= static_cast<uint32_t>(q[j] >> 4) << j;
    std::memcpy(out.data() + off, &qh, 4);
    off += 4;
  }
  for (int j = 0; j < 16; ++j)
    out[off + j] = static_cast<uint8_t>((q[j] & 15) | (q[j + 16] & 15) << 4);
  std::vector<float> e(32);
  const int bias = has_min ? 0 : (five ? 16 : 8);
  for (int j = 0; j < 32; ++j)
    e[j] =
        has_min ? h(d) * static_cast<float>(q[j]) + h(m) : h(d) * static_cast<float>(q[j] - bias);
  return e;
}

std::vector<float> build_q8(DType t, std::mt19937& rng, Bytes& out) {
  out.assign(static_cast<size_t>(dtype_info(t).block_bytes), 0);
  std::vector<float> e;
  if (t == DType::Q8_K) {
    const float d = std::uniform_real_distribution<float>(0.001f, 0.1f)(rng);
    std::memcpy(out.data(), &d, 4);
    for (int j = 0; j < 256; ++j) {
      const int v = rand_int(rng, -128, 127);
      out[4 + j] = static_cast<uint8_t>(v);
      e.push_back(d * static_cast<float>(v));
    }
    return e;
  }
  const uint16_t d = rand_half(rng, -0.1f, 0.1f);
  put16(out.data(), d);
  const int off = t == DType::Q8_1 ? 4 : 2;
  for (int j = 0; j < 32; ++j) {
    const int v = rand_int(rng, -128, 127);
    out[off + j] = static_cast<uint8_t>(v);
    e.push_back(h(d) * static_cast<float>(v));
  }
  return e;
}

std::vector<float> build_q2k(std::mt19937& rng, Bytes& out) {
  out.assign(84, 0);
  const uint16_t d = rand_half(rng, 0.001f, 0.1f), dmin = rand_half(rng, 0.001f, 0.1f);
  int sc[16], mn[16], q[256];
  for (int s = 0; s < 16; ++s) sc[s] = rand_int(rng, 0, 15), mn[s] = rand_int(rng, 0, 15);
  for (int& v : q) v = rand_int(rng, 0, 3);
  for (int s = 0; s < 16; ++s) out[s] = static_cast<uint8_t>(sc[s] | mn[s] << 4);
  for (int e = 0; e < 256; ++e)  // element 128h + 32j + l -> bits 2j of qs[32h + l]
    out[16 + 32 * (e / 128) + e % 32] |= static_cast<uint8_t>(q[e] << (2 * ((e % 128) / 32)));
  put16(out.data() + 80, d);
  put16(out.data() + 82, dmin);
  std::vector<float> ex(256);
  for (int e = 0; e < 256; ++e) {
    const float dl = h(d) * static_cast<float>(sc[e / 16]),
                ml = h(dmin) * static_cast<float>(mn[e / 16]);
    ex[e] = dl * static_cast<float>(q[e]) - ml;
  }
  return ex;
}

std::vector<float> build_q3k(std::mt19937& rng, Bytes& out) {
  out.assign(110, 0);
  const uint16_t d = rand_half(rng, -0.1f, 0.1f);
  int sc[16], q[256];  // sc stored biased: value sc - 32; q in [-4, 3]
  for (int& s : sc) s = rand_int(rng, 0, 63);
  for (int& v : q) v = rand_int(rng, -4, 3);
  for (int e = 0; e < 256; ++e) {
    const int hh = e / 128, j = (e % 128) / 32, l = e % 32;
    const int low = q[e] >= 0 ? q[e] : q[e] + 4;  // hmask bit set <=> value not lowered by 4
    if (q[e] >= 0) out[l] |= static_cast<uint8_t>(1 << (4 * hh + j));
    out[32 + 32 * hh + l] |= static_cast<uint8_t>(low << (2 * j));
  }
  uint8_t* s12 = out.data() + 96;
  for (int j = 0; j < 16; ++j) {
    if (j < 8)
      s12[j] |= static_cast<uint8_t>(sc[j] & 15);
    else
      s12[j - 8] |= static_cast<uint8_t>((sc[j] & 15) << 4);
    s12[8 + j % 4] |= static_cast<uint8_t>((sc[j] >> 4) << (2 * (j / 4)));
  }
  put16(out.data() + 108, d);
  std::vector<float> ex(256);
  for (int e = 0; e < 256; ++e) {
    const float dl = h(d) * static_cast<float>(sc[e / 16] - 32);
    ex[e] = dl * static_cast<float>(q[e]);
  }
  return ex;
}

// Q4_K / Q5_K: 8 sub-blocks of 32, 6-bit scale and min each.
std::vector<float> build_q45k(bool five, std::mt19937& rng, Bytes& out) {
  out.assign(five ? 176 : 144, 0);
  const uint16_t d = rand_half(rng, 0.001f, 0.1f), dmin = rand_half(rng, 0.001f, 0.1f);
  int sc[8], mn[8], q[256];
  for (int s = 0; s < 8; ++s) sc[s] = rand_int(rng, 0, 63), mn[s] = rand_int(rng, 0, 63);
  for (int& v : q) v = rand_int(rng, 0, five ? 31 : 15);
  put16(out.data(), d);
  put16(out.data() + 2, dmin);
  uint8_t* s12 = out.data() + 4;
  for (int j = 0; j < 4; ++j) {
    s12[j] = static_cast<uint8_t>(sc[j] | (sc[j + 4] >> 4) << 6);
    s12[j + 4] = static_cast<uint8_t>(mn[j] | (mn[j + 4] >> 4) << 6);
    s12[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
  }
  uint8_t* qh = out.data() + 16;
  uint8_t* qs = out.data() + (five ? 48 : 16);
  for (int e = 0; e < 256; ++e) {
    const int k = e / 64, hi = (e % 64) / 32, l = e % 32;
    qs[32 * k + l] |= static_cast<uint8_t>((q[e] & 15) << (4 * hi));
    if (five) qh[l] |= static_cast<uint8_t>((q[e] >> 4) << (2 * k + hi));
  }
  std::vector<float> ex(256);
  for (int e = 0; e < 256; ++e) {
    const float dl = h(d) * static_cast<float>(sc[e / 32]),
                ml = h(dmin) * static_cast<float>(mn[e / 32]);
    ex[e] = dl * static_cast<float>(q[e]) - ml;
  }
  return ex;
}

std::vector<float> build_q6k(std::mt19937& rng, Bytes& out) {
  out.assign(210, 0);
  const uint16_t d = rand_half(rng, -0.01f, 0.01f);
  int sc[16], q[256];  // q in [-32, 31]
  for (int& s : sc) s = rand_int(rng, -128, 127);
  for (int& v : q) v = rand_int(rng, -32, 31);
  for (int e = 0; e < 256; ++e) {
    const int hh = e / 128, j = (e % 128) / 32, l = e % 32;
    const int u = q[e] + 32;
    out[64 * hh + l + 32 * (j & 1)] |= static_cast<uint8_t>((u & 15) << (j >= 2 ? 4 : 0));
    out[128 + 32 * hh + l] |= static_cast<uint8_t>((u >> 4) << (2 * j));
  }
  for (int s = 0; s < 16; ++s) out[192 + s] = static_cast<uint8_t>(static_cast<int8_t>(sc[s]));
  put16(out.data() + 208, d);
  std::vector<float> ex(256);
  for (int e = 0; e < 256; ++e)
    ex[e] = h(d) * static_cast<float>(sc[e / 16]) * static_cast<float>(q[e]);
  return ex;
}

std::vector<float> build_block(DType t, std::mt19937& rng, Bytes& out) {
  switch (t) {
    case DType::Q8_0:
    case DType::Q8_1:
    case DType::Q8_K:
      return build_q8(t, rng, out);
    case DType::Q2_K:
      return build_q2k(rng, out);
    case DType::Q3_K:
      return build_q3k(rng, out);
    case DType::Q4_K:
      return build_q45k(false, rng, out);
    case DType::Q5_K:
      return build_q45k(true, rng, out);
    case DType::Q6_K:
      return build_q6k(rng, out);
    default:
      return build_legacy(t, rng, out);
  }
}

TEST(QuantDequant, HandBuiltBlocksAreExact) {
  const DType all[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                       DType::Q8_0, DType::Q8_1, DType::Q2_K, DType::Q3_K,
                       DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_K};
  std::mt19937 rng(7);
  for (DType t : all) {
    // Three blocks in one row, so block strides are exercised too.
    Bytes row, blk;
    std::vector<float> expect;
    for (int b = 0; b < 3; ++b) {
      const std::vector<float> e = build_block(t, rng, blk);
      row.insert(row.end(), blk.begin(), blk.end());
      expect.insert(expect.end(), e.begin(), e.end());
    }
    const int64_t n = static_cast<int64_t>(expect.size());
    ASSERT_EQ(static_cast<int64_t>(row.size()), row_bytes(t, n)) << dtype_name(t);
    const std::vector<float> got = dequantize(t, row, n);
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(float_to_bits(got[i]), float_to_bits(expect[i]))
          << dtype_name(t) << " element " << i << ": " << got[i] << " vs " << expect[i];
  }
}

// ---- (b) quantizer error ----------------------------------------------------------------------
// Bound on RMS(x - x') / RMS(x) for Gaussian rows. A uniform quantizer with step D has error
// D/sqrt(12); with b bits over a block's range (~4-5 sigma for 16-32 Gaussian samples, less after
// the clipping search) that is ~range/(2^b-1)/3.46: 8 bits ~0.005, 6 bits ~0.02, 5 bits ~0.04,
// 4 bits ~0.075, 3 bits ~0.16, 2 bits ~0.3 (the searched scales do better). The bounds leave a
// little headroom over those figures; sub-blocks of 16 (Q2_K/Q3_K/Q6_K) have smaller ranges.
// The symmetric legacy types (Q4_0, Q5_0) must cover [-max|x|, max|x|] and so waste part of their
// levels on whichever side a block does not reach: ~15% above their asymmetric siblings, hence
// 0.09 and 0.045 instead of 0.08 and 0.04.
double rel_rmse(const std::vector<float>& x, const std::vector<float>& y) {
  double e = 0, s = 0;
  for (size_t i = 0; i < x.size(); ++i) e += (x[i] - y[i]) * (x[i] - y[i]), s += x[i] * x[i];
  return std::sqrt(e / s);
}

TEST(QuantQuantize, RoundTripErrorWithinBound) {
  const struct {
    DType t;
    double bound;
  } cases[] = {{DType::Q8_0, 0.01},  {DType::Q8_1, 0.01}, {DType::Q8_K, 0.01}, {DType::Q6_K, 0.02},
               {DType::Q5_0, 0.045}, {DType::Q5_1, 0.04}, {DType::Q5_K, 0.04}, {DType::Q4_0, 0.09},
               {DType::Q4_1, 0.08},  {DType::Q4_K, 0.08}, {DType::Q3_K, 0.15}, {DType::Q2_K, 0.3}};
  const int64_t n = 256 * 64;
  for (const auto& c : cases) {
    for (uint32_t seed : {1u, 2u}) {
      // Seed 2 scales rows by 1e-3 and adds an offset, as real weight rows sometimes have.
      std::vector<float> x = gaussian(n, seed);
      if (seed == 2)
        for (float& v : x) v = v * 1e-3f + 2e-4f;
      const std::vector<float> y = dequantize(c.t, quantize(c.t, x), n);
      const double e = rel_rmse(x, y);
      EXPECT_LT(e, c.bound) << dtype_name(c.t) << " seed " << seed;
      std::printf("  %-5s seed %u: relative RMSE %.4f (bound %.3f)\n", dtype_name(c.t), seed, e,
                  c.bound);
    }
  }
}

TEST(QuantQuantize, ZeroAndConstantRows) {
  for (DType t : kWeightTypes) {
    const int64_t n = 512;
    const std::vector<float> zeros(n, 0.0f), fives(n, 0.5f);
    for (float v : dequantize(t, quantize(t, zeros), n)) ASSERT_EQ(v, 0.0f) << dtype_name(t);
    for (float v : dequantize(t, quantize(t, fives), n))
      ASSERT_NEAR(v, 0.5f, 0.02f) << dtype_name(t);
  }
}

TEST(QuantQuantize, ActivationSideFields) {
  const std::vector<float> x = gaussian(512, 11);
  const Bytes q1 = quantize(DType::Q8_1, x);
  const BlockQ8_1* b1 = reinterpret_cast<const BlockQ8_1*>(q1.data());
  for (int i = 0; i < 16; ++i) {
    int sum = 0, amax = 0;
    for (int j = 0; j < 32; ++j)
      sum += b1[i].qs[j], amax = std::max(amax, std::abs(int{b1[i].qs[j]}));
    EXPECT_EQ(amax, 127);
    EXPECT_NEAR(h(b1[i].s), h(b1[i].d) * sum, std::fabs(h(b1[i].d) * sum) * 1e-3 + 1e-6);
  }
  const Bytes qk = quantize(DType::Q8_K, x);
  const BlockQ8_K* bk = reinterpret_cast<const BlockQ8_K*>(qk.data());
  for (int i = 0; i < 2; ++i)
    for (int s = 0; s < 16; ++s) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += bk[i].qs[16 * s + j];
      EXPECT_EQ(bk[i].bsums[s], sum);
    }
}

// The vectorised activation quantizers give the reference's bytes exactly, at every ISA, for
// Gaussian data at several scales (down to f16-subnormal block scales), all-zero blocks, blocks
// with one non-zero value and values that land exactly halfway between two codes.
TEST(QuantQuantize, ActivationQuantizersMatchTheReferenceBytes) {
  const int64_t n = 1024;
  std::vector<std::vector<float>> inputs;
  for (float sigma : {1.0f, 300.0f, 1e-3f, 1e-6f}) inputs.push_back(gaussian(n, 21, sigma));
  std::vector<float> special(static_cast<size_t>(n), 0.0f);
  special[40] = -3.0f;  // block 1: one value, the rest zero
  // Block 3: max |x| = 127, so d = 1 and the other values, k + 0.5, round to even.
  special[96] = 127.0f;
  for (int j = 1; j < 32; ++j) special[size_t(96 + j)] = float(j - 16) + 0.5f;
  inputs.push_back(special);
  for (DType t : {DType::Q8_0, DType::Q8_1, DType::Q8_K}) {
    SCOPED_TRACE(dtype_name(t));
    for (const auto& x : inputs) {
      const Bytes want = quantize(t, x);
      for (Isa isa : isas_here()) {
        SCOPED_TRACE(isa_name(isa));
        const QuantizeRowFn f = quantize_act_for_isa(t, isa);
        ASSERT_NE(f, nullptr);
        Bytes got(want.size(), 0xAB);
        f(x.data(), got.data(), n);
        EXPECT_EQ(got, want);
      }
      Bytes got(want.size(), 0xAB);
      quant_kernels(t)->quantize_act(x.data(), got.data(), n);  // the dispatched entry
      EXPECT_EQ(got, want);
    }
  }
  EXPECT_EQ(quant_kernels(DType::Q4_0)->quantize_act, nullptr);  // weight-only types have none
}

// ---- (c) fused dot products -------------------------------------------------------------------

// Weight rows for the dot tests: quantized Gaussian data, or random bytes (every code pattern,
// including Q8_0's -128 and Q6_K's -128 scale) with the f16/f32 scale fields overwritten by sane
// values.
Bytes random_weight_row(DType t, int64_t n, std::mt19937& rng) {
  const int64_t bs = dtype_info(t).block_bytes, be = dtype_info(t).block_elems;
  Bytes b(static_cast<size_t>(row_bytes(t, n)));
  for (auto& v : b) v = static_cast<uint8_t>(rng());
  for (int64_t i = 0; i < n / be; ++i) {
    uint8_t* p = b.data() + i * bs;
    auto s = [&] { return rand_half(rng, -0.05f, 0.05f); };
    auto pos = [&] { return rand_half(rng, 0.0f, 0.05f); };
    switch (t) {
      case DType::Q4_1:
      case DType::Q5_1:
        put16(p, s()), put16(p + 2, s());
        break;
      case DType::Q2_K:
        put16(p + 80, pos()), put16(p + 82, pos());
        break;
      case DType::Q3_K:
        put16(p + 108, s());
        break;
      case DType::Q4_K:
      case DType::Q5_K:
        put16(p, pos()), put16(p + 2, pos());
        break;
      case DType::Q6_K:
        put16(p + 208, s());
        break;
      default:
        put16(p, s());
        break;
    }
  }
  return b;
}

struct DotCase {
  Bytes w;
  std::vector<Bytes> acts;  // per token
};

// Reference: double dot of dequantized weights and dequantized activations, and a tolerance:
// float accumulation (1e-4 relative to sum |w a|) plus, for Q8_1 activations, the f16 rounding of
// the stored block sum s that multiplies the weight block's constant part (|off| |s| 2^-11 per
// block; 1e-3 leaves room for s's own rounding of d).
void reference(DType t, int64_t n, const Bytes& w, const Bytes& a, double* ref, double* tol) {
  const QuantKernels* k = quant_kernels(t);
  const std::vector<float> wf = dequantize(t, w, n), af = dequantize(k->vec_dot_type, a, n);
  double s = 0, mag = 0;
  for (int64_t i = 0; i < n; ++i)
    s += double{wf[i]} * af[i], mag += std::fabs(double{wf[i]} * af[i]);
  double extra = 0;
  if (k->vec_dot_type == DType::Q8_1) {
    // The weight block's constant part: the min (Q4_1/Q5_1) or -8d / -16d (Q4_0/Q5_0).
    const int64_t bs = dtype_info(t).block_bytes;
    const BlockQ8_1* ab = reinterpret_cast<const BlockQ8_1*>(a.data());
    for (int64_t i = 0; i < n / 32; ++i) {
      uint16_t d, m;
      std::memcpy(&d, w.data() + i * bs, 2);
      std::memcpy(&m, w.data() + i * bs + 2, 2);
      const double off = t == DType::Q4_0 ? 8 * h(d) : (t == DType::Q5_0 ? 16 * h(d) : h(m));
      extra += std::fabs(off * h(ab[i].s)) * 1e-3;
    }
  }
  *ref = s;
  *tol = 1e-4 * mag + extra + 1e-6;
}

TEST(QuantDot, EveryIsaMatchesDequantizedReference) {
  IsaGuard guard;
  std::mt19937 rng(99);
  for (DType t : kWeightTypes) {
    const QuantKernels* k = quant_kernels(t);
    const int64_t be = dtype_info(t).block_elems;
    // Lengths: one block, a tail of blocks after the 8-block main loop, a typical row.
    for (int64_t n : {be, be * 11, int64_t{4096}}) {
      for (int kind = 0; kind < 2; ++kind) {
        const Bytes w = kind == 0 ? quantize(t, gaussian(n, static_cast<uint32_t>(rng())))
                                  : random_weight_row(t, n, rng);
        const Bytes a = quantize(k->vec_dot_type, gaussian(n, static_cast<uint32_t>(rng()), 2.0f));
        double ref, tol;
        reference(t, n, w, a, &ref, &tol);
        float r = 0;
        k->vec_dot_ref(n, &r, w.data(), a.data());
        EXPECT_NEAR(r, ref, tol) << dtype_name(t) << " ref n=" << n << " kind " << kind;
        for (Isa isa : isas_here()) {
          float got = NAN;
          vec_dot_for_isa(t, isa)(n, &got, w.data(), a.data());
          EXPECT_NEAR(got, ref, tol)
              << dtype_name(t) << " " << isa_name(isa) << " n=" << n << " kind " << kind;
          set_isa_cap(isa);  // the dispatched entry follows the cap
          float disp = NAN;
          k->vec_dot(n, &disp, w.data(), a.data());
          EXPECT_EQ(disp, got) << dtype_name(t) << " dispatch at " << isa_name(isa);
        }
        set_isa_cap(kTopIsa);
      }
    }
  }
}

TEST(QuantDot, MultiTokenMatchesSingleToken) {
  std::mt19937 rng(5);
  for (DType t : kWeightTypes) {
    const QuantKernels* k = quant_kernels(t);
    const int64_t n = dtype_info(t).block_elems == 32 ? 32 * 19 : 256 * 3;
    const Bytes w = quantize(t, gaussian(n, static_cast<uint32_t>(rng())));
    const int64_t abytes = row_bytes(k->vec_dot_type, n);
    for (int64_t n_tok = 1; n_tok <= 5; ++n_tok) {
      Bytes acts;
      for (int64_t tk = 0; tk < n_tok; ++tk) {
        const Bytes a = quantize(k->vec_dot_type, gaussian(n, static_cast<uint32_t>(rng())));
        acts.insert(acts.end(), a.begin(), a.end());
      }
      for (Isa isa : isas_here()) {
        const int64_t stride = 3;  // outputs interleaved with untouched slots
        std::vector<float> out(static_cast<size_t>(n_tok * stride), -7.0f);
        vec_dot_tokens_for_isa(t, isa)(n, n_tok, w.data(), acts.data(), abytes, out.data(), stride);
        for (int64_t tk = 0; tk < n_tok; ++tk) {
          const Bytes a(acts.begin() + tk * abytes, acts.begin() + (tk + 1) * abytes);
          double ref, tol;
          reference(t, n, w, a, &ref, &tol);
          EXPECT_NEAR(out[tk * stride], ref, tol)
              << dtype_name(t) << " " << isa_name(isa) << " token " << tk << "/" << n_tok;
          EXPECT_EQ(out[tk * stride + 1], -7.0f);
        }
      }
    }
  }
}

TEST(QuantDot, RowBlocksMatchTheReference) {
  std::mt19937 rng(9);
  for (DType t : kWeightTypes) {
    const QuantKernels* k = quant_kernels(t);
    // 19 legacy blocks: two passes of 8 plus a 3-block tail; K-quants: 3 super-blocks.
    const int64_t n = dtype_info(t).block_elems == 32 ? 32 * 19 : 256 * 3;
    const int64_t rb = row_bytes(t, n), stride = rb + 6;  // rows apart by more than a row
    const Bytes a = quantize(k->vec_dot_type, gaussian(n, static_cast<uint32_t>(rng()), 2.0f));
    for (int64_t n_rows : {int64_t{1}, int64_t{3}, int64_t{4}, int64_t{7}, int64_t{9}}) {
      Bytes w(static_cast<size_t>(n_rows * stride), 0xCD);
      std::vector<Bytes> rows;
      for (int64_t r = 0; r < n_rows; ++r) {
        rows.push_back(quantize(t, gaussian(n, static_cast<uint32_t>(rng()))));
        std::copy(rows.back().begin(), rows.back().end(), w.begin() + r * stride);
      }
      for (Isa isa : isas_here()) {
        std::vector<float> out(static_cast<size_t>(n_rows + 1), -7.0f);
        vec_dot_rows_for_isa(t, isa)(n, n_rows, w.data(), stride, a.data(), out.data());
        for (int64_t r = 0; r < n_rows; ++r) {
          double ref, tol;
          reference(t, n, rows[static_cast<size_t>(r)], a, &ref, &tol);
          EXPECT_NEAR(out[static_cast<size_t>(r)], ref, tol)
              << dtype_name(t) << " " << isa_name(isa) << " row " << r << "/" << n_rows;
        }
        EXPECT_EQ(out[static_cast<size_t>(n_rows)], -7.0f) << "wrote past the last row";
      }
    }
  }
}

// ---- (d) Panel GEMM (integer prefill) ------------------------------------------------------

// The scalar reference against double math: each block's integer sum of (weight codes x
// activation codes) scaled by d_w x d_a, i.e. the dequantized weights dotted with the dequantized
// activations; and within 8-bit rounding of the f32 activations.
TEST(PanelGemm, ReferenceIsTheDequantizedDot) {
  const int64_t n = 32 * 11, n_tok = 5, n_rows = 3;
  const std::vector<float> x = gaussian(n * n_tok, 31, 1.5f);
  for (DType t : {DType::Q4_0, DType::Q8_0}) {
    const PanelGemm* ref = panel_gemm_for_isa(t, Isa::Scalar);
    ASSERT_NE(ref, nullptr) << dtype_name(t);
    EXPECT_EQ(ref->offset, t == DType::Q4_0 ? 8 : 128);
    std::vector<uint8_t> buf(static_cast<size_t>(q8_panel_bytes(n, n_tok)));
    const Q8Panel p = q8_panel_view(buf.data(), n, n_tok);
    ref->quantize(x.data(), n, 0, n_tok, ref->offset, p);
    const int64_t rb = row_bytes(t, n);
    Bytes w(static_cast<size_t>(n_rows * rb));
    std::vector<std::vector<float>> deq;
    for (int64_t r = 0; r < n_rows; ++r) {
      const Bytes row = quantize(t, gaussian(n, static_cast<uint32_t>(40 + r)));
      std::copy(row.begin(), row.end(), w.begin() + r * rb);
      deq.push_back(dequantize(t, row, n));
    }
    std::vector<float> y(static_cast<size_t>(n_tok * n_rows));
    ref->gemm(w.data(), rb, n_rows, p, y.data(), n_rows);
    for (int64_t tk = 0; tk < n_tok; ++tk)
      for (int64_t r = 0; r < n_rows; ++r) {
        double exact = 0, with_x = 0, mag = 0;
        for (int64_t i = 0; i < n; ++i) {
          const double wi = deq[static_cast<size_t>(r)][static_cast<size_t>(i)];
          const int64_t b = i / kPanelBlock;
          const int32_t code = p.codes[tk * n + i];
          EXPECT_LE(std::abs(code), 127);
          exact += wi * code * p.d[tk * (n / kPanelBlock) + b];
          with_x += wi * x[static_cast<size_t>(tk * n + i)];
          mag += std::fabs(wi * x[static_cast<size_t>(tk * n + i)]);
        }
        const float got = y[static_cast<size_t>(tk * n_rows + r)];
        EXPECT_NEAR(got, exact, 1e-5 * mag) << dtype_name(t) << " token " << tk << " row " << r;
        EXPECT_NEAR(got, with_x, 0.01 * mag) << dtype_name(t) << " token " << tk << " row " << r;
      }
    // The start values are -offset x the sum of each block's codes.
    for (int64_t tk = 0; tk < n_tok; ++tk)
      for (int64_t b = 0; b < n / kPanelBlock; ++b) {
        int32_t sum = 0;
        for (int j = 0; j < kPanelBlock; ++j) sum += p.codes[tk * n + b * kPanelBlock + j];
        EXPECT_EQ(p.start[tk * (n / kPanelBlock) + b], -ref->offset * sum);
      }
  }
}

// The vectorized panel (AVX-512 VNNI) against the scalar reference, bit for bit: the same codes,
// scales and start values (the reference takes them from quantize_row_q8_1, the decode path's
// activation quantizer), and the same floats out of the GEMM (both round d_w x d_a and add the
// blocks in order with one FMA each). Strips of 32 rows and tiles of 5 tokens with every kind of
// remainder, weight rows further apart than a row, and outputs wider than the rows: nothing
// outside [0, n_rows) of each output row may be written.
TEST(PanelGemm, VectorKernelMatchesReferenceExactly) {
  if (!panel_gemm_for_isa(DType::Q4_0, Isa::Avx512Vnni))
    GTEST_SKIP() << "this CPU has no AVX-512 VNNI + VBMI";
  const int64_t n = 32 * 13, ldx = n + 5;
  for (DType t : {DType::Q4_0, DType::Q8_0}) {
    const PanelGemm* ref = panel_gemm_for_isa(t, Isa::Scalar);
    const PanelGemm* vec = panel_gemm_for_isa(t, Isa::Avx512Vnni);
    ASSERT_NE(vec, nullptr);
    ASSERT_EQ(vec->offset, ref->offset);
    const int64_t rb = row_bytes(t, n), ws = rb + 10;
    for (int64_t n_tok : {int64_t{1}, int64_t{5}, int64_t{6}, int64_t{7}, int64_t{13}}) {
      const std::vector<float> x = gaussian(ldx * n_tok, static_cast<uint32_t>(n_tok), 3.0f);
      std::vector<uint8_t> bv(static_cast<size_t>(q8_panel_bytes(n, n_tok)));
      std::vector<uint8_t> br(bv.size());
      const Q8Panel pv = q8_panel_view(bv.data(), n, n_tok);
      const Q8Panel pr = q8_panel_view(br.data(), n, n_tok);
      ref->quantize(x.data(), ldx, 0, n_tok, ref->offset, pr);
      const int64_t half = n_tok / 2;  // in two parts, as threads do
      vec->quantize(x.data(), ldx, 0, half, vec->offset, pv);
      vec->quantize(x.data(), ldx, half, n_tok, vec->offset, pv);
      for (int64_t i = 0; i < n * n_tok; ++i)
        ASSERT_EQ(pv.codes[i], pr.codes[i]) << dtype_name(t) << " code " << i;
      for (int64_t i = 0; i < n / kPanelBlock * n_tok; ++i) {
        ASSERT_EQ(pv.d[i], pr.d[i]) << dtype_name(t) << " scale " << i;
        ASSERT_EQ(pv.start[i], pr.start[i]) << dtype_name(t) << " start " << i;
      }
      for (int64_t n_rows : {int64_t{1}, int64_t{15}, int64_t{16}, int64_t{17}, int64_t{32},
                             int64_t{45}, int64_t{64}}) {
        Bytes w(static_cast<size_t>(n_rows * ws), 0xCD);
        for (int64_t r = 0; r < n_rows; ++r) {
          const Bytes row = quantize(t, gaussian(n, static_cast<uint32_t>(100 + r), 0.7f));
          std::copy(row.begin(), row.end(), w.begin() + r * ws);
        }
        const int64_t ldy = n_rows + 3;
        std::vector<float> yr(static_cast<size_t>(n_tok * ldy), -7.0f), yv = yr;
        ref->gemm(w.data(), ws, n_rows, pr, yr.data(), ldy);
        vec->gemm(w.data(), ws, n_rows, pv, yv.data(), ldy);
        for (int64_t tk = 0; tk < n_tok; ++tk)
          for (int64_t r = 0; r < ldy; ++r)
            ASSERT_EQ(yv[static_cast<size_t>(tk * ldy + r)], yr[static_cast<size_t>(tk * ldy + r)])
                << dtype_name(t) << " tokens " << n_tok << " rows " << n_rows << " at token " << tk
                << " row " << r;
      }
    }
  }
}

// ---- (e) G4 ---------------------------------------------------------------------------------

TEST(G4, WeightRoundTripAndLayout) {
  for (int64_t out : {int64_t{1}, int64_t{64}, int64_t{100}, int64_t{130}}) {
    const int64_t in = 48;
    const std::vector<float> w = gaussian(out * in, static_cast<uint32_t>(out));
    const uint64_t bytes = g4_weight_bytes(out, in);
    EXPECT_EQ(bytes, static_cast<uint64_t>(g4_groups(out) * 36 * in));
    Bytes q(bytes, 0xAB);
    g4_quantize_weight(w.data(), out, in, q.data());
    std::vector<float> row(in);
    double err = 0, sig = 0;
    for (int64_t o = 0; o < out; ++o) {
      g4_dequantize_row(q.data(), out, in, o, row.data());
      const int64_t g = o / 64;
      for (int64_t i = 0; i < in; ++i) {
        // Independent check of the stored layout: scale/min for column i of group g, code nibble.
        uint16_t s, m;
        std::memcpy(&s, q.data() + g * 36 * in + 2 * i, 2);
        std::memcpy(&m, q.data() + g * 36 * in + 2 * in + 2 * i, 2);
        const uint8_t byte = q[g * 36 * in + 4 * in + (o % 64) * (in / 2) + i / 2];
        const int code = (byte >> (4 * (i % 2))) & 15;
        ASSERT_EQ(row[i], static_cast<float>(code) * h(s) + h(m));
        // Error at most half a step (plus f16 rounding of scale and min).
        ASSERT_LE(std::fabs(row[i] - w[o * in + i]),
                  0.5f * h(s) * 1.01f + std::fabs(h(m)) * 1e-3f + 1e-6f);
        err += (row[i] - w[o * in + i]) * (row[i] - w[o * in + i]);
        sig += w[o * in + i] * w[o * in + i];
      }
    }
    // 4 bits over a 64-sample column range (~5 sigma): step ~0.33 sigma, RMSE ~0.1 sigma.
    EXPECT_LT(std::sqrt(err / sig), 0.12) << "out=" << out;
    // Padding rows of the last group are zero.
    const int64_t last = g4_groups(out) - 1;
    for (int64_t r = out - last * 64; r < 64; ++r)
      for (int64_t k = 0; k < in / 2; ++k)
        ASSERT_EQ(q[last * 36 * in + 4 * in + r * (in / 2) + k], 0);
  }
}

TEST(G4, StreamingQuantizeMatchesWhole) {
  const int64_t out = 200, in = 34;
  const std::vector<float> w = gaussian(out * in, 3);
  Bytes whole(g4_weight_bytes(out, in)), streamed(g4_weight_bytes(out, in));
  g4_quantize_weight(w.data(), out, in, whole.data());
  for (int64_t g = 0; g < g4_groups(out); ++g)
    g4_quantize_weight_groups(w.data() + g * 64 * in, out, in, g, g + 1, streamed.data());
  EXPECT_EQ(whole, streamed);
  EXPECT_THROW(g4_weight_bytes(4, 3), Error);
  EXPECT_THROW(g4_quantize_weight_groups(w.data(), out, in, 2, 5, whole.data()), Error);
}

TEST(G4, MatmulMatchesNaiveOnDequantizedWeights) {
  IsaGuard guard;
  for (int64_t out : {int64_t{64}, int64_t{150}}) {
    for (int64_t in : {int64_t{256}, int64_t{70}}) {
      const std::vector<float> w = gaussian(out * in, 17);
      Bytes q(g4_weight_bytes(out, in));
      g4_quantize_weight(w.data(), out, in, q.data());
      std::vector<float> wd(static_cast<size_t>(out * in));
      for (int64_t o = 0; o < out; ++o) g4_dequantize_row(q.data(), out, in, o, wd.data() + o * in);
      for (int64_t n_tok = 1; n_tok <= 5; ++n_tok) {
        const std::vector<float> x = gaussian(n_tok * in, static_cast<uint32_t>(n_tok + 100));
        for (Isa isa : isas_here()) {
          set_isa_cap(isa);
          // Groups [1, end) only: group 0's outputs must stay untouched.
          std::vector<float> y(static_cast<size_t>(n_tok * out), -9.0f);
          const int64_t g1 = g4_groups(out);
          g4_matmul_groups(q.data(), out, in, x.data(), n_tok, y.data(), 0, g1);
          std::vector<float> y2(static_cast<size_t>(n_tok * out), -9.0f);
          g4_matmul_groups(q.data(), out, in, x.data(), n_tok, y2.data(), 1, g1);
          for (int64_t t = 0; t < n_tok; ++t)
            for (int64_t o = 0; o < out; ++o) {
              double ref = 0, mag = 0;
              for (int64_t i = 0; i < in; ++i) {
                ref += double{wd[o * in + i]} * x[t * in + i];
                mag += std::fabs(double{wd[o * in + i]} * x[t * in + i]);
              }
              ASSERT_NEAR(y[t * out + o], ref, 1e-4 * mag + 1e-5)
                  << isa_name(isa) << " out=" << out << " in=" << in << " tok " << t << " row "
                  << o;
              if (o < 64)
                ASSERT_EQ(y2[t * out + o], -9.0f);
              else
                ASSERT_EQ(y2[t * out + o], y[t * out + o]);
            }
        }
      }
    }
  }
}

// The vectorised KV quantizer writes the same bytes as the scalar one, including constant
// groups (zero scale), a short last group, and values on the rounding midpoints.
TEST(G4, KvRowBytesEqualAtEveryIsa) {
  IsaGuard guard;
  for (int64_t n : {int64_t{64}, int64_t{256}, int64_t{200}}) {
    std::vector<float> x = gaussian(n, static_cast<uint32_t>(n + 5));
    for (int64_t i = 0; i < 64; ++i) x[i] = 0.25f;  // a constant group
    if (n > 128)
      for (int64_t i = 64; i < 128; ++i) x[i] = static_cast<float>(i % 16) * 0.5f;  // exact steps
    Bytes want(static_cast<size_t>(g4_kv_row_bytes(n)));
    set_isa_cap(Isa::Scalar);
    g4_quantize_kv_row(x.data(), n, want.data());
    for (Isa isa : isas_here()) {
      set_isa_cap(isa);
      Bytes got(want.size(), 0xEE);
      g4_quantize_kv_row(x.data(), n, got.data());
      EXPECT_EQ(got, want) << isa_name(isa) << " n=" << n;
    }
  }
}

TEST(G4, KvRowRoundTrip) {
  for (int64_t n : {int64_t{64}, int64_t{128}, int64_t{100}, int64_t{7}, int64_t{1}}) {
    EXPECT_EQ(g4_kv_row_bytes(n), (n / 64) * 36 + (n % 64 ? 4 + (n % 64 + 1) / 2 : 0));
    const std::vector<float> x = gaussian(n, static_cast<uint32_t>(n));
    Bytes q(static_cast<size_t>(g4_kv_row_bytes(n)) + 1, 0xEE);  // guard byte
    g4_quantize_kv_row(x.data(), n, q.data());
    EXPECT_EQ(q.back(), 0xEE);
    std::vector<float> y(n);
    g4_dequantize_kv_row(q.data(), n, y.data());
    for (int64_t g = 0; g * 64 < n; ++g) {
      const int64_t len = std::min<int64_t>(64, n - g * 64);
      float lo = x[g * 64], hi = x[g * 64];
      for (int64_t i = 0; i < len; ++i)
        lo = std::min(lo, x[g * 64 + i]), hi = std::max(hi, x[g * 64 + i]);
      const float step = (hi - lo) / 15;
      for (int64_t i = 0; i < len; ++i)
        ASSERT_LE(std::fabs(y[g * 64 + i] - x[g * 64 + i]),
                  0.5f * step * 1.01f + std::fabs(lo) * 1e-3f + 1e-6f)
            << "n=" << n << " i=" << g * 64 + i;
    }
  }
}

}  // namespace
}  // namespace strata

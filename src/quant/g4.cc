#include "quant/g4.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/half.h"
#include "quant/g4_kernels.h"

namespace strata {
namespace {

void check_shape(int64_t out, int64_t in, const char* what) {
  if (out < 0 || in < 0) fail("{}: negative G4 weight shape [{}, {}]", what, out, in);
  if (in % 2 != 0)
    fail("{}: G4 weights need an even number of columns, got [{}, {}]", what, out, in);
}

// Scale and min for values spanning [lo, hi], as stored (f16 bits).
inline void scale_min(float lo, float hi, uint16_t* s, uint16_t* m) {
  *s = f32_to_fp16((hi - lo) / 15.0f);
  *m = f32_to_fp16(lo);
}

// Code for x given the stored scale/min; a zero scale (constant group) gives code 0.
inline uint8_t code_of(float x, float scale, float mn) {
  if (!(scale > 0)) return 0;
  const float q = std::nearbyint((x - mn) / scale);
  return static_cast<uint8_t>(q < 0 ? 0 : (q > 15 ? 15 : q));
}

}  // namespace

uint64_t g4_weight_bytes(int64_t out, int64_t in) {
  check_shape(out, in, "g4_weight_bytes");
  return static_cast<uint64_t>(g4_groups(out)) * 36u * static_cast<uint64_t>(in);
}

void g4_quantize_weight(const float* w, int64_t out, int64_t in, void* dst) {
  g4_quantize_weight_groups(w, out, in, 0, g4_groups(out), dst);
}

void g4_quantize_weight_groups(const float* rows, int64_t out, int64_t in, int64_t group_begin,
                               int64_t group_end, void* dst) {
  check_shape(out, in, "g4_quantize_weight_groups");
  if (group_begin < 0 || group_end < group_begin || group_end > g4_groups(out))
    fail("g4_quantize_weight_groups: groups [{}, {}) outside the {} groups of a [{}, {}] weight",
         group_begin, group_end, g4_groups(out), out, in);
  std::vector<float> lo(static_cast<size_t>(in)), hi(static_cast<size_t>(in));
  std::vector<float> sf(static_cast<size_t>(in)), mf(static_cast<size_t>(in));
  for (int64_t g = group_begin; g < group_end; ++g) {
    uint8_t* base = static_cast<uint8_t*>(dst) + g * 36 * in;
    uint16_t* scale = reinterpret_cast<uint16_t*>(base);
    uint16_t* mins = reinterpret_cast<uint16_t*>(base + 2 * in);
    uint8_t* codes = base + 4 * in;
    const int64_t r0 = g * kG4Group, nr = std::min(kG4Group, out - r0);
    const float* src = rows + (r0 - group_begin * kG4Group) * in;
    std::copy(src, src + in, lo.begin());
    std::copy(src, src + in, hi.begin());
    for (int64_t r = 1; r < nr; ++r)
      for (int64_t i = 0; i < in; ++i) {
        lo[i] = std::min(lo[i], src[r * in + i]);
        hi[i] = std::max(hi[i], src[r * in + i]);
      }
    for (int64_t i = 0; i < in; ++i) {
      scale_min(lo[i], hi[i], &scale[i], &mins[i]);
      sf[i] = fp16_to_f32(scale[i]);
      mf[i] = fp16_to_f32(mins[i]);
    }
    for (int64_t r = 0; r < kG4Group; ++r) {
      uint8_t* row = codes + r * (in / 2);
      if (r >= nr) {
        std::memset(row, 0, static_cast<size_t>(in / 2));
        continue;
      }
      const float* x = src + r * in;
      for (int64_t k = 0; k < in / 2; ++k)
        row[k] = static_cast<uint8_t>(code_of(x[2 * k], sf[2 * k], mf[2 * k]) |
                                      code_of(x[2 * k + 1], sf[2 * k + 1], mf[2 * k + 1]) << 4);
    }
  }
}

void g4_dequantize_row(const void* src, int64_t out, int64_t in, int64_t row, float* dst) {
  check_shape(out, in, "g4_dequantize_row");
  if (row < 0 || row >= out)
    fail("g4_dequantize_row: row {} outside a [{}, {}] weight", row, out, in);
  const g4::Group G = g4::group_at(src, out, in, row / kG4Group);
  const uint8_t* codes = G.codes + (row % kG4Group) * (in / 2);
  for (int64_t i = 0; i < in; ++i) {
    const int q = (codes[i / 2] >> (4 * (i & 1))) & 15;
    dst[i] = static_cast<float>(q) * fp16_to_f32(G.scale[i]) + fp16_to_f32(G.min[i]);
  }
}

void g4_matmul_groups(const void* w, int64_t out, int64_t in, const float* x, int64_t n_tok,
                      float* y, int64_t group_begin, int64_t group_end) {
  check_shape(out, in, "g4_matmul_groups");
  if (n_tok < 0 || group_begin < 0 || group_end < group_begin || group_end > g4_groups(out))
    fail("g4_matmul_groups: groups [{}, {}) / {} tokens invalid for a [{}, {}] weight", group_begin,
         group_end, n_tok, out, in);
  std::vector<float> scratch(static_cast<size_t>(4 * in));
  switch (best_isa()) {
    case Isa::Avx512:
    case Isa::Avx512Vnni:
      return g4::matmul_avx512(w, out, in, x, n_tok, y, group_begin, group_end, scratch.data());
    case Isa::Avx2:
      return g4::matmul_avx2(w, out, in, x, n_tok, y, group_begin, group_end, scratch.data());
    case Isa::Scalar:
      break;
  }
  g4::matmul_scalar(w, out, in, x, n_tok, y, group_begin, group_end, scratch.data());
}

namespace g4 {

void matmul_scalar(const void* w, int64_t out, int64_t in, const float* x, int64_t n_tok, float* y,
                   int64_t g0, int64_t g1, float* xs) {
  for (int64_t g = g0; g < g1; ++g) {
    const Group G = group_at(w, out, in, g);
    for (int64_t t = 0; t < n_tok; ++t) {
      const float* xt = x + t * in;
      float c = 0;
      for (int64_t i = 0; i < in; ++i) {
        xs[i] = fp16_to_f32(G.scale[i]) * xt[i];
        c += fp16_to_f32(G.min[i]) * xt[i];
      }
      for (int64_t r = 0; r < G.rows; ++r) {
        const uint8_t* codes = G.codes + r * (in / 2);
        float s = 0;
        for (int64_t k = 0; k < in / 2; ++k)
          s += static_cast<float>(codes[k] & 15) * xs[2 * k] +
               static_cast<float>(codes[k] >> 4) * xs[2 * k + 1];
        y[t * out + g * kG4Group + r] = s + c;
      }
    }
  }
}

}  // namespace g4

int64_t g4_kv_row_bytes(int64_t n) {
  if (n < 0) fail("g4_kv_row_bytes: negative length {}", n);
  const int64_t full = n / kG4Group, rem = n % kG4Group;
  return full * 36 + (rem ? 4 + (rem + 1) / 2 : 0);
}

void g4_quantize_kv_row(const float* src, int64_t n, void* dst) {
  uint8_t* p = static_cast<uint8_t*>(dst);
  const bool avx2 = best_isa() != Isa::Scalar;
  for (int64_t g0 = 0; g0 < n; g0 += kG4Group) {
    const int64_t len = std::min(kG4Group, n - g0);
    const bool vec = avx2 && len == kG4Group;
    const float* x = src + g0;
    float lo = x[0], hi = x[0];
    if (vec)
      g4::kv_range_avx2(x, &lo, &hi);
    else
      for (int64_t i = 1; i < len; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
    uint16_t s, m;
    scale_min(lo, hi, &s, &m);
    std::memcpy(p, &s, 2);
    std::memcpy(p + 2, &m, 2);
    const float sf = fp16_to_f32(s), mf = fp16_to_f32(m);
    uint8_t* codes = p + 4;
    std::memset(codes, 0, static_cast<size_t>((len + 1) / 2));
    if (vec && sf > 0)
      g4::kv_codes_avx2(x, sf, mf, codes);
    else
      for (int64_t i = 0; i < len; ++i)
        codes[i / 2] |= static_cast<uint8_t>(code_of(x[i], sf, mf) << (4 * (i & 1)));
    p += 4 + (len + 1) / 2;
  }
}

void g4_dequantize_kv_row(const void* src, int64_t n, float* dst) {
  const uint8_t* p = static_cast<const uint8_t*>(src);
  for (int64_t g0 = 0; g0 < n; g0 += kG4Group) {
    const int64_t len = std::min(kG4Group, n - g0);
    uint16_t s, m;
    std::memcpy(&s, p, 2);
    std::memcpy(&m, p + 2, 2);
    const float sf = fp16_to_f32(s), mf = fp16_to_f32(m);
    for (int64_t i = 0; i < len; ++i)
      dst[g0 + i] = static_cast<float>((p[4 + i / 2] >> (4 * (i & 1))) & 15) * sf + mf;
    p += 4 + (len + 1) / 2;
  }
}

void g4_kv_to_code_order(const float* x, int64_t n, float* xp) {
  for (int64_t c = 0; c < n; c += 32)
    for (int64_t b = 0; b < 16; ++b) {
      xp[c + b] = x[c + 2 * b];
      xp[c + 16 + b] = x[c + 2 * b + 1];
    }
}

void g4_kv_from_code_order(const float* xp, const float* msum, int64_t n, float* x) {
  for (int64_t c = 0; c < n; c += 32) {
    const float m = msum[c / kG4Group];
    for (int64_t b = 0; b < 16; ++b) {
      x[c + 2 * b] = xp[c + b] + m;
      x[c + 2 * b + 1] = xp[c + 16 + b] + m;
    }
  }
}

const G4KvKernels& g4_kv_kernels() {
  static const G4KvKernels scalar{g4::kv_dot_scalar, g4::kv_axpy_scalar};
  static const G4KvKernels avx2{g4::kv_dot_avx2, g4::kv_axpy_avx2};
  return best_isa() == Isa::Scalar ? scalar : avx2;
}

namespace g4 {

float kv_dot_scalar(const void* slice, int64_t groups, const float* qp, const float* qsum) {
  const uint8_t* p = static_cast<const uint8_t*>(slice);
  float total = 0;
  for (int64_t g = 0; g < groups; ++g, p += kG4KvGroupBytes) {
    uint16_t s, m;
    std::memcpy(&s, p, 2);
    std::memcpy(&m, p + 2, 2);
    const float* q = qp + g * kG4Group;
    float acc = 0;
    for (int64_t c = 0; c < 2; ++c)
      for (int64_t b = 0; b < 16; ++b) {
        const uint8_t code = p[4 + 16 * c + b];
        acc += static_cast<float>(code & 15) * q[32 * c + b] +
               static_cast<float>(code >> 4) * q[32 * c + 16 + b];
      }
    total += fp16_to_f32(s) * acc + fp16_to_f32(m) * qsum[g];
  }
  return total;
}

void kv_axpy_scalar(const void* slice, int64_t groups, float a, float* op, float* msum) {
  const uint8_t* p = static_cast<const uint8_t*>(slice);
  for (int64_t g = 0; g < groups; ++g, p += kG4KvGroupBytes) {
    uint16_t s, m;
    std::memcpy(&s, p, 2);
    std::memcpy(&m, p + 2, 2);
    const float as = a * fp16_to_f32(s);
    msum[g] += a * fp16_to_f32(m);
    float* o = op + g * kG4Group;
    for (int64_t c = 0; c < 2; ++c)
      for (int64_t b = 0; b < 16; ++b) {
        const uint8_t code = p[4 + 16 * c + b];
        o[32 * c + b] += as * static_cast<float>(code & 15);
        o[32 * c + 16 + b] += as * static_cast<float>(code >> 4);
      }
  }
}

}  // namespace g4
}  // namespace strata

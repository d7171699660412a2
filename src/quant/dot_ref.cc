// Scalar reference dot products. Integer sums per block (or per K super-block) exactly as the
// SIMD kernels form them, one float multiply-add per block; the SIMD paths differ from these
// only in the order of the float additions.
#include "core/half.h"
#include "quant/kernels.h"

namespace strata::qk::scalar {
namespace {

template <class B>
const B* blocks(const void* p) {
  return static_cast<const B*>(p);
}

inline uint32_t load_qh(const uint8_t* qh) {
  uint32_t h;
  std::memcpy(&h, qh, 4);
  return h;
}

// Sum of q_w * q_a over one legacy block, q_w from the nibbles (+ optional 5th bit) minus bias.
inline int legacy_isum(const uint8_t* qs, uint32_t qh, int bias, const int8_t* a) {
  int sum = 0;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 15) | static_cast<int>((qh >> j) & 1) << 4;
    const int hi = (qs[j] >> 4) | static_cast<int>((qh >> (j + 16)) & 1) << 4;
    sum += (lo - bias) * a[j] + (hi - bias) * a[j + 16];
  }
  return sum;
}

}  // namespace

// Q4_0 / Q5_0 take Q8_1 activations: the constant -8 / -16 of the codes multiplies the block
// sum s, exactly as the SIMD kernels do (they never subtract it element by element).
void vec_dot_q4_0(int64_t n, float* out, const void* vw, const void* va) {
  const BlockQ4_0* w = blocks<BlockQ4_0>(vw);
  const BlockQ8_1* a = blocks<BlockQ8_1>(va);
  float acc = 0;
  for (int64_t i = 0; i < n / kQK; ++i) {
    const float d = fp16_to_f32(w[i].d);
    acc += d * fp16_to_f32(a[i].d) * static_cast<float>(legacy_isum(w[i].qs, 0, 0, a[i].qs)) +
           -8.0f * d * fp16_to_f32(a[i].s);
  }
  *out = acc;
}

void vec_dot_q4_1(int64_t n, float* out, const void* vw, const void* va) {
  const BlockQ4_1* w = blocks<BlockQ4_1>(vw);
  const BlockQ8_1* a = blocks<BlockQ8_1>(va);
  float acc = 0;
  for (int64_t i = 0; i < n / kQK; ++i)
    acc += fp16_to_f32(w[i].d) * fp16_to_f32(a[i].d) *
               static_cast<float>(legacy_isum(w[i].qs, 0, 0, a[i].qs)) +
           fp16_to_f32(w[i].m) * fp16_to_f32(a[i].s);
  *out = acc;
}

void vec_dot_q5_0(int64_t n, float* out, const void* vw, const void* va) {
  const BlockQ5_0* w = blocks<BlockQ5_0>(vw);
  const BlockQ8_1* a = blocks<BlockQ8_1>(va);
  float acc = 0;
  for (int64_t i = 0; i < n / kQK; ++i) {
    const float d = fp16_to_f32(w[i].d);
    acc += d * fp16_to_f32(a[i].d) *
               static_cast<float>(legacy_isum(w[i].qs, load_qh(w[i].qh), 0, a[i].qs)) +
           -16.0f * d * fp16_to_f32(a[i].s);
  }
  *out = acc;
}

void vec_dot_q5_1(int64_t n, float* out, const void* vw, const void* va) {
  const BlockQ5_1* w = blocks<BlockQ5_1>(vw);
  const BlockQ8_1* a = blocks<BlockQ8_1>(va);
  float acc = 0;
  for (int64_t i = 0; i < n / kQK; ++i)
    acc += fp16_to_f32(w[i].d) * fp16_to_f32(a[i].d) *
               static_cast<float>(legacy_isum(w[i].qs, load_qh(w[i].qh), 0, a[i].qs)) +
           fp16_to_f32(w[i].m) * fp16_to_f32(a[i].s);
  *out = acc;
}

void vec_dot_q8_0(int64_t n, float* out, const void* vw, const void* va) {
  const BlockQ8_0* w = blocks<BlockQ8_0>(vw);
  const BlockQ8_0* a = blocks<BlockQ8_0>(va);
  float acc = 0;
  for (int64_t i = 0; i < n / kQK; ++i) {
    int sum = 0;
    for (int j = 0; j < kQK; ++j) sum += w[i].qs[j] * a[i].qs[j];
    acc += fp16_to_f32(w[i].d) * fp16_to_f32(a[i].d) * static_cast<float>(sum);
  }
  *out = acc;
}

void vec_dot_q2_k(int64_t n, float* out, const void* vw, const void* va) {
  const BlockQ2_K* w = blocks<BlockQ2_K>(vw);
  const BlockQ8_K* a = blocks<BlockQ8_K>(va);
  float acc = 0;
  for (int64_t i = 0; i < n / kQKK; ++i) {
    int sum = 0, msum = 0;
    for (int h = 0; h < 2; ++h)
      for (int j = 0; j < 4; ++j)
        for (int l = 0; l < 32; ++l) {
          const int s = 8 * h + 2 * j + l / 16;
          sum += (w[i].scales[s] & 15) * ((w[i].qs[32 * h + l] >> (2 * j)) & 3) *
                 a[i].qs[128 * h + 32 * j + l];
        }
    for (int s = 0; s < 16; ++s) msum += (w[i].scales[s] >> 4) * a[i].bsums[s];
    acc += a[i].d * (fp16_to_f32(w[i].d) * static_cast<float>(sum) -
                     fp16_to_f32(w[i].dmin) * static_cast<float>(msum));
  }
  *out = acc;
}

void vec_dot_q3_k(int64_t n, float* out, const void* vw, const void* va) {
  const BlockQ3_K* w = blocks<BlockQ3_K>(vw);
  const BlockQ8_K* a = blocks<BlockQ8_K>(va);
  float acc = 0;
  for (int64_t i = 0; i < n / kQKK; ++i) {
    int8_t sc[16];
    q3k_scales(w[i].scales, sc);
    int sum = 0;
    for (int h = 0; h < 2; ++h)
      for (int j = 0; j < 4; ++j)
        for (int l = 0; l < 32; ++l) {
          const int lo = (w[i].qs[32 * h + l] >> (2 * j)) & 3;
          const int v = lo - (((w[i].hmask[l] >> (4 * h + j)) & 1) ? 0 : 4);
          sum += sc[8 * h + 2 * j + l / 16] * v * a[i].qs[128 * h + 32 * j + l];
        }
    acc += a[i].d * fp16_to_f32(w[i].d) * static_cast<float>(sum);
  }
  *out = acc;
}

void vec_dot_q4_k(int64_t n, float* out, const void* vw, const void* va) {
  const BlockQ4_K* w = blocks<BlockQ4_K>(vw);
  const BlockQ8_K* a = blocks<BlockQ8_K>(va);
  float acc = 0;
  for (int64_t i = 0; i < n / kQKK; ++i) {
    uint8_t sc[8], mn[8];
    q4k_scales_mins(w[i].scales, sc, mn);
    int sum = 0, msum = 0;
    for (int k = 0; k < 4; ++k) {
      int s0 = 0, s1 = 0;
      for (int l = 0; l < 32; ++l) {
        s0 += (w[i].qs[32 * k + l] & 15) * a[i].qs[64 * k + l];
        s1 += (w[i].qs[32 * k + l] >> 4) * a[i].qs[64 * k + 32 + l];
      }
      sum += sc[2 * k] * s0 + sc[2 * k + 1] * s1;
    }
    for (int s = 0; s < 8; ++s) msum += mn[s] * (a[i].bsums[2 * s] + a[i].bsums[2 * s + 1]);
    acc += a[i].d * (fp16_to_f32(w[i].d) * static_cast<float>(sum) -
                     fp16_to_f32(w[i].dmin) * static_cast<float>(msum));
  }
  *out = acc;
}

void vec_dot_q5_k(int64_t n, float* out, const void* vw, const void* va) {
  const BlockQ5_K* w = blocks<BlockQ5_K>(vw);
  const BlockQ8_K* a = blocks<BlockQ8_K>(va);
  float acc = 0;
  for (int64_t i = 0; i < n / kQKK; ++i) {
    uint8_t sc[8], mn[8];
    q4k_scales_mins(w[i].scales, sc, mn);
    int sum = 0, msum = 0;
    for (int k = 0; k < 4; ++k) {
      int s0 = 0, s1 = 0;
      for (int l = 0; l < 32; ++l) {
        const int v0 = (w[i].qs[32 * k + l] & 15) | ((w[i].qh[l] >> (2 * k)) & 1) << 4;
        const int v1 = (w[i].qs[32 * k + l] >> 4) | ((w[i].qh[l] >> (2 * k + 1)) & 1) << 4;
        s0 += v0 * a[i].qs[64 * k + l];
        s1 += v1 * a[i].qs[64 * k + 32 + l];
      }
      sum += sc[2 * k] * s0 + sc[2 * k + 1] * s1;
    }
    for (int s = 0; s < 8; ++s) msum += mn[s] * (a[i].bsums[2 * s] + a[i].bsums[2 * s + 1]);
    acc += a[i].d * (fp16_to_f32(w[i].d) * static_cast<float>(sum) -
                     fp16_to_f32(w[i].dmin) * static_cast<float>(msum));
  }
  *out = acc;
}

void vec_dot_q6_k(int64_t n, float* out, const void* vw, const void* va) {
  const BlockQ6_K* w = blocks<BlockQ6_K>(vw);
  const BlockQ8_K* a = blocks<BlockQ8_K>(va);
  float acc = 0;
  for (int64_t i = 0; i < n / kQKK; ++i) {
    int sum = 0;
    for (int h = 0; h < 2; ++h)
      for (int j = 0; j < 4; ++j)
        for (int l = 0; l < 32; ++l) {
          const uint8_t lb = w[i].ql[64 * h + l + 32 * (j & 1)];
          const int lo = j >= 2 ? lb >> 4 : lb & 15;
          const int v = (lo | ((w[i].qh[32 * h + l] >> (2 * j)) & 3) << 4) - 32;
          sum += w[i].scales[8 * h + 2 * j + l / 16] * v * a[i].qs[128 * h + 32 * j + l];
        }
    acc += a[i].d * fp16_to_f32(w[i].d) * static_cast<float>(sum);
  }
  *out = acc;
}

#define STRATA_QK_TOKENS(name)                                                         \
  void vec_dot_tokens_##name(int64_t n, int64_t n_tok, const void* w, const void* act, \
                             int64_t act_stride, float* out, int64_t out_stride) {     \
    tokens_by_rows<vec_dot_##name>(n, n_tok, w, act, act_stride, out, out_stride);     \
  }
STRATA_QK_TOKENS(q4_0)
STRATA_QK_TOKENS(q4_1)
STRATA_QK_TOKENS(q5_0)
STRATA_QK_TOKENS(q5_1)
STRATA_QK_TOKENS(q8_0)
STRATA_QK_TOKENS(q2_k)
STRATA_QK_TOKENS(q3_k)
STRATA_QK_TOKENS(q4_k)
STRATA_QK_TOKENS(q5_k)
STRATA_QK_TOKENS(q6_k)

}  // namespace strata::qk::scalar

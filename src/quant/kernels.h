// Internal: the per-ISA kernel entry points behind quant.h's table. One namespace per ISA so
// the same names can be defined in dot_ref.cc, dot_*_avx2.cc and dot_*_avx512.cc.
#pragma once
#include <cstdint>

#include "quant/blocks.h"
#include "quant/panel_gemm.h"

namespace strata::qk {

#define STRATA_QK_DECLARE(name)                                                        \
  void vec_dot_##name(int64_t n, float* out, const void* w, const void* act);          \
  void vec_dot_tokens_##name(int64_t n, int64_t n_tok, const void* w, const void* act, \
                             int64_t act_stride, float* out, int64_t out_stride);
#define STRATA_QK_DECLARE_ALL \
  STRATA_QK_DECLARE(q4_0)     \
  STRATA_QK_DECLARE(q4_1)     \
  STRATA_QK_DECLARE(q5_0)     \
  STRATA_QK_DECLARE(q5_1)     \
  STRATA_QK_DECLARE(q8_0)     \
  STRATA_QK_DECLARE(q2_k)     \
  STRATA_QK_DECLARE(q3_k)     \
  STRATA_QK_DECLARE(q4_k)     \
  STRATA_QK_DECLARE(q5_k)     \
  STRATA_QK_DECLARE(q6_k)

namespace scalar {
STRATA_QK_DECLARE_ALL
}
// Activation quantizers (act_quant_*.cc), bit-identical to quantize_row_q8_0/q8_1/q8_k.
#define STRATA_QK_DECLARE_ACT                                     \
  void quantize_act_q8_0(const float* src, void* dst, int64_t n); \
  void quantize_act_q8_1(const float* src, void* dst, int64_t n); \
  void quantize_act_q8_k(const float* src, void* dst, int64_t n);
namespace avx2 {
STRATA_QK_DECLARE_ALL
STRATA_QK_DECLARE_ACT
}  // namespace avx2
namespace avx512 {
STRATA_QK_DECLARE_ALL
STRATA_QK_DECLARE_ACT
}  // namespace avx512
// AVX-512 with VNNI and VBMI: decode (one token, blocks of rows) for the types whose kernels gain
// from them (dot_avx512vnni.cc), and the integer prefill.
namespace avx512vnni {
void vec_dot_rows_q4_0(int64_t n, int64_t n_rows, const void* w, int64_t w_stride, const void* act,
                       float* out);
// The panel GEMM (panel_gemm.h; panel_gemm_avx512vnni.cc).
void quantize_panel(const float* x, int64_t ldx, int64_t t0, int64_t t1, int offset,
                    const Q8Panel& p);
void panel_gemm_q4_0(const void* w, int64_t w_stride, int64_t n_rows, const Q8Panel& p, float* y,
                     int64_t ldy);
void panel_gemm_q8_0(const void* w, int64_t w_stride, int64_t n_rows, const Q8Panel& p, float* y,
                     int64_t ldy);
}  // namespace avx512vnni

// Dequantizers and quantizers (scalar; dequant.cc, quantize.cc, quantize_k.cc).
#define STRATA_QK_DECLARE_CONV(name)                                  \
  void dequantize_row_##name(const void* src, float* dst, int64_t n); \
  void quantize_row_##name(const float* src, void* dst, int64_t n);
STRATA_QK_DECLARE_CONV(q4_0)
STRATA_QK_DECLARE_CONV(q4_1)
STRATA_QK_DECLARE_CONV(q5_0)
STRATA_QK_DECLARE_CONV(q5_1)
STRATA_QK_DECLARE_CONV(q8_0)
STRATA_QK_DECLARE_CONV(q8_1)
STRATA_QK_DECLARE_CONV(q2_k)
STRATA_QK_DECLARE_CONV(q3_k)
STRATA_QK_DECLARE_CONV(q4_k)
STRATA_QK_DECLARE_CONV(q5_k)
STRATA_QK_DECLARE_CONV(q6_k)
STRATA_QK_DECLARE_CONV(q8_k)

// Runs a one-token kernel per token; the fallback multi-token entry for the scalar path.
template <void (*Dot)(int64_t, float*, const void*, const void*)>
void tokens_by_rows(int64_t n, int64_t n_tok, const void* w, const void* act, int64_t act_stride,
                    float* out, int64_t out_stride) {
  for (int64_t t = 0; t < n_tok; ++t)
    Dot(n, out + t * out_stride, w, static_cast<const char*>(act) + t * act_stride);
}

// Runs a one-token kernel per weight row: the multi-row (vec_dot_rows) entry of every ISA and type
// without a multi-row kernel of its own (quant.cc builds those entries from it).
template <void (*Dot)(int64_t, float*, const void*, const void*)>
void rows_by_dot(int64_t n, int64_t n_rows, const void* w, int64_t w_stride, const void* act,
                 float* out) {
  for (int64_t r = 0; r < n_rows; ++r)
    Dot(n, out + r, static_cast<const char*>(w) + r * w_stride, act);
}

}  // namespace strata::qk

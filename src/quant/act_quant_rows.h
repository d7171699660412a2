// The row loops of the activation quantizers (act_quant_avx2.cc, act_quant_avx512.cc): each file
// supplies its Block32(x, qs, &sum) -> d for one block of 32 values. Internal linkage on purpose
// (see blocks.h): compiled once per ISA file, with that file's flags.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "core/half.h"
#include "quant/blocks.h"

namespace strata::qk {
namespace {

// f32 -> f16 with F16C, round to nearest even: the same bits as f32_to_fp16.
inline uint16_t act_half(float f) {
  return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

template <float (*Block32)(const float*, int8_t*, int*)>
void act_rows_q8_0(const float* x, void* dst, int64_t n) {
  BlockQ8_0* y = static_cast<BlockQ8_0*>(dst);
  int sum;
  for (int64_t i = 0; i < n / kQK; ++i) y[i].d = act_half(Block32(x + i * kQK, y[i].qs, &sum));
}

template <float (*Block32)(const float*, int8_t*, int*)>
void act_rows_q8_1(const float* x, void* dst, int64_t n) {
  BlockQ8_1* y = static_cast<BlockQ8_1*>(dst);
  int sum;
  for (int64_t i = 0; i < n / kQK; ++i) {
    y[i].d = act_half(Block32(x + i * kQK, y[i].qs, &sum));
    // s from the stored (rounded) d, as the reference computes it.
    y[i].s = act_half(fp16_to_f32(y[i].d) * static_cast<float>(sum));
  }
}

}  // namespace
}  // namespace strata::qk

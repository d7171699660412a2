// Pieces shared by the CPU linear-layer files (matmul_cpu.cc: every path; matmul_decode.cc: one
// token against a group of weights).
#pragma once
#include <algorithm>
#include <cstdint>

namespace strata::cpu {

// y[t*ldy + r] += bias[r] for rows [r0, r1) of tokens [0, n_tok); nothing without a bias.
inline void add_bias(const float* bias, int64_t r0, int64_t r1, int64_t n_tok, float* y,
                     int64_t ldy) {
  if (!bias) return;
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t r = r0; r < r1; ++r) y[t * ldy + r] += bias[r];
}

// Rows per parallel chunk: at least ~64K multiply-adds, as smaller work is not worth waking
// another thread for.
inline int64_t rows_grain(int64_t k, int64_t n_tok) {
  return std::max<int64_t>(16, (int64_t(1) << 16) / std::max<int64_t>(1, k * n_tok));
}

// The calling thread's buffer for quantized activations (the Q8 rows of the fused integer dot
// products or the panel of the integer prefill; one buffer, so the memory model counts the
// larger of the two).
uint8_t* act_scratch(int64_t bytes);

}  // namespace strata::cpu

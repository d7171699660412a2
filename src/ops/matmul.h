// y = x · Wᵀ (+ bias): the linear layer. W is [n_out, n_in] in any weight type strata supports
// (f32, f16, bf16, the GGUF block types, G4); x is [n_tok, n_in] f32; y is [n_tok, n_out] f32.
// The front-end checks shapes and types and dispatches on where W lives.
#pragma once
#include <cstdint>

#include "core/tensor.h"
#include "core/thread_pool.h"

namespace strata {

void matmul(ThreadPool& pool, const Tensor& w, const float* x, int64_t n_tok, float* y,
            const float* bias = nullptr);

// One of several products with the same input (decode's Q, K and V; an FFN's gate and up).
struct MatmulOut {
  const Tensor* w;
  float* y;
  const float* bias = nullptr;
};
inline constexpr int kMaxSharedOuts = 4;

// y_i = x · W_iᵀ (+ bias_i) for each of n_outs (at most kMaxSharedOuts) outputs. For one token
// with host weights of one type and width, one pass over the threads covers all of them: their
// rows form one index space, so there is one hand-off and one tail instead of one per weight,
// and the activations are quantized once. Otherwise one matmul per output.
void matmul_shared(ThreadPool& pool, const MatmulOut* outs, int n_outs, const float* x,
                   int64_t n_tok);

// Row r of a 2-D weight or embedding table as f32 (any type). out has w.cols() floats.
void get_row(const Tensor& w, int64_t r, float* out);

// Whether the CPU backend can multiply with this weight type.
bool matmul_supports(DType t);

// Prefill on the CPU widens up to this many weight rows at a time to f32 (one tile per thread),
// k in chunks of prefill_k_chunk(k) columns, and multiplies them with every token through sgemm;
// the memory model counts the tile (prefill_tile_bytes).
inline constexpr int64_t kPrefillRowBlock = 256;
inline constexpr int64_t kPrefillTileBytes = int64_t(1) << 20;  // L2-sized
// The whole row when it fits, else chunks of a multiple of 256 columns (a block boundary of every
// block type) that keep the tile within kPrefillTileBytes.
inline int64_t prefill_k_chunk(int64_t k) {
  const int64_t c = kPrefillTileBytes / (kPrefillRowBlock * 4) / 256 * 256;
  return k <= c ? k : c;
}
inline int64_t prefill_tile_bytes(int64_t k) {
  return kPrefillRowBlock * prefill_k_chunk(k) * 4;
}
// Quantized weights multiply fewer tokens than this with fused integer dot products on
// activations quantized to Q8 (one buffer of at most this many rows); more go through the prefill
// path above.
inline constexpr int64_t kQuantGemmMinTokens = 16;
// Where the CPU has an integer prefill for the weight type (quant/panel_gemm.h), many tokens are
// quantized into a Q8 panel of at most this many tokens at a time instead; the memory model
// counts the panel (q8_panel_bytes) in place of the few-token Q8 buffer when it is larger.
inline constexpr int64_t kQ8PanelTokens = 512;

}  // namespace strata

namespace strata::cpu {
void matmul(ThreadPool& pool, const Tensor& w, const float* x, int64_t n_tok, float* y,
            const float* bias);
// One token against a group of host weights of one type and width (matmul_decode.cc): the types
// it takes are F16, BF16 and the quantized types with fused dot products.
bool decode_group_supports(DType t);
void decode_group(ThreadPool& pool, const MatmulOut* outs, int n_outs, const float* x);
void get_row(const Tensor& w, int64_t r, float* out);
bool supports(DType t);
}  // namespace strata::cpu

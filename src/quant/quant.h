// Quantized block formats: one table entry per GGUF block type with its exact dequantizer, its
// reference quantizer and its fused dot product. A weight row of type T is dotted with an
// activation row already quantized to T's vec_dot_type (Q8_0, Q8_1 or Q8_K); the kernels work on
// the integer codes directly and never expand the weights to f32.
//
// Usage for y = W x with W [rows, n] of type T:
//   const QuantKernels* k = quant_kernels(T);
//   const QuantKernels* a = quant_kernels(k->vec_dot_type);
//   a->quantize_act(x, xq, n);                       // once per token
//   for each row r: k->vec_dot(n, &y[r], W + r * row_bytes(T, n), xq);
// For several tokens at once (prefill) vec_dot_tokens unpacks each weight block once and uses it
// for up to four activation rows, which is where the decode-only path would waste its time.
#pragma once
#include <cstdint>

#include "core/cpu_features.h"
#include "core/dtype.h"

namespace strata {

using DequantizeRowFn = void (*)(const void* src, float* dst, int64_t n);
using QuantizeRowFn = void (*)(const float* src, void* dst, int64_t n);
using VecDotFn = void (*)(int64_t n, float* out, const void* w, const void* act);
// out[t * out_stride] = dot(w, act + t * act_stride bytes) for t in [0, n_tok).
using VecDotTokensFn = void (*)(int64_t n, int64_t n_tok, const void* w, const void* act,
                                int64_t act_stride, float* out, int64_t out_stride);
// out[r] = dot(w + r * w_stride bytes, act) for r in [0, n_rows): one token against a block of
// rows, the decode case. Q4_0 at the avx512vnni level takes four rows per pass, sharing the
// activation's loads, scales and sums; elsewhere it runs the one-row kernel per row.
using VecDotRowsFn = void (*)(int64_t n, int64_t n_rows, const void* w, int64_t w_stride,
                              const void* act, float* out);

struct QuantKernels {
  DType type;
  // Activation format this type's dot product takes: Q8_0 for Q8_0; Q8_1 for Q4_0, Q4_1, Q5_0
  // and Q5_1 (their constant offset or min multiplies Q8_1's block sum s, like ggml's CUDA
  // path, rather than costing two instructions per block); Q8_K for the K-quants.
  DType vec_dot_type;
  DequantizeRowFn dequantize_row;  // exact
  QuantizeRowFn quantize_row;      // reference quantizer (n multiple of the block size)
  // Best ISA, resolved through best_isa() on every call (cheap), so set_isa_cap() takes effect
  // at once. nullptr for Q8_1 and Q8_K, which are activation-only formats.
  VecDotFn vec_dot;
  VecDotFn vec_dot_ref;  // scalar reference
  // Multi-token dot (best ISA), 4 tokens per pass sharing the weight unpacking. nullptr where
  // vec_dot is.
  VecDotTokensFn vec_dot_tokens;
  VecDotRowsFn vec_dot_rows;  // best ISA, like vec_dot
  // Activation formats only (Q8_0, Q8_1, Q8_K): quantize_row at the best ISA, bit-identical to
  // it. nullptr for the weight types.
  QuantizeRowFn quantize_act;
};

// nullptr for non-quantized types and for G4 (see quant/g4.h).
const QuantKernels* quant_kernels(DType t);

// A specific ISA's kernels, for tests and benchmarks: nullptr when `isa` has no kernel for `t`
// or this CPU cannot run it. Scalar always exists for the types that have a vec_dot.
VecDotFn vec_dot_for_isa(DType t, Isa isa);
VecDotTokensFn vec_dot_tokens_for_isa(DType t, Isa isa);
VecDotRowsFn vec_dot_rows_for_isa(DType t, Isa isa);
QuantizeRowFn quantize_act_for_isa(DType t, Isa isa);

}  // namespace strata

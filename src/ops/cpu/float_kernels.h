// Float kernels per ISA: dot products of a weight row (f32, f16 or bf16) with an f32 activation
// row, conversion of weight rows to f32, the few-token kernels and the small products of prefill
// attention; and the AVX-512 strip GEMM of prefill.
// kernels_for(isa) returns the table for one ISA; float_kernels() the best one for this CPU.
#pragma once
#include <cstdint>

#include "core/cpu_features.h"

namespace strata::cpu {

struct FloatKernels {
  float (*dot_f32)(int64_t n, const float* a, const float* b);
  float (*dot_f16)(int64_t n, const uint16_t* w, const float* x);
  float (*dot_bf16)(int64_t n, const uint16_t* w, const float* x);
  void (*f16_to_f32)(int64_t n, const uint16_t* src, float* dst);
  void (*bf16_to_f32)(int64_t n, const uint16_t* src, float* dst);
  void (*f32_to_f16)(int64_t n, const float* src, uint16_t* dst);
  // x[i] = exp(x[i] - shift) for i < n; returns their sum (softmax's numerators). AVX2 and
  // AVX-512 call glibc's vector expf (libmvec), the scalar reference std::exp.
  float (*exp_sum)(int64_t n, float* x, float shift);
  // g[i] = silu(g[i]) * u[i] = g[i] / (1 + exp(-g[i])) * u[i] for i < n: the gated FFN's
  // activation, with the same expf as exp_sum.
  void (*silu_mul)(int64_t n, float* g, const float* u);
  // y[i] += a * x[i]
  void (*axpy)(int64_t n, float a, const float* x, float* y);
  // Two half-precision rows w0 and w1 (anywhere) dotted with one x: out[0], out[1]. Decode pairs
  // rows from the two halves of its rows, so each thread reads two sequential streams and loads
  // x once for both. nullptr: use dot_f16 / dot_bf16 per row.
  void (*dot2_f16)(int64_t n, const uint16_t* w0, const uint16_t* w1, const float* x, float* out);
  void (*dot2_bf16)(int64_t n, const uint16_t* w0, const uint16_t* w1, const float* x, float* out);
  // A few tokens times half-precision rows, without widening the weights:
  // y[t*ldy + r] = sum_i w[r*ldw + i] * x[t*ldx + i] for r < nr, t < nt. Register blocks of four
  // rows by two tokens; a block of rows stays in cache while every token passes over it, so the
  // weights cross the memory bus once. nullptr: not available for this ISA.
  void (*gemm_few_f16)(int64_t nt, int64_t nr, int64_t k, const uint16_t* w, int64_t ldw,
                       const float* x, int64_t ldx, float* y, int64_t ldy);
  void (*gemm_few_bf16)(int64_t nt, int64_t nr, int64_t k, const uint16_t* w, int64_t ldw,
                        const float* x, int64_t ldx, float* y, int64_t ldy);
  // C[i*ldc + j] (add ? += : =) sum_p A[i*lda + p] * B[p*ldb + j] for i < m, j < n: B row-major
  // [k, n], its columns in the vector lanes and A's elements broadcast, so short k (a head
  // dimension, a chunk of keys) costs no horizontal sums. Prefill attention's two products.
  void (*gemm_nn)(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                  int64_t ldb, float* c, int64_t ldc, bool add);
};

// Prefill's f32 GEMM on AVX-512 (strip_gemm_avx512.cc): a strip of up to kStripRows weight rows
// is packed k-major, bp[p * kStripRows + r], so that the rows fill the lanes of two vectors, and
// every token is multiplied with it by broadcasting its activations (no horizontal sums).
inline constexpr int64_t kStripRows = 32;
struct StripGemm {
  // Rows [0, nr) (nr <= 32; the missing ones are packed as zeros) and columns [0, kc) of a
  // weight matrix whose row r starts at w + r * stride bytes, into bp (64-byte aligned, kc * 32
  // floats). stride * 31 must fit in 31 bits.
  void (*pack_f32)(const void* w, int64_t stride, int64_t nr, int64_t kc, float* bp);
  void (*pack_f16)(const void* w, int64_t stride, int64_t nr, int64_t kc, float* bp);
  void (*pack_bf16)(const void* w, int64_t stride, int64_t nr, int64_t kc, float* bp);
  // C[t*ldc + r] (add ? += : =) sum_p A[t*lda + p] * bp[p*32 + r] for t < m, r < nr.
  void (*gemm)(int64_t m, int64_t nr, int64_t k, const float* a, int64_t lda, const float* bp,
               float* c, int64_t ldc, bool add);
};
// The strip GEMM where best_isa() is AVX-512 or better, else nullptr.
const StripGemm* strip_gemm();
const StripGemm& strip_gemm_avx512();

const FloatKernels& float_kernels_for(Isa isa);
const FloatKernels& float_kernels();

// Per-ISA tables (defined in float_kernels_{scalar,avx2,avx512}.cc).
const FloatKernels& float_kernels_scalar();
const FloatKernels& float_kernels_avx2();
const FloatKernels& float_kernels_avx512();

}  // namespace strata::cpu

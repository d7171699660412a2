// Float kernels per ISA: dot products of a weight row (f32, f16 or bf16) with an f32 activation
// row, conversion of weight rows to f32, and the f32 GEMM micro-kernel used for prefill.
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
  // C[t*ldc + r] = sum_k A[t*lda + k] * B[r*ldb + k] for t < m, r < n (both operands K-contiguous:
  // A = activations [m, k], B = weight rows [n, k]). Overwrites C.
  void (*gemm_nt)(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                  int64_t ldb, float* c, int64_t ldc);
  // y[i] += a * x[i]
  void (*axpy)(int64_t n, float a, const float* x, float* y);
  // Four consecutive half-precision rows (row r starts at w + r * stride) dotted with one x:
  // decode reads x once for four weight streams. nullptr: use dot_f16 / dot_bf16 per row.
  void (*dot4_f16)(int64_t n, const uint16_t* w, int64_t stride, const float* x, float* out);
  void (*dot4_bf16)(int64_t n, const uint16_t* w, int64_t stride, const float* x, float* out);
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

const FloatKernels& float_kernels_for(Isa isa);
const FloatKernels& float_kernels();

// Per-ISA tables (defined in float_kernels_{scalar,avx2,avx512}.cc).
const FloatKernels& float_kernels_scalar();
const FloatKernels& float_kernels_avx2();
const FloatKernels& float_kernels_avx512();

}  // namespace strata::cpu

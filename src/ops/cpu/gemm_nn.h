// The register-blocked body of FloatKernels::gemm_nn, shared by the AVX2 and AVX-512 files: V
// names the vector type and its masked loads and stores, broadcast and FMA, and each file
// instantiates it under its own compiler flags. Include only from float_kernels_avx2.cc and
// float_kernels_avx512.cc.
#pragma once
#include <algorithm>
#include <cstdint>

namespace strata::cpu::nn {
// Internal linkage on purpose: every ISA file compiles its own copy.
namespace {

// MR rows of C by NV vectors of columns (the last one masked) in registers; per k step NV loads
// of B and MR broadcasts of A.
template <class V, int MR, int NV>
inline void block(int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                  int64_t ldc, bool add, typename V::Mask last) {
  constexpr int64_t W = V::kWidth;
  typename V::Reg acc[MR][NV];
  const auto mask = [&](int v) { return v == NV - 1 ? last : V::full(); };
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v)
      acc[r][v] = add ? V::load(c + r * ldc + W * v, mask(v)) : V::zero();
  for (int64_t p = 0; p < k; ++p) {
    typename V::Reg bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = V::load(b + p * ldb + W * v, mask(v));
    for (int r = 0; r < MR; ++r) {
      const typename V::Reg av = V::set1(a[r * lda + p]);
      for (int v = 0; v < NV; ++v) acc[r][v] = V::fmadd(av, bv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) V::store(c + r * ldc + W * v, mask(v), acc[r][v]);
}

// The last rows (fewer than V::kRows): the block of exactly that many.
template <class V, int NV, int R>
inline void tail_rows(int64_t rows, int64_t k, const float* a, int64_t lda, const float* b,
                      int64_t ldb, float* c, int64_t ldc, bool add, typename V::Mask last) {
  if constexpr (R > 0) {
    if (rows == R) return block<V, R, NV>(k, a, lda, b, ldb, c, ldc, add, last);
    tail_rows<V, NV, R - 1>(rows, k, a, lda, b, ldb, c, ldc, add, last);
  }
}

template <class V, int NV>
void columns(int64_t m, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
             float* c, int64_t ldc, bool add, typename V::Mask last) {
  int64_t i = 0;
  for (; i + V::kRows <= m; i += V::kRows)
    block<V, V::kRows, NV>(k, a + i * lda, lda, b, ldb, c + i * ldc, ldc, add, last);
  tail_rows<V, NV, V::kRows - 1>(m - i, k, a + i * lda, lda, b, ldb, c + i * ldc, ldc, add, last);
}

template <class V>
void gemm_nn(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
             int64_t ldb, float* c, int64_t ldc, bool add) {
  constexpr int64_t W = V::kWidth;
  for (int64_t j = 0; j < n; j += 2 * W) {
    const int64_t w = std::min<int64_t>(2 * W, n - j);
    if (w > W)
      columns<V, 2>(m, k, a, lda, b + j, ldb, c + j, ldc, add, V::tail(w - W));
    else
      columns<V, 1>(m, k, a, lda, b + j, ldb, c + j, ldc, add, V::tail(w));
  }
}

}  // namespace
}  // namespace strata::cpu::nn

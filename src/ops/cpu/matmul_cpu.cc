// CPU linear layer. Two paths:
//  - decode (few tokens): each output row is one fused dot product of the weight row, in its
//    stored type, with each token's activations; threads split the rows. Memory-bound: the
//    weight bytes cross the bus once.
//  - prefill (many tokens): threads take blocks of weight rows, widen them to f32 once into a
//    thread-local tile, and run the register-blocked f32 GEMM kernel over all tokens.
#include <algorithm>
#include <vector>

#include "core/error.h"
#include "ops/cpu/float_kernels.h"
#include "ops/matmul.h"

namespace strata::cpu {
namespace {

constexpr int64_t kGemmMinTokens = 4;  // from here on, widening a row tile once pays off
constexpr int64_t kRowBlock = 16;

void widen_rows(const Tensor& w, int64_t r0, int64_t nr, float* dst) {
  const FloatKernels& fk = float_kernels();
  const int64_t k = w.cols();
  const uint8_t* base = static_cast<const uint8_t*>(w.data) + r0 * w.row_bytes();
  for (int64_t i = 0; i < nr; ++i) {
    const uint8_t* row = base + i * w.row_bytes();
    float* out = dst + i * k;
    switch (w.dtype) {
      case DType::F32: std::copy_n(reinterpret_cast<const float*>(row), k, out); break;
      case DType::F16: fk.f16_to_f32(k, reinterpret_cast<const uint16_t*>(row), out); break;
      case DType::BF16: fk.bf16_to_f32(k, reinterpret_cast<const uint16_t*>(row), out); break;
      default: fail("matmul: weight type {} is not supported on the CPU", dtype_name(w.dtype));
    }
  }
}

void decode_path(ThreadPool& pool, const Tensor& w, const float* x, int64_t n_tok, float* y,
                 const float* bias) {
  const FloatKernels& fk = float_kernels();
  const int64_t n_out = w.rows(), k = w.cols(), rb = w.row_bytes();
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  // Chunks of at least ~64K multiply-adds: smaller work is not worth waking another thread.
  const int64_t grain = std::max<int64_t>(16, (int64_t(1) << 16) / std::max<int64_t>(1, k * n_tok));
  pool.parallel_for(n_out, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* row = base + r * rb;
      const float b = bias ? bias[r] : 0.0f;
      for (int64_t t = 0; t < n_tok; ++t) {
        const float* xt = x + t * k;
        float s;
        switch (w.dtype) {
          case DType::F32: s = fk.dot_f32(k, reinterpret_cast<const float*>(row), xt); break;
          case DType::F16: s = fk.dot_f16(k, reinterpret_cast<const uint16_t*>(row), xt); break;
          case DType::BF16: s = fk.dot_bf16(k, reinterpret_cast<const uint16_t*>(row), xt); break;
          default: fail("matmul: weight type {} is not supported on the CPU", dtype_name(w.dtype));
        }
        y[t * n_out + r] = s + b;
      }
    }
  });
}

void gemm_path(ThreadPool& pool, const Tensor& w, const float* x, int64_t n_tok, float* y,
               const float* bias) {
  const FloatKernels& fk = float_kernels();
  const int64_t n_out = w.rows(), k = w.cols();
  const int64_t n_blocks = (n_out + kRowBlock - 1) / kRowBlock;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 18) / std::max<int64_t>(1, kRowBlock * k * n_tok));
  pool.parallel_for(n_blocks, grain, [&](int64_t b0, int64_t b1) {
    thread_local std::vector<float> tile;
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r0 = b * kRowBlock, nr = std::min(kRowBlock, n_out - r0);
      const float* wf;
      if (w.dtype == DType::F32) {
        wf = static_cast<const float*>(w.data) + r0 * k;
      } else {
        tile.resize(static_cast<size_t>(nr * k));
        widen_rows(w, r0, nr, tile.data());
        wf = tile.data();
      }
      fk.gemm_nt(n_tok, nr, k, x, k, wf, k, y + r0, n_out);
      if (bias)
        for (int64_t t = 0; t < n_tok; ++t)
          for (int64_t r = 0; r < nr; ++r) y[t * n_out + r0 + r] += bias[r0 + r];
    }
  });
}

}  // namespace

bool supports(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

void matmul(ThreadPool& pool, const Tensor& w, const float* x, int64_t n_tok, float* y,
            const float* bias) {
  if (!supports(w.dtype)) fail("matmul: weight type {} is not supported on the CPU", dtype_name(w.dtype));
  if (n_tok >= kGemmMinTokens) gemm_path(pool, w, x, n_tok, y, bias);
  else decode_path(pool, w, x, n_tok, y, bias);
}

void get_row(const Tensor& w, int64_t r, float* out) { widen_rows(w, r, 1, out); }

}  // namespace strata::cpu

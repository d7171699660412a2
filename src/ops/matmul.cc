#include "ops/matmul.h"

#include "core/error.h"
#if defined(STRATA_HAVE_CUDA) && STRATA_HAVE_CUDA
#include "ops/cuda/cuda_ops.h"  // CUDA hook: Tier::Device weights
#endif

namespace strata {

bool matmul_supports(DType t) {
  return cpu::supports(t);
}

void matmul(ThreadPool& pool, const Tensor& w, const float* x, int64_t n_tok, float* y,
            const float* bias) {
  if (w.shape.size() != 2) fail("matmul: weight must be 2-D, got {}", w.shape_str());
  if (!w.data) fail("matmul: weight {} has no data", w.shape_str());
  if (n_tok < 0) fail("matmul: negative token count");
  switch (w.tier) {
    case Tier::Host:
      return cpu::matmul(pool, w, x, n_tok, y, bias);
    case Tier::Device:
#if defined(STRATA_HAVE_CUDA) && STRATA_HAVE_CUDA
      // CUDA hook: a weight on the GPU means x, y and bias are device pointers too (contract in
      // ops/cuda/cuda_ops.h); queued on the device's compute stream, asynchronously.
      return cuda::matmul(w, x, n_tok, y, bias, cuda::compute_stream(w.device));
#else
      fail("matmul: weight is on the GPU but this build has no GPU backend");
#endif
    case Tier::Disk:
      fail("matmul: weight is on disk; the scheduler must stage it first");
  }
}

void matmul_shared(ThreadPool& pool, const MatmulOut* outs, int n_outs, const float* x,
                   int64_t n_tok) {
  if (n_outs < 1 || n_outs > kMaxSharedOuts)
    fail("matmul_shared: {} outputs (1 to {} allowed)", n_outs, kMaxSharedOuts);
  const Tensor& w0 = *outs[0].w;
  bool group = n_tok == 1 && w0.tier == Tier::Host && cpu::decode_group_supports(w0.dtype);
  for (int i = 0; i < n_outs; ++i) {
    const Tensor& w = *outs[i].w;
    if (w.shape.size() != 2) fail("matmul: weight must be 2-D, got {}", w.shape_str());
    if (!w.data) fail("matmul: weight {} has no data", w.shape_str());
    group = group && w.tier == Tier::Host && w.dtype == w0.dtype && w.cols() == w0.cols();
  }
  if (!group) {
    for (int i = 0; i < n_outs; ++i) matmul(pool, *outs[i].w, x, n_tok, outs[i].y, outs[i].bias);
    return;
  }
  cpu::decode_group(pool, outs, n_outs, x);
}

void get_row(const Tensor& w, int64_t r, float* out) {
  if (r < 0 || r >= w.rows()) fail("row {} out of range for a table of {} rows", r, w.rows());
  if (w.tier != Tier::Host) fail("get_row: table is not in host memory");
  cpu::get_row(w, r, out);
}

}  // namespace strata

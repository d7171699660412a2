// GPU linear layer and row gather. Float weights go to cuBLAS (cublasGemmEx, f32 accumulate):
// the row-major weight [n_out, n_in] is the column-major matrix [n_in, n_out] with ld n_in, so
// yᵀ[n_out, n_tok] = Wᵀ-as-stored-transposed · xᵀ is one GEMM with op(A) = T, op(B) = N and no
// copies. f16/bf16 weights need x in the same type: it is converted into the device's scratch
// first. Quantized weights and G4 use the own kernels of matvec_quant.cu (decode) and
// gemm_quant.cu (prefill).
#include <climits>

#include "core/error.h"
#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/device.h"
#include "ops/cuda/kernels.h"

namespace strata::cuda {
namespace {

void float_matmul(const Tensor& w, const float* x, int64_t n_tok, float* y, const float* bias,
                  cudaStream_t s) {
  const int64_t n_out = w.shape[0], n_in = w.shape[1];
  if (n_out > INT_MAX || n_in > INT_MAX || n_tok > INT_MAX)
    fail("cuda::matmul: weight {} x {} tokens exceeds cuBLAS's 32-bit dimensions", w.shape_str(),
         n_tok);
  DeviceContext& ctx = DeviceContext::get(w.device);
  cublasHandle_t h = ctx.blas();
  check_blas(cublasSetStream(h, s), "cublasSetStream");
  cudaDataType_t type = CUDA_R_32F;
  const void* b = x;
  if (w.dtype != DType::F32) {
    const bool bf16 = w.dtype == DType::BF16;
    type = bf16 ? CUDA_R_16BF : CUDA_R_16F;
    void* xs = ctx.scratch(Scratch::Activations, static_cast<uint64_t>(n_tok * n_in) * 2);
    check(kern::convert_f32(x, n_tok * n_in, xs, bf16, s), "cuda::matmul: converting activations");
    b = xs;
  }
  const float alpha = 1.0f, beta = 0.0f;
  const int m = static_cast<int>(n_out), n = static_cast<int>(n_tok), k = static_cast<int>(n_in);
  check_blas(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, w.data, type, k, b, type, k,
                          &beta, y, CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
             "cuda::matmul: cublasGemmEx");
  if (bias) check(kern::add_bias_rows(y, bias, n_tok, n_out, s), "cuda::matmul: bias");
}

// Throws unless `t` rows of n elements are whole blocks (G4: an even count).
void check_row_shape(DType t, int64_t n, const char* op) {
  if (t == DType::G4) {
    if (n % 2 != 0) fail("{}: G4 weights need an even number of columns, got {}", op, n);
    return;
  }
  (void)row_bytes(t, n);  // throws with the block size in the message
}

}  // namespace

bool matmul_supports(DType t) {
  return is_float_type(t) || kern::quant_matmul_supported(t);
}

void matmul(const Tensor& w, const float* x, int64_t n_tok, float* y, const float* bias,
            cudaStream_t stream) {
  if (w.tier != Tier::Device)
    fail("cuda::matmul: weight {} is in {} memory, not on the GPU", w.shape_str(),
         tier_name(w.tier));
  if (w.shape.size() != 2) fail("cuda::matmul: weight must be 2-D, got {}", w.shape_str());
  if (!w.data) fail("cuda::matmul: weight {} has no data", w.shape_str());
  if (n_tok < 0) fail("cuda::matmul: negative token count");
  if (!matmul_supports(w.dtype))
    fail("cuda::matmul: weight type {} is not supported on the GPU", dtype_name(w.dtype));
  const int64_t n_out = w.shape[0], n_in = w.shape[1];
  if (n_tok == 0 || n_out == 0) return;
  if (!x || !y) fail("cuda::matmul: null activations");
  if (n_in == 0) fail("cuda::matmul: weight {} has no columns", w.shape_str());
  DeviceGuard guard(w.device);
  if (is_float_type(w.dtype)) return float_matmul(w, x, n_tok, y, bias, stream);
  check_row_shape(w.dtype, n_in, "cuda::matmul");
  if (n_in > INT_MAX) fail("cuda::matmul: {} columns is more than the kernels index", n_in);
  const cudaError_t e =
      n_tok <= kern::kMatvecMaxTokens
          ? kern::matvec_quant(w.dtype, w.data, n_out, n_in, x, n_tok, y, bias, stream)
          : kern::gemm_quant(w.dtype, w.data, n_out, n_in, x, n_tok, y, bias, stream);
  if (e != cudaSuccess)
    check(e, fmt::format("cuda::matmul: {} weight {} x {} tokens", dtype_name(w.dtype),
                         w.shape_str(), n_tok)
                 .c_str());
}

void get_rows(const Tensor& table, const int32_t* ids, int64_t n, float* out, cudaStream_t stream) {
  if (table.tier != Tier::Device)
    fail("cuda::get_rows: table {} is not on the GPU", table.shape_str());
  if (table.shape.size() != 2) fail("cuda::get_rows: table must be 2-D, got {}", table.shape_str());
  if (!kern::get_rows_supported(table.dtype))
    fail("cuda::get_rows: table type {} is not supported on the GPU", dtype_name(table.dtype));
  if (n < 0) fail("cuda::get_rows: negative row count");
  if (n == 0 || table.shape[1] == 0) return;
  if (n > INT_MAX || table.shape[1] > INT_MAX)
    fail("cuda::get_rows: {} rows of a {} table is more than one launch can take", n,
         table.shape_str());
  if (!table.data || !ids || !out) fail("cuda::get_rows: null pointer");
  check_row_shape(table.dtype, table.shape[1], "cuda::get_rows");
  DeviceGuard guard(table.device);
  check(
      kern::get_rows(table.dtype, table.data, table.shape[0], table.shape[1], ids, n, out, stream),
      "cuda::get_rows");
}

}  // namespace strata::cuda

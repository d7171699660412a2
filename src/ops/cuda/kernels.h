// Internal: kernel launchers, the boundary between the nvcc-compiled .cu files and the host code
// (cuda_ops.cc, matmul_cuda.cc). Plain types only, so this header compiles under both compilers
// and the .cu files never see fmt or the thread pool. Each launcher queues its kernels on
// `stream` on the current device and returns cudaGetLastError(); arguments have been validated by
// the caller. All pointers are device pointers.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace strata::cuda::kern {

// Same order as strata::Activation (ops/elementwise.h); cuda_ops.cc static_asserts it.
enum class Act : int { SiLU = 0, ReLU = 1, GELU = 2, GELUTanh = 3 };

cudaError_t rms_norm(const float* x, const float* w, int64_t n, int64_t dim, float eps, float* out,
                     cudaStream_t s);
cudaError_t layer_norm(const float* x, const float* w, const float* b, int64_t n, int64_t dim,
                       float eps, float* out, cudaStream_t s);
// up == nullptr: x = act(x); otherwise x = act(x) * up (gated).
cudaError_t activate(Act a, float* x, const float* up, int64_t count, cudaStream_t s);
cudaError_t add_inplace(float* y, const float* x, int64_t count, cudaStream_t s);
cudaError_t add_bias_rows(float* y, const float* b, int64_t n, int64_t dim, cudaStream_t s);
cudaError_t softmax_rows(float* x, int64_t rows, int64_t n, cudaStream_t s);

cudaError_t rope(float* x, int64_t n_tok, const int32_t* positions, int64_t n_heads,
                 int64_t head_dim, int64_t rope_dim, float theta, bool interleaved, cudaStream_t s);

// Rows ids[0..n) of a [table_rows, cols] table of any type get_rows_supported() accepts, as f32.
// An id outside [0, table_rows) gives a row of NaN (the device cannot throw).
bool get_rows_supported(DType t);
cudaError_t get_rows(DType t, const void* table, int64_t table_rows, int64_t cols,
                     const int32_t* ids, int64_t n, float* out, cudaStream_t s);

// f32 -> f16 (bf16 false) or bf16 (bf16 true), round to nearest even.
cudaError_t convert_f32(const float* x, int64_t count, void* dst, bool bf16, cudaStream_t s);

// Quantized weights (every GGUF block type with a CPU dot product, and G4): y = x · Wᵀ + bias.
bool quant_matmul_supported(DType t);
// Decode: up to kMatvecMaxTokens tokens, one pass over the weights, dequantized in registers.
constexpr int64_t kMatvecMaxTokens = 8;
cudaError_t matvec_quant(DType t, const void* w, int64_t n_out, int64_t n_in, const float* x,
                         int64_t n_tok, float* y, const float* bias, cudaStream_t s);
// Prefill: 64x64 output tiles; weights dequantized tile by tile into shared memory as f16 and
// multiplied on the tensor cores (f32 accumulate).
cudaError_t gemm_quant(DType t, const void* w, int64_t n_out, int64_t n_in, const float* x,
                       int64_t n_tok, float* y, const float* bias, cudaStream_t s);

// Attention over a paged cache (ops/attention.h semantics). k_blocks / v_blocks are device
// arrays of device pointers.
struct AttentionArgs {
  const void* const* k_blocks = nullptr;
  const void* const* v_blocks = nullptr;
  int64_t block_tokens = 0;
  int64_t row_bytes = 0;
  DType dtype = DType::F32;  // F32, F16 or G4
  int64_t n_head = 0, n_head_kv = 0, head_dim = 0;
  float scale = 1.0f;
  const float* alibi_slopes = nullptr;  // device, per query head, or null
  const float* q = nullptr;
  int64_t n_q = 0, pos0 = 0;
  float* out = nullptr;
  // Split-K over the keys (flash-decoding): n_splits > 1 needs `partials` with room for
  // n_q * n_head * n_splits * (head_dim + 2) floats.
  int n_splits = 1;
  int64_t split_keys = 0;
  float* partials = nullptr;
};
constexpr int64_t kAttentionMaxHeadDim = 256;
cudaError_t attention(const AttentionArgs& a, cudaStream_t s);

// Runs the kernels' decoders (quant_decode.cuh) and decode lane splits (quant_lanes.cuh) on the
// host against the CPU dequantizers; "" when all agree, otherwise the first difference. Needs no
// GPU: it is how the layout code of the kernels is checked on machines without one.
std::string check_decoders_on_host();

}  // namespace strata::cuda::kern

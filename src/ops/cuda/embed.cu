// Embedding row gather for every table type (decoded exactly as the CPU's get_row), and the f32 ->
// f16/bf16 activation conversion the cuBLAS path needs.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>

#include "ops/cuda/kernels.h"
#include "ops/cuda/quant_decode.cuh"

namespace strata::cuda::kern {
namespace {

using dev::Elem;

constexpr int kThreads = 256;

// grid.x: output rows; threads stride over the columns.
template <DType T>
__global__ void __launch_bounds__(kThreads)
    get_rows_kernel(const uint8_t* __restrict__ table, int64_t table_rows, int64_t cols,
                    int64_t row_bytes, const int32_t* __restrict__ ids, float* __restrict__ out) {
  const int32_t id = ids[blockIdx.x];
  float* o = out + blockIdx.x * cols;
  if (id < 0 || id >= table_rows) {
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) o[i] = NAN;
    return;
  }
  const uint8_t* row = table + id * row_bytes;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
    o[i] = Elem<T>::at(row, static_cast<int>(i));
}

__global__ void __launch_bounds__(kThreads)
    get_rows_g4_kernel(const uint8_t* __restrict__ table, int64_t table_rows, int64_t cols,
                       const int32_t* __restrict__ ids, float* __restrict__ out) {
  const int32_t id = ids[blockIdx.x];
  float* o = out + blockIdx.x * cols;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
    o[i] = (id < 0 || id >= table_rows) ? NAN
                                        : dev::g4_weight_at(table, cols, id, static_cast<int>(i));
}

__global__ void __launch_bounds__(kThreads)
    to_f16_kernel(const float* __restrict__ x, int64_t n, __half* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __float2half_rn(x[i]);
}

__global__ void __launch_bounds__(kThreads)
    to_bf16_kernel(const float* __restrict__ x, int64_t n, __nv_bfloat16* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __float2bfloat16_rn(x[i]);
}

}  // namespace

bool get_rows_supported(DType t) {
  return t == DType::G4 || dev::dispatch_block_type(t, [](auto) {});
}

cudaError_t get_rows(DType t, const void* table, int64_t table_rows, int64_t cols,
                     const int32_t* ids, int64_t n, float* out, cudaStream_t s) {
  if (n <= 0 || cols <= 0) return cudaSuccess;
  const auto* tb = static_cast<const uint8_t*>(table);
  const unsigned grid = static_cast<unsigned>(n);
  if (t == DType::G4) {
    get_rows_g4_kernel<<<grid, kThreads, 0, s>>>(tb, table_rows, cols, ids, out);
    return cudaGetLastError();
  }
  const bool known = dev::dispatch_block_type(t, [&](auto tag) {
    constexpr DType T = decltype(tag)::value;
    const int64_t rb = cols / Elem<T>::kBlock * Elem<T>::kBytes;
    get_rows_kernel<T><<<grid, kThreads, 0, s>>>(tb, table_rows, cols, rb, ids, out);
  });
  return known ? cudaGetLastError() : cudaErrorInvalidValue;
}

cudaError_t convert_f32(const float* x, int64_t count, void* dst, bool bf16, cudaStream_t s) {
  if (count <= 0) return cudaSuccess;
  const unsigned g = dev::grid_for(count, kThreads);
  if (bf16)
    to_bf16_kernel<<<g, kThreads, 0, s>>>(x, count, static_cast<__nv_bfloat16*>(dst));
  else
    to_f16_kernel<<<g, kThreads, 0, s>>>(x, count, static_cast<__half*>(dst));
  return cudaGetLastError();
}

}  // namespace strata::cuda::kern

// Row-wise and element-wise ops on f32 activations (ops/elementwise.h semantics): one block per
// row for the norms and softmax, grid-stride loops for the element-wise ones.
#include <cmath>

#include "ops/cuda/common.cuh"
#include "ops/cuda/kernels.h"

namespace strata::cuda::kern {
namespace {

using dev::block_max;
using dev::block_sum;
using dev::grid_for;

constexpr int kRowThreads = 256;
constexpr int kEltThreads = 256;

__global__ void __launch_bounds__(kRowThreads)
    rms_norm_kernel(const float* x, const float* __restrict__ w, int64_t dim, float eps,
                    float* out) {
  __shared__ float sh[32];
  const float* xr = x + blockIdx.x * dim;
  float* o = out + blockIdx.x * dim;
  float ss = 0;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) ss = fmaf(xr[i], xr[i], ss);
  ss = block_sum(ss, sh);
  // The CPU takes 1/sqrt(mean + eps) in double; so does this (once per row).
  const float inv = static_cast<float>(1.0 / sqrt(double(ss) / double(dim) + double(eps)));
  // x == out is allowed (no __restrict__ on them): a thread writes only the elements it has
  // just read, after the reductions every thread has passed.
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const float v = xr[i] * inv;
    o[i] = w ? v * w[i] : v;
  }
}

__global__ void __launch_bounds__(kRowThreads)
    layer_norm_kernel(const float* x, const float* __restrict__ w, const float* __restrict__ b,
                      int64_t dim, float eps, float* out) {
  __shared__ float sh[32];
  const float* xr = x + blockIdx.x * dim;
  float* o = out + blockIdx.x * dim;
  float s = 0;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) s += xr[i];
  const float mean = block_sum(s, sh) / static_cast<float>(dim);
  // Two passes, like the CPU: the variance of (x - mean), not E[x²] - mean².
  float v = 0;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const float d = xr[i] - mean;
    v = fmaf(d, d, v);
  }
  v = block_sum(v, sh);
  const float inv = static_cast<float>(1.0 / sqrt(double(v) / double(dim) + double(eps)));
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    float y = (xr[i] - mean) * inv;
    if (w) y *= w[i];
    if (b) y += b[i];
    o[i] = y;
  }
}

template <Act A>
__device__ __forceinline__ float act_one(float x) {
  if constexpr (A == Act::SiLU) return x / (1.0f + expf(-x));
  if constexpr (A == Act::ReLU) return x > 0 ? x : 0.0f;
  if constexpr (A == Act::GELU) return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
  if constexpr (A == Act::GELUTanh)
    return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
  return x;
}

template <Act A, bool Gated>
__global__ void __launch_bounds__(kEltThreads)
    act_kernel(float* __restrict__ x, const float* __restrict__ up, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float a = act_one<A>(x[i]);
    x[i] = Gated ? a * up[i] : a;
  }
}

template <Act A>
cudaError_t launch_act(float* x, const float* up, int64_t n, cudaStream_t s) {
  const unsigned g = grid_for(n, kEltThreads);
  if (up)
    act_kernel<A, true><<<g, kEltThreads, 0, s>>>(x, up, n);
  else
    act_kernel<A, false><<<g, kEltThreads, 0, s>>>(x, nullptr, n);
  return cudaGetLastError();
}

__global__ void __launch_bounds__(kEltThreads)
    add_kernel(float* __restrict__ y, const float* __restrict__ x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] += x[i];
}

__global__ void __launch_bounds__(kEltThreads)
    bias_kernel(float* __restrict__ y, const float* __restrict__ b, int64_t n, int64_t dim) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n * dim;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] += b[i % dim];
}

__global__ void __launch_bounds__(kRowThreads) softmax_kernel(float* __restrict__ x, int64_t n) {
  __shared__ float sh[32];
  float* r = x + blockIdx.x * n;
  float m = -INFINITY;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) m = fmaxf(m, r[i]);
  m = block_max(m, sh);
  float s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const float e = expf(r[i] - m);
    r[i] = e;
    s += e;
  }
  const float inv = 1.0f / block_sum(s, sh);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) r[i] *= inv;
}

}  // namespace

cudaError_t rms_norm(const float* x, const float* w, int64_t n, int64_t dim, float eps, float* out,
                     cudaStream_t s) {
  if (n <= 0 || dim <= 0) return cudaSuccess;
  rms_norm_kernel<<<static_cast<unsigned>(n), kRowThreads, 0, s>>>(x, w, dim, eps, out);
  return cudaGetLastError();
}

cudaError_t layer_norm(const float* x, const float* w, const float* b, int64_t n, int64_t dim,
                       float eps, float* out, cudaStream_t s) {
  if (n <= 0 || dim <= 0) return cudaSuccess;
  layer_norm_kernel<<<static_cast<unsigned>(n), kRowThreads, 0, s>>>(x, w, b, dim, eps, out);
  return cudaGetLastError();
}

cudaError_t activate(Act a, float* x, const float* up, int64_t count, cudaStream_t s) {
  if (count <= 0) return cudaSuccess;
  switch (a) {
    case Act::SiLU:
      return launch_act<Act::SiLU>(x, up, count, s);
    case Act::ReLU:
      return launch_act<Act::ReLU>(x, up, count, s);
    case Act::GELU:
      return launch_act<Act::GELU>(x, up, count, s);
    case Act::GELUTanh:
      return launch_act<Act::GELUTanh>(x, up, count, s);
  }
  return cudaErrorInvalidValue;
}

cudaError_t add_inplace(float* y, const float* x, int64_t count, cudaStream_t s) {
  if (count <= 0) return cudaSuccess;
  add_kernel<<<grid_for(count, kEltThreads), kEltThreads, 0, s>>>(y, x, count);
  return cudaGetLastError();
}

cudaError_t add_bias_rows(float* y, const float* b, int64_t n, int64_t dim, cudaStream_t s) {
  if (n <= 0 || dim <= 0) return cudaSuccess;
  bias_kernel<<<grid_for(n * dim, kEltThreads), kEltThreads, 0, s>>>(y, b, n, dim);
  return cudaGetLastError();
}

cudaError_t softmax_rows(float* x, int64_t rows, int64_t n, cudaStream_t s) {
  if (rows <= 0 || n <= 0) return cudaSuccess;
  softmax_kernel<<<static_cast<unsigned>(rows), kRowThreads, 0, s>>>(x, n);
  return cudaGetLastError();
}

}  // namespace strata::cuda::kern

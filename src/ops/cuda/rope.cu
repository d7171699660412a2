// Rotary position embedding (ops/rope.h semantics), in place. One thread per (token, pair index):
// it computes the pair's angle once, in double like the CPU, and rotates that pair in every head.
#include "ops/cuda/common.cuh"
#include "ops/cuda/kernels.h"

namespace strata::cuda::kern {
namespace {

constexpr int kThreads = 128;

__global__ void __launch_bounds__(kThreads)
    rope_kernel(float* x, int64_t n_tok, const int32_t* __restrict__ positions, int64_t n_heads,
                int64_t head_dim, int64_t rope_dim, float theta, bool interleaved) {
  const int64_t half = rope_dim / 2;
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= n_tok * half) return;
  const int64_t t = idx / half, i = idx % half;
  const double freq = pow(double(theta), -2.0 * double(i) / double(rope_dim));
  double sd, cd;
  sincos(double(positions[t]) * freq, &sd, &cd);
  const float c = static_cast<float>(cd), sn = static_cast<float>(sd);
  const int64_t a = interleaved ? 2 * i : i;
  const int64_t b = interleaved ? 2 * i + 1 : i + half;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* v = x + (t * n_heads + h) * head_dim;
    const float x0 = v[a], x1 = v[b];
    // Separate roundings, as on the CPU (no FMA contraction).
    v[a] = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, sn));
    v[b] = __fadd_rn(__fmul_rn(x0, sn), __fmul_rn(x1, c));
  }
}

}  // namespace

cudaError_t rope(float* x, int64_t n_tok, const int32_t* positions, int64_t n_heads,
                 int64_t head_dim, int64_t rope_dim, float theta, bool interleaved,
                 cudaStream_t s) {
  const int64_t work = n_tok * (rope_dim / 2);
  if (work <= 0 || n_heads <= 0) return cudaSuccess;
  const unsigned blocks = static_cast<unsigned>((work + kThreads - 1) / kThreads);
  rope_kernel<<<blocks, kThreads, 0, s>>>(x, n_tok, positions, n_heads, head_dim, rope_dim, theta,
                                          interleaved);
  return cudaGetLastError();
}

}  // namespace strata::cuda::kern

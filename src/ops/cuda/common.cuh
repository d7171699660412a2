// Device-side helpers shared by the kernels: reductions, half/bfloat16 bit conversions, launch
// arithmetic. Only .cu files include this.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

namespace strata::cuda::dev {

constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

// Block-wide sum / max, the result in every thread. blockDim.x must be a multiple of 32 (at most
// 1024); `sh` is 32 floats of shared memory, reusable across calls (the leading barrier protects
// the previous call's readers).
__device__ __forceinline__ float block_sum(float v, float* sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  return warp_sum(lane < nw ? sh[lane] : 0.0f);
}

__device__ __forceinline__ float block_max(float v, float* sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  return warp_max(lane < nw ? sh[lane] : -INFINITY);
}

// Host-and-device helpers (the decoders are also run on the host: see host_check.cu).
#define STRATA_HD __host__ __device__ __forceinline__

// IEEE binary16 bits -> float (exact).
STRATA_HD float half_bits(uint16_t h) {
  return __half2float(__ushort_as_half(h));
}
// bfloat16 bits -> float (exact).
STRATA_HD float bf16_bits(uint16_t b) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(static_cast<uint32_t>(b) << 16);
#else
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
#endif
}
// Two bytes, little-endian, from an address that may be odd (G4 KV rows can be).
STRATA_HD uint16_t load_u16_unaligned(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}

// Blocks of `threads` covering n items, capped so grid-stride loops pick up the rest.
inline unsigned grid_for(int64_t n, int threads, int64_t cap = 65535) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > cap) b = cap;
  return static_cast<unsigned>(b);
}

}  // namespace strata::cuda::dev

// Causal attention over the paged KV cache (ops/attention.h semantics: the same block table,
// GQA head sharing, ALiBi, f32 / f16 / G4 rows).
//
// One block of 4 warps per (query token, head, key split). Warps take keys in turn: a warp reads
// one key row (lanes over the head dimension, coalesced), reduces the dot product with shuffles,
// and folds the key's value into its running online softmax (max, sum, accumulator in registers,
// DPL dimensions per lane). The four warps' states are merged through shared memory at the end.
// For decode, where (tokens x heads) is too few blocks to fill the GPU, the keys are split over
// several blocks (flash-decoding) and a second kernel merges their partial states.
#include <cmath>

#include "ops/cuda/common.cuh"
#include "ops/cuda/kernels.h"
#include "ops/cuda/quant_decode.cuh"

namespace strata::cuda::kern {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;

template <DType KV>
__device__ __forceinline__ float kv_at(const uint8_t* row, int e) {
  if constexpr (KV == DType::F32) return reinterpret_cast<const float*>(row)[e];
  if constexpr (KV == DType::F16) return dev::half_bits(reinterpret_cast<const uint16_t*>(row)[e]);
  if constexpr (KV == DType::G4) return dev::g4_kv_at(row, e);
  return 0.0f;
}

__device__ __forceinline__ const uint8_t* row_ptr(const void* const* blocks, int64_t bt,
                                                  int64_t row_bytes, int64_t j) {
  return static_cast<const uint8_t*>(blocks[j / bt]) + (j % bt) * row_bytes;
}

// DPL: head dimensions per lane (head_dim <= 32 * DPL).
template <DType KV, int DPL>
__global__ void __launch_bounds__(kThreads) attention_kernel(AttentionArgs a) {
  __shared__ float s_m[kWarps], s_l[kWarps];
  __shared__ float s_acc[kWarps][32 * DPL];

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int split = static_cast<int>(blockIdx.x % a.n_splits);
  const int64_t qh = blockIdx.x / a.n_splits;
  const int64_t h = qh % a.n_head, t = qh / a.n_head;
  const int64_t hd = a.head_dim, group = a.n_head / a.n_head_kv, kvh = h / group;
  const int64_t n_keys = a.pos0 + t + 1;
  const int64_t k_begin = split * a.split_keys;
  const int64_t k_end = min(n_keys, k_begin + a.split_keys);
  const float slope = a.alibi_slopes ? a.alibi_slopes[h] : 0.0f;
  const int col0 = static_cast<int>(kvh * hd);  // this head's first element in a cache row

  float qv[DPL], acc[DPL];
  const float* q = a.q + t * a.n_head * hd + h * hd;
#pragma unroll
  for (int i = 0; i < DPL; ++i) {
    const int d = lane + 32 * i;
    qv[i] = d < hd ? q[d] : 0.0f;
    acc[i] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int64_t j = k_begin + warp; j < k_end; j += kWarps) {
    const uint8_t* kr = row_ptr(a.k_blocks, a.block_tokens, a.row_bytes, j);
    float dot = 0.0f;
#pragma unroll
    for (int i = 0; i < DPL; ++i) {
      const int d = lane + 32 * i;
      if (d < hd) dot = fmaf(kv_at<KV>(kr, col0 + d), qv[i], dot);
    }
    dot = dev::warp_sum(dot);
    const float s = dot * a.scale + slope * static_cast<float>(j);
    const float m_new = fmaxf(m, s);
    const float corr = expf(m - m_new);  // 0 for the first key (m = -inf)
    const float p = expf(s - m_new);
    l = l * corr + p;
    m = m_new;
    const uint8_t* vr = row_ptr(a.v_blocks, a.block_tokens, a.row_bytes, j);
#pragma unroll
    for (int i = 0; i < DPL; ++i) {
      const int d = lane + 32 * i;
      const float v = d < hd ? kv_at<KV>(vr, col0 + d) : 0.0f;
      acc[i] = fmaf(p, v, acc[i] * corr);
    }
  }

  // Merge the warps: every lane of a warp holds the same m and l.
  if (lane == 0) {
    s_m[warp] = m;
    s_l[warp] = l;
  }
#pragma unroll
  for (int i = 0; i < DPL; ++i) s_acc[warp][lane + 32 * i] = acc[i];
  __syncthreads();
  float M = -INFINITY;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) M = fmaxf(M, s_m[w]);
  float L = 0.0f, f[kWarps];
#pragma unroll
  for (int w = 0; w < kWarps; ++w) {
    f[w] = s_m[w] == -INFINITY ? 0.0f : expf(s_m[w] - M);
    L += s_l[w] * f[w];
  }
  for (int64_t d = threadIdx.x; d < hd; d += kThreads) {
    float o = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) o += s_acc[w][d] * f[w];
    if (a.n_splits == 1) {
      a.out[t * a.n_head * hd + h * hd + d] = o / L;
    } else {
      float* p = a.partials + (qh * a.n_splits + split) * (hd + 2);
      p[2 + d] = o;  // unnormalised; a split past the query's last key leaves m = -inf, l = 0
      if (d == 0) {
        p[0] = M;
        p[1] = L;
      }
    }
  }
}

// One block per (token, head): weights each split's partial state by exp(m_split - max m).
__global__ void __launch_bounds__(kThreads) combine_kernel(AttentionArgs a) {
  const int64_t qh = blockIdx.x;
  const int64_t h = qh % a.n_head, t = qh / a.n_head, hd = a.head_dim;
  const float* base = a.partials + qh * a.n_splits * (hd + 2);
  float M = -INFINITY;
  for (int s = 0; s < a.n_splits; ++s) M = fmaxf(M, base[s * (hd + 2)]);
  float L = 0.0f;
  for (int s = 0; s < a.n_splits; ++s) {
    const float ms = base[s * (hd + 2)];
    if (ms != -INFINITY) L += base[s * (hd + 2) + 1] * expf(ms - M);
  }
  for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
    float o = 0.0f;
    for (int s = 0; s < a.n_splits; ++s) {
      const float ms = base[s * (hd + 2)];
      if (ms != -INFINITY) o += base[s * (hd + 2) + 2 + d] * expf(ms - M);
    }
    a.out[t * a.n_head * hd + h * hd + d] = o / L;
  }
}

template <DType KV>
void launch(const AttentionArgs& a, unsigned grid, cudaStream_t s) {
  if (a.head_dim <= 128)
    attention_kernel<KV, 4><<<grid, kThreads, 0, s>>>(a);
  else
    attention_kernel<KV, 8><<<grid, kThreads, 0, s>>>(a);
}

}  // namespace

cudaError_t attention(const AttentionArgs& a, cudaStream_t s) {
  if (a.n_q <= 0) return cudaSuccess;
  if (a.head_dim <= 0 || a.head_dim > kAttentionMaxHeadDim || a.n_splits < 1)
    return cudaErrorInvalidValue;
  const int64_t blocks = a.n_q * a.n_head * a.n_splits;
  if (blocks > 0x7fffffff) return cudaErrorInvalidConfiguration;
  const unsigned grid = static_cast<unsigned>(blocks);
  switch (a.dtype) {
    case DType::F32:
      launch<DType::F32>(a, grid, s);
      break;
    case DType::F16:
      launch<DType::F16>(a, grid, s);
      break;
    case DType::G4:
      launch<DType::G4>(a, grid, s);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  if (a.n_splits > 1) {
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    combine_kernel<<<static_cast<unsigned>(a.n_q * a.n_head), kThreads, 0, s>>>(a);
  }
  return cudaGetLastError();
}

}  // namespace strata::cuda::kern

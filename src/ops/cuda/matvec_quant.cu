// Decode-time y = x · Wᵀ for quantized W and up to kMatvecMaxTokens tokens: one pass over the
// weight bytes (memory-bound), each block unpacked in registers and multiplied with the f32
// activations, never written out as f32.
//
// Block types: one warp per output row, 4 rows per thread block. The hot types have kernels
// that split each quant block among a few lanes (a lane unpacks 8 or 16 codes with one scale);
// the other block types share a per-element kernel. G4 weights, whose scale and min are per
// column and shared by a group of 64 rows, get a kernel that forms scale·x and Σ min·x once per
// column chunk in shared memory, like the CPU kernel does per group.
#include "ops/cuda/kernels.h"
#include "ops/cuda/quant_lanes.cuh"

namespace strata::cuda::kern {
namespace {

using dev::half_bits;
using dev::warp_sum;

constexpr int kMaxT = static_cast<int>(kMatvecMaxTokens);
constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;

struct MatvecArgs {
  const uint8_t* w;
  int64_t row_bytes;
  int64_t n_out;
  int n_in;
  const float* x;  // [n_tok, n_in]
  int n_tok;
  float* y;  // [n_tok, n_out]
  const float* bias;
};

// Sums each token's lane partials across the warp and stores row r.
__device__ __forceinline__ void finish_row(const MatvecArgs& a, int64_t r,
                                           const float (&acc)[kMaxT]) {
  const int lane = threadIdx.x & 31;
  const float b = a.bias ? a.bias[r] : 0.0f;
#pragma unroll
  for (int t = 0; t < kMaxT; ++t) {
    if (t >= a.n_tok) break;  // uniform across the warp
    const float s = warp_sum(acc[t]);
    if (lane == 0) a.y[t * a.n_out + r] = s + b;
  }
}

template <DType T>
__global__ void __launch_bounds__(kThreads) matvec_generic(MatvecArgs a) {
  const int lane = threadIdx.x & 31;
  const int64_t r = blockIdx.x * int64_t(kWarps) + (threadIdx.x >> 5);
  if (r >= a.n_out) return;  // whole warps
  const uint8_t* row = a.w + r * a.row_bytes;
  float acc[kMaxT] = {};
  for (int i = lane; i < a.n_in; i += 32) {
    const float v = dev::Elem<T>::at(row, i);
#pragma unroll
    for (int t = 0; t < kMaxT; ++t)
      if (t < a.n_tok) acc[t] = fmaf(v, a.x[t * a.n_in + i], acc[t]);
  }
  finish_row(a, r, acc);
}

// The hot block types: each block is split among kParts lanes (quant_lanes.cuh); a warp covers
// 32 / kParts blocks per step. Each lane unpacks its part once and dots it with every token.
template <class Block, int kElems, int kParts, class Unpack>
__device__ __forceinline__ void matvec_parts(const MatvecArgs& a, Unpack unpack) {
  const int lane = threadIdx.x & 31, part = lane % kParts;
  const int64_t r = blockIdx.x * int64_t(kWarps) + (threadIdx.x >> 5);
  if (r >= a.n_out) return;  // whole warps
  const Block* blocks = reinterpret_cast<const Block*>(a.w + r * a.row_bytes);
  const int nb = a.n_in / kElems;
  float acc[kMaxT] = {};
  for (int ib = lane / kParts; ib < nb; ib += 32 / kParts) {
    const auto L = unpack(blocks[ib], part);
    const float* xb = a.x + ib * kElems;
#pragma unroll
    for (int t = 0; t < kMaxT; ++t) {
      if (t >= a.n_tok) break;
      acc[t] += dev::lane_dot(L, xb + t * a.n_in);
    }
  }
  finish_row(a, r, acc);
}

__global__ void __launch_bounds__(kThreads) matvec_q8_0(MatvecArgs a) {
  matvec_parts<BlockQ8_0, kQK, dev::kQ8_0Parts>(
      a, [](const BlockQ8_0& b, int p) { return dev::lane_q8_0(b, p); });
}
__global__ void __launch_bounds__(kThreads) matvec_q4_0(MatvecArgs a) {
  matvec_parts<BlockQ4_0, kQK, dev::kQ4_0Parts>(
      a, [](const BlockQ4_0& b, int p) { return dev::lane_q4_0(b, p); });
}
__global__ void __launch_bounds__(kThreads) matvec_q4_k(MatvecArgs a) {
  matvec_parts<BlockQ4_K, kQKK, dev::kQ4_KParts>(
      a, [](const BlockQ4_K& b, int p) { return dev::lane_q4_k(b, p); });
}
__global__ void __launch_bounds__(kThreads) matvec_q6_k(MatvecArgs a) {
  matvec_parts<BlockQ6_K, kQKK, dev::kQ6_KParts>(
      a, [](const BlockQ6_K& b, int p) { return dev::lane_q6_k(b, p); });
}

// G4: 16 rows (one quarter of a 64-row group) per block, 4 per warp. Per chunk of 256 columns
// the block stages xs[t][c] = scale[c] · x[t][c] in shared memory and accumulates Σ min·x; each
// lane then dots 8 columns (4 code bytes) of each of its warp's rows with xs.
constexpr int kG4Rows = 16, kG4RowsPerWarp = kG4Rows / kWarps, kG4Chunk = 256;
static_assert(64 % kG4Rows == 0, "a block must not straddle two G4 groups");

__global__ void __launch_bounds__(kThreads) matvec_g4(MatvecArgs a) {
  __shared__ float xs[kMaxT][kG4Chunk];
  __shared__ float red[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t r0 = blockIdx.x * int64_t(kG4Rows);
  const int in = a.n_in;
  const uint8_t* g = a.w + (r0 / 64) * 36 * int64_t(in);
  const uint16_t* scale = reinterpret_cast<const uint16_t*>(g);
  const uint16_t* mins = reinterpret_cast<const uint16_t*>(g + 2 * int64_t(in));
  const uint8_t* codes = g + 4 * int64_t(in);
  float acc[kG4RowsPerWarp][kMaxT] = {};
  float cmin[kMaxT] = {};
  for (int c0 = 0; c0 < in; c0 += kG4Chunk) {
    __syncthreads();  // the previous chunk's xs has been read
    for (int c = threadIdx.x; c < kG4Chunk; c += kThreads) {
      const int col = c0 + c;
      const bool in_range = col < in;
      const float s = in_range ? half_bits(scale[col]) : 0.0f;
      const float m = in_range ? half_bits(mins[col]) : 0.0f;
#pragma unroll
      for (int t = 0; t < kMaxT; ++t) {
        if (t >= a.n_tok) break;
        const float xv = in_range ? a.x[t * in + col] : 0.0f;
        xs[t][c] = s * xv;
        cmin[t] = fmaf(m, xv, cmin[t]);
      }
    }
    __syncthreads();
    const int nbytes = min(kG4Chunk, in - c0) / 2;  // in is even
#pragma unroll
    for (int rr = 0; rr < kG4RowsPerWarp; ++rr) {
      const int64_t row = r0 + warp * kG4RowsPerWarp + rr;
      if (row >= a.n_out) break;
      const uint8_t* cr = codes + (row % 64) * (in / 2) + c0 / 2;
#pragma unroll
      for (int bb = 0; bb < 4; ++bb) {
        const int cb = 4 * lane + bb;
        if (cb >= nbytes) break;
        const uint8_t byte = cr[cb];
        const float q0 = static_cast<float>(byte & 15), q1 = static_cast<float>(byte >> 4);
#pragma unroll
        for (int t = 0; t < kMaxT; ++t) {
          if (t >= a.n_tok) break;
          acc[rr][t] = fmaf(q0, xs[t][2 * cb], fmaf(q1, xs[t][2 * cb + 1], acc[rr][t]));
        }
      }
    }
  }
#pragma unroll
  for (int t = 0; t < kMaxT; ++t) {
    if (t >= a.n_tok) break;
    cmin[t] = dev::block_sum(cmin[t], red);  // every thread takes part (n_tok is uniform)
  }
#pragma unroll
  for (int rr = 0; rr < kG4RowsPerWarp; ++rr) {
    const int64_t row = r0 + warp * kG4RowsPerWarp + rr;
    if (row >= a.n_out) break;
    const float b = a.bias ? a.bias[row] : 0.0f;
#pragma unroll
    for (int t = 0; t < kMaxT; ++t) {
      if (t >= a.n_tok) break;
      const float s = warp_sum(acc[rr][t]);
      if (lane == 0) a.y[t * a.n_out + row] = s + cmin[t] + b;
    }
  }
}

template <DType T>
void launch_generic(MatvecArgs& a, unsigned grid, cudaStream_t s) {
  a.row_bytes = a.n_in / dev::Elem<T>::kBlock * dev::Elem<T>::kBytes;
  matvec_generic<T><<<grid, kThreads, 0, s>>>(a);
}

}  // namespace

bool quant_matmul_supported(DType t) {
  return t == DType::G4 || dev::dispatch_quant_type(t, [](auto) {});
}

cudaError_t matvec_quant(DType t, const void* w, int64_t n_out, int64_t n_in, const float* x,
                         int64_t n_tok, float* y, const float* bias, cudaStream_t s) {
  if (n_tok <= 0 || n_out <= 0) return cudaSuccess;
  if (n_tok > kMaxT || n_in <= 0 || n_in > 0x7fffffff) return cudaErrorInvalidValue;
  MatvecArgs a{static_cast<const uint8_t*>(w), 0, n_out, static_cast<int>(n_in), x,
               static_cast<int>(n_tok),        y, bias};
  if (t == DType::G4) {
    const unsigned grid = static_cast<unsigned>((n_out + kG4Rows - 1) / kG4Rows);
    matvec_g4<<<grid, kThreads, 0, s>>>(a);
    return cudaGetLastError();
  }
  const unsigned grid = static_cast<unsigned>((n_out + kWarps - 1) / kWarps);
  bool known = true;
  switch (t) {
    case DType::Q8_0:
      a.row_bytes = n_in / kQK * int64_t(sizeof(BlockQ8_0));
      matvec_q8_0<<<grid, kThreads, 0, s>>>(a);
      break;
    case DType::Q4_0:
      a.row_bytes = n_in / kQK * int64_t(sizeof(BlockQ4_0));
      matvec_q4_0<<<grid, kThreads, 0, s>>>(a);
      break;
    case DType::Q4_K:
      a.row_bytes = n_in / kQKK * int64_t(sizeof(BlockQ4_K));
      matvec_q4_k<<<grid, kThreads, 0, s>>>(a);
      break;
    case DType::Q6_K:
      a.row_bytes = n_in / kQKK * int64_t(sizeof(BlockQ6_K));
      matvec_q6_k<<<grid, kThreads, 0, s>>>(a);
      break;
    case DType::Q4_1:
      launch_generic<DType::Q4_1>(a, grid, s);
      break;
    case DType::Q5_0:
      launch_generic<DType::Q5_0>(a, grid, s);
      break;
    case DType::Q5_1:
      launch_generic<DType::Q5_1>(a, grid, s);
      break;
    case DType::Q2_K:
      launch_generic<DType::Q2_K>(a, grid, s);
      break;
    case DType::Q3_K:
      launch_generic<DType::Q3_K>(a, grid, s);
      break;
    case DType::Q5_K:
      launch_generic<DType::Q5_K>(a, grid, s);
      break;
    default:
      known = false;
  }
  return known ? cudaGetLastError() : cudaErrorInvalidValue;
}

}  // namespace strata::cuda::kern

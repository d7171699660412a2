// Prefill-time y = x · Wᵀ for quantized W (every block type, and G4): 64x64 output tiles
// (64 weight rows x 64 tokens) per block of 8 warps. For each 32-column slice of the inputs the
// block decodes the weight tile into shared memory as f16 (exact decoders from
// quant_decode.cuh, then one rounding to f16), converts the activation tile to f16 beside it, and
// the warps multiply the two on the tensor cores with WMMA 16x16x16, accumulating in f32. Each
// weight element is decoded once per 64 tokens; no dequantized copy of W ever exists in global
// memory.
//
// Precision: like cuBLAS's f16 path, inputs are rounded to f16 (relative error 2^-11 each) and
// activations beyond ±65504 overflow; outputs are f32 sums.
#include <cuda_fp16.h>
#include <mma.h>

#include "ops/cuda/kernels.h"
#include "ops/cuda/quant_decode.cuh"

namespace strata::cuda::kern {
namespace {

namespace wmma = nvcuda::wmma;

constexpr int kBM = 64;  // weight rows per tile
constexpr int kBN = 64;  // tokens per tile
constexpr int kBK = 32;  // input columns per step (every block size divides into these)
constexpr int kThreads = 256;
constexpr int kLdc = kBN + 4;  // padded row of the f32 output tile

template <DType T>
struct BlockRows {
  const uint8_t* w;
  int64_t row_bytes;
  __device__ float at(int64_t r, int i) const { return dev::Elem<T>::at(w + r * row_bytes, i); }
};

struct G4Rows {
  const uint8_t* w;
  int64_t n_in;
  __device__ float at(int64_t r, int i) const { return dev::g4_weight_at(w, n_in, r, i); }
};

template <class W>
__global__ void __launch_bounds__(kThreads)
    gemm_tile_kernel(W wt, int64_t n_out, int n_in, const float* __restrict__ x, int64_t n_tok,
                     float* __restrict__ y, const float* __restrict__ bias) {
  __shared__ __align__(32) half s_w[kBM * kBK];    // [row][k]
  __shared__ __align__(32) half s_x[kBN * kBK];    // [token][k]
  __shared__ __align__(32) float s_c[kBM * kLdc];  // [row][token]

  const int tid = threadIdx.x, warp = tid >> 5;
  const int64_t row0 = blockIdx.x * int64_t(kBM), tok0 = blockIdx.y * int64_t(kBN);
  // Warp w owns rows 16 (w % 4) .. +16 and tokens 32 (w / 4) .. +32 (two 16x16 fragments).
  const int wr = warp & 3, wc = warp >> 2;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2];
  wmma::fill_fragment(acc[0], 0.0f);
  wmma::fill_fragment(acc[1], 0.0f);

  for (int k0 = 0; k0 < n_in; k0 += kBK) {
    // Consecutive threads take consecutive columns: coalesced reads of both operands.
    for (int e = tid; e < kBM * kBK; e += kThreads) {
      const int r = e / kBK, c = e % kBK;
      const int64_t row = row0 + r;
      const int col = k0 + c;
      s_w[e] = __float2half_rn(row < n_out && col < n_in ? wt.at(row, col) : 0.0f);
    }
    for (int e = tid; e < kBN * kBK; e += kThreads) {
      const int t = e / kBK, c = e % kBK;
      const int64_t tok = tok0 + t;
      const int col = k0 + c;
      s_x[e] = __float2half_rn(tok < n_tok && col < n_in ? x[tok * n_in + col] : 0.0f);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, half, wmma::row_major> fa;
      wmma::load_matrix_sync(fa, s_w + (16 * wr) * kBK + kk, kBK);
#pragma unroll
      for (int f = 0; f < 2; ++f) {
        // s_x as a [k][token] column-major matrix: element (k, t) at t * kBK + k.
        wmma::fragment<wmma::matrix_b, 16, 16, 16, half, wmma::col_major> fb;
        wmma::load_matrix_sync(fb, s_x + (32 * wc + 16 * f) * kBK + kk, kBK);
        wmma::mma_sync(acc[f], fa, fb, acc[f]);
      }
    }
    __syncthreads();  // the tiles are overwritten next step
  }
#pragma unroll
  for (int f = 0; f < 2; ++f)
    wmma::store_matrix_sync(s_c + (16 * wr) * kLdc + 32 * wc + 16 * f, acc[f], kLdc,
                            wmma::mem_row_major);
  __syncthreads();
  // y is [token][row]: consecutive threads take consecutive rows of one token.
  for (int e = tid; e < kBM * kBN; e += kThreads) {
    const int r = e % kBM, t = e / kBM;
    const int64_t row = row0 + r, tok = tok0 + t;
    if (row < n_out && tok < n_tok)
      y[tok * n_out + row] = s_c[r * kLdc + t] + (bias ? bias[row] : 0.0f);
  }
}

template <class W>
cudaError_t launch(const W& wt, int64_t n_out, int64_t n_in, const float* x, int64_t n_tok,
                   float* y, const float* bias, cudaStream_t s) {
  const int64_t gy = (n_tok + kBN - 1) / kBN;
  if (gy > 65535) return cudaErrorInvalidConfiguration;  // 4M tokens; the caller chunks long before
  const dim3 grid(static_cast<unsigned>((n_out + kBM - 1) / kBM), static_cast<unsigned>(gy));
  gemm_tile_kernel<W>
      <<<grid, kThreads, 0, s>>>(wt, n_out, static_cast<int>(n_in), x, n_tok, y, bias);
  return cudaGetLastError();
}

}  // namespace

cudaError_t gemm_quant(DType t, const void* w, int64_t n_out, int64_t n_in, const float* x,
                       int64_t n_tok, float* y, const float* bias, cudaStream_t s) {
  if (n_tok <= 0 || n_out <= 0) return cudaSuccess;
  if (n_in <= 0 || n_in > 0x7fffffff) return cudaErrorInvalidValue;
  const auto* wb = static_cast<const uint8_t*>(w);
  if (t == DType::G4) return launch(G4Rows{wb, n_in}, n_out, n_in, x, n_tok, y, bias, s);
  cudaError_t err = cudaErrorInvalidValue;
  dev::dispatch_quant_type(t, [&](auto tag) {
    constexpr DType T = decltype(tag)::value;
    const BlockRows<T> rows{wb, n_in / dev::Elem<T>::kBlock * dev::Elem<T>::kBytes};
    err = launch(rows, n_out, n_in, x, n_tok, y, bias, s);
  });
  return err;
}

}  // namespace strata::cuda::kern

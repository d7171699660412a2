// The CUDA backend's ops, mirroring the CPU front-ends (ops/matmul.h, ops/elementwise.h,
// ops/rope.h, ops/attention.h) with the same semantics.
//
// Contract, for every function here:
//  - Every pointer is a DEVICE pointer on the device the op runs on: activations (x, y, q, out,
//    gate, up), weights (Tensor::data with tier Device), biases, norm weights, positions, ids,
//    ALiBi slopes, and the KV view's block tables (k_blocks / v_blocks are device arrays holding
//    device pointers). In particular: when a weight is on the device, strata::matmul's x and y
//    are device pointers too (ops/matmul.cc forwards them here unchanged).
//  - Ops taking a Tensor run on that tensor's device; the others run on the current device
//    (DeviceGuard in device.h). The ops are asynchronous on `stream`: they return once queued,
//    and the host must synchronize the stream (or copy on it) before reading results.
//  - Shapes and types are checked on the host and reported as strata::Error, like the CPU ops;
//    a failed launch is a strata::Error with the CUDA error string.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "core/tensor.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/rope.h"

namespace strata::cuda {

// A usable device exists (driver loaded, at least one GPU); never throws.
bool cuda_available();
// Why cuda_available() is false, from the runtime ("cudaGetDeviceCount failed: ..."); empty when
// a device exists.
std::string cuda_unavailable_reason();
// The per-device streams (device.h DeviceContext): kernels go on compute_stream, host<->device
// transfers (weight streaming) on copy_stream.
cudaStream_t compute_stream(int device = 0);
cudaStream_t copy_stream(int device = 0);

// y = x · Wᵀ (+ bias), W [n_out, n_in] on the device in f32, f16, bf16 (cuBLAS, f32 accumulate;
// f16/bf16 weights multiply x rounded to the same type), any GGUF block type with a CPU kernel, or
// G4 (own kernels: a register-dequantizing mat-vec up to 8 tokens, tensor-core tiles beyond).
// x [n_tok, n_in], y [n_tok, n_out], bias [n_out] or null.
void matmul(const Tensor& w, const float* x, int64_t n_tok, float* y, const float* bias,
            cudaStream_t stream);
bool matmul_supports(DType t);

// out[i, :] = row ids[i] of `table` as f32, for i < n (any type matmul_supports). Decoded values
// are bit-identical to the CPU's get_row. An id outside the table gives a row of NaN: validate
// ids on the host first.
void get_rows(const Tensor& table, const int32_t* ids, int64_t n, float* out, cudaStream_t stream);

void rms_norm(const float* x, const float* w, int64_t n, int64_t dim, float eps, float* out,
              cudaStream_t stream);
void layer_norm(const float* x, const float* w, const float* b, int64_t n, int64_t dim, float eps,
                float* out, cudaStream_t stream);
void activate(Activation a, float* x, int64_t count, cudaStream_t stream);
void activate_gated(Activation a, float* gate, const float* up, int64_t count, cudaStream_t stream);
void add_inplace(float* y, const float* x, int64_t count, cudaStream_t stream);
void add_bias_rows(float* y, const float* b, int64_t n, int64_t dim, cudaStream_t stream);
// Softmax of each of `rows` rows of n values, in place (softmax_inplace per row).
void softmax_rows(float* x, int64_t rows, int64_t n, cudaStream_t stream);

// positions: device int32 [n_tok].
void rope(float* x, int64_t n_tok, const int32_t* positions, int64_t n_heads, int64_t head_dim,
          int64_t rope_dim, float theta, RopeLayout layout, cudaStream_t stream);

// ops/attention.h semantics; kv.dtype F32, F16 or G4; head_dim <= 256. p.alibi_slopes is a
// device array (or null). Long decodes split the keys over several blocks and use the device's
// AttentionPartials scratch (DeviceContext), so calls on one device must not run concurrently.
void attention(const AttentionParams& p, const KvView& kv, const float* q, int64_t n_q,
               int64_t pos0, float* out, cudaStream_t stream);

}  // namespace strata::cuda

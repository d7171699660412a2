// Host side of the CUDA ops: argument checks (strata::Error, like the CPU ops), launch through
// kernels.h, launch errors turned into strata::Error. matmul and get_rows are in matmul_cuda.cc.
#include <algorithm>
#include <climits>

#include "core/error.h"
#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/device.h"
#include "ops/cuda/kernels.h"
#include "quant/g4.h"

namespace strata::cuda {

static_assert(static_cast<int>(Activation::SiLU) == static_cast<int>(kern::Act::SiLU) &&
                  static_cast<int>(Activation::ReLU) == static_cast<int>(kern::Act::ReLU) &&
                  static_cast<int>(Activation::GELU) == static_cast<int>(kern::Act::GELU) &&
                  static_cast<int>(Activation::GELUTanh) == static_cast<int>(kern::Act::GELUTanh),
              "kern::Act must list the activations in strata::Activation's order");

namespace {

int current_device() {
  int d = 0;
  check(cudaGetDevice(&d), "cudaGetDevice");
  return d;
}

// One block per row: the row count is a grid dimension.
void check_rows(const char* op, int64_t n, int64_t dim) {
  if (n < 0 || dim < 0) fail("{}: negative shape [{}, {}]", op, n, dim);
  if (n > INT_MAX) fail("{}: {} rows is more than one launch can take", op, n);
}

void need(const void* p, const char* op, const char* what) {
  if (!p) fail("{}: {} is null", op, what);
}

}  // namespace

bool cuda_available() {
  return device_count() > 0;
}
std::string cuda_unavailable_reason() {
  return unavailable_reason();
}
cudaStream_t compute_stream(int device) {
  return DeviceContext::get(device).compute();
}
cudaStream_t copy_stream(int device) {
  return DeviceContext::get(device).copy();
}

void rms_norm(const float* x, const float* w, int64_t n, int64_t dim, float eps, float* out,
              cudaStream_t stream) {
  check_rows("cuda::rms_norm", n, dim);
  if (n == 0 || dim == 0) return;
  need(x, "cuda::rms_norm", "x");
  need(out, "cuda::rms_norm", "out");
  check(kern::rms_norm(x, w, n, dim, eps, out, stream), "cuda::rms_norm");
}

void layer_norm(const float* x, const float* w, const float* b, int64_t n, int64_t dim, float eps,
                float* out, cudaStream_t stream) {
  check_rows("cuda::layer_norm", n, dim);
  if (n == 0 || dim == 0) return;
  need(x, "cuda::layer_norm", "x");
  need(out, "cuda::layer_norm", "out");
  check(kern::layer_norm(x, w, b, n, dim, eps, out, stream), "cuda::layer_norm");
}

void activate(Activation a, float* x, int64_t count, cudaStream_t stream) {
  if (count <= 0) return;
  need(x, "cuda::activate", "x");
  check(kern::activate(static_cast<kern::Act>(a), x, nullptr, count, stream), "cuda::activate");
}

void activate_gated(Activation a, float* gate, const float* up, int64_t count,
                    cudaStream_t stream) {
  if (count <= 0) return;
  need(gate, "cuda::activate_gated", "gate");
  need(up, "cuda::activate_gated", "up");
  check(kern::activate(static_cast<kern::Act>(a), gate, up, count, stream), "cuda::activate_gated");
}

void add_inplace(float* y, const float* x, int64_t count, cudaStream_t stream) {
  if (count <= 0) return;
  need(y, "cuda::add_inplace", "y");
  need(x, "cuda::add_inplace", "x");
  check(kern::add_inplace(y, x, count, stream), "cuda::add_inplace");
}

void add_bias_rows(float* y, const float* b, int64_t n, int64_t dim, cudaStream_t stream) {
  if (n <= 0 || dim <= 0) return;
  need(y, "cuda::add_bias_rows", "y");
  need(b, "cuda::add_bias_rows", "b");
  check(kern::add_bias_rows(y, b, n, dim, stream), "cuda::add_bias_rows");
}

void softmax_rows(float* x, int64_t rows, int64_t n, cudaStream_t stream) {
  check_rows("cuda::softmax_rows", rows, n);
  if (rows == 0 || n == 0) return;
  need(x, "cuda::softmax_rows", "x");
  check(kern::softmax_rows(x, rows, n, stream), "cuda::softmax_rows");
}

void rope(float* x, int64_t n_tok, const int32_t* positions, int64_t n_heads, int64_t head_dim,
          int64_t rope_dim, float theta, RopeLayout layout, cudaStream_t stream) {
  if (n_tok < 0 || n_heads < 0 || head_dim < 0) fail("cuda::rope: negative shape");
  if (rope_dim < 0 || rope_dim > head_dim || rope_dim % 2 != 0)
    fail("cuda::rope: rope_dim {} must be even and within the head dimension {}", rope_dim,
         head_dim);
  if (n_tok == 0 || n_heads == 0 || rope_dim == 0) return;
  need(x, "cuda::rope", "x");
  need(positions, "cuda::rope", "positions");
  if (n_tok * (rope_dim / 2) > int64_t(INT_MAX) * 128)
    fail("cuda::rope: {} tokens is too many for one launch", n_tok);
  check(kern::rope(x, n_tok, positions, n_heads, head_dim, rope_dim, theta,
                   layout == RopeLayout::Interleaved, stream),
        "cuda::rope");
}

void attention(const AttentionParams& p, const KvView& kv, const float* q, int64_t n_q,
               int64_t pos0, float* out, cudaStream_t stream) {
  if (p.n_head_kv <= 0 || p.n_head <= 0 || p.n_head % p.n_head_kv != 0)
    fail("cuda::attention: {} heads cannot share {} KV heads", p.n_head, p.n_head_kv);
  if (p.head_dim <= 0 || p.head_dim > kern::kAttentionMaxHeadDim)
    fail("cuda::attention: head dimension {} is outside 1..{}", p.head_dim,
         kern::kAttentionMaxHeadDim);
  if (kv.dtype != DType::F32 && kv.dtype != DType::F16 && kv.dtype != DType::G4)
    fail("cuda::attention: KV cache type {} is not supported on the GPU", dtype_name(kv.dtype));
  if (n_q < 0 || pos0 < 0) fail("cuda::attention: negative query count or position");
  if (n_q == 0) return;
  if (kv.block_tokens <= 0) fail("cuda::attention: block_tokens must be positive");
  if ((pos0 + n_q + kv.block_tokens - 1) / kv.block_tokens > kv.n_blocks)
    fail("cuda::attention: the KV cache holds {} blocks, fewer than {} positions need", kv.n_blocks,
         pos0 + n_q);
  const int64_t kv_elems = p.n_head_kv * p.head_dim;
  if (kv.row_elems < kv_elems)
    fail("cuda::attention: cache rows of {} values cannot hold {} KV heads of {}", kv.row_elems,
         p.n_head_kv, p.head_dim);
  const int64_t min_row = kv.dtype == DType::G4 ? g4_kv_row_bytes(kv.row_elems)
                                                : kv.row_elems * (kv.dtype == DType::F32 ? 4 : 2);
  if (kv.row_bytes < min_row)
    fail("cuda::attention: cache rows of {} bytes are too short for {} {} values", kv.row_bytes,
         kv.row_elems, dtype_name(kv.dtype));
  need(kv.k_blocks, "cuda::attention", "k_blocks");
  need(kv.v_blocks, "cuda::attention", "v_blocks");
  need(q, "cuda::attention", "q");
  need(out, "cuda::attention", "out");

  kern::AttentionArgs a;
  a.k_blocks = kv.k_blocks;
  a.v_blocks = kv.v_blocks;
  a.block_tokens = kv.block_tokens;
  a.row_bytes = kv.row_bytes;
  a.dtype = kv.dtype;
  a.n_head = p.n_head;
  a.n_head_kv = p.n_head_kv;
  a.head_dim = p.head_dim;
  a.scale = p.scale;
  a.alibi_slopes = p.alibi_slopes;
  a.q = q;
  a.n_q = n_q;
  a.pos0 = pos0;
  a.out = out;
  // Few (token, head) blocks and many keys (decode): split the keys so that ~4 blocks per SM run,
  // each split at least 256 keys.
  DeviceContext& ctx = DeviceContext::get(current_device());
  const int64_t blocks = n_q * p.n_head, max_keys = pos0 + n_q;
  const int64_t target = 4 * std::max(1, ctx.info().sm_count);
  int64_t splits = 1;
  if (blocks < target)
    splits = std::min<int64_t>({(target + blocks - 1) / blocks, (max_keys + 255) / 256, 64});
  splits = std::max<int64_t>(splits, 1);
  a.n_splits = static_cast<int>(splits);
  a.split_keys = (max_keys + splits - 1) / splits;
  if (blocks * splits > INT_MAX)
    fail("cuda::attention: {} queries x {} heads is too many for one launch", n_q, p.n_head);
  if (splits > 1) {
    const uint64_t bytes =
        static_cast<uint64_t>(blocks * splits * (p.head_dim + 2)) * sizeof(float);
    a.partials = static_cast<float*>(ctx.scratch(Scratch::AttentionPartials, bytes));
  }
  check(kern::attention(a, stream), "cuda::attention");
}

}  // namespace strata::cuda

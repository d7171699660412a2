// Causal multi-head attention of new queries over one sequence's paged KV cache.
// The cache stores one row of n_head_kv*head_dim values per token, in blocks of block_tokens
// tokens; this view lists the sequence's blocks (for one layer) in order.
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "core/thread_pool.h"

namespace strata {

struct KvView {
  const void* const* k_blocks = nullptr;
  const void* const* v_blocks = nullptr;
  int64_t n_blocks = 0;
  int64_t block_tokens = 0;
  DType dtype = DType::F32;  // F32, F16 or G4 (group-wise 4-bit rows)
  int64_t row_elems = 0;     // n_head_kv * head_dim
  int64_t row_bytes = 0;     // bytes of one token's row in a block
};

struct AttentionParams {
  int64_t n_head = 0, n_head_kv = 0, head_dim = 0;
  float scale = 1.0f;
  const float* alibi_slopes = nullptr;  // per query head, or null
};

// q: [n_q, n_head*head_dim], the queries at positions pos0 .. pos0+n_q-1. The cache must already
// hold keys/values for positions 0 .. pos0+n_q-1. out: [n_q, n_head*head_dim].
void attention(ThreadPool& pool, const AttentionParams& p, const KvView& kv, const float* q,
               int64_t n_q, int64_t pos0, float* out);

}  // namespace strata

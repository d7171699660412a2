// Paged KV cache storage (as in vLLM): fixed-size blocks of block_tokens tokens; a sequence owns
// a list of blocks (its block table), shared by all layers, so memory follows the tokens
// actually cached instead of the maximum context. Storage is reserved address space that is
// committed page by page as blocks are first used.
#pragma once
#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace strata {

struct KvConfig {
  int64_t n_layer = 0;
  int64_t row_elems = 0;      // n_head_kv * head_dim
  int64_t block_tokens = 32;
  DType dtype = DType::F32;   // F32 or F16
  int64_t max_blocks = 0;     // capacity
};

class KvPool {
 public:
  explicit KvPool(const KvConfig& cfg);
  ~KvPool();
  KvPool(const KvPool&) = delete;
  KvPool& operator=(const KvPool&) = delete;

  const KvConfig& config() const { return cfg_; }
  int64_t row_bytes() const { return row_bytes_; }
  int64_t block_bytes() const { return row_bytes_ * cfg_.block_tokens; }  // one of K or V, one layer
  int64_t bytes_per_token() const { return row_bytes_ * 2 * cfg_.n_layer; }

  int32_t alloc_block();  // throws strata::Error when the cache is full
  void free_block(int32_t b);
  int64_t blocks_used() const { return used_; }
  int64_t blocks_free() const { return cfg_.max_blocks - used_; }

  uint8_t* k_block(int64_t layer, int32_t b) const { return block(layer, b, 0); }
  uint8_t* v_block(int64_t layer, int32_t b) const { return block(layer, b, 1); }

 private:
  uint8_t* block(int64_t layer, int32_t b, int kv) const {
    return base_ + ((layer * cfg_.max_blocks + b) * 2 + kv) * block_bytes();
  }
  KvConfig cfg_;
  int64_t row_bytes_ = 0;
  uint8_t* base_ = nullptr;
  uint64_t reserved_ = 0;
  std::vector<int32_t> free_;
  int64_t used_ = 0;
};

// One sequence's cache: its block table and how many tokens it holds.
struct KvSeq {
  std::vector<int32_t> blocks;
  int64_t n_tokens = 0;

  // Make room for `total` tokens (allocating blocks as needed).
  void reserve(KvPool& pool, int64_t total);
  // Drop tokens past `n` (freeing whole blocks no longer needed).
  void truncate(KvPool& pool, int64_t n);
  void release(KvPool& pool) { truncate(pool, 0); }
};

}  // namespace strata

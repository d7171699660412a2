#include "memory/kv_pool.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace strata {

KvPool::KvPool(const KvConfig& cfg) : cfg_(cfg) {
  if (cfg.dtype == DType::F32) row_bytes_ = cfg.row_elems * 4;
  else if (cfg.dtype == DType::F16) row_bytes_ = cfg.row_elems * 2;
  else fail("KV cache type {} is not supported", dtype_name(cfg.dtype));
  if (cfg.n_layer <= 0 || cfg.row_elems <= 0 || cfg.block_tokens <= 0 || cfg.max_blocks <= 0)
    fail("KV cache: invalid configuration");
  reserved_ = static_cast<uint64_t>(cfg.n_layer * cfg.max_blocks * 2 * block_bytes());
  void* p = ::mmap(nullptr, reserved_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) fail("KV cache: cannot reserve {} bytes: {}", reserved_, std::strerror(errno));
  base_ = static_cast<uint8_t*>(p);
  free_.reserve(static_cast<size_t>(cfg.max_blocks));
  for (int64_t b = cfg.max_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

KvPool::~KvPool() {
  if (base_) ::munmap(base_, reserved_);
}

int32_t KvPool::alloc_block() {
  if (free_.empty())
    fail("KV cache is full: all {} blocks of {} tokens are in use", cfg_.max_blocks, cfg_.block_tokens);
  const int32_t b = free_.back();
  free_.pop_back();
  ++used_;
  return b;
}

void KvPool::free_block(int32_t b) {
  free_.push_back(b);
  --used_;
}

void KvSeq::reserve(KvPool& pool, int64_t total) {
  const int64_t bt = pool.config().block_tokens;
  while (static_cast<int64_t>(blocks.size()) * bt < total) blocks.push_back(pool.alloc_block());
}

void KvSeq::truncate(KvPool& pool, int64_t n) {
  const int64_t bt = pool.config().block_tokens;
  const size_t keep = static_cast<size_t>((n + bt - 1) / bt);
  while (blocks.size() > keep) {
    pool.free_block(blocks.back());
    blocks.pop_back();
  }
  if (n_tokens > n) n_tokens = n;
}

}  // namespace strata

// Paged KV cache storage (as in vLLM): fixed-size blocks of block_tokens tokens; a sequence owns
// a list of blocks (its block table), shared by all layers, so memory follows the tokens
// actually cached instead of the maximum context.
//
// Layers below `disk_layers_from` keep their blocks in RAM (reserved address space committed
// page by page as blocks are first used). Layers from there on keep them in a file in the
// offload directory: before such a layer runs, the scheduler stages the blocks it needs into an
// arena (stage), the layer reads and appends rows there, and the blocks that got new rows are
// written back (unstage). Rows are f32, f16 or G4 (FlexGen's group-wise 4-bit, groups of 64
// along the row).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace strata {

struct KvConfig {
  int64_t n_layer = 0;
  int64_t row_elems = 0;  // n_head_kv * head_dim
  int64_t block_tokens = 32;
  DType dtype = DType::F32;       // F32, F16 or G4
  int64_t max_blocks = 0;         // capacity
  int64_t disk_layers_from = -1;  // layers >= this keep their cache on disk; -1: none
  std::string disk_dir;           // where the disk layers' file lives
};

class KvPool {
 public:
  explicit KvPool(const KvConfig& cfg);
  ~KvPool();
  KvPool(const KvPool&) = delete;
  KvPool& operator=(const KvPool&) = delete;

  const KvConfig& config() const { return cfg_; }
  int64_t row_bytes() const { return row_bytes_; }
  int64_t block_bytes() const { return row_bytes_ * cfg_.block_tokens; }  // K or V, one layer
  int64_t bytes_per_token() const { return row_bytes_ * 2 * cfg_.n_layer; }
  static int64_t row_bytes_for(DType dtype, int64_t row_elems);

  int32_t alloc_block();  // throws strata::Error when the cache is full
  void free_block(int32_t b);
  int64_t blocks_used() const { return used_; }
  int64_t blocks_free() const { return cfg_.max_blocks - used_; }

  uint8_t* k_block(int64_t layer, int32_t b) const { return block(layer, b, 0); }
  uint8_t* v_block(int64_t layer, int32_t b) const { return block(layer, b, 1); }

  bool on_disk(int64_t layer) const {
    return cfg_.disk_layers_from >= 0 && layer >= cfg_.disk_layers_from;
  }
  // Bytes an arena needs to stage n blocks of one layer (K and V).
  int64_t arena_bytes(int64_t n_blocks) const { return n_blocks * 2 * file_block_bytes_; }
  // Reads the blocks of a disk layer into `arena` (aligned, arena_bytes(blocks.size())) and points
  // k_block/v_block at them until unstage().
  void stage(int64_t layer, const std::vector<int32_t>& blocks, uint8_t* arena);
  // Writes back the blocks in `dirty` (a subset of the staged ones) and forgets the staging.
  void unstage(int64_t layer, const std::vector<int32_t>& staged,
               const std::vector<int32_t>& dirty);
  uint64_t disk_bytes_read() const { return disk_read_; }
  uint64_t disk_bytes_written() const { return disk_written_; }
  uint64_t ram_bytes_used() const;  // committed RAM of the RAM layers (blocks used x size)

 private:
  uint8_t* block(int64_t layer, int32_t b, int kv) const;
  uint64_t file_offset(int64_t layer, int32_t b, int kv) const;
  KvConfig cfg_;
  int64_t row_bytes_ = 0;
  int64_t ram_layers_ = 0;
  int64_t file_block_bytes_ = 0;  // block_bytes rounded up to 4096 in the file
  uint8_t* base_ = nullptr;
  uint64_t reserved_ = 0;
  int fd_ = -1;
  bool direct_ = false;
  std::vector<std::vector<uint8_t*>>
      staged_;  // per disk layer: block -> arena pointer (K; V follows)
  std::vector<int32_t> free_;
  int64_t used_ = 0;
  uint64_t disk_read_ = 0, disk_written_ = 0;
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

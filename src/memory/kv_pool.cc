#include "memory/kv_pool.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "quant/g4.h"

namespace strata {

int64_t KvPool::row_bytes_for(DType dtype, int64_t n) {
  switch (dtype) {
    case DType::F32:
      return n * 4;
    case DType::F16:
      return n * 2;
    case DType::G4:
      return g4_kv_row_bytes(n);
    default:
      fail("KV cache type {} is not supported (f32, f16 or g4)", dtype_name(dtype));
  }
}

KvPool::KvPool(const KvConfig& cfg) : cfg_(cfg) {
  if (cfg.n_layer <= 0 || cfg.row_elems <= 0 || cfg.block_tokens <= 0 || cfg.max_blocks <= 0)
    fail("KV cache: invalid configuration");
  row_bytes_ = row_bytes_for(cfg.dtype, cfg.row_elems);
  ram_layers_ =
      cfg.disk_layers_from >= 0 ? std::min(cfg.disk_layers_from, cfg.n_layer) : cfg.n_layer;
  file_block_bytes_ = (block_bytes() + 4095) / 4096 * 4096;
  if (ram_layers_ > 0) {
    reserved_ = static_cast<uint64_t>(ram_layers_ * cfg.max_blocks * 2 * block_bytes());
    void* p = ::mmap(nullptr, reserved_, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
      fail("KV cache: cannot reserve {} bytes: {}", reserved_, std::strerror(errno));
    base_ = static_cast<uint8_t*>(p);
  }
  const int64_t disk_layers = cfg.n_layer - ram_layers_;
  if (disk_layers > 0) {
    if (cfg.disk_dir.empty()) fail("the KV cache is placed on disk but no --offload-dir was given");
    // An unnamed file: nothing is left behind whatever happens to the process.
    fd_ = ::open(cfg.disk_dir.c_str(), O_TMPFILE | O_RDWR | O_DIRECT | O_CLOEXEC, 0600);
    if (fd_ >= 0) {
      direct_ = true;
    } else {
      fd_ = ::open(cfg.disk_dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
      if (fd_ < 0)
        fail("cannot create the KV cache file in '{}': {}", cfg.disk_dir, std::strerror(errno));
    }
    const uint64_t size =
        static_cast<uint64_t>(disk_layers * cfg.max_blocks * 2 * file_block_bytes_);
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0)
      fail("cannot size the KV cache file in '{}' to {} bytes: {}", cfg.disk_dir, size,
           std::strerror(errno));
    staged_.assign(static_cast<size_t>(disk_layers),
                   std::vector<uint8_t*>(static_cast<size_t>(cfg.max_blocks), nullptr));
  }
  free_.reserve(static_cast<size_t>(cfg.max_blocks));
  for (int64_t b = cfg.max_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

KvPool::~KvPool() {
  if (base_) ::munmap(base_, reserved_);
  if (fd_ >= 0) ::close(fd_);
}

uint8_t* KvPool::block(int64_t layer, int32_t b, int kv) const {
  if (layer < ram_layers_) return base_ + ((layer * cfg_.max_blocks + b) * 2 + kv) * block_bytes();
  uint8_t* p = staged_[static_cast<size_t>(layer - ram_layers_)][static_cast<size_t>(b)];
  if (!p) fail("KV cache: block {} of layer {} is on disk and was not staged", b, layer);
  return p + kv * file_block_bytes_;
}

uint64_t KvPool::file_offset(int64_t layer, int32_t b, int kv) const {
  return static_cast<uint64_t>((((layer - ram_layers_) * cfg_.max_blocks + b) * 2 + kv) *
                               file_block_bytes_);
}

void KvPool::stage(int64_t layer, const std::vector<int32_t>& blocks, uint8_t* arena) {
  auto& table = staged_.at(static_cast<size_t>(layer - ram_layers_));
  const size_t n = static_cast<size_t>(2 * file_block_bytes_);
  for (size_t i = 0; i < blocks.size(); ++i) {
    uint8_t* dst = arena + i * n;
    const uint64_t off = file_offset(layer, blocks[i], 0);  // K and V are adjacent in the file
    size_t done = 0;
    while (done < n) {
      const ssize_t r = ::pread(fd_, dst + done, n - done, static_cast<off_t>(off + done));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0)
        fail("reading the KV cache file failed at offset {}: {}", off + done,
             r == 0 ? "end of file" : std::strerror(errno));
      done += static_cast<size_t>(r);
    }
    disk_read_ += n;
    table[static_cast<size_t>(blocks[i])] = dst;
  }
}

void KvPool::unstage(int64_t layer, const std::vector<int32_t>& staged,
                     const std::vector<int32_t>& dirty) {
  auto& table = staged_.at(static_cast<size_t>(layer - ram_layers_));
  const size_t n = static_cast<size_t>(2 * file_block_bytes_);
  for (int32_t b : dirty) {
    const uint8_t* src = table[static_cast<size_t>(b)];
    if (!src) fail("KV cache: block {} of layer {} was not staged", b, layer);
    const uint64_t off = file_offset(layer, b, 0);
    size_t done = 0;
    while (done < n) {
      const ssize_t w = ::pwrite(fd_, src + done, n - done, static_cast<off_t>(off + done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0)
        fail("writing the KV cache file in '{}' failed: {}", cfg_.disk_dir, std::strerror(errno));
      done += static_cast<size_t>(w);
    }
    disk_written_ += n;
  }
  for (int32_t b : staged) table[static_cast<size_t>(b)] = nullptr;
}

uint64_t KvPool::ram_bytes_used() const {
  return static_cast<uint64_t>(used_ * ram_layers_ * 2 * block_bytes());
}

int32_t KvPool::alloc_block() {
  if (free_.empty())
    fail("KV cache is full: all {} blocks of {} tokens are in use", cfg_.max_blocks,
         cfg_.block_tokens);
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

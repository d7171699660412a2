#include "memory/aligned_buffer.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>
#include <thread>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/progress.h"
#include "core/thread_pool.h"

namespace strata {
namespace {

std::atomic<uint64_t> g_live{0};
std::atomic<uint64_t> g_peak{0};

// Large buffers come straight from mmap: page aligned for free, and returned to the OS on free.
constexpr size_t kMmapThreshold = size_t(1) << 20;
constexpr size_t kHugePage = size_t(2) << 20;

// Maps `cap` bytes. Buffers of 2 MiB or more start on a 2 MiB boundary (over-map, trim the
// ends) and are advised for transparent huge pages: besides fewer TLB misses, O_DIRECT reads
// into huge pages need far fewer scatter-gather segments, which on virtio disks (254 segments
// per request) made sequential reads about twice as fast in our measurements.
void* map_pages(size_t cap) {
  if (cap < kHugePage) {
    void* p = mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
  }
  const size_t span = cap + kHugePage;
  void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (begin + kHugePage - 1) & ~uintptr_t(kHugePage - 1);
  if (aligned > begin) munmap(raw, aligned - begin);
  const uintptr_t end = begin + span, used_end = aligned + cap;
  if (end > used_end) munmap(reinterpret_cast<void*>(used_end), end - used_end);
  void* p = reinterpret_cast<void*>(aligned);
  madvise(p, cap, MADV_HUGEPAGE);  // a hint; failure (no THP) is harmless
  return p;
}

void account(int64_t delta) {
  const uint64_t now =
      g_live.fetch_add(uint64_t(delta), std::memory_order_relaxed) + uint64_t(delta);
  uint64_t peak = g_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

}  // namespace

AlignedBuffer::AlignedBuffer(AlignedBuffer&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      capacity_(std::exchange(o.capacity_, 0)),
      mapped_(std::exchange(o.mapped_, false)),
      locked_(std::exchange(o.locked_, false)) {}

AlignedBuffer& AlignedBuffer::operator=(AlignedBuffer&& o) noexcept {
  if (this != &o) {
    reset();
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    capacity_ = std::exchange(o.capacity_, 0);
    mapped_ = std::exchange(o.mapped_, false);
    locked_ = std::exchange(o.locked_, false);
  }
  return *this;
}

void AlignedBuffer::resize(size_t size) {
  const size_t cap = (size + kAlignment - 1) / kAlignment * kAlignment;
  if (cap == capacity_) {
    size_ = size;
    return;
  }
  reset();
  if (cap == 0) return;
  void* p = nullptr;
  bool mapped = false;
  if (cap >= kMmapThreshold) {
    p = map_pages(cap);
    mapped = true;
  } else {
    p = std::aligned_alloc(kAlignment, cap);
  }
  if (!p)
    fail("out of memory allocating an aligned buffer of {} ({} already held in aligned buffers)",
         human_bytes(double(cap)), human_bytes(double(live_bytes())));
  data_ = static_cast<uint8_t*>(p);
  size_ = size;
  capacity_ = cap;
  mapped_ = mapped;
  account(int64_t(cap));
}

void AlignedBuffer::reset() {
  if (!data_) {
    size_ = capacity_ = 0;
    return;
  }
  if (locked_) munlock(data_, capacity_);
  if (mapped_)
    munmap(data_, capacity_);
  else
    std::free(data_);
  account(-int64_t(capacity_));
  data_ = nullptr;
  size_ = capacity_ = 0;
  mapped_ = locked_ = false;
}

void AlignedBuffer::fault_in() {
  const size_t n = size_t(ThreadPool::default_threads());
  const size_t share = (capacity_ / n + kAlignment - 1) / kAlignment * kAlignment;
  std::vector<std::thread> threads;
  for (size_t t = 0; t < n && t * share < capacity_; ++t)
    threads.emplace_back([this, t, share] {
      volatile uint8_t* p = data_;  // rewrite each page's first byte: contents are kept
      for (size_t o = t * share; o < std::min(capacity_, (t + 1) * share); o += kAlignment)
        p[o] = p[o];
    });
  for (auto& th : threads) th.join();
}

bool AlignedBuffer::lock() {
  if (locked_ || !data_) return locked_;
  locked_ = mlock(data_, capacity_) == 0;
  return locked_;
}

void AlignedBuffer::unlock() {
  if (locked_) munlock(data_, capacity_);
  locked_ = false;
}

uint64_t AlignedBuffer::live_bytes() {
  return g_live.load(std::memory_order_relaxed);
}
uint64_t AlignedBuffer::peak_live_bytes() {
  return g_peak.load(std::memory_order_relaxed);
}

}  // namespace strata

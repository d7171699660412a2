// AlignedBuffer: an owning host buffer aligned to 4096 bytes, so it can be the target of O_DIRECT
// reads. The process-wide total of live AlignedBuffer bytes is tracked, so callers can account
// weight/KV staging memory against a budget without walking their data structures.
#pragma once
#include <cstddef>
#include <cstdint>

namespace strata {

class AlignedBuffer {
 public:
  static constexpr size_t kAlignment = 4096;

  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t size) { resize(size); }
  ~AlignedBuffer() { reset(); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer(AlignedBuffer&& o) noexcept;
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept;

  // Sets the size to `size` bytes. Contents are NOT preserved (fresh memory is zero-filled lazily
  // by the OS for large buffers, uninitialised for small ones). Reallocates only when the
  // rounded-up capacity changes, so the accounted total always matches what is held.
  void resize(size_t size);
  void reset();  // frees the memory (size 0)

  size_t size() const { return size_; }
  // Bytes actually held: size rounded up to kAlignment (this is what live_bytes() counts).
  size_t capacity() const { return capacity_; }
  bool empty() const { return size_ == 0; }
  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  template <class T>
  T* as() {
    return reinterpret_cast<T*>(data_);
  }
  template <class T>
  const T* as() const {
    return reinterpret_cast<const T*>(data_);
  }

  // Touches every page from every core (ThreadPool::default_threads() threads; contents are kept),
  // so the kernel zeroes fresh pages in parallel before a read fills them. On the VMs we run on
  // that first touch cost more than the read itself: a 2 GiB model took 3.6-4.1 s to load from one
  // thread (80% in the kernel's clear_page), 0.9 s this way.
  void fault_in();

  // Pins the pages in RAM (mlock) so they are never swapped out. Returns false, leaving the
  // buffer usable but unpinned, when the OS refuses (RLIMIT_MEMLOCK is often small).
  bool lock();
  void unlock();
  bool locked() const { return locked_; }

  // Total capacity of all live AlignedBuffers in this process, and its high-water mark.
  static uint64_t live_bytes();
  static uint64_t peak_live_bytes();

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
  bool mapped_ = false;  // allocated with mmap (large) rather than aligned_alloc (small)
  bool locked_ = false;
};

}  // namespace strata

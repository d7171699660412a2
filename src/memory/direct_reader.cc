#include "memory/direct_reader.h"

#include <fcntl.h>
#include <liburing.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/error.h"
#include "core/log.h"

namespace strata {
namespace {

constexpr uint64_t kAlign = AlignedBuffer::kAlignment;
constexpr uint64_t kStopTag = ~uint64_t(0);
constexpr size_t kMaxChunk = size_t(1) << 30;  // io_uring read lengths are 32-bit
constexpr int kMaxQueueDepth = 256;
constexpr int kMaxPreadThreads = 16;

uint64_t align_down(uint64_t x) {
  return x & ~(kAlign - 1);
}
uint64_t align_up(uint64_t x) {
  return (x + kAlign - 1) & ~(kAlign - 1);
}

}  // namespace

struct DirectReader::Ring {
  io_uring ring;
};

DirectReader::DirectReader(const std::string& path, int queue_depth, size_t chunk_bytes, Mode mode)
    : path_(path),
      queue_depth_(std::clamp(queue_depth, 1, kMaxQueueDepth)),
      chunk_bytes_(std::clamp<size_t>(align_up(chunk_bytes), kAlign, kMaxChunk)) {
  open_file(mode);
  staging_.resize(size_t(queue_depth_));

  if (mode != Mode::kPread) {
    auto ring = std::make_unique<Ring>();
    unsigned entries = 1;
    while (entries < unsigned(queue_depth_)) entries *= 2;
    const int r = io_uring_queue_init(entries, &ring->ring, 0);
    if (r == 0) {
      ring_ = std::move(ring);
      slots_.resize(size_t(queue_depth_));
      for (int i = queue_depth_ - 1; i >= 0; --i) free_slots_.push_back(i);
      reaper_ = std::thread([this] { ring_reaper(); });
      return;
    }
    spdlog::debug("{}: io_uring unavailable ({}), reading with a pread thread pool", path_,
                  std::strerror(-r));
  }
  const int n = std::min(queue_depth_, kMaxPreadThreads);
  for (int i = 0; i < n; ++i) workers_.emplace_back([this, i] { pread_worker(i); });
}

void DirectReader::open_file(Mode mode) {
  if (mode != Mode::kBuffered) {
    fd_ = ::open(path_.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (fd_ < 0 && errno != EINVAL) fail("cannot open {}: {}", path_, std::strerror(errno));
    direct_ = fd_ >= 0;
  }
  struct stat st {};
  if (direct_) {
    if (fstat(fd_, &st) != 0) fail("cannot stat {}: {}", path_, std::strerror(errno));
    // Some filesystems accept O_DIRECT at open but refuse the reads: probe one block.
    if (S_ISREG(st.st_mode) && st.st_size > 0) {
      AlignedBuffer probe(kAlign);
      if (::pread(fd_, probe.data(), kAlign, 0) < 0) {
        if (errno != EINVAL) fail("cannot read {}: {}", path_, std::strerror(errno));
        ::close(fd_);
        fd_ = -1;
        direct_ = false;
      }
    }
  }
  if (!direct_) {
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail("cannot open {}: {}", path_, std::strerror(errno));
    if (fstat(fd_, &st) != 0) fail("cannot stat {}: {}", path_, std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    fd_ = -1;
    fail("cannot read {}: not a regular file", path_);
  }
  file_size_ = open_size_ = uint64_t(st.st_size);
}

DirectReader::~DirectReader() {
  {
    std::unique_lock<std::mutex> lk(mu_);
    stop_ = true;
    pending_.clear();  // never started: nothing to wait for
  }
  if (ring_) {
    // Reads already handed to the kernel write into caller memory and staging buffers: let them
    // land before anything is freed, then stop the reaper with a no-op it recognises.
    std::unique_lock<std::mutex> lk(mu_);
    cv_done_.wait(lk, [&] { return free_slots_.size() == slots_.size(); });
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_->ring);
    if (sqe) {
      io_uring_prep_nop(sqe);
      sqe->user_data = kStopTag;
      io_uring_submit(&ring_->ring);
    }
    lk.unlock();
    if (reaper_.joinable()) reaper_.join();
    io_uring_queue_exit(&ring_->ring);
  } else {
    cv_work_.notify_all();
    for (auto& t : workers_) t.join();
  }
  if (fd_ >= 0) ::close(fd_);
}

const char* DirectReader::mode_name() const {
  if (!direct_) return "buffered";
  return ring_ ? "io_uring+O_DIRECT" : "pread+O_DIRECT";
}

uint64_t DirectReader::submit(uint64_t offset, uint64_t len, void* dst) {
  if (offset > UINT64_MAX - len || offset + len > file_size_) {
    struct stat st {};  // the file may have grown since it was opened
    if (fstat(fd_, &st) == 0) file_size_ = uint64_t(st.st_size);
    if (offset > UINT64_MAX - len || offset + len > file_size_)
      fail("read past the end of {}: bytes [{}, {}) requested but the file has {} bytes", path_,
           offset, offset + len, file_size_);
  }
  if (len > 0 && !dst) fail("DirectReader::submit: null destination for {} bytes", len);
  std::lock_guard<std::mutex> lk(mu_);
  const uint64_t ticket = next_ticket_++;
  if (len == 0) return ticket;  // no entry: counts as finished
  Ticket& t = tickets_[ticket];
  t.offset = offset;
  t.len = len;
  add_chunks(ticket, offset, len, static_cast<uint8_t*>(dst));
  if (ring_)
    ring_pump_locked();
  else
    cv_work_.notify_all();
  return ticket;
}

void DirectReader::add_chunks(uint64_t ticket, uint64_t offset, uint64_t len, uint8_t* dst) {
  const uint64_t end = offset + len;
  auto direct_run = [&](uint64_t b, uint64_t e) {
    for (uint64_t o = b; o < e; o += chunk_bytes_)
      push_chunk(ticket, o, std::min<uint64_t>(chunk_bytes_, e - o), dst + (o - offset), false);
  };
  if (!direct_) {
    direct_run(offset, end);
    return;
  }
  if (((reinterpret_cast<uintptr_t>(dst) - offset) & (kAlign - 1)) == 0) {
    // dst and offset are misaligned by the same amount: stage only the partial blocks at either
    // end, read the aligned middle straight into dst.
    const uint64_t head_end = std::min(end, align_up(offset));
    if (offset < head_end) push_chunk(ticket, offset, head_end - offset, dst, true);
    const uint64_t mid_end = std::max(head_end, align_down(end));
    direct_run(head_end, mid_end);
    if (mid_end < end) push_chunk(ticket, mid_end, end - mid_end, dst + (mid_end - offset), true);
    return;
  }
  // No block of dst lines up with a block of the file: everything goes through staging.
  for (uint64_t o = offset; o < end; o += chunk_bytes_)
    push_chunk(ticket, o, std::min<uint64_t>(chunk_bytes_, end - o), dst + (o - offset), true);
}

void DirectReader::push_chunk(uint64_t ticket, uint64_t off, uint64_t len, uint8_t* dst,
                              bool staged) {
  Chunk c;
  c.ticket = ticket;
  c.dst = dst;
  c.staged = staged;
  if (staged) {
    c.io_off = align_down(off);
    c.io_len = align_up(off + len) - c.io_off;
    c.need = off + len - c.io_off;
    c.copy_skip = off - c.io_off;
    c.copy_len = len;
  } else {
    c.io_off = off;
    c.io_len = c.need = len;
  }
  pending_.push_back(c);
  tickets_[ticket].remaining++;
}

uint8_t* DirectReader::staging(int slot) {
  AlignedBuffer& b = staging_[size_t(slot)];
  if (b.empty()) b.resize(chunk_bytes_ + 2 * kAlign);  // a chunk plus a partial block each side
  return b.data();
}

uint8_t* DirectReader::io_target(const Chunk& c) {
  return (c.staged ? staging(c.slot) : c.dst) + c.done;
}

bool DirectReader::absorb(Chunk& c, int64_t res) {
  if (res == -EINTR || res == -EAGAIN) return false;
  if (res < 0) {
    c.err = int(-res);
    return true;
  }
  if (res == 0) {  // end of file before everything needed arrived
    c.eof = true;
    return true;
  }
  c.done += uint64_t(res);
  if (c.done >= c.need) return true;
  // O_DIRECT transfers whole blocks except at the end of the file.
  if (direct_ && (c.done & (kAlign - 1)) != 0) {
    c.eof = true;
    return true;
  }
  return false;
}

void DirectReader::copy_out(Chunk& c) {
  if (c.failed()) return;
  if (c.staged) {
    std::memcpy(c.dst, staging(c.slot) + c.copy_skip, c.copy_len);
    bytes_staged_.fetch_add(c.copy_len, std::memory_order_relaxed);
    bytes_read_.fetch_add(c.copy_len, std::memory_order_relaxed);
  } else {
    bytes_read_.fetch_add(c.io_len, std::memory_order_relaxed);
  }
}

std::string DirectReader::error_message(const Ticket& t, const Chunk& c) {
  const uint64_t end = t.offset + t.len;
  const std::string what = fmt::format("reading {} bytes [{}, {})", path_, t.offset, end);
  if (c.err)
    return fmt::format("{}: I/O error at byte {}: {}", what, c.io_off + c.done,
                       std::strerror(c.err));
  struct stat st {};
  const bool have = fstat(fd_, &st) == 0;
  const uint64_t now = have ? uint64_t(st.st_size) : 0;
  if (have && now < end) {
    const uint64_t missing = end - std::max(now, t.offset);
    return fmt::format(
        "{}: the file ends at byte {} (it had {} bytes when opened; was it truncated?): {} "
        "bytes missing",
        what, now, open_size_, missing);
  }
  return fmt::format("{}: the file ended early at byte {} (short read): {} bytes missing", what,
                     c.io_off + c.done, c.need - c.done);
}

void DirectReader::complete_locked(const Chunk& c) {
  auto it = tickets_.find(c.ticket);
  if (it == tickets_.end()) return;
  Ticket& t = it->second;
  if (c.failed() && t.error.empty()) t.error = error_message(t, c);
  if (--t.remaining == 0) {
    if (t.error.empty()) tickets_.erase(it);  // success needs no record: unknown ids are done
    cv_done_.notify_all();
  }
}

void DirectReader::wait(uint64_t ticket) {
  std::unique_lock<std::mutex> lk(mu_);
  if (ticket == 0 || ticket >= next_ticket_)
    fail("DirectReader::wait: ticket {} was never issued for {}", ticket, path_);
  for (;;) {
    auto it = tickets_.find(ticket);
    if (it == tickets_.end()) return;
    if (it->second.remaining == 0) {
      std::string err = std::move(it->second.error);
      tickets_.erase(it);
      throw Error(err);
    }
    cv_done_.wait(lk);
  }
}

void DirectReader::wait_all() {
  std::unique_lock<std::mutex> lk(mu_);
  cv_done_.wait(lk, [&] {
    for (const auto& [id, t] : tickets_)
      if (t.remaining) return false;
    return true;
  });
  uint64_t first = 0;
  std::string err;
  for (auto& [id, t] : tickets_)
    if (!t.error.empty() && (first == 0 || id < first)) first = id, err = std::move(t.error);
  tickets_.clear();
  if (first) throw Error(err);
}

bool DirectReader::done(uint64_t ticket) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = tickets_.find(ticket);
  return it == tickets_.end() || it->second.remaining == 0;
}

// ---- io_uring engine: the submitting thread and the reaper share the submission queue under
// mu_; only the reaper consumes completions, so waiting for them needs no lock.

void DirectReader::ring_prep_locked(int slot) {
  Chunk& c = slots_[size_t(slot)];
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_->ring);
  // In-flight reads never exceed queue_depth <= ring entries, and every prep is followed by a
  // submit, so a free entry always exists.
  if (!sqe) fail("io_uring submission queue full (internal error) reading {}", path_);
  io_uring_prep_read(sqe, fd_, io_target(c), unsigned(c.io_len - c.done), c.io_off + c.done);
  sqe->user_data = uint64_t(slot);
}

static void submit_all(io_uring* ring, const std::string& path) {
  for (int tries = 0;; ++tries) {
    const int r = io_uring_submit(ring);
    if (r >= 0) return;
    if ((r == -EINTR || r == -EAGAIN || r == -EBUSY) && tries < 1000) {
      std::this_thread::yield();
      continue;
    }
    fail("io_uring submit failed reading {}: {}", path, std::strerror(-r));
  }
}

void DirectReader::ring_pump_locked() {
  bool any = false;
  while (!free_slots_.empty() && !pending_.empty()) {
    Chunk c = pending_.front();
    pending_.pop_front();
    auto it = tickets_.find(c.ticket);
    if (it != tickets_.end() && !it->second.error.empty()) {  // ticket already failed: skip
      complete_locked(c);
      continue;
    }
    c.slot = free_slots_.back();
    free_slots_.pop_back();
    slots_[size_t(c.slot)] = c;
    ring_prep_locked(c.slot);
    any = true;
  }
  if (any) submit_all(&ring_->ring, path_);
}

void DirectReader::ring_reaper() {
  io_uring* ring = &ring_->ring;
  for (;;) {
    io_uring_cqe* cqe = nullptr;
    const int r = io_uring_wait_cqe(ring, &cqe);
    if (r < 0) {
      if (r != -EINTR) {
        spdlog::warn("{}: io_uring wait failed: {}", path_, std::strerror(-r));
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      continue;
    }
    const uint64_t tag = cqe->user_data;
    const int64_t res = cqe->res;
    io_uring_cqe_seen(ring, cqe);
    if (tag == kStopTag) return;
    const int slot = int(tag);
    Chunk c;
    {
      std::lock_guard<std::mutex> lk(mu_);
      c = slots_[size_t(slot)];
    }
    if (!absorb(c, res)) {
      std::lock_guard<std::mutex> lk(mu_);
      slots_[size_t(slot)] = c;
      try {
        ring_prep_locked(slot);
        submit_all(ring, path_);
        continue;
      } catch (const Error&) {
        c.err = EIO;
      }
    }
    copy_out(c);  // outside the lock: the submitting thread is never held up by a memcpy
    std::lock_guard<std::mutex> lk(mu_);
    complete_locked(c);
    free_slots_.push_back(slot);
    if (stop_) {
      cv_done_.notify_all();
      continue;
    }
    try {
      ring_pump_locked();
    } catch (const Error& e) {
      spdlog::error("{}", e.what());
    }
  }
}

// ---- pread engine: each worker owns staging buffer `index` and does one blocking read at a time.

void DirectReader::pread_worker(int index) {
  for (;;) {
    Chunk c;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_work_.wait(lk, [&] { return stop_ || !pending_.empty(); });
      if (stop_) return;
      c = pending_.front();
      pending_.pop_front();
      auto it = tickets_.find(c.ticket);
      if (it != tickets_.end() && !it->second.error.empty()) {
        complete_locked(c);
        continue;
      }
    }
    c.slot = index;
    for (;;) {
      const ssize_t r = ::pread(fd_, io_target(c), c.io_len - c.done, off_t(c.io_off + c.done));
      if (absorb(c, r < 0 ? -int64_t(errno) : int64_t(r))) break;
    }
    copy_out(c);
    std::lock_guard<std::mutex> lk(mu_);
    complete_locked(c);
  }
}

}  // namespace strata

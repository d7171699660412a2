#include "memory/bandwidth.h"

#include <fcntl.h>
#include <immintrin.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/file.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "memory/aligned_buffer.h"
#include "memory/direct_reader.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

constexpr uint64_t kBlock = uint64_t(64) << 20;  // disk I/O request size

// Sums a 128-byte-multiple span. Four independent accumulators keep enough loads in flight to
// saturate the memory bus; the sum is returned so the loads cannot be optimised away.
__attribute__((target("avx2"))) uint64_t sum_avx2(const uint8_t* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i < n; i += 128) {
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  const __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

uint64_t sum_scalar(const uint8_t* p, size_t n) {
  const uint64_t* q = reinterpret_cast<const uint64_t*>(p);
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  for (size_t i = 0; i < n / 8; i += 4) a0 += q[i], a1 += q[i + 1], a2 += q[i + 2], a3 += q[i + 3];
  return a0 + a1 + a2 + a3;
}

// A temporary file that is deleted when this goes out of scope, whatever happens in between.
class TempFile {
 public:
  explicit TempFile(const std::string& dir) {
    path_ = dir + "/.strata-diskbench-XXXXXX";
    fd_ = mkstemp(path_.data());
    if (fd_ < 0) fail("cannot create a temporary file in {}: {}", dir, std::strerror(errno));
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }
  int fd() const { return fd_; }

 private:
  std::string path_;
  int fd_ = -1;
};

// Writes `bytes` (rounded up to 4 KiB) of non-constant data to f with O_DIRECT when the
// filesystem allows it, fsyncs, and returns the elapsed seconds.
double write_file(TempFile& f, const std::string& dir, uint64_t bytes) {
  struct statvfs vfs {};
  if (statvfs(dir.c_str(), &vfs) == 0) {
    const uint64_t avail = uint64_t(vfs.f_bavail) * vfs.f_frsize;
    if (avail < bytes + (uint64_t(256) << 20))
      fail("not enough free space in {} for a {} disk benchmark file ({} free)", dir,
           human_bytes(double(bytes)), human_bytes(double(avail)));
  }
  const int flags = fcntl(f.fd(), F_GETFL);
  const bool direct = flags >= 0 && fcntl(f.fd(), F_SETFL, flags | O_DIRECT) == 0;
  // Random-looking data: a virtual disk must not be able to shortcut zero or repeated blocks.
  AlignedBuffer buf(size_t(std::min(bytes, kBlock)));
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i + 8 <= buf.size(); i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    std::memcpy(buf.data() + i, &x, 8);
  }
  bytes = (bytes + 4095) / 4096 * 4096;
  Progress progress("disk write test", int64_t(bytes), "B");
  const auto t0 = Clock::now();
  for (uint64_t done = 0; done < bytes;) {
    const size_t n = size_t(std::min<uint64_t>(buf.size(), bytes - done));
    const ssize_t w = ::pwrite(f.fd(), buf.data(), n, off_t(done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail("writing {}: {}", f.path(), w < 0 ? std::strerror(errno) : "no progress");
    done += uint64_t(w);
    progress.update(int64_t(done));
  }
  if (fsync(f.fd()) != 0) fail("fsync {}: {}", f.path(), std::strerror(errno));
  const double secs = seconds_since(t0);
  progress.finish();
  // Buffered fallback: drop the pages so the read test hits the disk.
  if (!direct) posix_fadvise(f.fd(), 0, 0, POSIX_FADV_DONTNEED);
  return secs;
}

// Reads the first `bytes` of path sequentially, 64 MiB requests, two in flight.
double read_file(const std::string& path, uint64_t bytes) {
  DirectReader reader(path);
  bytes = bytes == 0 ? reader.file_size() : std::min(bytes, reader.file_size());
  if (bytes == 0) fail("cannot measure disk read speed with {}: it is empty", path);
  AlignedBuffer bufs[2] = {AlignedBuffer(size_t(std::min(bytes, kBlock))),
                           AlignedBuffer(size_t(std::min(bytes, kBlock)))};
  Progress progress("disk read test", int64_t(bytes), "B");
  const auto t0 = Clock::now();
  uint64_t tickets[2] = {0, 0};
  uint64_t lens[2] = {0, 0};
  uint64_t off = 0, done = 0;
  int k = 0;
  for (; off < bytes; off += kBlock, k ^= 1) {
    if (tickets[k]) {
      reader.wait(tickets[k]);
      done += lens[k];
      progress.update(int64_t(done));
    }
    lens[k] = std::min(kBlock, bytes - off);
    tickets[k] = reader.submit(off, lens[k], bufs[k].data());
  }
  for (int i = 0; i < 2; ++i, k ^= 1)
    if (tickets[k]) reader.wait(tickets[k]);
  const double secs = seconds_since(t0);
  progress.finish(reader.mode_name());
  return double(bytes) / secs / 1e9;
}

}  // namespace

double measure_memory_read_bandwidth(ThreadPool& pool, size_t bytes, int reps, int n_threads) {
  const int threads = n_threads <= 0 ? pool.size() : std::min(n_threads, pool.size());
  reps = std::max(reps, 1);
  // Every thread gets a slice that is a whole number of pages.
  const size_t slice = std::max<size_t>(bytes / size_t(threads) / 4096 * 4096, 4096);
  AlignedBuffer buf(slice * size_t(threads));
  const bool avx2 = best_isa() >= Isa::Avx2;
  std::atomic<uint64_t> sink{0};
  // Each thread first touches its own slice, so pages land near the thread that reads them.
  pool.run_on_all([&](int t, int) {
    if (t < threads) std::memset(buf.data() + size_t(t) * slice, t + 1, slice);
  });
  auto pass = [&] {
    const auto t0 = Clock::now();
    pool.run_on_all([&](int t, int) {
      if (t >= threads) return;
      const uint8_t* p = buf.data() + size_t(t) * slice;
      sink.fetch_add(avx2 ? sum_avx2(p, slice) : sum_scalar(p, slice), std::memory_order_relaxed);
    });
    return double(buf.size()) / seconds_since(t0) / 1e9;
  };
  pass();  // warm-up: faults in TLB entries, wakes the cores
  Progress progress(fmt::format("memory bandwidth ({} thread{})", threads, threads > 1 ? "s" : ""),
                    reps, "passes");
  std::vector<double> rates;
  for (int r = 0; r < reps; ++r) {
    rates.push_back(pass());
    progress.update(r + 1);
  }
  std::sort(rates.begin(), rates.end());
  progress.finish(fmt::format("{:.1f} GB/s", rates[rates.size() / 2]));
  if (sink.load() == 1) rates.push_back(0);  // keeps the sums observable
  return rates[size_t(reps) / 2];
}

double measure_disk_write_bandwidth(const std::string& dir, uint64_t bytes) {
  if (!is_directory(dir)) fail("disk write test: {} is not a directory", dir);
  TempFile f(dir);
  const uint64_t rounded = (std::max<uint64_t>(bytes, 1) + 4095) / 4096 * 4096;
  return double(rounded) / write_file(f, dir, rounded) / 1e9;
}

double measure_disk_read_bandwidth(const std::string& dir_or_file, uint64_t bytes) {
  if (!is_directory(dir_or_file)) return read_file(dir_or_file, bytes);
  return measure_disk_bandwidth(dir_or_file, bytes).read_gbps;
}

DiskBandwidth measure_disk_bandwidth(const std::string& dir, uint64_t bytes) {
  if (!is_directory(dir)) fail("disk test: {} is not a directory", dir);
  TempFile f(dir);
  const uint64_t rounded = (std::max<uint64_t>(bytes, 1) + 4095) / 4096 * 4096;
  DiskBandwidth r;
  r.write_gbps = double(rounded) / write_file(f, dir, rounded) / 1e9;
  r.read_gbps = read_file(f.path(), rounded);
  return r;
}

}  // namespace strata

namespace strata {

double run_during_disk_reads(const std::string& dir, uint64_t bytes,
                             const std::function<double()>& work) {
  if (!is_directory(dir)) fail("disk test: {} is not a directory", dir);
  TempFile f(dir);
  const uint64_t rounded = (std::max<uint64_t>(bytes, 1) + 4095) / 4096 * 4096;
  write_file(f, dir, rounded);
  std::atomic<bool> stop{false};
  std::string error;
  std::thread reader([&] {
    try {
      while (!stop.load()) read_file(f.path(), rounded);
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  double r = 0;
  try {
    r = work();
  } catch (...) {
    stop = true;
    reader.join();
    throw;
  }
  stop = true;
  reader.join();
  if (!error.empty()) fail("disk reads during the compute test: {}", error);
  return r;
}

}  // namespace strata

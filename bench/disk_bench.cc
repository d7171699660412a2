// Streaming speeds for the memory tier: RAM read bandwidth (1 and all threads) and sequential
// DirectReader throughput in 64 MiB requests for several queue depths / chunk sizes, next to a
// dd-like single-threaded O_DIRECT pread loop on the same file.
//
// STRATA_BENCH_FILE=<file> reads that file (make it a few GB on the disk under test, e.g.
// /var/tmp); otherwise a 1 GiB temporary file is written in /var/tmp and deleted at exit.
// Rates are decimal GB/s. Example:
//   STRATA_BENCH_FILE=/var/tmp/big.bin ./disk_bench --benchmark_filter=Seq
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "core/error.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "memory/aligned_buffer.h"
#include "memory/bandwidth.h"
#include "memory/direct_reader.h"

namespace strata {
namespace {

constexpr uint64_t kRequest = uint64_t(64) << 20;

// The file under test; a generated one is removed when the process exits.
struct BenchFile {
  std::string path;
  bool owned = false;
  BenchFile() {
    if (const char* p = std::getenv("STRATA_BENCH_FILE"); p && *p) {
      path = p;
      return;
    }
    path = "/var/tmp/strata-disk-bench-XXXXXX";
    const int fd = mkstemp(path.data());
    if (fd < 0) fail("cannot create {}: {}", path, std::strerror(errno));
    owned = true;
    AlignedBuffer buf(kRequest);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i + 8 <= buf.size(); i += 8) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      std::memcpy(buf.data() + i, &x, 8);
    }
    for (int i = 0; i < 16; ++i)
      if (::write(fd, buf.data(), buf.size()) != ssize_t(buf.size()))
        fail("writing {}: {}", path, std::strerror(errno));
    fsync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
  ~BenchFile() {
    if (owned) ::unlink(path.c_str());
  }
};

const std::string& bench_file() {
  static BenchFile f;
  return f.path;
}

void report(benchmark::State& st, uint64_t bytes) {
  st.counters["GB"] = benchmark::Counter(double(bytes) / 1e9 * double(st.iterations()),
                                         benchmark::Counter::kIsRate);
}

// A destination that is NOT backed by huge pages (what a plain malloc gives, like dd's buffer).
struct SmallPageBuffer {
  uint8_t* p = nullptr;
  SmallPageBuffer() {
    void* m = mmap(nullptr, kRequest, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) fail("mmap failed");
    madvise(m, kRequest, MADV_NOHUGEPAGE);
    p = static_cast<uint8_t*>(m);
  }
  ~SmallPageBuffer() { munmap(p, kRequest); }
};

// args: queue depth, chunk MiB, 64 MiB requests kept in flight, engine (0 auto, 1 pread),
// destination pages (1: AlignedBuffer, huge pages where available; 0: small pages).
void BM_DirectReaderSeq(benchmark::State& st) {
  DirectReader r(bench_file(), int(st.range(0)), size_t(st.range(1)) << 20,
                 st.range(3) ? DirectReader::Mode::kPread : DirectReader::Mode::kAuto);
  const uint64_t size = r.file_size();
  const int inflight = int(st.range(2));
  std::vector<AlignedBuffer> huge;
  std::vector<std::unique_ptr<SmallPageBuffer>> small;
  std::vector<uint8_t*> bufs;
  for (int i = 0; i < inflight; ++i) {
    if (st.range(4)) {
      bufs.push_back(huge.emplace_back(kRequest).data());
    } else {
      bufs.push_back(small.emplace_back(std::make_unique<SmallPageBuffer>())->p);
    }
  }
  std::vector<uint64_t> tickets(size_t(inflight), 0);
  for (auto _ : st) {
    int k = 0;
    for (uint64_t off = 0; off < size; off += kRequest, k = (k + 1) % inflight) {
      if (tickets[size_t(k)]) r.wait(tickets[size_t(k)]);
      tickets[size_t(k)] = r.submit(off, std::min(kRequest, size - off), bufs[size_t(k)]);
    }
    r.wait_all();
    std::fill(tickets.begin(), tickets.end(), 0);
  }
  if (r.bytes_read() != size * st.iterations()) st.SkipWithError("bytes_read does not add up");
  report(st, size);
  st.SetLabel(r.mode_name());
}
BENCHMARK(BM_DirectReaderSeq)
    ->ArgNames({"qd", "chunkMiB", "inflight", "pread", "huge"})
    ->Args({8, 4, 1, 0, 1})
    ->Args({8, 4, 2, 0, 1})
    ->Args({4, 8, 2, 0, 1})
    ->Args({16, 4, 2, 0, 1})
    ->Args({16, 8, 2, 0, 1})
    ->Args({32, 2, 2, 0, 1})
    ->Args({8, 16, 2, 0, 1})
    ->Args({8, 4, 2, 1, 1})
    ->Args({8, 4, 2, 0, 0})
    ->Args({16, 4, 2, 0, 0})
    ->Args({32, 1, 2, 0, 0})
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kSecond);

// Streaming while both cores compute: per 64 MiB request the caller submits the next one, then
// sums a 64 MiB RAM buffer on all threads (a stand-in for a layer's matmuls), then waits. If
// reads only advanced inside wait() this would take compute + I/O time instead of the max.
void BM_DirectReaderOverlap(benchmark::State& st) {
  static ThreadPool pool(ThreadPool::default_threads());
  DirectReader r(bench_file());
  const uint64_t size = r.file_size();
  AlignedBuffer bufs[2] = {AlignedBuffer(kRequest), AlignedBuffer(kRequest)};
  AlignedBuffer work(kRequest * 4);
  std::memset(work.data(), 1, work.size());
  std::atomic<uint64_t> sink{0};
  double compute_s = 0;
  for (auto _ : st) {
    uint64_t pending = r.submit(0, std::min(kRequest, size), bufs[0].data());
    int k = 0;
    for (uint64_t off = kRequest; off < size + kRequest; off += kRequest, k ^= 1) {
      const uint64_t next =
          off < size ? r.submit(off, std::min(kRequest, size - off), bufs[k ^ 1].data()) : 0;
      const auto t0 = std::chrono::steady_clock::now();
      const int reps = int(st.range(0));
      for (int rep = 0; rep < reps; ++rep)
        pool.run_on_all([&](int t, int n) {
          const size_t slice = work.size() / size_t(n);
          const uint64_t* p = work.as<uint64_t>() + slice / 8 * size_t(t);
          uint64_t s = 0;
          for (size_t i = 0; i < slice / 8; ++i) s += p[i];
          sink.fetch_add(s, std::memory_order_relaxed);
        });
      compute_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      r.wait(pending);
      pending = next;
    }
  }
  report(st, size);
  st.counters["compute_s"] = compute_s / double(st.iterations());
  benchmark::DoNotOptimize(sink.load());
}
// arg: passes over a 256 MiB buffer per 64 MiB read (0: no compute, I/O alone).
BENCHMARK(BM_DirectReaderOverlap)
    ->ArgName("passes")
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kSecond);

// What dd bs=64M iflag=direct does: one blocking 64 MiB O_DIRECT read at a time (arg: 1 reads
// into an AlignedBuffer, 0 into small pages like dd's own buffer).
void BM_PreadDirectSeq(benchmark::State& st) {
  const int fd = ::open(bench_file().c_str(), O_RDONLY | O_DIRECT);
  if (fd < 0) fail("cannot open {}: {}", bench_file(), std::strerror(errno));
  const uint64_t size = uint64_t(lseek(fd, 0, SEEK_END));
  AlignedBuffer huge(kRequest);
  SmallPageBuffer small;
  uint8_t* buf = st.range(0) ? huge.data() : small.p;
  for (auto _ : st) {
    for (uint64_t off = 0; off < size;) {
      const ssize_t n = ::pread(fd, buf, kRequest, off_t(off));
      if (n <= 0) fail("pread {}: {}", bench_file(), n < 0 ? std::strerror(errno) : "EOF");
      off += uint64_t(n);
    }
  }
  ::close(fd);
  report(st, size);
}
BENCHMARK(BM_PreadDirectSeq)
    ->ArgName("huge")
    ->Arg(0)
    ->Arg(1)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kSecond);

void BM_MemoryRead(benchmark::State& st) {
  static ThreadPool pool(ThreadPool::default_threads());
  double gbps = 0;
  for (auto _ : st)
    gbps = measure_memory_read_bandwidth(pool, size_t(1) << 30, 5, int(st.range(0)));
  st.counters["GB/s"] = gbps;
}
BENCHMARK(BM_MemoryRead)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Iterations(1)
    ->Unit(benchmark::kSecond);

}  // namespace
}  // namespace strata

// A fixed pool of worker threads for data-parallel kernels. The calling thread takes part, so a
// pool of n threads starts n-1 workers. Work is split into chunks; each thread owns a contiguous
// run of them and works through it front to back, claiming a quarter of what is left of its run
// at a time, and a thread that runs out takes single chunks from the back of another's run. A
// parallel call made from inside a task runs serially on that thread.
#pragma once
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace strata {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // fn(begin, end) over [0, n) in chunks of at least `grain` items.
  template <class F>
  void parallel_for(int64_t n, int64_t grain, F&& fn) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    const int64_t max_chunks = static_cast<int64_t>(n_threads_) * kChunksPerThread;
    int64_t chunk = (n + max_chunks - 1) / max_chunks;
    if (chunk < grain) chunk = grain;
    const int64_t n_chunks = (n + chunk - 1) / chunk;
    auto body = [&](int64_t c0, int64_t c1) {
      const int64_t b = c0 * chunk;
      const int64_t e = c1 * chunk < n ? c1 * chunk : n;
      fn(b, e);
    };
    run_chunks(n_chunks, body);
  }

  // fn(thread_index, n_threads) once on every thread of the pool.
  template <class F>
  void run_on_all(F&& fn) {
    auto body = [&](int64_t c, int64_t) { fn(static_cast<int>(c), n_threads_); };
    run_chunks_pinned(body);
  }

  // parallel_for makes up to this many chunks per thread (fewer when `grain` says so). A thread
  // that finishes early takes another's last chunk, so the last one to finish waits at most a
  // chunk; an owner claims a quarter of its remaining run per call, so small chunks do not mean
  // many calls. Owning a contiguous run keeps each thread's reads one sequential stream: decode
  // (matrix-vector products, bound by memory bandwidth) ran 4-8% slower when the chunks were
  // handed out in turn from one counter, every chunk a new stream for the hardware prefetcher.
  // 64 rather than 16: a Q8_0 decode matrix's last chunk was long enough (up to ~20 us) that the
  // wait for it cost 4-10% of the model-shaped sequence of products.
  static constexpr int64_t kChunksPerThread = 64;

  // The number of threads a default pool gets: the cores this process may run on.
  static int default_threads();

 private:
  struct Job {
    void (*invoke)(void* ctx, int64_t first, int64_t end) = nullptr;  // chunks [first, end)
    void* ctx = nullptr;
    int64_t n_chunks = 0;
    bool pinned = false;  // one chunk per thread, chunk index = thread index
  };

  template <class F>
  void run_chunks(int64_t n_chunks, F& body) {
    Job job{[](void* c, int64_t i, int64_t e) { (*static_cast<F*>(c))(i, e); }, &body, n_chunks,
            false};
    dispatch(job);
  }
  template <class F>
  void run_chunks_pinned(F& body) {
    Job job{[](void* c, int64_t i, int64_t e) { (*static_cast<F*>(c))(i, e); }, &body, n_threads_,
            true};
    dispatch(job);
  }

  void dispatch(const Job& job);
  void worker(int index);
  void work_on(const Job& job, int thread_index);
  // The next chunks [*first, *end) for thread t: a quarter (at least one chunk) of what is left of
  // its own run, from the front, else the last chunk of another's run; false when every run is
  // empty.
  bool next_chunks(int thread_index, int64_t* first, int64_t* end);

  // One thread's run of chunks [front, back), packed in one word so that the owner taking the
  // front and a thief taking the back cannot both get the last chunk.
  struct alignas(64) Run {
    std::atomic<uint64_t> range{0};
  };
  static uint64_t pack(uint32_t front, uint32_t back) { return uint64_t(front) << 32 | back; }

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex dispatch_mu_;  // one job at a time per pool
  Job job_;
  std::atomic<uint64_t> generation_{0};
  std::vector<Run> runs_;
  std::atomic<int> busy_{0};
  std::atomic<bool> stop_{false};
  std::mutex err_mu_;
  std::exception_ptr error_;
};

}  // namespace strata

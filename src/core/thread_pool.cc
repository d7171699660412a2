#include "core/thread_pool.h"

#include <sched.h>

#include <algorithm>

namespace strata {
namespace {
thread_local bool t_in_pool_task = false;
}

int ThreadPool::default_threads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool::ThreadPool(int n_threads)
    : n_threads_(std::max(1, n_threads)), runs_(static_cast<size_t>(n_threads_)) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::work_on(const Job& job, int thread_index) {
  const bool was = t_in_pool_task;
  t_in_pool_task = true;
  try {
    if (job.pinned) {
      job.invoke(job.ctx, thread_index, thread_index + 1);
    } else {
      for (int64_t c, e; next_chunks(thread_index, &c, &e);) job.invoke(job.ctx, c, e);
    }
  } catch (...) {
    std::lock_guard<std::mutex> lk(err_mu_);
    if (!error_) error_ = std::current_exception();
    for (Run& r : runs_) r.range.store(0);  // stop handing out work
  }
  t_in_pool_task = was;
}

bool ThreadPool::next_chunks(int thread_index, int64_t* first, int64_t* end) {
  std::atomic<uint64_t>& own = runs_[size_t(thread_index)].range;
  for (uint64_t v = own.load(std::memory_order_relaxed);;) {
    const uint32_t front = uint32_t(v >> 32), back = uint32_t(v);
    if (front >= back) break;
    const uint32_t take = std::max<uint32_t>(1, (back - front) / 4);
    if (own.compare_exchange_weak(v, pack(front + take, back), std::memory_order_relaxed)) {
      *first = front;
      *end = front + take;
      return true;
    }
  }
  for (int i = 1; i < n_threads_; ++i) {
    std::atomic<uint64_t>& other = runs_[size_t((thread_index + i) % n_threads_)].range;
    for (uint64_t v = other.load(std::memory_order_relaxed);;) {
      const uint32_t front = uint32_t(v >> 32), back = uint32_t(v);
      if (front >= back) break;
      if (other.compare_exchange_weak(v, pack(front, back - 1), std::memory_order_relaxed)) {
        *first = back - 1;
        *end = back;
        return true;
      }
    }
  }
  return false;
}

void ThreadPool::dispatch(const Job& job) {
  if (t_in_pool_task || n_threads_ == 1 || (!job.pinned && job.n_chunks == 1)) {
    // Serial: nested call, single thread, or a single chunk.
    const bool was = t_in_pool_task;
    t_in_pool_task = true;
    try {
      if (job.pinned)  // every thread index in turn
        for (int64_t c = 0; c < job.n_chunks; ++c) job.invoke(job.ctx, c, c + 1);
      else
        job.invoke(job.ctx, 0, job.n_chunks);
    } catch (...) {
      t_in_pool_task = was;
      throw;
    }
    t_in_pool_task = was;
    return;
  }
  std::lock_guard<std::mutex> lk(dispatch_mu_);
  job_ = job;
  error_ = nullptr;
  if (!job.pinned)
    for (int t = 0; t < n_threads_; ++t)
      runs_[size_t(t)].range.store(pack(uint32_t(job.n_chunks * t / n_threads_),
                                        uint32_t(job.n_chunks * (t + 1) / n_threads_)),
                                   std::memory_order_relaxed);
  busy_.store(n_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  work_on(job_, 0);
  // Wait for the workers: spin briefly (kernels are short), then block.
  for (int spin = 0; busy_.load(std::memory_order_acquire) != 0; ++spin) {
    if (spin < 20000) {
      __builtin_ia32_pause();
    } else {
      int b = busy_.load(std::memory_order_acquire);
      if (b != 0) busy_.wait(b, std::memory_order_acquire);
    }
  }
  if (error_) std::rethrow_exception(error_);
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    // Spin a little for the next job before sleeping on the generation counter.
    uint64_t g = generation_.load(std::memory_order_acquire);
    for (int spin = 0; g == seen && spin < 20000; ++spin) {
      __builtin_ia32_pause();
      g = generation_.load(std::memory_order_acquire);
    }
    while (g == seen) {
      generation_.wait(seen, std::memory_order_acquire);
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_.load()) return;
    work_on(job_, index);
    if (busy_.fetch_sub(1, std::memory_order_acq_rel) == 1) busy_.notify_one();
  }
}

}  // namespace strata

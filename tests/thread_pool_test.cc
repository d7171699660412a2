// ThreadPool: parallel_for visits every index exactly once in ranges of at least `grain` (the
// last one excepted), for sizes on both sides of the chunk limits; run_on_all runs once per
// thread; nested calls run serially; a task's exception reaches the caller and the pool still
// works afterwards.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "core/thread_pool.h"

namespace strata {
namespace {

TEST(ThreadPool, ParallelForCoversEveryIndexOnce) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 2, 7, 64, 100, 1000, 5000, 100000})
      for (int64_t grain : {1, 3, 32}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        std::mutex mu;
        std::vector<std::pair<int64_t, int64_t>> ranges;
        pool.parallel_for(n, grain, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
          std::lock_guard<std::mutex> lk(mu);
          ranges.push_back({b, e});
        });
        for (int64_t i = 0; i < n; ++i)
          ASSERT_EQ(hits[size_t(i)].load(), 1) << "n " << n << " grain " << grain << " i " << i;
        for (auto [b, e] : ranges) {
          EXPECT_LT(b, e);
          if (e != n) {
            EXPECT_GE(e - b, grain) << "n " << n << " grain " << grain;
          }
        }
      }
  }
}

TEST(ThreadPool, RunOnAllAndNestedCalls) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> seen(3);
  std::atomic<int64_t> nested{0};
  pool.run_on_all([&](int t, int n) {
    EXPECT_EQ(n, 3);
    seen[size_t(t)]++;
    // A parallel call from inside a task runs on this thread, over the whole range.
    pool.parallel_for(100, 1, [&](int64_t b, int64_t e) { nested += e - b; });
  });
  for (auto& s : seen) EXPECT_EQ(s.load(), 1);
  EXPECT_EQ(nested.load(), 300);
}

TEST(ThreadPool, ExceptionsReachTheCaller) {
  ThreadPool pool(2);
  EXPECT_THROW(pool.parallel_for(1000, 1,
                                 [&](int64_t b, int64_t e) {
                                   if (b <= 500 && 500 < e) throw std::runtime_error("boom");
                                 }),
               std::runtime_error);
  std::atomic<int64_t> sum{0};
  pool.parallel_for(1000, 1, [&](int64_t b, int64_t e) { sum += e - b; });
  EXPECT_EQ(sum.load(), 1000);
}

}  // namespace
}  // namespace strata

// The HTTP server's worker threads. cpp-httplib runs each connection on one thread from its task
// queue; its own pool wakes idle threads in turn, so over time every thread runs requests and
// every thread's stack and malloc arena get touched. This pool hands work to the thread that went
// idle last (LIFO): a few hot threads serve a light load, the memory in use follows the number of
// connections open at once, and it stops growing after warm-up.
#pragma once
#include <httplib.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace strata::serve {

class LifoTaskQueue : public httplib::TaskQueue {
 public:
  explicit LifoTaskQueue(size_t n_threads);
  ~LifoTaskQueue() override;
  void enqueue(std::function<void()> fn) override;
  void shutdown() override;

 private:
  struct Worker {
    std::condition_variable cv;
    std::function<void()> task;
  };
  void run(Worker& w);

  std::mutex mu_;
  std::vector<Worker*> idle_;                // most recently idle last
  std::deque<std::function<void()>> queue_;  // tasks waiting for a thread
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
  bool shutdown_ = false;
};

}  // namespace strata::serve

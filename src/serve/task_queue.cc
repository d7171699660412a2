#include "serve/task_queue.h"

namespace strata::serve {

LifoTaskQueue::LifoTaskQueue(size_t n_threads) {
  for (size_t i = 0; i < n_threads; ++i) workers_.push_back(std::make_unique<Worker>());
  for (auto& w : workers_) threads_.emplace_back([this, w = w.get()] { run(*w); });
}

LifoTaskQueue::~LifoTaskQueue() {
  shutdown();
}

void LifoTaskQueue::enqueue(std::function<void()> fn) {
  std::unique_lock<std::mutex> lk(mu_);
  if (idle_.empty()) {
    queue_.push_back(std::move(fn));
    return;
  }
  Worker* w = idle_.back();
  idle_.pop_back();
  w->task = std::move(fn);
  lk.unlock();
  w->cv.notify_one();
}

void LifoTaskQueue::shutdown() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (shutdown_) return;
    shutdown_ = true;
  }
  for (auto& w : workers_) w->cv.notify_one();
  for (auto& t : threads_) t.join();
}

void LifoTaskQueue::run(Worker& w) {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    std::function<void()> fn;
    if (w.task) {
      fn = std::move(w.task);
      w.task = nullptr;
    } else if (!queue_.empty()) {
      fn = std::move(queue_.front());
      queue_.pop_front();
    } else if (shutdown_) {
      return;
    } else {
      idle_.push_back(&w);
      w.cv.wait(lk, [&] { return w.task || shutdown_; });
      if (!w.task) {  // shutting down: leave the idle list and finish what is queued
        std::erase(idle_, &w);
      }
      continue;
    }
    lk.unlock();
    fn();
    lk.lock();
  }
}

}  // namespace strata::serve

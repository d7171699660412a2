// The per-request channel between the scheduler thread (producer) and the HTTP handler thread
// (consumer). The scheduler pushes each engine Event, tagged with its choice index; the handler
// waits on it with a timeout so it can look at its client's socket in between.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>

#include "engine/engine.h"

namespace strata::serve {

struct Update {
  int choice = 0;
  Event event;        // tokens, text delta, finished + reason
  std::string error;  // non-empty: the choice failed (the scheduler could not run it)
};

class Channel {
 public:
  explicit Channel(int n_choices, std::function<void()> on_destroy = nullptr)
      : n_choices_(n_choices), on_destroy_(std::move(on_destroy)) {}
  ~Channel() {
    if (on_destroy_) on_destroy_();
  }
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  int n_choices() const { return n_choices_; }

  void push(Update u) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      q_.push_back(std::move(u));
    }
    cv_.notify_one();
  }

  // Moves every queued update into `out`; waits up to `timeout` for the first one.
  bool pop_all(std::deque<Update>& out, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait_for(lk, timeout, [&] { return !q_.empty(); });
    if (q_.empty()) return false;
    for (auto& u : q_) out.push_back(std::move(u));
    q_.clear();
    return true;
  }

  // Set by the handler when its client is gone; the scheduler then cancels the engine requests.
  std::atomic<bool> cancelled{false};

 private:
  int n_choices_;
  std::function<void()> on_destroy_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Update> q_;
};

}  // namespace strata::serve

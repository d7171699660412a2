// Server counters and gauges, rendered in the Prometheus text exposition format for GET /metrics.
// Written by HTTP threads (request counts) and the scheduler thread (engine gauges, tokens);
// everything sits behind one mutex, which is touched a few times per request or engine step.
#pragma once
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace strata::serve {

struct EngineGauges {
  int64_t queued = 0;   // accepted requests not yet running (scheduler inbox + engine waiting)
  int64_t running = 0;  // sequences in the running batch
  int64_t kv_blocks_used = 0, kv_blocks_total = 0;
  int64_t preemptions = 0;
};

class Metrics {
 public:
  Metrics();
  void count_request(const std::string& endpoint, int status);
  void add_prompt_tokens(int64_t n);
  void add_generated_tokens(int64_t n);
  void set_engine(const EngineGauges& g);
  // Adds delta to the requests in flight and returns the new count (one lock: the gauge never
  // shows a stale count when handlers race).
  int64_t add_in_flight(int64_t delta);
  void set_ready(bool ready);
  std::string render();

 private:
  double tokens_per_second_locked(std::chrono::steady_clock::time_point now);

  std::mutex mu_;
  std::map<std::pair<std::string, int>, int64_t> requests_;
  int64_t prompt_tokens_ = 0, generated_tokens_ = 0, in_flight_ = 0;
  bool ready_ = false;
  EngineGauges engine_;
  std::chrono::steady_clock::time_point start_;
  // Generated tokens in 100 ms buckets over the last window, for the tokens/s gauge.
  std::deque<std::pair<std::chrono::steady_clock::time_point, int64_t>> recent_;
};

}  // namespace strata::serve

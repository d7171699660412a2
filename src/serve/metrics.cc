#include "serve/metrics.h"

#include <fmt/format.h>

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

namespace strata::serve {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kWindow = std::chrono::seconds(10);
constexpr auto kBucket = std::chrono::milliseconds(100);

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

}  // namespace

Metrics::Metrics() : start_(Clock::now()) {}

void Metrics::count_request(const std::string& endpoint, int status) {
  std::lock_guard<std::mutex> lk(mu_);
  ++requests_[{endpoint, status}];
}

void Metrics::add_prompt_tokens(int64_t n) {
  std::lock_guard<std::mutex> lk(mu_);
  prompt_tokens_ += n;
}

void Metrics::add_generated_tokens(int64_t n) {
  if (n <= 0) return;
  const auto now = Clock::now();
  std::lock_guard<std::mutex> lk(mu_);
  generated_tokens_ += n;
  if (!recent_.empty() && now - recent_.back().first < kBucket)
    recent_.back().second += n;
  else
    recent_.emplace_back(now, n);
  while (!recent_.empty() && now - recent_.front().first > kWindow) recent_.pop_front();
}

void Metrics::set_engine(const EngineGauges& g) {
  std::lock_guard<std::mutex> lk(mu_);
  engine_ = g;
}

int64_t Metrics::add_in_flight(int64_t delta) {
  std::lock_guard<std::mutex> lk(mu_);
  in_flight_ += delta;
  return in_flight_;
}

void Metrics::set_ready(bool ready) {
  std::lock_guard<std::mutex> lk(mu_);
  ready_ = ready;
}

double Metrics::tokens_per_second_locked(Clock::time_point now) {
  while (!recent_.empty() && now - recent_.front().first > kWindow) recent_.pop_front();
  int64_t n = 0;
  for (const auto& b : recent_) n += b.second;
  const double span = std::min(std::chrono::duration<double>(kWindow).count(),
                               std::chrono::duration<double>(now - start_).count());
  return span > 0 ? double(n) / span : 0;
}

std::string Metrics::render() {
  std::lock_guard<std::mutex> lk(mu_);
  std::string out;
  header(out, "strata_requests_total", "counter", "HTTP requests by endpoint and status code.");
  for (const auto& [k, v] : requests_)
    out += fmt::format("strata_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n", k.first,
                       k.second, v);
  header(out, "strata_prompt_tokens_total", "counter",
         "Prompt tokens of accepted generation requests.");
  out += fmt::format("strata_prompt_tokens_total {}\n", prompt_tokens_);
  header(out, "strata_generated_tokens_total", "counter", "Tokens generated.");
  out += fmt::format("strata_generated_tokens_total {}\n", generated_tokens_);
  header(out, "strata_tokens_per_second", "gauge",
         "Generated tokens per second over the last 10 seconds.");
  out += fmt::format("strata_tokens_per_second {:.3f}\n", tokens_per_second_locked(Clock::now()));
  header(out, "strata_queue_depth", "gauge", "Accepted sequences waiting to run.");
  out += fmt::format("strata_queue_depth {}\n", engine_.queued);
  header(out, "strata_running_sequences", "gauge", "Sequences in the running batch.");
  out += fmt::format("strata_running_sequences {}\n", engine_.running);
  header(out, "strata_requests_in_flight", "gauge", "Generation requests being served.");
  out += fmt::format("strata_requests_in_flight {}\n", in_flight_);
  header(out, "strata_kv_cache_blocks_used", "gauge", "KV-cache blocks in use.");
  out += fmt::format("strata_kv_cache_blocks_used {}\n", engine_.kv_blocks_used);
  header(out, "strata_kv_cache_blocks_total", "gauge", "KV-cache blocks in the pool.");
  out += fmt::format("strata_kv_cache_blocks_total {}\n", engine_.kv_blocks_total);
  header(out, "strata_preemptions_total", "counter",
         "Sequences preempted because the KV cache was full.");
  out += fmt::format("strata_preemptions_total {}\n", engine_.preemptions);
  // Memory: resident set (what the soak test reads) and the heap bytes malloc has handed out,
  // which tells a leak (heap grows) from fragmentation (RSS grows, heap does not).
  long pages_total = 0, pages_resident = 0;
  std::ifstream("/proc/self/statm") >> pages_total >> pages_resident;
  header(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  out += fmt::format("process_resident_memory_bytes {}\n",
                     int64_t(pages_resident) * sysconf(_SC_PAGESIZE));
  const struct mallinfo2 mi = mallinfo2();
  header(out, "strata_heap_in_use_bytes", "gauge",
         "Heap bytes allocated by malloc and not yet freed.");
  out += fmt::format("strata_heap_in_use_bytes {}\n", mi.uordblks + mi.hblkhd);
  header(out, "strata_model_loaded", "gauge",
         "1 once the model is loaded and the server takes requests.");
  out += fmt::format("strata_model_loaded {}\n", ready_ ? 1 : 0);
  return out;
}

}  // namespace strata::serve

// The scheduler thread: it loads the model, then owns the Engine for the server's lifetime.
// HTTP handlers never touch model state; they submit engine Requests with a Channel into a
// mutex-guarded inbox and read their Events back from the Channel. Each loop the scheduler adds
// the new requests and cancellations to the engine and runs one step(), so requests that arrive
// while others generate join the running batch at the next step (continuous batching).
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/dtype.h"
#include "engine/chat_template.h"
#include "engine/engine.h"
#include "engine/runtime.h"
#include "serve/channel.h"
#include "serve/metrics.h"

namespace strata::serve {

struct SchedulerOptions {
  std::string model_path;
  int threads = 0;  // 0: all cores
  int64_t ctx_size = 0;
  int parallel = 4;  // sequences decoded together
  DType kv_dtype = DType::F32;
  std::string chat_template;  // a ChatTemplate name; empty: recognise the model's own
  bool progress = false;
  std::optional<RuntimeOptions> placement;  // tiered placement (see ServeOptions)
  bool mmap = false;                        // LoadOptions::mmap
};

// What handlers read once the model is loaded; immutable from then on.
struct ModelInfo {
  std::string id;
  int64_t ctx_size = 0;
  int32_t n_vocab = 0;
  const Tokenizer* tokenizer = nullptr;  // thread-safe for encode/decode
  ChatTemplate chat_template;
  std::string bos_text, eos_text;
  int64_t created = 0;  // unix time the model finished loading
};

class Scheduler {
 public:
  enum class State { Loading, Ready, Failed };

  Scheduler(SchedulerOptions opts, Metrics& metrics);
  ~Scheduler();

  // Starts the thread; on_load_failed runs on it if loading throws.
  void start(std::function<void(const std::string&)> on_load_failed);
  void stop();  // finishes every open request with an error and joins the thread

  State state() const { return state_.load(); }
  std::string load_error() const;
  const ModelInfo& info() const { return info_; }  // only once state() is Ready

  // One engine Request per choice; choice i's events carry choice index i.
  void submit(std::vector<Request> reqs, std::shared_ptr<Channel> ch);
  // Cancels the channel's requests (the client went away); their KV blocks are freed.
  void cancel(std::shared_ptr<Channel> ch);

 private:
  struct Job {
    std::vector<Request> reqs;
    std::shared_ptr<Channel> ch;
  };
  struct Live {
    std::shared_ptr<Channel> ch;
    int choice = 0;
  };
  void run();
  void load();
  void loop();
  void add_job(Job& job);
  void dispatch(std::vector<Event>& events);
  void fail_all(const std::string& why);
  void publish_gauges();
  // Test hooks (STRATA_SERVE_TEST_*_DELAY_MS): the milliseconds the variable asks for (0 when
  // unset), and a wait that stop() ends early.
  static std::chrono::milliseconds test_delay(const char* env);
  void wait_unless_stopped(std::chrono::milliseconds d);

  SchedulerOptions opts_;
  Metrics& metrics_;
  std::function<void(const std::string&)> on_load_failed_;
  std::thread thread_;
  std::atomic<State> state_{State::Loading};
  ModelInfo info_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::string load_error_;
  std::vector<Job> inbox_;
  std::vector<std::shared_ptr<Channel>> cancels_;

  // Owned by the scheduler thread only.
  struct Loaded;
  std::unique_ptr<Loaded> loaded_;
  std::unordered_map<int64_t, Live> live_;
  std::unordered_map<Channel*, std::vector<int64_t>> ids_;
};

}  // namespace strata::serve

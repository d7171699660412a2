// The generation engine: requests in, token events out. It owns the KV cache and the executor,
// and schedules like vLLM: each step() admits waiting requests while KV blocks allow, then runs
// one forward over every running sequence — a prompt chunk for those still prefilling, one token
// for those decoding — so new requests join at the next step and finished ones leave at once
// (continuous batching). When the cache runs out mid-generation the newest sequence is
// preempted: its blocks are freed and it is recomputed later from its tokens.
//
// Not thread-safe: one thread (the CLI loop, or the server's scheduler thread) owns an Engine.
#pragma once
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "engine/sampler.h"
#include "memory/kv_pool.h"
#include "model/model.h"
#include "schedule/executor.h"
#include "tokenizer/tokenizer.h"

namespace strata {

enum class FinishReason { None, Stop, Length, Cancelled };
const char* finish_reason_name(FinishReason r);

struct EngineOptions {
  int64_t ctx_size = 0;         // tokens per sequence; 0: the model's trained context, at most 4096
  int64_t max_seqs = 1;         // sequences running at once
  int64_t prefill_chunk = 512;  // prompt tokens per sequence per step
  int64_t max_step_tokens = 2048;
  int64_t kv_block_tokens = 32;
  DType kv_dtype = DType::F32;
  int64_t kv_blocks = 0;             // cache capacity in blocks; 0: ctx_size * max_seqs worth
  int64_t kv_disk_layers_from = -1;  // layers from here keep their KV cache on disk
  std::string offload_dir;
  ExecutorOptions exec;  // micro-batches, weight streaming, activation placement
};

struct Request {
  std::vector<int32_t> prompt;
  int64_t max_tokens = 128;  // < 0: until the context is full
  SamplingParams sampling;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  int top_logprobs = 0;  // > 0: report the n most likely tokens at each step
  // > 0: keep this sequence's KV cache after it finishes, under this session id, and start from
  // the longest cached prefix of the prompt next time (a chat keeps its history's cache).
  int64_t session = 0;
};

struct TokenInfo {
  int32_t token;
  float logprob;
  std::vector<TokenLogprob> top;
};

struct Event {
  int64_t id = 0;
  std::vector<TokenInfo> tokens;  // tokens sampled this step (0 or 1)
  std::string text;               // new text: whole UTF-8 characters, stop strings held back
  bool finished = false;
  FinishReason reason = FinishReason::None;
};

struct EngineStats {
  int64_t running = 0, waiting = 0;
  int64_t kv_blocks_used = 0, kv_blocks_total = 0;
  int64_t prompt_tokens = 0, generated_tokens = 0, preemptions = 0;
  int64_t last_batch_seqs = 0, last_batch_tokens = 0;
};

class Engine {
 public:
  Engine(Model& model, const Tokenizer& tok, ThreadPool& pool, const EngineOptions& opts);
  ~Engine();

  // Queues a request; throws strata::Error if its prompt is empty or does not fit the context.
  int64_t add(Request req);
  void cancel(int64_t id);             // the next step() reports it finished with reason Cancelled
  void drop_session(int64_t session);  // frees a session's cached tokens
  int64_t session_cached_tokens(int64_t session) const;
  std::vector<Event> step();
  bool has_work() const { return !running_.empty() || !waiting_.empty() || !cancelled_.empty(); }

  int64_t ctx_size() const { return opts_.ctx_size; }
  const EngineOptions& options() const { return opts_; }
  EngineStats stats() const;
  Executor& executor() { return *exec_; }
  KvPool& kv() { return *kv_; }
  const Tokenizer& tokenizer() const { return tok_; }
  Model& model() { return model_; }

 private:
  struct Sequence;
  bool admit(Sequence& s);
  void preempt_newest();
  void finish(Sequence& s, FinishReason r, Event& ev);
  void emit_text(Sequence& s, const std::string& piece, Event& ev);

  Model& model_;
  const Tokenizer& tok_;
  [[maybe_unused]] ThreadPool& pool_;  // the executor runs on it; it must outlive the engine
  EngineOptions opts_;
  std::unique_ptr<KvPool> kv_;
  std::unique_ptr<Executor> exec_;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> running_;
  std::vector<int64_t> cancelled_;
  struct Session {
    KvSeq kv;
    std::vector<int32_t> tokens;  // exactly the tokens in kv
    bool busy = false;
  };
  std::map<int64_t, Session> sessions_;
  int64_t next_id_ = 1;
  EngineStats counters_;
  std::vector<float> logits_;
};

}  // namespace strata

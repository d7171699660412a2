#include "serve/scheduler.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace strata::serve {

struct Scheduler::Loaded {
  std::unique_ptr<Runtime> runtime;  // with a placement: owns everything below
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<Engine> engine;
  Engine& eng() { return runtime ? runtime->engine() : *engine; }
  Model& mdl() { return runtime ? runtime->model() : *model; }
  const Tokenizer& tok() const { return runtime ? runtime->tokenizer() : *tokenizer; }
};

namespace {

// "stories260K" for /models/stories260K.gguf or /models/stories260K/.
std::string model_id(const std::string& path) {
  std::filesystem::path p(path);
  if (p.filename().empty()) p = p.parent_path();
  if (p.extension() == ".gguf") return p.stem().string();
  return p.filename().string();
}

std::string token_text_or(const Tokenizer& tok, int32_t id, const char* fallback) {
  return id >= 0 ? tok.token_piece(id) : std::string(fallback);
}

}  // namespace

Scheduler::Scheduler(SchedulerOptions opts, Metrics& metrics)
    : opts_(std::move(opts)), metrics_(metrics) {}

Scheduler::~Scheduler() {
  stop();
}

void Scheduler::start(std::function<void(const std::string&)> on_load_failed) {
  on_load_failed_ = std::move(on_load_failed);
  thread_ = std::thread([this] { run(); });
}

void Scheduler::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::string Scheduler::load_error() const {
  std::lock_guard<std::mutex> lk(mu_);
  return load_error_;
}

namespace {

void fail_job(Channel& ch, size_t n_choices, const std::string& why) {
  for (size_t i = 0; i < n_choices; ++i) {
    Update u;
    u.choice = static_cast<int>(i);
    u.error = why;
    u.event.finished = true;
    ch.push(std::move(u));
  }
}

}  // namespace

void Scheduler::submit(std::vector<Request> reqs, std::shared_ptr<Channel> ch) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!stop_) {
      inbox_.push_back(Job{std::move(reqs), std::move(ch)});
      cv_.notify_one();
      return;
    }
  }
  fail_job(*ch, reqs.size(), "the server is shutting down");
}

void Scheduler::cancel(std::shared_ptr<Channel> ch) {
  ch->cancelled = true;
  {
    std::lock_guard<std::mutex> lk(mu_);
    cancels_.push_back(std::move(ch));
  }
  cv_.notify_one();
}

std::chrono::milliseconds Scheduler::test_delay(const char* env) {
  const char* d = std::getenv(env);
  return std::chrono::milliseconds(d ? std::atoll(d) : 0);
}

void Scheduler::wait_unless_stopped(std::chrono::milliseconds d) {
  if (d.count() <= 0) return;
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait_for(lk, d, [&] { return stop_; });
}

void Scheduler::run() {
  // Test hook: hold the load back so tests can see the server answer while it loads.
  wait_unless_stopped(test_delay("STRATA_SERVE_TEST_LOAD_DELAY_MS"));
  try {
    load();
  } catch (const std::exception& e) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      load_error_ = e.what();
    }
    state_ = State::Failed;
    if (on_load_failed_) on_load_failed_(e.what());
    return;
  }
  loop();
  fail_all("the server is shutting down");
  std::vector<Job> left;
  {
    std::lock_guard<std::mutex> lk(mu_);
    left.swap(inbox_);
  }
  for (Job& j : left) fail_job(*j.ch, j.reqs.size(), "the server is shutting down");
  loaded_.reset();
}

void Scheduler::load() {
  auto l = std::make_unique<Loaded>();
  if (opts_.placement) {
    // A budget or an explicit placement: the same path as `strata run`, checked against the
    // budget before any weight is read; weights that do not fit stream from disk every step.
    l->runtime = Runtime::open(*opts_.placement);
  } else {
    LoadOptions lo;
    lo.progress = opts_.progress;
    lo.mmap = opts_.mmap;
    l->model = Model::load(opts_.model_path, lo);
    l->tokenizer = Tokenizer::from_model_files(l->model->files());
    l->pool = std::make_unique<ThreadPool>(opts_.threads > 0 ? opts_.threads
                                                             : ThreadPool::default_threads());
    EngineOptions eo;
    eo.ctx_size = opts_.ctx_size;
    eo.max_seqs = opts_.parallel;
    eo.kv_dtype = opts_.kv_dtype;
    l->engine = std::make_unique<Engine>(*l->model, *l->tokenizer, *l->pool, eo);
  }

  const Tokenizer& tok = l->tok();
  info_.id = model_id(opts_.model_path);
  info_.ctx_size = l->eng().ctx_size();
  info_.n_vocab = static_cast<int32_t>(l->mdl().hp().n_vocab);
  info_.tokenizer = &tok;
  info_.chat_template = opts_.chat_template.empty() ? ChatTemplate::detect(tok.chat_template())
                                                    : ChatTemplate::named(opts_.chat_template);
  info_.bos_text = token_text_or(tok, tok.bos(), "<s>");
  info_.eos_text = token_text_or(tok, tok.eos(), "</s>");
  info_.created = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  std::fprintf(stderr,
               "strata serve: model %s loaded (context %lld tokens, %d parallel sequences, chat "
               "template %s)\n",
               info_.id.c_str(), static_cast<long long>(info_.ctx_size),
               static_cast<int>(l->eng().options().max_seqs), info_.chat_template.name());
  loaded_ = std::move(l);
  publish_gauges();
  state_ = State::Ready;  // publishes info_ to the handler threads
  metrics_.set_ready(true);
}

void Scheduler::loop() {
  Engine& engine = loaded_->eng();
  // Test hook: slow every step down so tests can hold requests in flight for as long as they
  // need, whatever the machine's speed.
  const std::chrono::milliseconds step_delay = test_delay("STRATA_SERVE_TEST_STEP_DELAY_MS");
  for (;;) {
    std::vector<Job> jobs;
    std::vector<std::shared_ptr<Channel>> cancels;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk,
               [&] { return stop_ || !inbox_.empty() || !cancels_.empty() || engine.has_work(); });
      if (stop_) return;
      jobs.swap(inbox_);
      cancels.swap(cancels_);
    }
    for (Job& j : jobs) add_job(j);
    for (auto& ch : cancels) {
      auto it = ids_.find(ch.get());
      if (it == ids_.end()) continue;
      for (int64_t id : it->second) engine.cancel(id);
    }
    if (engine.has_work()) {
      std::vector<Event> events;
      try {
        events = engine.step();
      } catch (const std::exception& e) {
        // Nothing the client sent should get here (requests are validated first); if it does,
        // fail the open requests rather than the server.
        spdlog::error("engine step failed: {}", e.what());
        for (auto& [id, live] : live_) engine.cancel(id);
        fail_all(std::string("generation failed: ") + e.what());
      }
      dispatch(events);
      wait_unless_stopped(step_delay);
    }
    publish_gauges();
  }
}

void Scheduler::add_job(Job& job) {
  if (job.ch->cancelled) return;  // the client left before its request reached the engine
  Engine& engine = loaded_->eng();
  for (size_t i = 0; i < job.reqs.size(); ++i) {
    try {
      const int64_t id = engine.add(std::move(job.reqs[i]));
      live_[id] = Live{job.ch, static_cast<int>(i)};
      ids_[job.ch.get()].push_back(id);
    } catch (const std::exception& e) {
      Update u;
      u.choice = static_cast<int>(i);
      u.error = e.what();
      u.event.finished = true;
      job.ch->push(std::move(u));
    }
  }
}

void Scheduler::dispatch(std::vector<Event>& events) {
  // Count the tokens before any reply can go out, so /metrics never lags a finished response.
  int64_t generated = 0;
  for (const Event& ev : events) generated += static_cast<int64_t>(ev.tokens.size());
  metrics_.add_generated_tokens(generated);
  for (Event& ev : events) {
    auto it = live_.find(ev.id);
    if (it == live_.end()) continue;
    Live live = it->second;
    if (ev.finished) {
      live_.erase(it);
      auto ids = ids_.find(live.ch.get());
      if (ids != ids_.end()) {
        std::erase(ids->second, ev.id);
        if (ids->second.empty()) ids_.erase(ids);
      }
    }
    live.ch->push(Update{live.choice, std::move(ev), {}});
  }
}

void Scheduler::fail_all(const std::string& why) {
  for (auto& [id, live] : live_) {
    Update u;
    u.choice = live.choice;
    u.error = why;
    u.event.finished = true;
    live.ch->push(std::move(u));
  }
  live_.clear();
  ids_.clear();
}

void Scheduler::publish_gauges() {
  const EngineStats st = loaded_->eng().stats();
  EngineGauges g;
  g.queued = st.waiting;
  g.running = st.running;
  g.kv_blocks_used = st.kv_blocks_used;
  g.kv_blocks_total = st.kv_blocks_total;
  g.preemptions = st.preemptions;
  metrics_.set_engine(g);
}

}  // namespace strata::serve

#include "engine/engine.h"

#include <algorithm>

#include "core/error.h"

namespace strata {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Stop:
      return "stop";
    case FinishReason::Length:
      return "length";
    case FinishReason::Cancelled:
      return "cancelled";
    default:
      return "none";
  }
}

namespace {

// Length of the longest prefix of s that ends on a whole UTF-8 character. An invalid byte counts
// as a whole character (it is passed through; the client sees the bytes the model produced).
size_t complete_utf8_prefix(const std::string& s) {
  const size_t n = s.size();
  size_t i = n;
  // Look back at most 3 bytes for the start of a possibly incomplete sequence.
  for (size_t back = 1; back <= 4 && back <= n; ++back) {
    const unsigned char c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 1;
    i = len > back ? n - back : n;
    break;
  }
  return i;
}

// Longest suffix of text that is a proper prefix of some stop string.
size_t held_suffix(const std::string& text, const std::vector<std::string>& stops) {
  size_t best = 0;
  for (const auto& st : stops)
    for (size_t k = std::min(text.size(), st.size() - 1); k > best; --k)
      if (text.compare(text.size() - k, k, st, 0, k) == 0) {
        best = k;
        break;
      }
  return best;
}

}  // namespace

struct Engine::Sequence {
  int64_t id = 0;
  Request req;
  KvSeq kv;
  std::vector<int32_t> tokens;  // prompt + generated
  int64_t n_generated = 0;
  Sampler sampler;
  bool at_start = true;  // SentencePiece leading-space rule
  std::string raw;       // decoded bytes not yet emitted (incomplete UTF-8)
  std::string held;      // text held back because it may start a stop string
  bool done = false;
  explicit Sequence(Request r) : req(std::move(r)), sampler(req.sampling) {}
};

Engine::Engine(Model& model, const Tokenizer& tok, ThreadPool& pool, const EngineOptions& opts)
    : model_(model), tok_(tok), pool_(pool), opts_(opts) {
  const HParams& h = model.hp();
  // Default context: the model's, capped at 4096 like llama.cpp (raise it with --ctx-size).
  if (opts_.ctx_size <= 0) opts_.ctx_size = std::min<int64_t>(h.n_ctx_train, 4096);
  if (model.arch().pos == PosKind::Learned) {
    const int64_t learned = model.global().pos_embd->shape[0] - model.arch().learned_pos_offset;
    if (opts_.ctx_size > learned) opts_.ctx_size = learned;
  }
  if (opts_.max_seqs < 1) opts_.max_seqs = 1;
  KvConfig kc;
  kc.n_layer = h.n_layer;
  kc.row_elems = h.kv_dim();
  kc.block_tokens = opts_.kv_block_tokens;
  kc.dtype = opts_.kv_dtype;
  const int64_t per_seq = (opts_.ctx_size + kc.block_tokens - 1) / kc.block_tokens;
  kc.max_blocks = opts_.kv_blocks > 0 ? opts_.kv_blocks : per_seq * opts_.max_seqs;
  if (kc.max_blocks < per_seq)
    fail("KV cache of {} blocks cannot hold one sequence of {} tokens", kc.max_blocks,
         opts_.ctx_size);
  kc.disk_layers_from = opts_.kv_disk_layers_from;
  kc.disk_dir = opts_.offload_dir;
  kv_ = std::make_unique<KvPool>(kc);
  exec_ = std::make_unique<Executor>(model, pool, *kv_, opts_.exec);
}

Engine::~Engine() = default;

int64_t Engine::add(Request req) {
  if (req.prompt.empty()) fail("the prompt is empty (and the model adds no BOS token)");
  if (static_cast<int64_t>(req.prompt.size()) >= opts_.ctx_size)
    fail("the prompt has {} tokens but the context holds {} (raise --ctx-size)", req.prompt.size(),
         opts_.ctx_size);
  for (int32_t t : req.prompt)
    if (t < 0 || t >= model_.hp().n_vocab) fail("prompt token id {} is outside the vocabulary", t);
  auto s = std::make_unique<Sequence>(std::move(req));
  s->id = next_id_++;
  s->tokens = s->req.prompt;
  // SentencePiece's leading-space rule applies only when the output starts the text (a prompt of
  // BOS alone); after a real prompt the first token's space is part of the continuation.
  s->at_start = tok_.decode(s->req.prompt).empty();
  if (s->req.session > 0) {
    Session& ss = sessions_[s->req.session];
    if (ss.busy) fail("session {} is already generating", s->req.session);
    ss.busy = true;
    // Reuse the longest common prefix; at least one prompt token must run to produce logits.
    size_t n = 0;
    while (n < ss.tokens.size() && n + 1 < s->tokens.size() && ss.tokens[n] == s->tokens[n]) ++n;
    s->kv = std::move(ss.kv);
    ss.kv = KvSeq{};
    s->kv.truncate(*kv_, static_cast<int64_t>(n));
    ss.tokens.clear();
  }
  const int64_t id = s->id;
  waiting_.push_back(std::move(s));
  return id;
}

void Engine::cancel(int64_t id) {
  cancelled_.push_back(id);
}

EngineStats Engine::stats() const {
  EngineStats st = counters_;
  st.running = static_cast<int64_t>(running_.size());
  st.waiting = static_cast<int64_t>(waiting_.size());
  st.kv_blocks_used = kv_->blocks_used();
  st.kv_blocks_total = kv_->config().max_blocks;
  return st;
}

bool Engine::admit(Sequence& s) {
  const int64_t bt = kv_->config().block_tokens;
  const int64_t need = (static_cast<int64_t>(s.tokens.size()) + 1 + bt - 1) / bt;
  return need - static_cast<int64_t>(s.kv.blocks.size()) <= kv_->blocks_free();
}

void Engine::preempt_newest() {
  auto s = std::move(running_.back());
  running_.pop_back();
  s->kv.release(*kv_);
  ++counters_.preemptions;
  waiting_.push_front(std::move(s));
}

void Engine::finish(Sequence& s, FinishReason r, Event& ev) {
  if (r != FinishReason::Cancelled) {
    ev.text += s.held + s.raw;  // nothing can complete a stop string any more
    s.held.clear();
    s.raw.clear();
  }
  s.done = true;
  ev.finished = true;
  ev.reason = r;
  if (s.req.session > 0) {
    Session& ss = sessions_[s.req.session];
    ss.tokens.assign(s.tokens.begin(), s.tokens.begin() + s.kv.n_tokens);
    ss.kv = std::move(s.kv);
    s.kv = KvSeq{};
    ss.busy = false;
  } else {
    s.kv.release(*kv_);
  }
}

void Engine::drop_session(int64_t session) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  if (it->second.busy) fail("session {} is still generating", session);
  it->second.kv.release(*kv_);
  sessions_.erase(it);
}

int64_t Engine::session_cached_tokens(int64_t session) const {
  auto it = sessions_.find(session);
  return it == sessions_.end() ? 0 : it->second.kv.n_tokens;
}

void Engine::emit_text(Sequence& s, const std::string& piece, Event& ev) {
  s.raw += piece;
  const size_t ok = complete_utf8_prefix(s.raw);
  s.held += s.raw.substr(0, ok);
  s.raw.erase(0, ok);
  if (s.req.stop.empty()) {
    ev.text += s.held;
    s.held.clear();
    return;
  }
  size_t cut = std::string::npos;
  for (const auto& st : s.req.stop) {
    if (st.empty()) continue;
    const size_t p = s.held.find(st);
    if (p != std::string::npos && p < cut) cut = p;
  }
  if (cut != std::string::npos) {
    ev.text += s.held.substr(0, cut);
    s.held.clear();
    s.raw.clear();
    finish(s, FinishReason::Stop, ev);
    return;
  }
  const size_t keep = held_suffix(s.held, s.req.stop);
  ev.text += s.held.substr(0, s.held.size() - keep);
  s.held.erase(0, s.held.size() - keep);
}

std::vector<Event> Engine::step() {
  std::vector<Event> events;
  // Cancellations first: free their memory before anything else is scheduled.
  for (int64_t id : cancelled_) {
    auto drop = [&](auto& list) {
      for (auto it = list.begin(); it != list.end(); ++it)
        if ((*it)->id == id) {
          Event ev;
          ev.id = id;
          finish(**it, FinishReason::Cancelled, ev);
          events.push_back(std::move(ev));
          list.erase(it);
          return true;
        }
      return false;
    };
    if (!drop(running_)) drop(waiting_);
  }
  cancelled_.clear();

  while (!waiting_.empty() && static_cast<int64_t>(running_.size()) < opts_.max_seqs &&
         admit(*waiting_.front())) {
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
  if (running_.empty()) return events;

  // Plan the step: decoding sequences first (one token each), then prompt chunks, within the
  // token budget. Preempt the newest sequences if the KV blocks the step needs are not free.
  const int64_t bt = kv_->config().block_tokens;
  std::vector<std::pair<Sequence*, int64_t>> plan;
  for (;;) {
    plan.clear();
    int64_t budget = opts_.max_step_tokens, blocks = 0;
    for (int pass = 0; pass < 2; ++pass)
      for (auto& sp : running_) {
        Sequence& s = *sp;
        const int64_t pending = static_cast<int64_t>(s.tokens.size()) - s.kv.n_tokens;
        const bool decoding = pending == 1;
        if ((pass == 0) != decoding || pending <= 0 || budget <= 0) continue;
        const int64_t n = std::min({pending, opts_.prefill_chunk, budget});
        budget -= n;
        const int64_t total = s.kv.n_tokens + n;
        blocks +=
            std::max<int64_t>(0, (total + bt - 1) / bt - static_cast<int64_t>(s.kv.blocks.size()));
        plan.emplace_back(&s, n);
      }
    if (blocks <= kv_->blocks_free() || running_.size() <= 1) break;
    preempt_newest();
  }

  Batch batch;
  for (auto& [s, n] : plan) {
    SeqChunk c;
    c.tokens = s->tokens.data() + s->kv.n_tokens;
    c.n_tokens = n;
    c.kv = &s->kv;
    c.want_logits = s->kv.n_tokens + n == static_cast<int64_t>(s->tokens.size());
    if (s->n_generated == 0) counters_.prompt_tokens += n;
    batch.seqs.push_back(c);
  }
  counters_.last_batch_seqs = static_cast<int64_t>(batch.seqs.size());
  counters_.last_batch_tokens = batch.n_tokens();
  exec_->forward(batch, logits_);

  const int64_t nv = model_.hp().n_vocab;
  int64_t row = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    if (!batch.seqs[i].want_logits) continue;
    Sequence& s = *plan[i].first;
    float* lg = logits_.data() + row * nv;
    ++row;
    Event ev;
    ev.id = s.id;
    TokenInfo ti;
    if (s.req.top_logprobs > 0) ti.top = s.sampler.top_logprobs(lg, nv, s.req.top_logprobs);
    // The logprob (a pass over the vocabulary) only when the request reports logprobs.
    ti.token = s.sampler.sample(lg, nv, s.tokens, s.req.top_logprobs > 0);
    ti.logprob = s.sampler.last_logprob();
    s.tokens.push_back(ti.token);
    ++s.n_generated;
    ++counters_.generated_tokens;
    ev.tokens.push_back(ti);
    if (!s.req.ignore_eos && tok_.is_eos(ti.token)) {
      finish(s, FinishReason::Stop, ev);
    } else {
      std::string piece;
      tok_.append_piece(ti.token, true, s.at_start, piece);
      emit_text(s, piece, ev);
      if (!s.done && s.req.max_tokens >= 0 && s.n_generated >= s.req.max_tokens)
        finish(s, FinishReason::Length, ev);
      else if (!s.done && static_cast<int64_t>(s.tokens.size()) >= opts_.ctx_size)
        finish(s, FinishReason::Length, ev);
    }
    events.push_back(std::move(ev));
  }
  running_.erase(
      std::remove_if(running_.begin(), running_.end(), [](const auto& s) { return s->done; }),
      running_.end());
  return events;
}

}  // namespace strata

#include "serve/completions.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <random>

#include "serve/openai_request.h"
#include "serve/openai_response.h"
#include "serve/peer_socket.h"
#include "serve/sse.h"

namespace strata::serve {
namespace {

using nlohmann::json;
constexpr auto kPoll = std::chrono::milliseconds(50);

// A validated request, tokenized, ready for the engine.
struct Prepared {
  CompletionRequest cr;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<int64_t> offset_base;  // per prompt: its text length (completions' text_offset)
  std::vector<std::string> stop;
  int64_t prompt_tokens = 0;  // summed over prompts, each counted once
  ResponseContext ctx;
  int n_choices() const { return static_cast<int>(prompts.size()) * cr.n; }
};

void check_prompt(const ModelInfo& mi, const std::vector<int32_t>& ids, const char* param) {
  if (ids.empty()) bad_param(param, "the prompt is empty (and the model adds no BOS token)");
  if (static_cast<int64_t>(ids.size()) >= mi.ctx_size)
    throw ApiError(
        400,
        fmt::format(
            "This model's maximum context length is {} tokens. However, your {} resulted in "
            "{} tokens. Please reduce the length of the {}.",
            mi.ctx_size, param, ids.size(), param),
        "invalid_request_error", param, "context_length_exceeded");
  for (int32_t t : ids)
    if (t < 0 || t >= mi.n_vocab)
      bad_param(param,
                fmt::format("token id {} is outside the vocabulary (0..{})", t, mi.n_vocab - 1));
}

Prepared prepare(const ModelInfo& mi, const std::string& body, bool chat) {
  Prepared p;
  p.cr = parse_completion_request(parse_json_body(body), chat);
  const Tokenizer& tok = *mi.tokenizer;
  const bool bos = tok.add_bos_default();
  if (chat) {
    const std::string text = mi.chat_template.apply(p.cr.messages, true, mi.bos_text, mi.eos_text);
    p.prompts.push_back(tok.encode(text, bos, /*parse_special=*/true));
    p.offset_base.push_back(0);
    check_prompt(mi, p.prompts.back(), "messages");
  } else {
    for (const PromptInput& in : p.cr.prompts) {
      p.prompts.push_back(in.is_ids ? in.ids : tok.encode(in.text, bos, /*parse_special=*/true));
      p.offset_base.push_back(
          static_cast<int64_t>(in.is_ids ? tok.decode(in.ids).size() : in.text.size()));
      check_prompt(mi, p.prompts.back(), "prompt");
    }
  }
  for (const auto& ids : p.prompts) p.prompt_tokens += static_cast<int64_t>(ids.size());
  p.stop = p.cr.stop;
  if (chat)
    for (const auto& s : mi.chat_template.stop_strings(mi.eos_text))
      if (!s.empty()) p.stop.push_back(s);
  p.ctx.chat = chat;
  p.ctx.id = new_response_id(chat);
  p.ctx.created = unix_now();
  p.ctx.model = p.cr.model.empty() ? mi.id : p.cr.model;
  p.ctx.tok = &tok;
  p.ctx.logprobs = p.cr.logprobs;
  p.ctx.top_logprobs = p.cr.top_logprobs;
  return p;
}

std::vector<Request> engine_requests(const Prepared& p) {
  // Without a seed every request draws its own; choice j of a seeded request uses seed + j so
  // the choices differ but the same request reproduces.
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const uint64_t seed = p.cr.seed_given ? p.cr.sampling.seed : rng();
  std::vector<Request> out;
  for (const auto& ids : p.prompts)
    for (int j = 0; j < p.cr.n; ++j) {
      Request r;
      r.prompt = ids;
      r.max_tokens = p.cr.max_tokens;
      r.sampling = p.cr.sampling;
      r.sampling.seed = seed + static_cast<uint64_t>(j);
      r.stop = p.stop;
      r.ignore_eos = p.cr.ignore_eos;
      r.top_logprobs = p.cr.logprobs ? std::max(p.cr.top_logprobs, 1) : 0;
      out.push_back(std::move(r));
    }
  return out;
}

// Folds one update into its choice; returns the tokens it adds to the logprobs (the
// end-of-sequence token that finished a choice is counted in usage but has no text to report).
std::vector<TokenInfo> apply(const Tokenizer& tok, ChoiceState& s, Update& u) {
  std::vector<TokenInfo> shown;
  if (!u.error.empty()) {
    s.error = u.error;
    s.finished = true;
    return shown;
  }
  Event& ev = u.event;
  s.n_tokens += static_cast<int64_t>(ev.tokens.size());
  for (auto& t : ev.tokens)
    if (!(ev.finished && ev.reason == FinishReason::Stop && tok.is_eos(t.token)))
      shown.push_back(t);
  s.tokens.insert(s.tokens.end(), shown.begin(), shown.end());
  s.text += ev.text;
  if (ev.finished) {
    s.finished = true;
    s.reason = ev.reason;
  }
  return shown;
}

bool all_finished(const std::vector<ChoiceState>& cs) {
  for (const auto& c : cs)
    if (!c.finished) return false;
  return true;
}

// Admission: at most --parallel running plus --queue-limit waiting; the channel gives the slot
// back when both the handler and the scheduler are done with it.
std::shared_ptr<Channel> open_channel(ServerState& st, int n_choices) {
  const int64_t limit = int64_t(st.opts.parallel) + st.opts.queue_limit;
  const int64_t now = st.metrics.add_in_flight(1);
  if (now > limit) {
    st.metrics.add_in_flight(-1);
    throw ApiError(
        429,
        fmt::format("The server is overloaded: {} requests are running or queued (limit {}). "
                    "Retry later.",
                    now - 1, limit),
        "rate_limit_error", "", "queue_full");
  }
  ServerState* s = &st;
  return std::make_shared<Channel>(n_choices, [s] { s->metrics.add_in_flight(-1); });
}

void respond_whole(ServerState& st, Prepared& p, std::shared_ptr<Channel> ch, int fd,
                   httplib::Response& res) {
  std::vector<ChoiceState> choices(p.n_choices());
  std::deque<Update> ups;
  auto checked = std::chrono::steady_clock::now();
  while (!all_finished(choices)) {
    ch->pop_all(ups, kPoll);
    for (Update& u : ups) apply(*p.ctx.tok, choices[u.choice], u);
    ups.clear();
    const auto now = std::chrono::steady_clock::now();
    if (now - checked < kPoll) continue;
    checked = now;
    if (!all_finished(choices) && peer_closed(fd)) {
      st.sched.cancel(ch);  // nobody will read the answer: free the sequences now
      res.status = 499;     // (never sent) client closed request
      return;
    }
  }
  for (const auto& c : choices)
    if (!c.error.empty()) throw ApiError(500, c.error, "server_error");
  for (size_t i = 0; i < choices.size(); ++i)
    choices[i].text_offset_base = p.offset_base[i / p.cr.n];
  res.set_content(dump(full_response(p.ctx, choices, p.prompt_tokens)), "application/json");
}

// State of one SSE stream, shared by httplib's content provider calls.
struct StreamJob {
  ServerState* st;
  Prepared p;
  std::shared_ptr<Channel> ch;
  int fd = -1;
  std::vector<ChoiceState> choices;
  std::vector<int64_t> offset;
  bool started = false, done = false, cancelled = false;

  void cancel() {
    if (cancelled || all_finished(choices)) return;
    cancelled = true;
    st->sched.cancel(ch);
  }

  // The SSE text for what arrived; empty when nothing did.
  std::string next_events() {
    std::string out;
    if (!started) {
      started = true;
      if (p.ctx.chat)  // OpenAI opens each choice with the assistant role and empty content
        for (int i = 0; i < p.n_choices(); ++i)
          out += sse_event(
              stream_chunk(p.ctx, i, "", {}, 0, true, FinishReason::None, p.cr.include_usage));
    }
    std::deque<Update> ups;
    if (!ch->pop_all(ups, kPoll)) return out;
    for (Update& u : ups) {
      ChoiceState& s = choices[u.choice];
      const std::string before = s.text;
      const std::vector<TokenInfo> shown = apply(*p.ctx.tok, s, u);
      if (!s.error.empty()) {
        out += sse_event(ApiError(500, s.error, "server_error").body());
        continue;
      }
      const std::string delta = s.text.substr(before.size());
      if (!delta.empty() || (p.ctx.logprobs && !shown.empty()))
        out += sse_event(stream_chunk(p.ctx, u.choice, delta, shown, offset[u.choice], false,
                                      FinishReason::None, p.cr.include_usage));
      for (const auto& t : shown)
        offset[u.choice] += static_cast<int64_t>(p.ctx.tok->token_piece(t.token).size());
      if (s.finished)
        out += sse_event(
            stream_chunk(p.ctx, u.choice, "", {}, 0, false, s.reason, p.cr.include_usage));
    }
    if (all_finished(choices)) {
      if (p.cr.include_usage) {
        int64_t completion = 0;
        for (const auto& c : choices) completion += c.n_tokens;
        out += sse_event(usage_chunk(p.ctx, p.prompt_tokens, completion));
      }
      out += kSseDone;
      done = true;
    }
    return out;
  }
};

void respond_stream(ServerState& st, Prepared&& p, std::shared_ptr<Channel> ch, int fd,
                    httplib::Response& res) {
  auto job = std::make_shared<StreamJob>();
  job->st = &st;
  job->p = std::move(p);
  job->ch = std::move(ch);
  job->fd = fd;
  job->choices.resize(job->p.n_choices());
  for (int i = 0; i < job->p.n_choices(); ++i)
    job->offset.push_back(job->p.offset_base[i / job->p.cr.n]);
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [job](size_t, httplib::DataSink& sink) {
        try {
          const std::string out = job->next_events();
          if (out.empty()) {
            if (peer_closed(job->fd)) {
              job->cancel();
              return false;
            }
            return true;
          }
          const bool finished = job->done;
          if (!sink.write(out.data(), out.size())) {
            job->cancel();
            return false;
          }
          if (finished) sink.done();
          return true;
        } catch (const std::exception& e) {
          spdlog::error("stream failed: {}", e.what());
          job->cancel();
          return false;
        }
      },
      [job](bool success) {
        if (!success) job->cancel();  // the client left (or the server is stopping)
      });
}

}  // namespace

void handle_completions(ServerState& st, const httplib::Request& req, const std::string& body,
                        httplib::Response& res, bool chat) {
  const ModelInfo& mi = st.ready_info();
  Prepared p = prepare(mi, body, chat);
  std::shared_ptr<Channel> ch = open_channel(st, p.n_choices());
  st.metrics.add_prompt_tokens(p.prompt_tokens);
  st.sched.submit(engine_requests(p), ch);
  const int fd = find_peer_socket(req.remote_addr, req.remote_port, req.local_port);
  if (p.cr.stream)
    respond_stream(st, std::move(p), std::move(ch), fd, res);
  else
    respond_whole(st, p, std::move(ch), fd, res);
}

}  // namespace strata::serve

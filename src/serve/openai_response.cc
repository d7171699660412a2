#include "serve/openai_response.h"

#include <fmt/format.h>

#include <chrono>
#include <random>

namespace strata::serve {

using nlohmann::json;

std::string new_response_id(bool chat) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{}-{:016x}{:08x}", chat ? "chatcmpl" : "cmpl", rng(),
                     static_cast<uint32_t>(rng()));
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const char* system_fingerprint() {
  return "fp_strata_0.1.0";
}

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

json usage_json(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

const char* finish_reason_text(FinishReason r) {
  // A cancelled request has no client left to read its reason; "stop" keeps the field valid.
  return r == FinishReason::Length ? "length" : "stop";
}

namespace {

json bytes_of(const std::string& s) {
  json a = json::array();
  for (unsigned char c : s) a.push_back(static_cast<int>(c));
  return a;
}

json chat_token(const Tokenizer& tok, int32_t id, float logprob) {
  const std::string piece = tok.token_piece(id);
  return {{"token", piece}, {"logprob", logprob}, {"bytes", bytes_of(piece)}};
}

json base(const ResponseContext& c, bool chunk) {
  return {{"id", c.id},
          {"object",
           c.chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion"},
          {"created", c.created},
          {"model", c.model},
          {"system_fingerprint", system_fingerprint()}};
}

}  // namespace

json chat_logprobs(const ResponseContext& c, const std::vector<TokenInfo>& tokens) {
  json content = json::array();
  for (const TokenInfo& t : tokens) {
    json e = chat_token(*c.tok, t.token, t.logprob);
    json top = json::array();
    for (int i = 0; i < c.top_logprobs && i < static_cast<int>(t.top.size()); ++i)
      top.push_back(chat_token(*c.tok, t.top[i].token, t.top[i].logprob));
    e["top_logprobs"] = std::move(top);
    content.push_back(std::move(e));
  }
  return {{"content", std::move(content)}};
}

json completion_logprobs(const ResponseContext& c, const std::vector<TokenInfo>& tokens,
                         int64_t offset) {
  json toks = json::array(), lps = json::array(), tops = json::array(), offs = json::array();
  for (const TokenInfo& t : tokens) {
    const std::string piece = c.tok->token_piece(t.token);
    toks.push_back(piece);
    lps.push_back(t.logprob);
    json top = json::object();
    for (int i = 0; i < c.top_logprobs && i < static_cast<int>(t.top.size()); ++i)
      top[c.tok->token_piece(t.top[i].token)] = t.top[i].logprob;
    tops.push_back(c.top_logprobs > 0 ? std::move(top) : json(nullptr));
    offs.push_back(offset);
    offset += static_cast<int64_t>(piece.size());
  }
  return {{"tokens", toks}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offs}};
}

json full_response(const ResponseContext& c, const std::vector<ChoiceState>& choices,
                   int64_t prompt_tokens) {
  json j = base(c, false);
  json arr = json::array();
  int64_t completion = 0;
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceState& s = choices[i];
    completion += s.n_tokens;
    json ch = {{"index", i}, {"finish_reason", finish_reason_text(s.reason)}};
    json lp = nullptr;
    if (c.logprobs)
      lp = c.chat ? chat_logprobs(c, s.tokens)
                  : completion_logprobs(c, s.tokens, s.text_offset_base);
    if (c.chat)
      ch["message"] = {{"role", "assistant"}, {"content", s.text}};
    else
      ch["text"] = s.text;
    ch["logprobs"] = std::move(lp);
    arr.push_back(std::move(ch));
  }
  j["choices"] = std::move(arr);
  j["usage"] = usage_json(prompt_tokens, completion);
  return j;
}

json stream_chunk(const ResponseContext& c, int index, const std::string& delta_text,
                  const std::vector<TokenInfo>& tokens, int64_t offset, bool first,
                  FinishReason finish, bool usage_null) {
  json j = base(c, true);
  json ch = {{"index", index}};
  const bool finishing = finish != FinishReason::None;
  if (c.chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!finishing || !delta_text.empty()) delta["content"] = delta_text;
    ch["delta"] = std::move(delta);
  } else {
    ch["text"] = delta_text;
  }
  json lp = nullptr;
  if (c.logprobs && !tokens.empty())
    lp = c.chat ? chat_logprobs(c, tokens) : completion_logprobs(c, tokens, offset);
  ch["logprobs"] = std::move(lp);
  ch["finish_reason"] = finishing ? json(finish_reason_text(finish)) : json(nullptr);
  j["choices"] = json::array({std::move(ch)});
  if (usage_null) j["usage"] = nullptr;
  return j;
}

json usage_chunk(const ResponseContext& c, int64_t prompt_tokens, int64_t completion_tokens) {
  json j = base(c, true);
  j["choices"] = json::array();
  j["usage"] = usage_json(prompt_tokens, completion_tokens);
  return j;
}

}  // namespace strata::serve

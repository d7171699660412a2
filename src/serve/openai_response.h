// Building OpenAI-shaped response bodies: whole chat.completion / text_completion objects, the
// chunks of a stream, usage, and the two logprobs layouts (chat's logprobs.content[] and the
// legacy completions' parallel arrays).
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "tokenizer/tokenizer.h"

namespace strata::serve {

// What a choice has produced so far.
struct ChoiceState {
  std::string text;
  std::vector<TokenInfo> tokens;  // tokens with logprobs (end-of-sequence tokens left out)
  int64_t n_tokens = 0;           // every sampled token, as usage counts them
  int64_t prompt_tokens = 0;
  int64_t text_offset_base = 0;  // completions logprobs: offsets count from the prompt's end
  bool finished = false;
  FinishReason reason = FinishReason::None;
  std::string error;
};

struct ResponseContext {
  bool chat = false;
  std::string id;
  int64_t created = 0;
  std::string model;
  const Tokenizer* tok = nullptr;
  bool logprobs = false;
  int top_logprobs = 0;
};

std::string new_response_id(bool chat);
int64_t unix_now();
const char* system_fingerprint();
// JSON text; bytes that are not valid UTF-8 (a token can hold half a character) become U+FFFD.
std::string dump(const nlohmann::json& j);

nlohmann::json usage_json(int64_t prompt_tokens, int64_t completion_tokens);
const char* finish_reason_text(FinishReason r);

// Logprobs for a run of tokens; completions' text offsets start at `offset`.
nlohmann::json chat_logprobs(const ResponseContext& c, const std::vector<TokenInfo>& tokens);
nlohmann::json completion_logprobs(const ResponseContext& c, const std::vector<TokenInfo>& tokens,
                                   int64_t offset);

// The non-streaming body; usage sums every choice (each prompt counted once per choice's prompt).
nlohmann::json full_response(const ResponseContext& c, const std::vector<ChoiceState>& choices,
                             int64_t prompt_tokens);

// One streamed chunk for one choice. `delta_text` is the new text; `first` adds the assistant
// role (chat); `finish` sets finish_reason. `usage_null` adds "usage": null (include_usage).
nlohmann::json stream_chunk(const ResponseContext& c, int index, const std::string& delta_text,
                            const std::vector<TokenInfo>& tokens, int64_t offset, bool first,
                            FinishReason finish, bool usage_null);
// The final chunk with empty choices and the usage of the whole request.
nlohmann::json usage_chunk(const ResponseContext& c, int64_t prompt_tokens,
                           int64_t completion_tokens);

}  // namespace strata::serve

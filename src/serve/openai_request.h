// Parsing and validation of OpenAI-style request bodies. Every field has OpenAI's default when
// omitted (temperature 1, top_p 1; strata's top_k and min_p are off unless given), unknown
// fields are ignored, and anything malformed throws ApiError 400 naming the field.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "engine/chat_template.h"
#include "engine/sampler.h"

namespace strata::serve {

// One completions prompt: text, or token ids used as they are.
struct PromptInput {
  std::string text;
  std::vector<int32_t> ids;
  bool is_ids = false;
};

struct CompletionRequest {
  bool chat = false;
  std::string model;
  std::vector<ChatMessage> messages;  // chat
  std::vector<PromptInput> prompts;   // completions (several prompts give several choices)
  int64_t max_tokens = -1;            // -1: until end of sequence or the context is full
  SamplingParams sampling;
  bool seed_given = false;
  std::vector<std::string> stop;
  int n = 1;
  bool logprobs = false;
  int top_logprobs = 0;  // chat: top_logprobs; completions: the logprobs integer
  bool stream = false;
  bool include_usage = false;
  bool ignore_eos = false;  // extension (as in vLLM): keep going past end-of-sequence
};

// The body as a JSON object; 400 when it is not valid JSON or not an object.
nlohmann::json parse_json_body(const std::string& body);

CompletionRequest parse_completion_request(const nlohmann::json& body, bool chat);

// POST /tokenize and /detokenize.
struct TokenizeRequest {
  std::string content;
  bool add_special = false;
  bool parse_special = true;
};
TokenizeRequest parse_tokenize_request(const nlohmann::json& body);
std::vector<int32_t> parse_detokenize_request(const nlohmann::json& body);

}  // namespace strata::serve

// Server-sent events as OpenAI streams them: one "data: <json>\n\n" event per chunk and a
// literal "data: [DONE]\n\n" at the end.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "serve/openai_response.h"

namespace strata::serve {

inline std::string sse_event(const nlohmann::json& j) {
  return "data: " + dump(j) + "\n\n";
}
inline constexpr const char* kSseDone = "data: [DONE]\n\n";

}  // namespace strata::serve

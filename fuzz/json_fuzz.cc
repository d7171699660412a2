// The server's request parsing: any body is a request or an ApiError (HTTP 400), never a crash.
// The same input is tried as a chat request, a completions request and a (de)tokenize request.
#include "serve/api_error.h"
#include "serve/openai_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  try {
    const nlohmann::json j = strata::serve::parse_json_body(body);
    for (bool chat : {true, false}) {
      try {
        strata::serve::parse_completion_request(j, chat);
      } catch (const strata::serve::ApiError&) {
      }
    }
    try {
      strata::serve::parse_tokenize_request(j);
    } catch (const strata::serve::ApiError&) {
    }
    try {
      strata::serve::parse_detokenize_request(j);
    } catch (const strata::serve::ApiError&) {
    }
  } catch (const strata::serve::ApiError&) {
  }
  return 0;
}

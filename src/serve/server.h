// strata serve: an OpenAI-compatible HTTP server with continuous batching.
//   POST /v1/chat/completions, /v1/completions (streaming over SSE or not)
//   GET /v1/models, /health, /metrics; POST /tokenize, /detokenize
// The model loads on the scheduler thread while the HTTP server already answers (/health says
// 503 until it is ready). See serve/scheduler.h for the threading.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "core/dtype.h"
#include "engine/runtime.h"

namespace strata::serve {

struct ServeOptions {
  std::string model_path;
  std::string host = "127.0.0.1";
  int port = 8080;             // 0: any free port (the one chosen is printed)
  std::string api_key;         // non-empty: requests need "Authorization: Bearer <key>"
  int parallel = 4;            // sequences generated together
  int queue_limit = 64;        // requests allowed to wait beyond `parallel`; more get 429
  size_t max_body = 8u << 20;  // request body limit in bytes (413 above it)
  int64_t ctx_size = 0;        // 0: the model's (at most 4096)
  int threads = 0;             // compute threads; 0: all cores
  DType kv_dtype = DType::F32;
  std::string chat_template;  // override: a ChatTemplate name
  bool progress = false;
  // Tiered placement (--max-ram, --percent, ...): when set, the model is opened through
  // engine/runtime.h like `strata run`, so a model larger than RAM can be served; its block size
  // (gpu batch size x number of batches) is the number of sequences decoded together.
  std::optional<RuntimeOptions> placement;
  bool mmap = false;  // without placement: matrices stay in the mapped file (LoadOptions::mmap)
};

// Runs until SIGINT/SIGTERM; throws strata::Error if it cannot listen or the model fails to load.
void run_server(const ServeOptions& opts);

}  // namespace strata::serve

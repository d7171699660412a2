// POST /v1/chat/completions and /v1/completions: validate, tokenize (chat through the model's
// chat template), submit one engine request per choice to the scheduler, then answer with one
// JSON object or stream SSE chunks. A client that goes away has its requests cancelled.
#pragma once
#include <httplib.h>

#include <string>

#include "serve/server_state.h"

namespace strata::serve {

void handle_completions(ServerState& st, const httplib::Request& req, const std::string& body,
                        httplib::Response& res, bool chat);

}  // namespace strata::serve

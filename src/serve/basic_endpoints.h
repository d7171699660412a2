// The small endpoints: GET /health, /v1/models, /metrics; POST /tokenize, /detokenize.
#pragma once
#include <httplib.h>

#include <string>

#include "serve/server_state.h"

namespace strata::serve {

void handle_health(ServerState& st, const httplib::Request& req, httplib::Response& res);
void handle_models(ServerState& st, const httplib::Request& req, httplib::Response& res);
void handle_metrics(ServerState& st, const httplib::Request& req, httplib::Response& res);
void handle_tokenize(ServerState& st, const httplib::Request& req, const std::string& body,
                     httplib::Response& res);
void handle_detokenize(ServerState& st, const httplib::Request& req, const std::string& body,
                       httplib::Response& res);

}  // namespace strata::serve

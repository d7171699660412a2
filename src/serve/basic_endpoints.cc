#include "serve/basic_endpoints.h"

#include <fmt/format.h>

#include "serve/openai_request.h"
#include "serve/openai_response.h"

namespace strata::serve {

using nlohmann::json;

void handle_health(ServerState& st, const httplib::Request&, httplib::Response& res) {
  st.ready_info();  // 503 while loading
  res.set_content(dump({{"status", "ok"}}), "application/json");
}

void handle_models(ServerState& st, const httplib::Request&, httplib::Response& res) {
  const ModelInfo& mi = st.ready_info();
  json model = {{"id", mi.id},
                {"object", "model"},
                {"created", mi.created},
                {"owned_by", "strata"},
                {"context_length", mi.ctx_size},
                {"chat_template", mi.chat_template.name()}};
  res.set_content(dump({{"object", "list"}, {"data", json::array({model})}}), "application/json");
}

void handle_metrics(ServerState& st, const httplib::Request&, httplib::Response& res) {
  res.set_content(st.metrics.render(), "text/plain; version=0.0.4; charset=utf-8");
}

void handle_tokenize(ServerState& st, const httplib::Request&, const std::string& body,
                     httplib::Response& res) {
  const ModelInfo& mi = st.ready_info();
  const TokenizeRequest tr = parse_tokenize_request(parse_json_body(body));
  const Tokenizer& tok = *mi.tokenizer;
  const std::vector<int32_t> ids =
      tok.encode(tr.content, tr.add_special && tok.bos() >= 0, tr.parse_special);
  res.set_content(dump({{"tokens", ids}}), "application/json");
}

void handle_detokenize(ServerState& st, const httplib::Request&, const std::string& body,
                       httplib::Response& res) {
  const ModelInfo& mi = st.ready_info();
  const std::vector<int32_t> ids = parse_detokenize_request(parse_json_body(body));
  for (int32_t t : ids)
    if (t >= mi.tokenizer->n_vocab())
      bad_param("tokens", fmt::format("token id {} is outside the vocabulary (0..{})", t,
                                      mi.tokenizer->n_vocab() - 1));
  res.set_content(dump({{"content", mi.tokenizer->decode(ids)}}), "application/json");
}

}  // namespace strata::serve

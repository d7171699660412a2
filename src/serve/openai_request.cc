#include "serve/openai_request.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "serve/api_error.h"

namespace strata::serve {
namespace {

using nlohmann::json;

constexpr int kMaxN = 16;            // choices per request
constexpr int kMaxChoices = 64;      // prompts x n
constexpr int kMaxTopLogprobs = 20;  // as OpenAI
constexpr size_t kMaxStops = 16;

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "boolean";
    case json::value_t::string:
      return "string";
    case json::value_t::array:
      return "array";
    case json::value_t::object:
      return "object";
    case json::value_t::number_float:
      return "number";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "integer";
    default:
      return "value";
  }
}

[[noreturn]] void wrong_type(const std::string& name, const char* want, const json& got) {
  bad_param(name, fmt::format("'{}' must be {}, got {}", name, want, type_name(got)),
            "invalid_type");
}

[[noreturn]] void missing(const std::string& name) {
  bad_param(name, fmt::format("Missing required parameter: '{}'.", name),
            "missing_required_parameter");
}

// The field, or nullptr when absent or null (null means "use the default", as in OpenAI's API).
const json* field(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

double get_number(const json& j, const char* name, double lo, double hi, double def) {
  const json* v = field(j, name);
  if (!v) return def;
  if (!v->is_number()) wrong_type(name, "a number", *v);
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi)
    bad_param(name, fmt::format("'{}' must be between {} and {}, got {}", name, lo, hi, x));
  return x;
}

// Integers; a float with an integral value (2.0) is accepted as JSON does not distinguish them.
bool as_integer(const json& v, int64_t& out) {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      return false;
    out = v.get<int64_t>();
    return true;
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) {
      out = static_cast<int64_t>(d);
      return true;
    }
  }
  return false;
}

int64_t get_int(const json& j, const char* name, int64_t lo, int64_t hi, int64_t def) {
  const json* v = field(j, name);
  if (!v) return def;
  int64_t x = 0;
  if (!as_integer(*v, x)) wrong_type(name, "an integer", *v);
  if (x < lo || x > hi)
    bad_param(name, fmt::format("'{}' must be between {} and {}, got {}", name, lo, hi, x));
  return x;
}

bool get_bool(const json& j, const char* name, bool def) {
  const json* v = field(j, name);
  if (!v) return def;
  if (!v->is_boolean()) wrong_type(name, "a boolean", *v);
  return v->get<bool>();
}

std::string message_content(const json& m, const std::string& where, bool may_be_null) {
  auto it = m.find("content");
  if (it == m.end() || it->is_null()) {
    if (may_be_null) return "";
    missing(where + ".content");
  }
  if (it->is_string()) return it->get<std::string>();
  if (!it->is_array()) wrong_type(where + ".content", "a string or an array of content parts", *it);
  std::string out;
  for (size_t k = 0; k < it->size(); ++k) {
    const json& part = (*it)[k];
    const std::string pw = fmt::format("{}.content[{}]", where, k);
    if (!part.is_object()) wrong_type(pw, "an object", part);
    auto type = part.find("type");
    if (type == part.end() || !type->is_string()) missing(pw + ".type");
    if (*type != "text")
      bad_param(pw + ".type", fmt::format("content part type '{}' is not supported (text only)",
                                          type->get<std::string>()));
    auto text = part.find("text");
    if (text == part.end() || !text->is_string()) missing(pw + ".text");
    if (!out.empty()) out += "\n";
    out += text->get<std::string>();
  }
  return out;
}

std::vector<ChatMessage> parse_messages(const json& j) {
  auto it = j.find("messages");
  if (it == j.end() || it->is_null()) missing("messages");
  if (!it->is_array()) wrong_type("messages", "an array", *it);
  if (it->empty())
    bad_param("messages", "'messages' must contain at least one message", "empty_array");
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    const std::string where = fmt::format("messages[{}]", i);
    if (!m.is_object()) wrong_type(where, "an object", m);
    auto role = m.find("role");
    if (role == m.end() || role->is_null()) missing(where + ".role");
    if (!role->is_string()) wrong_type(where + ".role", "a string", *role);
    const std::string r = role->get<std::string>();
    if (r != "system" && r != "developer" && r != "user" && r != "assistant" && r != "tool")
      bad_param(
          where + ".role",
          fmt::format("'{}' is not a valid role (system, developer, user, assistant, tool)", r));
    out.push_back({r, message_content(m, where, r == "assistant")});
  }
  return out;
}

std::vector<int32_t> token_ids(const json& a, const std::string& where) {
  std::vector<int32_t> ids;
  for (const json& t : a) {
    int64_t x = 0;
    if (!as_integer(t, x)) wrong_type(where, "an array of token ids", t);
    if (x < 0 || x > std::numeric_limits<int32_t>::max())
      bad_param(where, fmt::format("token id {} is out of range", x));
    ids.push_back(static_cast<int32_t>(x));
  }
  if (ids.empty()) bad_param(where, "a token-id prompt must not be empty", "empty_array");
  return ids;
}

std::vector<PromptInput> parse_prompts(const json& j) {
  auto it = j.find("prompt");
  if (it == j.end() || it->is_null()) missing("prompt");
  const json& p = *it;
  if (p.is_string()) return {PromptInput{p.get<std::string>(), {}, false}};
  if (!p.is_array())
    wrong_type("prompt", "a string, an array of strings or an array of token ids", p);
  if (p.empty()) bad_param("prompt", "'prompt' must not be an empty array", "empty_array");
  std::vector<PromptInput> out;
  if (p[0].is_number()) {
    out.push_back({"", token_ids(p, "prompt"), true});
    return out;
  }
  for (size_t i = 0; i < p.size(); ++i) {
    const std::string where = fmt::format("prompt[{}]", i);
    if (p[i].is_string())
      out.push_back({p[i].get<std::string>(), {}, false});
    else if (p[i].is_array())
      out.push_back({"", token_ids(p[i], where), true});
    else
      wrong_type(where, "a string or an array of token ids", p[i]);
  }
  return out;
}

std::vector<std::string> parse_stop(const json& j) {
  const json* v = field(j, "stop");
  if (!v) return {};
  std::vector<std::string> out;
  if (v->is_string()) {
    if (!v->get<std::string>().empty()) out.push_back(v->get<std::string>());
    return out;
  }
  if (!v->is_array()) wrong_type("stop", "a string or an array of strings", *v);
  if (v->size() > kMaxStops)
    bad_param("stop", fmt::format("'stop' holds at most {} strings", kMaxStops));
  for (const json& s : *v) {
    if (!s.is_string()) wrong_type("stop", "a string or an array of strings", s);
    if (!s.get<std::string>().empty()) out.push_back(s.get<std::string>());
  }
  return out;
}

}  // namespace

nlohmann::json parse_json_body(const std::string& body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    // Parse again with exceptions for the message that says where the JSON is broken.
    std::string why = "invalid JSON";
    try {
      json again = json::parse(body);
      why = "invalid JSON";               // not reached: the first parse failed
    } catch (const json::exception& e) {  // parse_error, or out_of_range for a huge number
      why = e.what();
    }
    throw ApiError(400, "We could not parse the JSON body of your request: " + why,
                   "invalid_request_error", "", "invalid_json");
  }
  if (!j.is_object())
    throw ApiError(400, "the request body must be a JSON object", "invalid_request_error", "",
                   "invalid_json");
  return j;
}

CompletionRequest parse_completion_request(const json& j, bool chat) {
  CompletionRequest r;
  r.chat = chat;
  if (const json* m = field(j, "model")) {
    if (!m->is_string()) wrong_type("model", "a string", *m);
    r.model = m->get<std::string>();
  }
  if (chat)
    r.messages = parse_messages(j);
  else
    r.prompts = parse_prompts(j);

  const int64_t big = int64_t(1) << 30;
  r.max_tokens = get_int(j, "max_tokens", 1, big, -1);
  r.max_tokens = get_int(j, "max_completion_tokens", 1, big, r.max_tokens);
  SamplingParams& s = r.sampling;
  s.temperature = static_cast<float>(get_number(j, "temperature", 0, 2, 1));
  s.top_p = static_cast<float>(get_number(j, "top_p", 0, 1, 1));
  s.top_k = static_cast<int32_t>(get_int(j, "top_k", 0, std::numeric_limits<int32_t>::max(), 0));
  s.min_p = static_cast<float>(get_number(j, "min_p", 0, 1, 0));
  s.presence_penalty = static_cast<float>(get_number(j, "presence_penalty", -2, 2, 0));
  s.frequency_penalty = static_cast<float>(get_number(j, "frequency_penalty", -2, 2, 0));
  s.repeat_penalty = 1.0f;
  s.repeat_last_n = -1;  // OpenAI's penalties count the whole generated text
  if (field(j, "seed")) {
    r.seed_given = true;
    s.seed = static_cast<uint64_t>(get_int(j, "seed", std::numeric_limits<int64_t>::min(),
                                           std::numeric_limits<int64_t>::max(), 0));
  }
  r.stop = parse_stop(j);
  r.n = static_cast<int>(get_int(j, "n", 1, kMaxN, 1));
  if (chat) {
    r.logprobs = get_bool(j, "logprobs", false);
    r.top_logprobs = static_cast<int>(get_int(j, "top_logprobs", 0, kMaxTopLogprobs, 0));
    if (r.top_logprobs > 0 && !r.logprobs)
      bad_param("top_logprobs", "'top_logprobs' needs 'logprobs' set to true");
  } else if (field(j, "logprobs")) {
    r.logprobs = true;
    r.top_logprobs = static_cast<int>(get_int(j, "logprobs", 0, kMaxTopLogprobs, 0));
  }
  r.stream = get_bool(j, "stream", false);
  if (const json* so = field(j, "stream_options")) {
    if (!so->is_object()) wrong_type("stream_options", "an object", *so);
    r.include_usage = get_bool(*so, "include_usage", false);
  }
  r.ignore_eos = get_bool(j, "ignore_eos", false);
  const size_t choices = (chat ? 1 : r.prompts.size()) * static_cast<size_t>(r.n);
  if (choices > kMaxChoices)
    bad_param(chat ? "n" : "prompt",
              fmt::format("at most {} choices per request (prompts x n)", kMaxChoices));
  return r;
}

TokenizeRequest parse_tokenize_request(const json& j) {
  TokenizeRequest r;
  auto it = j.find("content");
  if (it == j.end() || it->is_null()) missing("content");
  if (!it->is_string()) wrong_type("content", "a string", *it);
  r.content = it->get<std::string>();
  r.add_special = get_bool(j, "add_special", false);
  r.parse_special = get_bool(j, "parse_special", true);
  return r;
}

std::vector<int32_t> parse_detokenize_request(const json& j) {
  auto it = j.find("tokens");
  if (it == j.end() || it->is_null()) missing("tokens");
  if (!it->is_array()) wrong_type("tokens", "an array of token ids", *it);
  if (it->empty()) return {};
  return token_ids(*it, "tokens");
}

}  // namespace strata::serve

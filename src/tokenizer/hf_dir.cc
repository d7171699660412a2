// Tokenizer::from_hf_dir: a Hugging Face model folder. The tokenizer proper comes from
// tokenizer.json (or vocab.json + merges.txt); tokenizer_config.json, special_tokens_map.json,
// config.json and generation_config.json name the special tokens, whether BOS is added, the
// end-of-generation ids and the chat template.
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file.h"
#include "tokenizer/hf_tokenizer_json.h"
#include "tokenizer/tokenizer.h"

namespace strata {
namespace {

using json = nlohmann::json;

json read_optional_json(const std::string& path) {
  if (!file_exists(path)) return json::object();
  try {
    json j = json::parse(read_text_file(path));
    return j.is_object() ? j : json::object();
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
}

// A special token as tokenizer_config.json / special_tokens_map.json write it: "text" or
// {"content": "text", ...}. "" if absent.
std::string token_text_field(const json& j, const char* key) {
  if (!j.contains(key)) return "";
  const json& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return "";
}

// An id field of config.json / generation_config.json: a number or a list of numbers.
std::vector<int32_t> id_list(const json& j, const char* key) {
  std::vector<int32_t> ids;
  if (!j.contains(key)) return ids;
  const json& v = j[key];
  const auto take = [&](const json& x) {
    if (x.is_number_integer() && x.get<int64_t>() >= 0 && x.get<int64_t>() < kMaxVocab)
      ids.push_back(static_cast<int32_t>(x.get<int64_t>()));
  };
  if (v.is_array())
    for (const auto& x : v) take(x);
  else
    take(v);
  return ids;
}

std::string chat_template_of(const json& tc, const std::string& dir) {
  if (tc.contains("chat_template")) {
    const json& t = tc["chat_template"];
    if (t.is_string()) return t.get<std::string>();
    if (t.is_array()) {  // named templates: prefer "default"
      std::string first;
      for (const auto& x : t) {
        if (!x.is_object() || !x.contains("template") || !x["template"].is_string()) continue;
        if (x.value("name", "") == "default") return x["template"].get<std::string>();
        if (first.empty()) first = x["template"].get<std::string>();
      }
      return first;
    }
  }
  if (file_exists(dir + "/chat_template.jinja"))
    return read_text_file(dir + "/chat_template.jinja");
  const json ct = read_optional_json(dir + "/chat_template.json");
  if (ct.contains("chat_template") && ct["chat_template"].is_string())
    return ct["chat_template"].get<std::string>();
  return "";
}

void apply_configs(HfTokenizerFiles& files, const std::string& dir) {
  Tokenizer::Parts& p = files.parts;
  const json tc = read_optional_json(dir + "/tokenizer_config.json");
  const json stm = read_optional_json(dir + "/special_tokens_map.json");
  const json cfg = read_optional_json(dir + "/config.json");
  const json gen = read_optional_json(dir + "/generation_config.json");

  // added_tokens_decoder: {"id": {"content": ..., "special": ...}} (transformers >= 4.34).
  if (tc.contains("added_tokens_decoder") && tc["added_tokens_decoder"].is_object()) {
    for (const auto& [key, t] : tc["added_tokens_decoder"].items()) {
      if (!t.is_object() || !t.contains("content") || !t["content"].is_string()) continue;
      int64_t id = -1;
      try {
        id = std::stoll(key);
      } catch (const std::exception&) {
        fail("{}/tokenizer_config.json: added_tokens_decoder key '{}' is not an id", dir, key);
      }
      if (id < 0 || id >= kMaxVocab)
        fail("{}/tokenizer_config.json: added token id {} out of range", dir, id);
      const auto i = static_cast<int32_t>(id);
      const std::string content = t["content"].get<std::string>();
      const bool special = t.value("special", false);
      if (!p.vocab.valid(i) || p.vocab.text(i) != content)
        p.vocab.set(i, content, special ? TokenType::Control : TokenType::UserDefined);
      if (special) p.vocab.set_special(i, true);
      p.specials.add({content, i, !special, t.value("lstrip", false), t.value("rstrip", false)});
    }
  }

  // Named special tokens: tokenizer_config.json first, then special_tokens_map.json.
  const auto named = [&](const char* key) -> int32_t {
    std::string text = token_text_field(tc, key);
    if (text.empty()) text = token_text_field(stm, key);
    if (text.empty()) return -1;
    const int32_t id = p.vocab.find(text);
    if (id >= 0) {
      p.vocab.set_special(id, true);
      p.specials.add({text, id, false, false, false});
    }
    return id;
  };
  for (const json* j : {&tc, &stm}) {
    if (!j->contains("additional_special_tokens") || !(*j)["additional_special_tokens"].is_array())
      continue;
    for (const auto& x : (*j)["additional_special_tokens"]) {
      const std::string text = x.is_string()   ? x.get<std::string>()
                               : x.is_object() ? x.value("content", "")
                                               : "";
      const int32_t id = text.empty() ? -1 : p.vocab.find(text);
      if (id < 0) continue;
      p.vocab.set_special(id, true);
      p.specials.add({text, id, false, false, false});
    }
  }
  const auto first_of = [](std::vector<int32_t> v) { return v.empty() ? -1 : v[0]; };
  const auto pick = [](std::initializer_list<int32_t> c) {
    for (int32_t id : c)
      if (id >= 0) return id;
    return -1;
  };
  const int32_t bos_named = named("bos_token"), eos_named = named("eos_token");
  const int32_t unk_named = named("unk_token"), pad_named = named("pad_token");
  p.bos = pick({bos_named, files.template_bos, first_of(id_list(cfg, "bos_token_id")),
                first_of(id_list(gen, "bos_token_id"))});
  p.eos = pick(
      {eos_named, first_of(id_list(cfg, "eos_token_id")), first_of(id_list(gen, "eos_token_id"))});
  p.unk = pick({p.unk, unk_named});
  p.pad = pick(
      {pad_named, first_of(id_list(cfg, "pad_token_id")), first_of(id_list(gen, "pad_token_id"))});
  for (const json* j : {&gen, &cfg})
    for (int32_t id : id_list(*j, "eos_token_id")) p.eos_ids.push_back(id);
  for (int32_t id : find_end_of_turn_tokens(p.vocab)) p.eos_ids.push_back(id);

  if (tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean())
    p.add_bos = tc["add_bos_token"].get<bool>();
  else if (files.has_template)
    p.add_bos = files.template_bos >= 0;
  else
    p.add_bos = p.kind == TokenizerKind::SentencePieceBpe;
  if (p.add_bos && files.template_bos >= 0 && bos_named < 0) p.bos = files.template_bos;
  p.chat_template = chat_template_of(tc, dir);
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_hf_dir(const std::string& dir) {
  if (!is_directory(dir)) fail("tokenizer: '{}' is not a folder", dir);
  HfTokenizerFiles files;
  if (file_exists(dir + "/tokenizer.json")) {
    files = read_tokenizer_json(dir + "/tokenizer.json");
  } else if (file_exists(dir + "/vocab.json") && file_exists(dir + "/merges.txt")) {
    const json tc = read_optional_json(dir + "/tokenizer_config.json");
    const bool prefix = tc.contains("add_prefix_space") && tc["add_prefix_space"].is_boolean() &&
                        tc["add_prefix_space"].get<bool>();
    files = read_vocab_and_merges(dir + "/vocab.json", dir + "/merges.txt", prefix);
  } else if (file_exists(dir + "/tokenizer.model")) {
    fail(
        "{}: only a SentencePiece tokenizer.model is present; strata reads tokenizer.json (save "
        "the "
        "tokenizer with a fast tokenizer to get one)",
        dir);
  } else {
    fail("{}: no tokenizer files (tokenizer.json, or vocab.json + merges.txt)", dir);
  }
  try {
    apply_configs(files, dir);
  } catch (const json::exception& e) {
    fail("{}: unexpected content in a config file: {}", dir, e.what());
  }
  return std::make_unique<Tokenizer>(std::move(files.parts));
}

}  // namespace strata

#include "tokenizer/hf_tokenizer_json.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "tokenizer/bpe_encoder.h"
#include "tokenizer/spm_bpe.h"

namespace strata {
namespace {

using json = nlohmann::json;
using Merges = std::vector<std::pair<std::string, std::string>>;

struct SplitSpec {
  std::string pattern;
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
};

// Everything the tokenizer.json sections say, collected before the parts are built.
struct Layout {
  std::vector<BpeOptions::TextOp> normalize;
  std::vector<SplitSpec> splits;
  bool byte_level = false;
  bool byte_prefix_space = false;
  bool metaspace = false;
  std::string metaspace_char{kSpmSpace};
  BpeOptions::Prepend metaspace_prepend = BpeOptions::Prepend::Always;
  bool spm_style = false;      // '▁' for spaces somewhere in the pipeline
  bool decoder_strip = false;  // the decoder removes the leading space
  bool decoder_seen = false;
};

std::string str_field(const json& j, const char* key, const std::string& def = "") {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return def;
  if (!j[key].is_string()) fail("'{}' should be a string", key);
  return j[key].get<std::string>();
}

bool bool_field(const json& j, const char* key, bool def) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return def;
  if (!j[key].is_boolean()) fail("'{}' should be true or false", key);
  return j[key].get<bool>();
}

SplitBehavior parse_behavior(const std::string& b) {
  if (b.empty() || b == "Isolated") return SplitBehavior::Isolated;
  if (b == "Removed") return SplitBehavior::Removed;
  if (b == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (b == "Contiguous") return SplitBehavior::Contiguous;
  fail("unknown Split behavior '{}'", b);
}

// A Split/Replace pattern: {"Regex": "..."} or {"String": "..."}, as a PCRE2 pattern.
std::string pattern_of(const json& p) {
  if (p.is_object() && p.contains("Regex")) return p["Regex"].get<std::string>();
  if (p.is_object() && p.contains("String")) return regex_quote(p["String"].get<std::string>());
  fail("a pattern should be {{\"Regex\": ...}} or {{\"String\": ...}}");
}

void read_normalizer(const json& n, Layout& L) {
  if (n.is_null()) return;
  const std::string type = str_field(n, "type");
  if (type == "Sequence") {
    for (const auto& x : n.at("normalizers")) read_normalizer(x, L);
  } else if (type == "Prepend") {
    const std::string s = str_field(n, "prepend");
    L.normalize.push_back({BpeOptions::TextOp::Prepend, s, ""});
    if (s == kSpmSpace) L.spm_style = true;
  } else if (type == "Replace") {
    const json& pat = n.at("pattern");
    if (!pat.contains("String")) fail("Replace normalizer with a regex pattern is not supported");
    const std::string content = str_field(n, "content");
    L.normalize.push_back({BpeOptions::TextOp::Replace, pat["String"].get<std::string>(), content});
    if (content == kSpmSpace) L.spm_style = true;
  } else if (type == "NFC" || type == "NFKC" || type == "NFD" || type == "NFKD" ||
             type == "Lowercase" || type == "Strip" || type == "StripAccents") {
    spdlog::warn("tokenizer: normalizer '{}' is not implemented and is skipped", type);
  } else {
    fail("normalizer '{}' is not supported", type);
  }
}

void read_metaspace(const json& m, Layout& L) {
  L.metaspace = L.spm_style = true;
  L.metaspace_char = str_field(m, "replacement", std::string(kSpmSpace));
  if (L.metaspace_char.empty()) fail("Metaspace replacement is empty");
  const std::string scheme = str_field(m, "prepend_scheme");
  if (scheme == "never")
    L.metaspace_prepend = BpeOptions::Prepend::Never;
  else if (scheme == "first")
    L.metaspace_prepend = BpeOptions::Prepend::First;
  else if (scheme == "always")
    L.metaspace_prepend = BpeOptions::Prepend::Always;
  else
    L.metaspace_prepend = bool_field(m, "add_prefix_space", true) ? BpeOptions::Prepend::Always
                                                                  : BpeOptions::Prepend::Never;
}

void read_pre_tokenizer(const json& p, Layout& L) {
  if (p.is_null()) return;
  const std::string type = str_field(p, "type");
  if (type == "Sequence") {
    for (const auto& x : p.at("pretokenizers")) read_pre_tokenizer(x, L);
  } else if (type == "ByteLevel") {
    L.byte_level = true;
    L.byte_prefix_space = bool_field(p, "add_prefix_space", true);
    if (bool_field(p, "use_regex", true)) L.splits.push_back({kGpt2Pattern});
  } else if (type == "Split") {
    L.splits.push_back({pattern_of(p.at("pattern")), parse_behavior(str_field(p, "behavior")),
                        bool_field(p, "invert", false)});
  } else if (type == "Digits") {
    L.splits.push_back({bool_field(p, "individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)"});
  } else if (type == "Metaspace") {
    read_metaspace(p, L);
    if (bool_field(p, "split", true))
      L.splits.push_back({regex_quote(L.metaspace_char), SplitBehavior::MergedWithNext});
  } else {
    fail("pre-tokenizer '{}' is not supported", type);
  }
}

void read_decoder(const json& d, Layout& L) {
  if (d.is_null()) return;
  L.decoder_seen = true;
  const std::string type = str_field(d, "type");
  if (type == "Sequence") {
    for (const auto& x : d.at("decoders")) read_decoder(x, L);
  } else if (type == "ByteLevel") {
    L.byte_level = true;
  } else if (type == "Strip") {
    if (d.value("start", 0) > 0) L.decoder_strip = true;
  } else if (type == "Metaspace") {
    L.spm_style = true;
    const std::string scheme = str_field(d, "prepend_scheme");
    if (scheme != "never" && bool_field(d, "add_prefix_space", true)) L.decoder_strip = true;
  } else if (type == "Replace") {
    if (d.contains("pattern") && d["pattern"].contains("String") &&
        d["pattern"]["String"] == std::string(kSpmSpace))
      L.spm_style = true;
  }
}

// Looks for the BOS a post-processor puts in front of a single sequence.
void read_post_processor(const json& p, HfTokenizerFiles& out) {
  if (p.is_null()) return;
  const std::string type = str_field(p, "type");
  if (type == "Sequence") {
    for (const auto& x : p.at("processors")) read_post_processor(x, out);
  } else if (type == "TemplateProcessing") {
    out.has_template = true;
    const json& single = p.at("single");
    if (!single.is_array() || single.empty() || !single[0].contains("SpecialToken")) return;
    const std::string name = single[0]["SpecialToken"].at("id").get<std::string>();
    const json& st = p.value("special_tokens", json::object());
    if (st.contains(name) && st[name].contains("ids") && !st[name]["ids"].empty())
      out.template_bos = st[name]["ids"][0].get<int32_t>();
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    out.has_template = true;
    const json& cls = p.at("cls");
    if (cls.is_array() && cls.size() == 2) out.template_bos = cls[1].get<int32_t>();
  }
}

int32_t checked_id(const json& v, const std::string& what) {
  if (!v.is_number_integer()) fail("{}: id is not an integer", what);
  const auto id = v.get<int64_t>();
  if (id < 0 || id >= kMaxVocab) fail("{}: id {} is out of range", what, id);
  return static_cast<int32_t>(id);
}

void read_vocab_object(const json& vocab, Vocab& v) {
  if (!vocab.is_object()) fail("the vocabulary should be a JSON object of token -> id");
  int64_t max_id = -1;
  for (const auto& [text, id] : vocab.items())
    max_id = std::max<int64_t>(max_id, checked_id(id, text));
  v.reserve_ids(max_id + 1);
  for (const auto& [text, id] : vocab.items()) v.set(id.get<int32_t>(), text, TokenType::Normal);
}

Merges read_merges_json(const json& m) {
  Merges merges;
  if (m.is_null()) return merges;
  if (!m.is_array()) fail("'merges' should be an array");
  merges.reserve(m.size());
  size_t bad = 0;
  for (const auto& x : m) {
    std::pair<std::string, std::string> ab;
    if (x.is_string()) {
      if (split_merge(x.get<std::string>(), ab))
        merges.push_back(std::move(ab));
      else
        ++bad;
    } else if (x.is_array() && x.size() == 2 && x[0].is_string() && x[1].is_string()) {
      merges.emplace_back(x[0].get<std::string>(), x[1].get<std::string>());
    } else {
      ++bad;
    }
  }
  if (bad) spdlog::warn("tokenizer: {} malformed merges ignored", bad);
  return merges;
}

using ModelFactory = std::function<std::unique_ptr<SubwordModel>(const Vocab&)>;

ModelFactory bpe_factory(Merges merges, std::vector<SplitSpec> splits, BpeOptions opt,
                         std::string where) {
  return [merges = std::move(merges), splits = std::move(splits), opt = std::move(opt),
          where = std::move(where)](const Vocab& v) {
    PreTokenizer pre;
    for (const auto& s : splits)
      pre.add(std::make_unique<RegexSplitter>(s.pattern, s.behavior, s.invert));
    auto enc = std::make_unique<BpeEncoder>(v, merges, std::move(pre), opt);
    if (enc->skipped_merges())
      spdlog::warn("{}: {} merges name tokens that are not in the vocabulary; ignored", where,
                   enc->skipped_merges());
    return enc;
  };
}

HfTokenizerFiles parse_tokenizer_json(const json& j, const std::string& path) {
  HfTokenizerFiles out;
  Tokenizer::Parts& p = out.parts;
  const json& model = j.at("model");
  const std::string mtype = str_field(model, "type", "BPE");
  if (mtype != "BPE") fail("tokenizer model type '{}' is not supported (only BPE)", mtype);
  if (!str_field(model, "continuing_subword_prefix").empty() ||
      !str_field(model, "end_of_word_suffix").empty())
    fail("BPE with continuing_subword_prefix / end_of_word_suffix is not supported");
  read_vocab_object(model.at("vocab"), p.vocab);
  Merges merges = read_merges_json(model.value("merges", json()));

  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    for (const auto& t : j["added_tokens"]) {
      const int32_t id = checked_id(t.at("id"), "added token");
      const std::string content = t.at("content").get<std::string>();
      const bool special = bool_field(t, "special", false);
      p.vocab.set(id, content, special ? TokenType::Control : TokenType::UserDefined);
      p.specials.add(
          {content, id, !special, bool_field(t, "lstrip", false), bool_field(t, "rstrip", false)});
    }
  }

  Layout L;
  read_normalizer(j.value("normalizer", json()), L);
  read_pre_tokenizer(j.value("pre_tokenizer", json()), L);
  read_decoder(j.value("decoder", json()), L);
  read_post_processor(j.value("post_processor", json()), out);

  BpeOptions opt;
  opt.normalize = L.normalize;
  opt.byte_fallback = bool_field(model, "byte_fallback", false);
  opt.fuse_unk = bool_field(model, "fuse_unk", false);
  opt.ignore_merges = bool_field(model, "ignore_merges", false);
  const std::string unk = str_field(model, "unk_token");
  if (!unk.empty()) opt.unk = p.vocab.find(unk);
  p.unk = opt.unk;
  if (L.byte_level) {
    p.kind = TokenizerKind::BytePairGpt2;
    opt.byte_level = true;
    opt.byte_prefix_space = L.byte_prefix_space;
  } else if (L.spm_style || opt.byte_fallback) {
    p.kind = TokenizerKind::SentencePieceBpe;
    opt.metaspace = L.metaspace;
    opt.metaspace_char = L.metaspace_char;
    opt.metaspace_prepend = L.metaspace_prepend;
    p.strip_leading_space = L.decoder_seen ? L.decoder_strip : true;
    for (int32_t id = 0; id < p.vocab.size(); ++id)
      if (p.vocab.type(id) == TokenType::Normal && parse_byte_token(p.vocab.text(id)))
        p.vocab.set_type(id, TokenType::Byte);
    p.vocab.index_byte_tokens();
  } else {
    fail("neither a byte-level (GPT-2 style) nor a SentencePiece-style BPE; not supported");
  }
  p.make_model = bpe_factory(std::move(merges), std::move(L.splits), std::move(opt), path);
  return out;
}

}  // namespace

HfTokenizerFiles read_tokenizer_json(const std::string& path) {
  try {
    return parse_tokenizer_json(json::parse(read_text_file(path)), path);
  } catch (const json::exception& e) {
    fail("{}: unexpected content: {}", path, e.what());
  } catch (const Error& e) {
    if (std::string_view(e.what()).starts_with(path)) throw;
    fail("{}: {}", path, e.what());
  }
}

HfTokenizerFiles read_vocab_and_merges(const std::string& vocab_path,
                                       const std::string& merges_path, bool add_prefix_space) {
  HfTokenizerFiles out;
  Tokenizer::Parts& p = out.parts;
  try {
    read_vocab_object(json::parse(read_text_file(vocab_path)), p.vocab);
  } catch (const json::exception& e) {
    fail("{}: {}", vocab_path, e.what());
  } catch (const Error& e) {
    fail("{}: {}", vocab_path, e.what());
  }
  Merges merges;
  const std::string text = read_text_file(merges_path);
  size_t bad = 0;
  for (size_t i = 0, line_no = 1; i < text.size(); ++line_no) {
    size_t e = text.find('\n', i);
    if (e == std::string::npos) e = text.size();
    std::string_view line(text.data() + i, e - i);
    i = e + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.starts_with("#version"))) continue;
    std::pair<std::string, std::string> ab;
    if (split_merge(line, ab))
      merges.push_back(std::move(ab));
    else
      ++bad;
  }
  if (bad) spdlog::warn("{}: {} malformed lines ignored", merges_path, bad);
  p.kind = TokenizerKind::BytePairGpt2;
  BpeOptions opt;
  opt.byte_level = true;
  opt.byte_prefix_space = add_prefix_space;
  p.make_model =
      bpe_factory(std::move(merges), {SplitSpec{kGpt2Pattern}}, std::move(opt), merges_path);
  return out;
}

}  // namespace strata

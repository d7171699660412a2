#include "model/gguf_export.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <set>
#include <unordered_map>

#include "core/error.h"
#include "core/file.h"
#include "tokenizer/bpe_encoder.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/spm_bpe.h"

namespace strata {
namespace {

using json = nlohmann::json;

json read_json_or_empty(const std::string& path) {
  if (!file_exists(path)) return json::object();
  try {
    return json::parse(read_text_file(path));
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
}

std::string basename_of(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t s = p.rfind('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

void export_hparams(const Model& m, GgufWriter& w) {
  const ModelSpec& s = m.spec();
  const HParams& h = s.hp;
  const ArchSpec def = arch_by_name(s.arch.name);
  // GGUF has no key for these; strata (and llama.cpp) take the architecture's default.
  if (s.arch.act != def.act)
    fail("{}: activation {} differs from {}'s usual {}, which GGUF metadata cannot record",
         m.files().path, activation_name(s.arch.act), s.arch.name, activation_name(def.act));
  const std::string p = s.arch.name + ".";
  w.set_str("general.architecture", s.arch.name);
  const json& c = m.files().hf_config;
  std::string name = c.contains("_name_or_path") && c["_name_or_path"].is_string()
                         ? c["_name_or_path"].get<std::string>()
                         : "";
  w.set_str("general.name", name.empty() ? basename_of(m.files().path) : name);
  w.set_u32(p + "context_length", static_cast<uint32_t>(h.n_ctx_train));
  w.set_u32(p + "embedding_length", static_cast<uint32_t>(h.n_embd));
  w.set_u32(p + "block_count", static_cast<uint32_t>(h.n_layer));
  w.set_u32(p + "feed_forward_length", static_cast<uint32_t>(h.n_ff));
  w.set_u32(p + "attention.head_count", static_cast<uint32_t>(h.n_head));
  w.set_u32(p + "attention.head_count_kv", static_cast<uint32_t>(h.n_head_kv));
  if (h.head_dim * h.n_head != h.n_embd) {
    w.set_u32(p + "attention.key_length", static_cast<uint32_t>(h.head_dim));
    w.set_u32(p + "attention.value_length", static_cast<uint32_t>(h.head_dim));
  }
  w.set_u32(p + "vocab_size", static_cast<uint32_t>(h.n_vocab));
  if (s.arch.norm == NormKind::RMSNorm)
    w.set_f32(p + "attention.layer_norm_rms_epsilon", h.norm_eps);
  else
    w.set_f32(p + "attention.layer_norm_epsilon", h.norm_eps);
  if (s.arch.pos == PosKind::Rope) {
    w.set_f32(p + "rope.freq_base", h.rope_theta);
    w.set_u32(p + "rope.dimension_count", static_cast<uint32_t>(h.rope_dim));
  }
  if (s.arch.name == "opt") {
    w.set_bool("opt.pre_norm", s.arch.pre_norm);
    if (h.n_embd_io != h.n_embd)
      w.set_u32("opt.word_embed_proj_dim", static_cast<uint32_t>(h.n_embd_io));
  }
}

// Ids of added tokens that are not special (GGUF's "user defined" type).
std::set<int32_t> user_defined_ids(const json& tj, const json& tc) {
  std::set<int32_t> out;
  if (tj.contains("added_tokens") && tj["added_tokens"].is_array())
    for (const auto& t : tj["added_tokens"])
      if (t.is_object() && t.contains("id") && t["id"].is_number_integer() &&
          !t.value("special", false))
        out.insert(t["id"].get<int32_t>());
  if (tc.contains("added_tokens_decoder") && tc["added_tokens_decoder"].is_object())
    for (const auto& [k, t] : tc["added_tokens_decoder"].items()) {
      if (!t.is_object() || t.value("special", false)) continue;
      try {
        out.insert(std::stoi(k));
      } catch (const std::exception&) {
      }
    }
  return out;
}

using Merge = std::pair<std::string, std::string>;

std::vector<Merge> merges_of_json(const json& model) {
  std::vector<Merge> out;
  if (!model.contains("merges") || !model["merges"].is_array()) return out;
  for (const auto& x : model["merges"]) {
    Merge ab;
    if (x.is_string()) {
      if (split_merge(x.get<std::string>(), ab)) out.push_back(std::move(ab));
    } else if (x.is_array() && x.size() == 2 && x[0].is_string() && x[1].is_string()) {
      out.emplace_back(x[0].get<std::string>(), x[1].get<std::string>());
    }
  }
  return out;
}

std::vector<Merge> merges_of_txt(const std::string& path) {
  std::vector<Merge> out;
  const std::string text = read_text_file(path);
  size_t line_no = 0;
  for (size_t i = 0; i < text.size();) {
    size_t e = text.find('\n', i);
    if (e == std::string::npos) e = text.size();
    std::string_view line(text.data() + i, e - i);
    i = e + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.starts_with("#version"))) continue;
    Merge ab;
    if (split_merge(line, ab)) out.push_back(std::move(ab));
  }
  return out;
}

// The GGUF pre-tokenizer name for a byte-level tokenizer.json, or a failure naming what GGUF
// cannot express.
std::string gguf_pre_name(const json& tj, const std::string& where) {
  if (tj.contains("normalizer") && !tj["normalizer"].is_null())
    fail("{}: a byte-level BPE with a normalizer cannot be written as a GGUF tokenizer", where);
  const json pre = tj.value("pre_tokenizer", json());
  auto byte_level = [&](const json& p, bool want_regex) {
    return p.is_object() && p.value("type", "") == "ByteLevel" &&
           p.value("use_regex", true) == want_regex;
  };
  auto prefix = [&](const json& p) {
    if (p.value("add_prefix_space", false))
      fail("{}: ByteLevel add_prefix_space=true cannot be written as a GGUF tokenizer", where);
  };
  if (byte_level(pre, true)) {
    prefix(pre);
    return "gpt-2";
  }
  if (pre.is_object() && pre.value("type", "") == "Sequence" && pre.contains("pretokenizers") &&
      pre["pretokenizers"].size() == 2) {
    const json& split = pre["pretokenizers"][0];
    const json& bl = pre["pretokenizers"][1];
    if (split.value("type", "") == "Split" && byte_level(bl, false) && split.contains("pattern") &&
        split["pattern"].contains("Regex") && split.value("behavior", "Isolated") == "Isolated" &&
        !split.value("invert", false)) {
      prefix(bl);
      const std::string re = split["pattern"]["Regex"].get<std::string>();
      const bool ignore_merges = tj.at("model").value("ignore_merges", false);
      if (re == kLlama3Pattern) return ignore_merges ? "llama-bpe" : "dbrx";
      if (re == kQwen2Pattern) return "qwen2";
    }
  }
  fail("{}: this byte-level pre-tokenizer has no GGUF name strata knows (gpt-2, llama-bpe, qwen2)",
       where);
}

// Whether a SentencePiece-style tokenizer.json puts '▁' in front of the text.
bool spm_space_prefix(const json& tj) {
  bool prefix = false;
  std::function<void(const json&)> norm = [&](const json& n) {
    if (!n.is_object()) return;
    const std::string t = n.value("type", "");
    if (t == "Sequence" && n.contains("normalizers"))
      for (const auto& x : n["normalizers"]) norm(x);
    if (t == "Prepend" && n.value("prepend", "") == std::string(kSpmSpace)) prefix = true;
  };
  norm(tj.value("normalizer", json()));
  std::function<void(const json&)> pre = [&](const json& p) {
    if (!p.is_object()) return;
    const std::string t = p.value("type", "");
    if (t == "Sequence" && p.contains("pretokenizers"))
      for (const auto& x : p["pretokenizers"]) pre(x);
    if (t == "Metaspace") {
      const std::string scheme = p.value("prepend_scheme", "");
      prefix = scheme.empty() ? p.value("add_prefix_space", true) : scheme != "never";
    }
  };
  pre(tj.value("pre_tokenizer", json()));
  return prefix;
}

}  // namespace

void export_hf_tokenizer(const std::string& dir, int64_t n_rows, GgufWriter& w,
                         const ExportLog& log) {
  auto tok = Tokenizer::from_hf_dir(dir);
  const bool has_json = file_exists(dir + "/tokenizer.json");
  const json tj = has_json ? read_json_or_empty(dir + "/tokenizer.json") : json::object();
  const json tc = read_json_or_empty(dir + "/tokenizer_config.json");
  const std::set<int32_t> user = user_defined_ids(tj, tc);
  const bool spm = tok->kind() == TokenizerKind::SentencePieceBpe;

  std::vector<Merge> merges;
  if (has_json)
    merges = merges_of_json(tj.at("model"));
  else
    merges = merges_of_txt(dir + "/merges.txt");

  const int32_t n_tok = tok->n_vocab();
  const int64_t total = std::max<int64_t>(n_tok, n_rows);
  if (n_tok > n_rows)
    log(fmt::format("warning: the tokenizer has {} tokens but the embedding only {} rows", n_tok,
                    n_rows));
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  tokens.reserve(static_cast<size_t>(total));
  types.reserve(static_cast<size_t>(total));
  int64_t padded = 0;
  for (int64_t i = 0; i < total; ++i) {
    const auto id = static_cast<int32_t>(i);
    std::string text = i < n_tok ? tok->token_text(id) : "";
    TokenType t = TokenType::Normal;
    if (text.empty()) {
      text = fmt::format("[PAD{}]", i);
      t = TokenType::Unused;
      ++padded;
    } else if (spm && id == tok->unk()) {
      t = TokenType::Unknown;
    } else if (tok->is_special(id)) {
      t = TokenType::Control;
    } else if (user.count(id)) {
      t = TokenType::UserDefined;
    } else if (spm && parse_byte_token(text)) {
      t = TokenType::Byte;
    }
    tokens.push_back(std::move(text));
    types.push_back(static_cast<int32_t>(t));
  }
  if (padded) log(fmt::format("tokenizer: {} unused ids written as [PAD<id>]", padded));

  w.set_str("tokenizer.ggml.model", spm ? "llama" : "gpt2");
  if (spm) {
    // score(t) = -(rank of the first merge producing t); tokens no merge produces score below
    // all of those, in id order.
    std::unordered_map<std::string, size_t> first_rank;
    for (size_t r = 0; r < merges.size(); ++r)
      first_rank.emplace(merges[r].first + merges[r].second, r);
    std::vector<float> scores(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
      auto it = first_rank.find(tokens[i]);
      scores[i] = it != first_rank.end() ? -static_cast<float>(it->second)
                                         : -static_cast<float>(merges.size() + i);
    }
    w.set_strs("tokenizer.ggml.tokens", tokens);
    w.set_f32s("tokenizer.ggml.scores", scores);
    w.set_i32s("tokenizer.ggml.token_type", types);
    w.set_bool("tokenizer.ggml.add_space_prefix", has_json ? spm_space_prefix(tj) : true);
  } else {
    const std::string pre = has_json ? gguf_pre_name(tj, dir + "/tokenizer.json") : "gpt-2";
    if (!has_json && tc.value("add_prefix_space", false))
      fail("{}: add_prefix_space=true cannot be written as a GGUF tokenizer", dir);
    std::vector<std::string> m;
    m.reserve(merges.size());
    for (const auto& [a, b] : merges) {
      if (a.find(' ') != std::string::npos || b.find(' ') != std::string::npos)
        fail("{}: merge ('{}', '{}') has a space inside a token; GGUF merges cannot hold it", dir,
             a, b);
      m.push_back(a + " " + b);
    }
    w.set_str("tokenizer.ggml.pre", pre);
    w.set_strs("tokenizer.ggml.tokens", tokens);
    w.set_i32s("tokenizer.ggml.token_type", types);
    w.set_strs("tokenizer.ggml.merges", m);
  }
  auto id_key = [&](const char* k, int32_t id) {
    if (id >= 0) w.set_u32(k, static_cast<uint32_t>(id));
  };
  id_key("tokenizer.ggml.bos_token_id", tok->bos());
  id_key("tokenizer.ggml.eos_token_id", tok->eos());
  id_key("tokenizer.ggml.unknown_token_id", tok->unk());
  id_key("tokenizer.ggml.padding_token_id", tok->pad());
  for (int32_t id : tok->eos_ids())
    if (id != tok->eos()) {
      id_key("tokenizer.ggml.eot_token_id", id);
      break;
    }
  w.set_bool("tokenizer.ggml.add_bos_token", tok->add_bos_default());
  w.set_bool("tokenizer.ggml.add_eos_token", false);
  if (!tok->chat_template().empty()) w.set_str("tokenizer.chat_template", tok->chat_template());
}

void export_metadata(const Model& m, GgufWriter& w, const ExportLog& log) {
  const ModelFiles& f = m.files();
  if (f.kind == ModelFiles::Kind::Gguf) {
    for (const auto& k : f.gguf->keys()) {
      if (k == "general.file_type" || k == "general.quantization_version" ||
          k == "general.alignment")
        continue;
      w.set(k, f.gguf->at(k));
    }
    return;
  }
  export_hparams(m, w);
  export_hf_tokenizer(f.path, m.hp().n_vocab, w, log);
}

std::vector<std::string> compare_specs(const ModelSpec& a, const ModelSpec& b) {
  std::vector<std::string> d;
  auto eq = [&](const char* what, auto x, auto y) {
    if (x != y) d.push_back(fmt::format("{}: {} vs {}", what, x, y));
  };
  eq("architecture", a.arch.name, b.arch.name);
  eq("norm", static_cast<int>(a.arch.norm), static_cast<int>(b.arch.norm));
  eq("positions", static_cast<int>(a.arch.pos), static_cast<int>(b.arch.pos));
  eq("activation", static_cast<int>(a.arch.act), static_cast<int>(b.arch.act));
  eq("gated ffn", a.arch.gated_ffn, b.arch.gated_ffn);
  eq("pre-norm", a.arch.pre_norm, b.arch.pre_norm);
  eq("embedding norm", a.arch.embd_norm, b.arch.embd_norm);
  eq("fused qkv", static_cast<int>(a.arch.qkv), static_cast<int>(b.arch.qkv));
  eq("position offset", a.arch.learned_pos_offset, b.arch.learned_pos_offset);
  const HParams &x = a.hp, &y = b.hp;
  eq("n_vocab", x.n_vocab, y.n_vocab);
  eq("n_embd", x.n_embd, y.n_embd);
  eq("n_embd_io", x.n_embd_io, y.n_embd_io);
  eq("n_layer", x.n_layer, y.n_layer);
  eq("n_head", x.n_head, y.n_head);
  eq("n_head_kv", x.n_head_kv, y.n_head_kv);
  eq("head_dim", x.head_dim, y.head_dim);
  eq("n_ff", x.n_ff, y.n_ff);
  eq("n_ctx_train", x.n_ctx_train, y.n_ctx_train);
  if (std::fabs(x.norm_eps - y.norm_eps) > 1e-6f * std::fabs(x.norm_eps))
    eq("norm_eps", x.norm_eps, y.norm_eps);
  if (a.arch.pos == PosKind::Rope) {
    eq("rope_dim", x.rope_dim, y.rope_dim);
    if (std::fabs(x.rope_theta - y.rope_theta) > 1e-6f * x.rope_theta)
      eq("rope_theta", x.rope_theta, y.rope_theta);
  }
  return d;
}

std::string compare_tokenizers(const Tokenizer& want, const Tokenizer& got) {
  std::vector<std::string> probes = {
      "Once upon a time, there was a little girl named Lily.",
      "Hello world! How are you doing today?",
      " leading space and  double  spaces",
      "numbers 1234567 and 3.14, symbols #@!$%^&*()",
      "unicode: caf\xC3\xA9 na\xC3\xAFve \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xF0\x9F\x99\x82",
      "line one\nline two\n\n\ttabbed",
      "def fibonacci(n):\n    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)",
      "The capital of France is Paris. It's what they'd say, isn't it?",
  };
  for (int32_t id : {want.bos(), want.eos(), want.unk()})
    if (id >= 0) probes.push_back("a " + want.token_text(id) + " b");
  if (want.bos() != got.bos() || want.eos() != got.eos())
    return fmt::format("bos/eos differ: {}/{} vs {}/{}", want.bos(), want.eos(), got.bos(),
                       got.eos());
  if (want.add_bos_default() != got.add_bos_default()) return "whether BOS is added differs";
  for (const auto& p : probes) {
    const auto a = want.encode(p, want.add_bos_default(), true);
    const auto b = got.encode(p, got.add_bos_default(), true);
    if (a != b)
      return fmt::format("'{}' encodes as [{}] but as [{}] after conversion", p, fmt::join(a, ","),
                         fmt::join(b, ","));
    if (want.decode(a) != got.decode(b))
      return fmt::format("'{}' decodes differently after conversion", p);
  }
  return "";
}

}  // namespace strata

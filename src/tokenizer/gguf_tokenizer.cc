// Tokenizer::from_gguf: the tokenizer.ggml.* metadata of a GGUF file.
#include <cmath>

#include "core/error.h"
#include "core/log.h"
#include "tokenizer/bpe_encoder.h"
#include "tokenizer/spm_bpe.h"
#include "tokenizer/tokenizer.h"

namespace strata {
namespace {

bool is_int(GgufType t) {
  return t == GgufType::U8 || t == GgufType::I8 || t == GgufType::U16 || t == GgufType::I16 ||
         t == GgufType::U32 || t == GgufType::I32 || t == GgufType::U64 || t == GgufType::I64 ||
         t == GgufType::BOOL;
}

// A token id key, or -1 when absent or outside [0, n) (GGUF writers use 0xFFFFFFFF for "none").
int32_t token_id_key(const GgufFile& f, const std::string& key, int32_t n) {
  const GgufValue* v = f.find(key);
  if (!v) return -1;
  if (!is_int(v->type))
    fail("{}: '{}' should be an integer token id, is {}", f.path(), key, gguf_type_name(v->type));
  return v->i >= 0 && v->i < n ? static_cast<int32_t>(v->i) : -1;
}

// An array key that must have one entry per token; nullptr if absent.
const GgufValue* per_token_array(const GgufFile& f, const std::string& key, size_t n, bool floats) {
  const GgufValue* v = f.find(key);
  if (!v) return nullptr;
  if (!v->is_array())
    fail("{}: '{}' should be an array, is {}", f.path(), key, gguf_type_name(v->type));
  const bool ok = floats ? (v->elem == GgufType::F32 || v->elem == GgufType::F64) : is_int(v->elem);
  if (!ok) fail("{}: '{}' has elements of type {}", f.path(), key, gguf_type_name(v->elem));
  if (v->array_size() != n)
    fail("{}: '{}' has {} entries but tokenizer.ggml.tokens has {}", f.path(), key, v->array_size(),
         n);
  return v;
}

const char* gguf_pre_pattern(const std::string& pre, bool* ignore_merges) {
  *ignore_merges = false;
  if (pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "smaug-bpe") {
    *ignore_merges = true;
    return kLlama3Pattern;
  }
  if (pre == "dbrx") return kLlama3Pattern;
  if (pre == "qwen2" || pre == "deepseek-r1-qwen") return kQwen2Pattern;
  if (pre != "default" && pre != "gpt-2" && pre != "gpt2" && !pre.empty())
    spdlog::warn("tokenizer: pre-tokenizer '{}' is not known; using GPT-2's", pre);
  return kGpt2Pattern;
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile& f) {
  const std::string& path = f.path();
  if (!f.has("tokenizer.ggml.model"))
    fail("{}: no tokenizer in this file (tokenizer.ggml.model missing)", path);
  const std::string model = f.get_str("tokenizer.ggml.model");
  if (model != "llama" && model != "gpt2")
    fail("{}: tokenizer.ggml.model '{}' is not supported (only 'llama' and 'gpt2')", path, model);
  if (!f.has("tokenizer.ggml.tokens")) fail("{}: tokenizer.ggml.tokens missing", path);
  const std::vector<std::string>& tokens = f.get_strs("tokenizer.ggml.tokens");
  if (tokens.empty()) fail("{}: tokenizer.ggml.tokens is empty", path);
  if (static_cast<int64_t>(tokens.size()) > kMaxVocab)
    fail("{}: tokenizer.ggml.tokens has {} entries (max {})", path, tokens.size(), kMaxVocab);
  const auto n = static_cast<int32_t>(tokens.size());
  const GgufValue* types = per_token_array(f, "tokenizer.ggml.token_type", tokens.size(), false);
  const GgufValue* scores = per_token_array(f, "tokenizer.ggml.scores", tokens.size(), true);

  Parts p;
  p.vocab.reserve_ids(n);
  for (int32_t i = 0; i < n; ++i) {
    TokenType t = TokenType::Normal;
    if (types) {
      const int64_t v = types->ints[static_cast<size_t>(i)];
      if (v >= 1 && v <= 6) t = static_cast<TokenType>(v);  // unknown values: a normal token
    }
    p.vocab.set(i, tokens[static_cast<size_t>(i)], t);
  }
  if (scores) {
    p.vocab.scores.reserve(tokens.size());
    for (double s : scores->floats)  // NaN would break the merge order: treat it as "never"
      p.vocab.scores.push_back(std::isnan(s) ? -INFINITY : static_cast<float>(s));
  }
  for (int32_t i = 0; i < n; ++i) {
    const TokenType t = p.vocab.type(i);
    if (t == TokenType::Control || t == TokenType::Unknown || t == TokenType::UserDefined)
      p.specials.add({p.vocab.text(i), i, t == TokenType::UserDefined, false, false});
  }

  p.bos = token_id_key(f, "tokenizer.ggml.bos_token_id", n);
  p.eos = token_id_key(f, "tokenizer.ggml.eos_token_id", n);
  p.unk = token_id_key(f, "tokenizer.ggml.unknown_token_id", n);
  p.pad = token_id_key(f, "tokenizer.ggml.padding_token_id", n);
  for (const char* k : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"})
    if (int32_t id = token_id_key(f, k, n); id >= 0) p.eos_ids.push_back(id);
  for (int32_t id : find_end_of_turn_tokens(p.vocab)) p.eos_ids.push_back(id);
  p.chat_template = f.get_str("tokenizer.chat_template", "");

  if (model == "llama") {
    p.kind = TokenizerKind::SentencePieceBpe;
    p.vocab.index_byte_tokens();
    if (!p.vocab.has_byte_tokens()) {  // older files without token types: go by the text
      for (int32_t i = 0; i < n; ++i)
        if (p.vocab.type(i) == TokenType::Normal && parse_byte_token(p.vocab.text(i)))
          p.vocab.set_type(i, TokenType::Byte);
      p.vocab.index_byte_tokens();
    }
    if (p.unk < 0)
      for (int32_t i = 0; i < n && p.unk < 0; ++i)
        if (p.vocab.type(i) == TokenType::Unknown) p.unk = i;
    const bool prefix = f.get_bool("tokenizer.ggml.add_space_prefix", true);
    p.strip_leading_space = prefix;
    p.add_bos = f.get_bool("tokenizer.ggml.add_bos_token", true);
    const int32_t unk = p.unk;
    p.make_model = [prefix, unk](const Vocab& v) {
      return std::make_unique<SpmScoreEncoder>(v, prefix, unk);
    };
  } else {
    p.kind = TokenizerKind::BytePairGpt2;
    if (!f.has("tokenizer.ggml.merges"))
      fail("{}: gpt2 tokenizer without tokenizer.ggml.merges", path);
    std::vector<std::pair<std::string, std::string>> merges;
    size_t bad = 0;
    for (const std::string& m : f.get_strs("tokenizer.ggml.merges")) {
      std::pair<std::string, std::string> ab;
      if (split_merge(m, ab))
        merges.push_back(std::move(ab));
      else
        ++bad;
    }
    if (bad) spdlog::warn("{}: {} malformed entries in tokenizer.ggml.merges ignored", path, bad);
    bool ignore_merges = false;
    const char* pattern =
        gguf_pre_pattern(f.get_str("tokenizer.ggml.pre", "default"), &ignore_merges);
    p.add_bos = f.get_bool("tokenizer.ggml.add_bos_token", false);
    const int32_t unk = p.unk;
    p.make_model = [merges = std::move(merges), pattern, ignore_merges, unk, path](const Vocab& v) {
      PreTokenizer pre;
      pre.add(std::make_unique<RegexSplitter>(pattern));
      BpeOptions opt;
      opt.byte_level = true;
      opt.ignore_merges = ignore_merges;
      opt.unk = unk;
      auto enc = std::make_unique<BpeEncoder>(v, merges, std::move(pre), opt);
      if (enc->skipped_merges())
        spdlog::warn("{}: {} merges name tokens that are not in the vocabulary; ignored", path,
                     enc->skipped_merges());
      return enc;
    };
  }
  return std::make_unique<Tokenizer>(std::move(p));
}

}  // namespace strata

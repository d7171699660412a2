#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "core/error.h"
#include "tokenizer/bpe_gpt2.h"
#include "tokenizer/spm_bpe.h"

namespace strata {

Tokenizer::Tokenizer(Parts p)
    : kind_(p.kind),
      vocab_(std::move(p.vocab)),
      specials_(std::move(p.specials)),
      add_bos_(p.add_bos),
      strip_leading_space_(p.strip_leading_space),
      chat_template_(std::move(p.chat_template)) {
  if (!p.make_model) fail("tokenizer: internal error: no subword model");
  model_ = p.make_model(vocab_);
  const auto check = [&](int32_t id) { return vocab_.valid(id) ? id : -1; };
  bos_ = check(p.bos);
  eos_ = check(p.eos);
  unk_ = check(p.unk);
  pad_ = check(p.pad);
  if (eos_ >= 0) eos_ids_.push_back(eos_);
  for (int32_t id : p.eos_ids)
    if (vocab_.valid(id) && std::find(eos_ids_.begin(), eos_ids_.end(), id) == eos_ids_.end())
      eos_ids_.push_back(id);
}

Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::from_model_files(const ModelFiles& m) {
  if (m.kind == ModelFiles::Kind::Gguf) {
    if (!m.gguf) fail("{}: model files have no GGUF header loaded", m.path);
    return from_gguf(*m.gguf);
  }
  return from_hf_dir(m.path);
}

std::string Tokenizer::kind_name() const {
  return kind_ == TokenizerKind::BytePairGpt2 ? "gpt2 byte-level BPE" : "llama SentencePiece BPE";
}

bool Tokenizer::is_eos(int32_t id) const {
  return std::find(eos_ids_.begin(), eos_ids_.end(), id) != eos_ids_.end();
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos,
                                       bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos && bos_ >= 0) out.push_back(bos_);
  if (text.empty()) return out;
  // Symbol offsets inside the merge loops are 32-bit.
  if (text.size() > (size_t{1} << 31))
    fail("tokenizer: text of {} bytes is too long to encode", text.size());
  if (specials_.empty()) {
    model_->encode(text, true, out);
    return out;
  }
  for (const Fragment& f : specials_.split(text, parse_special)) {
    if (f.token >= 0)
      out.push_back(f.token);
    else
      model_->encode(f.text, f.text.data() == text.data(), out);
  }
  return out;
}

void Tokenizer::append_piece(int32_t id, bool skip_special, bool& at_start,
                             std::string& out) const {
  if (!vocab_.valid(id)) return;
  const size_t before = out.size();
  const std::string& t = vocab_.text(id);
  const bool special = vocab_.special(id);
  if (special) {
    if (skip_special) return;
    out.append(t);
  } else {
    switch (vocab_.type(id)) {
      case TokenType::Byte:
        if (auto b = parse_byte_token(t))
          out.push_back(static_cast<char>(*b));
        else
          out.append(t);
        break;
      case TokenType::UserDefined:
      case TokenType::Control:
      case TokenType::Unknown:
        out.append(t);
        break;
      case TokenType::Unused:
        break;
      case TokenType::Normal:
        if (kind_ == TokenizerKind::BytePairGpt2) {
          ByteLevelMap::get().decode(t, out);
        } else {
          for (size_t i = 0; i < t.size();) {
            if (std::string_view(t).substr(i).starts_with(kSpmSpace)) {
              out.push_back(' ');
              i += kSpmSpace.size();
            } else {
              out.push_back(t[i++]);
            }
          }
        }
        break;
    }
  }
  if (at_start && out.size() > before) {
    at_start = false;
    if (strip_leading_space_ && !special && out[before] == ' ') out.erase(before, 1);
  }
}

std::string Tokenizer::token_piece(int32_t id) const {
  std::string s;
  bool at_start = false;
  append_piece(id, false, at_start, s);
  return s;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string s;
  bool at_start = true;
  for (int32_t id : ids) append_piece(id, skip_special, at_start, s);
  return s;
}

const std::string& Tokenizer::token_text(int32_t id) const {
  if (!vocab_.valid(id))
    fail("tokenizer: token id {} is outside the vocabulary (0..{})", id, n_vocab() - 1);
  return vocab_.text(id);
}

std::optional<int32_t> Tokenizer::token_id(const std::string& text) const {
  const int32_t id = vocab_.find(text);
  if (id < 0) return std::nullopt;
  return id;
}

}  // namespace strata

#include "tokenizer/vocab.h"

#include <algorithm>

#include "core/error.h"

namespace strata {

void Vocab::reserve_ids(int64_t n) {
  if (n < 0 || n > kMaxVocab)
    fail("tokenizer: vocabulary size {} is out of range (max {})", n, kMaxVocab);
  if (n <= size()) return;
  const auto un = static_cast<size_t>(n);
  text_.resize(un);
  type_.resize(un, TokenType::Unused);
  special_.resize(un, 0);
}

void Vocab::set(int32_t id, std::string text, TokenType type) {
  if (id < 0 || id >= kMaxVocab) fail("tokenizer: token id {} is out of range", id);
  reserve_ids(int64_t{id} + 1);
  ids_.emplace(text, id);  // keeps the first id for a duplicated text
  text_[static_cast<size_t>(id)] = std::move(text);
  set_type(id, type);
}

void Vocab::set_type(int32_t id, TokenType type) {
  type_[static_cast<size_t>(id)] = type;
  special_[static_cast<size_t>(id)] = type == TokenType::Control || type == TokenType::Unknown;
}

void Vocab::set_special(int32_t id, bool special) {
  if (valid(id)) special_[static_cast<size_t>(id)] = special;
}

void Vocab::index_byte_tokens() {
  byte_ids_.fill(-1);
  n_byte_tokens_ = 0;
  for (int32_t id = 0; id < size(); ++id) {
    if (type(id) != TokenType::Byte) continue;
    const auto b = parse_byte_token(text(id));
    if (!b || byte_ids_[*b] >= 0) continue;
    byte_ids_[*b] = id;
    ++n_byte_tokens_;
  }
}

std::vector<int32_t> find_end_of_turn_tokens(const Vocab& v) {
  static constexpr const char* kNames[] = {
      "<|eot_id|>", "<|im_end|>", "<|end|>",       "<end_of_turn>", "<|end_of_text|>",
      "<|eom_id|>", "<EOT>",      "<|endoftext|>", "</s>",
  };
  std::vector<int32_t> ids;
  for (const char* name : kNames) {
    const int32_t id = v.find(name);
    if (id >= 0 && v.special(id)) ids.push_back(id);
  }
  return ids;
}

std::optional<uint8_t> parse_byte_token(std::string_view t) {
  if (t.size() != 6 || t[0] != '<' || t[1] != '0' || t[2] != 'x' || t[5] != '>')
    return std::nullopt;
  int v = 0;
  for (size_t k = 3; k < 5; ++k) {
    const char c = t[k];
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else
      return std::nullopt;
    v = v * 16 + d;
  }
  return static_cast<uint8_t>(v);
}

void SpecialSplitter::add(Entry e) {
  if (e.text.empty() || !texts_.insert(e.text).second) return;
  const auto first = static_cast<uint8_t>(e.text[0]);
  entries_.push_back(std::move(e));
  const auto k = static_cast<uint32_t>(entries_.size() - 1);
  // Keep each group sorted longest first (stable: equal lengths stay in insertion order).
  auto& group = by_first_[first];
  const size_t len = entries_[k].text.size();
  auto pos = std::upper_bound(group.begin(), group.end(), len,
                              [&](size_t l, uint32_t x) { return l > entries_[x].text.size(); });
  group.insert(pos, k);
}

namespace {
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
}  // namespace

std::vector<Fragment> SpecialSplitter::split(std::string_view text, bool parse_special) const {
  std::vector<Fragment> out;
  size_t start = 0;  // beginning of the pending plain-text run
  size_t i = 0;
  while (i < text.size()) {
    const Entry* hit = nullptr;
    for (uint32_t k : by_first_[static_cast<uint8_t>(text[i])]) {
      const Entry& e = entries_[k];
      if ((e.always || parse_special) && text.substr(i).starts_with(e.text)) {
        hit = &e;
        break;
      }
    }
    if (!hit) {
      ++i;
      continue;
    }
    size_t end = i;
    if (hit->lstrip)
      while (end > start && is_space(text[end - 1])) --end;
    if (end > start) out.push_back({text.substr(start, end - start), -1});
    out.push_back({text.substr(i, hit->text.size()), hit->id});
    i += hit->text.size();
    if (hit->rstrip)
      while (i < text.size() && is_space(text[i])) ++i;
    start = i;
  }
  if (start < text.size()) out.push_back({text.substr(start), -1});
  return out;
}

}  // namespace strata

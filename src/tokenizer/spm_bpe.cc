#include "tokenizer/spm_bpe.h"

#include <queue>
#include <string>
#include <unordered_map>

#include "tokenizer/utf8.h"

namespace strata {

int32_t SpmScoreEncoder::mergeable(std::string_view s) const {
  const int32_t id = vocab_.find(s);
  if (id < 0) return -1;
  // SentencePiece never produces control, unknown, unused or byte pieces from text.
  const TokenType t = vocab_.type(id);
  return (t == TokenType::Normal || t == TokenType::UserDefined) ? id : -1;
}

void SpmScoreEncoder::emit_symbol(std::string_view s, std::vector<int32_t>& out) const {
  if (const int32_t id = mergeable(s); id >= 0) {
    out.push_back(id);
    return;
  }
  for (char c : s) {
    const int32_t b = vocab_.byte_id(static_cast<uint8_t>(c));
    if (b >= 0)
      out.push_back(b);
    else if (unk_ >= 0)
      out.push_back(unk_);
  }
}

bool spm_words_are_independent(const Vocab& v) {
  for (int32_t id = 0; id < v.size(); ++id) {
    if (v.type(id) != TokenType::Normal && v.type(id) != TokenType::UserDefined) continue;
    const std::string& t = v.text(id);
    for (size_t k = t.find(kSpmSpace, 1); k != std::string::npos; k = t.find(kSpmSpace, k + 1))
      if (k < kSpmSpace.size() ||
          std::string_view(t).substr(k - kSpmSpace.size(), kSpmSpace.size()) != kSpmSpace)
        return false;
  }
  return true;
}

void split_spm_words(std::string_view s, std::vector<std::string_view>& out) {
  size_t start = 0;
  const size_t m = kSpmSpace.size();
  for (size_t k = s.find(kSpmSpace, 1); k != std::string_view::npos; k = s.find(kSpmSpace, k + 1)) {
    if (k >= m && s.substr(k - m, m) == kSpmSpace) continue;  // inside a run of '▁'
    out.push_back(s.substr(start, k - start));
    start = k;
  }
  if (start < s.size()) out.push_back(s.substr(start));
}

void SpmScoreEncoder::encode(std::string_view text, bool /*first*/,
                             std::vector<int32_t>& out) const {
  // llama.cpp puts the prefix space in front of every text fragment (also after a special token).
  std::string s;
  s.reserve(text.size() * 3 / 2 + 4);
  if (add_space_prefix_) s.append(kSpmSpace);
  for (char c : text) {
    if (c == ' ')
      s.append(kSpmSpace);
    else
      s.push_back(c);
  }
  if (s.empty()) return;
  if (!by_word_) {
    encode_word(s, out);
    return;
  }
  std::vector<std::string_view> words;
  split_spm_words(s, words);
  // Ids already produced for a word seen earlier in this fragment: [begin, end) of `out`.
  std::unordered_map<std::string_view, std::pair<size_t, size_t>> seen;
  for (std::string_view w : words) {
    const bool cacheable = w.size() <= 64;
    if (cacheable) {
      if (auto it = seen.find(w); it != seen.end()) {
        for (size_t k = it->second.first; k < it->second.second; ++k) {
          const int32_t id = out[k];
          out.push_back(id);
        }
        continue;
      }
    }
    const size_t begin = out.size();
    encode_word(w, out);
    if (cacheable) seen.emplace(w, std::make_pair(begin, out.size()));
  }
}

void SpmScoreEncoder::encode_word(std::string_view s, std::vector<int32_t>& out) const {
  // Symbols are byte ranges of `s`; adjacent live symbols are contiguous, so a merge only
  // extends the left one.
  struct Sym {
    uint32_t start, len;
    int32_t prev, next;
  };
  std::vector<Sym> sym;
  sym.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8::char_len(s, i);
    const auto k = static_cast<int32_t>(sym.size());
    sym.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(n), k - 1, -1});
    if (k > 0) sym[static_cast<size_t>(k - 1)].next = k;
    i += n;
  }
  struct Cand {
    float score;
    int32_t left, right;
    uint32_t len;  // combined length, to recognise entries made stale by other merges
  };
  const auto worse = [](const Cand& a, const Cand& b) {
    return a.score != b.score ? a.score < b.score : a.left > b.left;
  };
  const bool have_scores = !vocab_.scores.empty();
  const auto cand = [&](int32_t l, int32_t r, Cand* c) {
    if (l < 0 || r < 0) return false;
    const Sym& a = sym[static_cast<size_t>(l)];
    const Sym& b = sym[static_cast<size_t>(r)];
    const uint32_t len = a.len + b.len;
    const int32_t id = mergeable(s.substr(a.start, len));
    if (id < 0) return false;
    *c = {have_scores ? vocab_.scores[static_cast<size_t>(id)] : 0.0f, l, r, len};
    return true;
  };
  std::vector<Cand> init;
  Cand c0;
  for (size_t k = 1; k < sym.size(); ++k)
    if (cand(static_cast<int32_t>(k - 1), static_cast<int32_t>(k), &c0)) init.push_back(c0);
  std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> heap(worse, std::move(init));
  const auto push = [&](int32_t l, int32_t r) {
    Cand c;
    if (cand(l, r, &c)) heap.push(c);
  };

  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    Sym& a = sym[static_cast<size_t>(c.left)];
    Sym& b = sym[static_cast<size_t>(c.right)];
    // Stale if either side is gone (len 0) or has grown, or they are no longer neighbours.
    if (a.len == 0 || b.len == 0 || a.next != c.right || a.len + b.len != c.len) continue;
    a.len += b.len;
    b.len = 0;
    a.next = b.next;
    if (b.next >= 0) sym[static_cast<size_t>(b.next)].prev = c.left;
    push(a.prev, c.left);
    push(c.left, a.next);
  }
  for (int32_t k = 0; k >= 0; k = sym[static_cast<size_t>(k)].next) {
    const Sym& x = sym[static_cast<size_t>(k)];
    emit_symbol(s.substr(x.start, x.len), out);
  }
}

}  // namespace strata

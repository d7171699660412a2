#include "tokenizer/bpe_encoder.h"

#include <unordered_map>

#include "tokenizer/bpe_gpt2.h"
#include "tokenizer/spm_bpe.h"
#include "tokenizer/utf8.h"

namespace strata {
namespace {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty() || s.find(from) == std::string::npos) return;
  std::string r;
  r.reserve(s.size());
  size_t i = 0;
  for (size_t j; (j = s.find(from, i)) != std::string::npos; i = j + from.size()) {
    r.append(s, i, j - i);
    r.append(to);
  }
  r.append(s, i);
  s.swap(r);
}

// Pieces longer than this are rare (long runs of one script or of spaces) and not worth caching.
constexpr size_t kMaxCachedPiece = 64;

}  // namespace

bool split_merge(std::string_view line, std::pair<std::string, std::string>& out) {
  const size_t sp = line.find(' ');
  if (sp == std::string_view::npos || sp == 0 || sp + 1 >= line.size()) return false;
  if (line.find(' ', sp + 1) != std::string_view::npos) return false;
  out.first.assign(line.substr(0, sp));
  out.second.assign(line.substr(sp + 1));
  return true;
}

BpeEncoder::BpeEncoder(const Vocab& vocab,
                       const std::vector<std::pair<std::string, std::string>>& merges,
                       PreTokenizer pre, BpeOptions opt)
    : vocab_(vocab), pre_(std::move(pre)), opt_(std::move(opt)) {
  std::string joined;
  for (const auto& [a, b] : merges) {
    joined.assign(a).append(b);
    const int32_t l = vocab_.find(a), r = vocab_.find(b), m = vocab_.find(joined);
    if (l < 0 || r < 0 || m < 0 || a.empty() || b.empty()) {
      ++skipped_;
      continue;
    }
    merges_.add(l, r, m);
  }
  spm_words_ = !opt_.byte_level && pre_.empty() && spm_words_are_independent(vocab_);
  const ByteLevelMap& bl = ByteLevelMap::get();
  for (int b = 0; b < 256; ++b)
    byte_level_ids_[b] = vocab_.find(bl.encode(static_cast<uint8_t>(b)));
}

std::string BpeEncoder::normalize(std::string_view text, bool first) const {
  std::string s(text);
  for (const auto& op : opt_.normalize) {
    if (op.kind == BpeOptions::TextOp::Prepend) {
      if (!s.empty()) s = op.a + s;
    } else {
      replace_all(s, op.a, op.b);
    }
  }
  if (opt_.byte_prefix_space && !s.empty() && s[0] != ' ') s = " " + s;
  if (opt_.metaspace) {
    replace_all(s, " ", opt_.metaspace_char);
    const bool want = opt_.metaspace_prepend == BpeOptions::Prepend::Always ||
                      (opt_.metaspace_prepend == BpeOptions::Prepend::First && first);
    if (want && !s.empty() && !s.starts_with(opt_.metaspace_char)) s = opt_.metaspace_char + s;
  }
  return s;
}

void BpeEncoder::encode(std::string_view text, bool first, std::vector<int32_t>& out) const {
  const std::string norm = normalize(text, first);
  std::vector<std::string_view> pieces;
  if (spm_words_)
    split_spm_words(norm, pieces);
  else
    pieces = pre_.split(norm);
  // Ids already produced for a piece seen earlier in this fragment: [begin, end) of `out`.
  std::unordered_map<std::string_view, std::pair<size_t, size_t>> seen;
  for (std::string_view piece : pieces) {
    if (piece.empty()) continue;
    const bool cacheable = piece.size() <= kMaxCachedPiece;
    if (cacheable) {
      auto it = seen.find(piece);
      if (it != seen.end()) {
        for (size_t k = it->second.first; k < it->second.second; ++k) {
          const int32_t id = out[k];
          out.push_back(id);
        }
        continue;
      }
    }
    const size_t begin = out.size();
    encode_piece(piece, out);
    if (cacheable) seen.emplace(piece, std::make_pair(begin, out.size()));
  }
}

void BpeEncoder::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  std::vector<int32_t> ids;
  ids.reserve(piece.size());
  if (opt_.byte_level) {
    if (opt_.ignore_merges) {
      std::string mapped;
      for (char c : piece) mapped += ByteLevelMap::get().encode(static_cast<uint8_t>(c));
      if (const int32_t id = vocab_.find(mapped); id >= 0) {
        out.push_back(id);
        return;
      }
    }
    for (char c : piece) {
      const int32_t id = byte_level_ids_[static_cast<uint8_t>(c)];
      if (id >= 0)
        ids.push_back(id);
      else if (opt_.unk >= 0)
        ids.push_back(opt_.unk);
      // else: a vocabulary without this byte's character; the byte cannot be represented.
    }
  } else {
    if (opt_.ignore_merges) {
      if (const int32_t id = vocab_.find(piece); id >= 0) {
        out.push_back(id);
        return;
      }
    }
    bool last_unk = false;
    for (size_t i = 0; i < piece.size();) {
      const size_t n = utf8::char_len(piece, i);
      const std::string_view ch = piece.substr(i, n);
      i += n;
      if (const int32_t id = vocab_.find(ch); id >= 0) {
        ids.push_back(id);
        last_unk = false;
        continue;
      }
      bool all_bytes = opt_.byte_fallback;
      for (size_t k = 0; all_bytes && k < ch.size(); ++k)
        all_bytes = vocab_.byte_id(static_cast<uint8_t>(ch[k])) >= 0;
      if (all_bytes) {
        for (char c : ch) ids.push_back(vocab_.byte_id(static_cast<uint8_t>(c)));
        last_unk = false;
      } else if (opt_.unk >= 0) {
        if (!(opt_.fuse_unk && last_unk)) ids.push_back(opt_.unk);
        last_unk = true;
      }
    }
  }
  merges_.apply(ids);
  out.insert(out.end(), ids.begin(), ids.end());
}

}  // namespace strata

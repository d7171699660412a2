#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pretokenizer.h"

#include <pcre2.h>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace strata {
namespace {

pcre2_code* code_of(void* p) {
  return static_cast<pcre2_code*>(p);
}

struct MatchData {
  explicit MatchData(const pcre2_code* c) : md(pcre2_match_data_create_from_pattern(c, nullptr)) {
    if (!md) fail("tokenizer: out of memory creating regex match data");
  }
  ~MatchData() { pcre2_match_data_free(md); }
  pcre2_match_data* md;
};

}  // namespace

RegexSplitter::RegexSplitter(const std::string& pattern, SplitBehavior behavior, bool invert)
    : behavior_(behavior), invert_(invert) {
  int err = 0;
  PCRE2_SIZE err_off = 0;
  // MATCH_INVALID_UTF: arbitrary bytes are allowed in the subject; invalid sequences simply never
  // match, so hostile input cannot make matching fail or read out of bounds.
  pcre2_code* c =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                    PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &err_off, nullptr);
  if (!c) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail("tokenizer: bad pre-tokenizer regex at offset {}: {} (pattern: {})", err_off,
         reinterpret_cast<const char*>(msg), pattern);
  }
  // JIT is only a speed-up; the interpreter gives the same results if JIT is unavailable.
  pcre2_jit_compile(c, PCRE2_JIT_COMPLETE);
  code_ = c;
}

RegexSplitter::~RegexSplitter() {
  pcre2_code_free(code_of(code_));
}

void RegexSplitter::split(std::string_view text, std::vector<std::string_view>& out) const {
  struct Seg {
    std::string_view s;
    bool match;
  };
  std::vector<Seg> segs;
  MatchData m(code_of(code_));
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0, gap = 0;
  while (pos < text.size()) {
    const int rc = pcre2_match(code_of(code_), subject, text.size(), pos, 0, m.md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      fail("tokenizer: regex match failed: {}", reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(m.md);
    size_t b = ov[0], e = ov[1];
    if (e <= b) {  // an empty match: step over one character so the loop always advances
      pos = b + utf8::char_len(text, b);
      continue;
    }
    if (b > gap) segs.push_back({text.substr(gap, b - gap), false});
    segs.push_back({text.substr(b, e - b), true});
    pos = gap = e;
  }
  if (gap < text.size()) segs.push_back({text.substr(gap), false});
  if (invert_)
    for (auto& s : segs) s.match = !s.match;

  std::string_view carry;  // MergedWithNext: a match waiting for the piece after it
  for (size_t k = 0; k < segs.size(); ++k) {
    const Seg& s = segs[k];
    const auto join = [](std::string_view a, std::string_view b) {
      return a.empty() ? b : std::string_view(a.data(), a.size() + b.size());
    };
    switch (behavior_) {
      case SplitBehavior::Isolated:
        out.push_back(s.s);
        break;
      case SplitBehavior::Removed:
        if (!s.match) out.push_back(s.s);
        break;
      case SplitBehavior::MergedWithPrevious:
        if (s.match && k > 0 && !out.empty() && out.back().data() + out.back().size() == s.s.data())
          out.back() = join(out.back(), s.s);
        else
          out.push_back(s.s);
        break;
      case SplitBehavior::MergedWithNext:
        if (s.match) {
          carry = join(carry, s.s);
        } else {
          out.push_back(join(carry, s.s));
          carry = {};
        }
        break;
      case SplitBehavior::Contiguous:
        if (s.match && k > 0 && segs[k - 1].match)
          out.back() = join(out.back(), s.s);
        else
          out.push_back(s.s);
        break;
    }
  }
  if (!carry.empty()) out.push_back(carry);
}

std::string regex_quote(std::string_view literal) {
  std::string r;
  for (char c : literal) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80 && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
      r.push_back('\\');
    r.push_back(c);
  }
  return r;
}

std::vector<std::string_view> PreTokenizer::split(std::string_view text) const {
  std::vector<std::string_view> cur{text}, next;
  for (const auto& s : chain_) {
    next.clear();
    for (auto piece : cur) s->split(piece, next);
    cur.swap(next);
  }
  return cur;
}

}  // namespace strata

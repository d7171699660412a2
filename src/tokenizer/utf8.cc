#include "tokenizer/utf8.h"

namespace strata::utf8 {
namespace {

// Reads the sequence at s[i]: returns how many of its bytes are a well-formed prefix, and sets
// `need` to the full length the lead byte asks for (0 for a byte that cannot start a sequence).
// The ranges for the second byte follow the Unicode well-formedness table (no overlongs, no
// surrogates, nothing above U+10FFFF).
size_t scan(std::string_view s, size_t i, size_t* need) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  uint8_t lo = 0x80, hi = 0xBF;
  size_t n;
  if (b0 < 0x80) {
    *need = 1;
    return 1;
  } else if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    *need = 0;
    return 0;
  }
  *need = n;
  size_t k = 1;
  for (; k < n && i + k < s.size(); ++k) {
    const auto b = static_cast<uint8_t>(s[i + k]);
    const uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) break;
  }
  return k;
}

}  // namespace

size_t valid_len(std::string_view s, size_t i) {
  if (i >= s.size()) return 0;
  size_t need;
  const size_t got = scan(s, i, &need);
  return got == need ? need : 0;
}

size_t incomplete_tail(std::string_view s) {
  // The lead byte of an unfinished sequence is at most 3 bytes from the end.
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    const size_t p = s.size() - back;
    const auto b = static_cast<uint8_t>(s[p]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    size_t need;
    const size_t got = scan(s, p, &need);
    return (got == back && need > back) ? back : 0;
  }
  return 0;
}

void append_sanitized(std::string& out, std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t need;
    const size_t got = scan(s, i, &need);
    if (need != 0 && got == need) {
      out.append(s.substr(i, got));
      i += got;
    } else {
      out.append(kReplacement);
      i += got ? got : 1;
    }
  }
}

void append_codepoint(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

uint32_t decode(std::string_view s, size_t i, size_t n) {
  const auto b = [&](size_t k) { return static_cast<uint32_t>(static_cast<uint8_t>(s[i + k])); };
  switch (n) {
    case 1:
      return b(0);
    case 2:
      return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    case 3:
      return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    default:
      return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  }
}

}  // namespace strata::utf8

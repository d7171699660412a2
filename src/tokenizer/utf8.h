// UTF-8 helpers shared by the tokenizers and the stream decoder. Everything here accepts arbitrary
// bytes: invalid or truncated sequences are reported, never read past the end.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace strata::utf8 {

// Length of the well-formed UTF-8 sequence starting at s[i] (1..4), or 0 when the bytes there are
// not a complete, well-formed sequence (stray continuation byte, overlong form, surrogate, value
// above U+10FFFF, or a sequence cut off by the end of `s`).
size_t valid_len(std::string_view s, size_t i);

// Length of the sequence at s[i] when it is valid, otherwise 1: splits any byte string into
// "characters" where every invalid byte stands alone.
inline size_t char_len(std::string_view s, size_t i) {
  const size_t n = valid_len(s, i);
  return n ? n : 1;
}

// How many bytes at the end of `s` are the beginning of a well-formed sequence that is not yet
// complete (0..3). A streaming decoder holds these back until the next bytes arrive.
size_t incomplete_tail(std::string_view s);

// Appends `s` to `out`, replacing each maximal invalid subpart with U+FFFD.
void append_sanitized(std::string& out, std::string_view s);

void append_codepoint(std::string& out, uint32_t cp);

// Decodes the valid sequence of length n at s[i] (n from valid_len).
uint32_t decode(std::string_view s, size_t i, size_t n);

inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace strata::utf8

// GPT-2's byte-level alphabet: every byte 0..255 is given a printable Unicode character so that
// a byte string becomes a text string BPE can work on (space -> 'Ġ', newline -> 'Ċ', ...).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace strata {

class ByteLevelMap {
 public:
  static const ByteLevelMap& get();
  // UTF-8 of the character byte b stands for.
  const std::string& encode(uint8_t b) const { return enc_[b]; }
  // Appends the bytes a byte-level token text stands for. Characters outside the alphabet (e.g.
  // in hand-added tokens) are copied through unchanged.
  void decode(std::string_view text, std::string& out) const;

 private:
  ByteLevelMap();
  std::array<std::string, 256> enc_;
  std::array<int16_t, 324> dec_;  // code point -> byte, -1 if not in the alphabet (max cp is 323)
};

}  // namespace strata

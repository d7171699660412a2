#include "tokenizer/bpe_gpt2.h"

#include "tokenizer/utf8.h"

namespace strata {

const ByteLevelMap& ByteLevelMap::get() {
  static const ByteLevelMap m;
  return m;
}

ByteLevelMap::ByteLevelMap() {
  // Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves; the others
  // (controls, space, DEL, NBSP, soft hyphen) are given 256, 257, ... in byte order.
  dec_.fill(-1);
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    const uint32_t cp = printable ? b : next++;
    utf8::append_codepoint(enc_[b], cp);
    dec_[cp] = static_cast<int16_t>(b);
  }
}

void ByteLevelMap::decode(std::string_view text, std::string& out) const {
  size_t i = 0;
  while (i < text.size()) {
    const size_t n = utf8::valid_len(text, i);
    if (n == 0) {  // not UTF-8 at all: pass the byte through
      out.push_back(text[i++]);
      continue;
    }
    const uint32_t cp = utf8::decode(text, i, n);
    if (cp < dec_.size() && dec_[cp] >= 0)
      out.push_back(static_cast<char>(dec_[cp]));
    else
      out.append(text.substr(i, n));
    i += n;
  }
}

}  // namespace strata

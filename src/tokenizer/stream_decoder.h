// Incremental detokenization for streaming output. A token can end in the middle of a UTF-8
// character (byte-fallback tokens, GPT-2 byte-level tokens), so bytes that may still become a
// character are held back until the next token completes them. Everything returned is valid
// UTF-8: bytes that can never form a character are replaced by U+FFFD.
#pragma once
#include <string>

#include "tokenizer/tokenizer.h"

namespace strata {

class StreamDecoder {
 public:
  // `t` must outlive the decoder.
  explicit StreamDecoder(const Tokenizer& t, bool skip_special = true)
      : tok_(t), skip_special_(skip_special) {}

  // Text that became complete with this token (possibly empty).
  std::string push(int32_t id);
  // Whatever is still held back; an unfinished character becomes U+FFFD. The decoder can be
  // reused afterwards for a new sequence.
  std::string flush();

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  bool at_start_ = true;
  std::string pending_;
};

}  // namespace strata

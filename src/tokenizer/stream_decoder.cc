#include "tokenizer/stream_decoder.h"

#include "tokenizer/utf8.h"

namespace strata {

std::string StreamDecoder::push(int32_t id) {
  tok_.append_piece(id, skip_special_, at_start_, pending_);
  const size_t keep = utf8::incomplete_tail(pending_);
  std::string out;
  utf8::append_sanitized(out, std::string_view(pending_).substr(0, pending_.size() - keep));
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  utf8::append_sanitized(out, pending_);
  pending_.clear();
  at_start_ = true;
  return out;
}

}  // namespace strata

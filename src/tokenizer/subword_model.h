// The part of a tokenizer that turns plain text (special tokens already cut out) into ids.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

namespace strata {

class SubwordModel {
 public:
  virtual ~SubwordModel() = default;
  // Appends the ids of one fragment of plain text. `first`: the fragment starts the input (some
  // SentencePiece setups add their space prefix only there).
  virtual void encode(std::string_view text, bool first, std::vector<int32_t>& out) const = 0;
};

}  // namespace strata

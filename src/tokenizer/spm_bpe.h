// SentencePiece BPE as llama.cpp runs it on a GGUF "llama" vocabulary: spaces become '▁' (and one
// is put in front), the text is split into characters, and the adjacent pair whose concatenation
// is a token with the highest score is merged (leftmost on ties) until none is left; symbols that
// are not tokens are written as <0xXX> byte tokens.
#pragma once
#include <string_view>
#include <vector>

#include "tokenizer/subword_model.h"
#include "tokenizer/vocab.h"

namespace strata {

// SentencePiece's word-boundary mark, U+2581.
inline constexpr std::string_view kSpmSpace = "\xE2\x96\x81";

// True when no normal token has a '▁' right after a character other than '▁'. Then no merge can
// cross the start of a '▁'-led word, and encoding word by word gives exactly the ids of encoding
// the whole text at once (only much faster: small heaps, and repeated words are cached).
bool spm_words_are_independent(const Vocab& v);
// Cuts `s` before each '▁' that follows a character other than '▁'.
void split_spm_words(std::string_view s, std::vector<std::string_view>& out);

class SpmScoreEncoder : public SubwordModel {
 public:
  // `vocab` (with scores, types and byte tokens indexed) must outlive the encoder.
  SpmScoreEncoder(const Vocab& vocab, bool add_space_prefix, int32_t unk)
      : vocab_(vocab),
        add_space_prefix_(add_space_prefix),
        unk_(unk),
        by_word_(spm_words_are_independent(vocab)) {}
  void encode(std::string_view text, bool first, std::vector<int32_t>& out) const override;

 private:
  void encode_word(std::string_view s, std::vector<int32_t>& out) const;
  // Id of `s` if it is a token text merges may produce, else -1.
  int32_t mergeable(std::string_view s) const;
  void emit_symbol(std::string_view s, std::vector<int32_t>& out) const;

  const Vocab& vocab_;
  bool add_space_prefix_;
  int32_t unk_;
  bool by_word_;
};

}  // namespace strata

// Rank-based BPE as Hugging Face runs it: optional normalization (Prepend / Replace), optional
// Metaspace or byte-level prefix, regex pre-tokenization, then merges by rank on each piece.
// Covers GPT-2-style byte-level BPE (vocab.json + merges.txt, GGUF "gpt2", tokenizer.json with
// ByteLevel) and Llama-style tokenizer.json BPE with byte fallback.
#pragma once
#include <array>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/bpe_merges.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/subword_model.h"
#include "tokenizer/vocab.h"

namespace strata {

struct BpeOptions {
  // Normalizer steps, in order, applied to each fragment.
  struct TextOp {
    enum Kind { Prepend, Replace } kind;
    std::string a, b;  // Prepend: a; Replace: a -> b
  };
  std::vector<TextOp> normalize;

  bool byte_level = false;         // look bytes up through GPT-2's byte alphabet
  bool byte_prefix_space = false;  // ByteLevel add_prefix_space

  // Metaspace pre-tokenizer: spaces become '▁', and a '▁' is put in front per the scheme (its
  // optional split at each '▁' is a splitter in the PreTokenizer).
  enum class Prepend { Never, First, Always };
  bool metaspace = false;
  std::string metaspace_char = "\xE2\x96\x81";
  Prepend metaspace_prepend = Prepend::Always;

  bool byte_fallback = false;  // characters not in the vocabulary -> <0xXX> tokens
  bool fuse_unk = false;       // consecutive unknown characters -> one unk
  bool ignore_merges = false;  // a piece that is itself a token is taken whole
  int32_t unk = -1;
};

class BpeEncoder : public SubwordModel {
 public:
  // `vocab` must outlive the encoder. `merges` are "left right" token texts in rank order;
  // merges naming tokens that are not in the vocabulary are skipped (counted in skipped_merges()).
  BpeEncoder(const Vocab& vocab, const std::vector<std::pair<std::string, std::string>>& merges,
             PreTokenizer pre, BpeOptions opt);

  void encode(std::string_view text, bool first, std::vector<int32_t>& out) const override;
  size_t skipped_merges() const { return skipped_; }
  size_t merge_count() const { return merges_.size(); }

 private:
  std::string normalize(std::string_view text, bool first) const;
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;

  const Vocab& vocab_;
  MergeTable merges_;
  PreTokenizer pre_;
  BpeOptions opt_;
  std::array<int32_t, 256> byte_level_ids_{};  // byte -> id of its byte-level character
  bool spm_words_ = false;  // no pre-tokenizer, but '▁'-led words can be encoded one by one
  size_t skipped_ = 0;
};

// Splits a merges.txt / tokenizer.json merge line "a b" into its two sides; false if malformed.
bool split_merge(std::string_view line, std::pair<std::string, std::string>& out);

}  // namespace strata

// Text <-> token ids for the models strata runs: GPT-2 byte-level BPE and Llama SentencePiece BPE,
// read from GGUF metadata (tokenizer.ggml.*) or from a Hugging Face folder (tokenizer.json, or
// vocab.json + merges.txt, with the config files that name bos/eos and the chat template).
//
// Thread safety: a built Tokenizer is immutable; encode/decode may run concurrently.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "formats/gguf.h"
#include "formats/model_files.h"
#include "tokenizer/subword_model.h"
#include "tokenizer/vocab.h"

namespace strata {

enum class TokenizerKind {
  BytePairGpt2,      // "gpt2 byte-level BPE"
  SentencePieceBpe,  // "llama SentencePiece BPE"
};

class Tokenizer {
 public:
  // All loaders throw strata::Error naming the file and the problem on bad metadata.
  static std::unique_ptr<Tokenizer> from_gguf(const GgufFile& f);
  static std::unique_ptr<Tokenizer> from_hf_dir(const std::string& dir);
  static std::unique_ptr<Tokenizer> from_model_files(const ModelFiles& m);

  TokenizerKind kind() const { return kind_; }
  std::string kind_name() const;
  // Number of token ids the tokenizer knows (may be less than the model's embedding rows).
  int32_t n_vocab() const { return vocab_.size(); }
  int32_t bos() const { return bos_; }  // -1 if none
  int32_t eos() const { return eos_; }
  int32_t unk() const { return unk_; }
  int32_t pad() const { return pad_; }
  // Every id that ends generation: eos, end-of-turn tokens, generation_config's eos list.
  const std::vector<int32_t>& eos_ids() const { return eos_ids_; }
  bool is_eos(int32_t id) const;
  // Whether the model's own tokenizer puts BOS in front of a prompt.
  bool add_bos_default() const { return add_bos_; }

  // parse_special: special/control tokens written as text ("<s>", "<|im_start|>") become their
  // ids; otherwise they are tokenized as ordinary text. User-defined (non-special added) tokens
  // are always recognised. Any bytes are accepted, including invalid UTF-8.
  std::vector<int32_t> encode(std::string_view text, bool add_bos,
                              bool parse_special = false) const;

  // The bytes token `id` decodes to ('▁' -> ' ', <0xAB> -> byte, GPT-2 alphabet -> bytes);
  // special tokens give their text. Ids outside the vocabulary give "".
  std::string token_piece(int32_t id) const;
  // Concatenated pieces; skip_special drops special tokens. SentencePiece: the one space the
  // prefix rule adds in front of the first piece is removed. Unknown ids are ignored.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const;
  // Appends the piece of `id` for incremental decoding; `at_start` is true until the first
  // non-empty piece has been written (the SentencePiece leading-space rule applies there).
  void append_piece(int32_t id, bool skip_special, bool& at_start, std::string& out) const;

  // The vocabulary entry as stored ("Ġhello", "▁the"). Throws for ids outside the vocabulary.
  const std::string& token_text(int32_t id) const;
  std::optional<int32_t> token_id(const std::string& text) const;
  bool is_special(int32_t id) const { return vocab_.valid(id) && vocab_.special(id); }
  const std::string& chat_template() const { return chat_template_; }

  // Loader plumbing (used by the from_* functions).
  struct Parts;
  explicit Tokenizer(Parts parts);
  ~Tokenizer();

 private:
  TokenizerKind kind_;
  Vocab vocab_;
  SpecialSplitter specials_;
  std::unique_ptr<SubwordModel> model_;
  int32_t bos_ = -1, eos_ = -1, unk_ = -1, pad_ = -1;
  std::vector<int32_t> eos_ids_;
  bool add_bos_ = false;
  bool strip_leading_space_ = false;
  std::string chat_template_;
};

// What a loader assembles. The model is built by a factory because it keeps a reference to the
// vocabulary, which only has its final address inside the Tokenizer.
struct Tokenizer::Parts {
  TokenizerKind kind = TokenizerKind::BytePairGpt2;
  Vocab vocab;
  SpecialSplitter specials;
  std::function<std::unique_ptr<SubwordModel>(const Vocab&)> make_model;
  int32_t bos = -1, eos = -1, unk = -1, pad = -1;
  std::vector<int32_t> eos_ids;  // extra end-of-generation ids besides eos
  bool add_bos = false;
  bool strip_leading_space = false;
  std::string chat_template;
};

}  // namespace strata

// Reading Hugging Face tokenizer files: tokenizer.json (BPE model with its normalizer,
// pre-tokenizer, post-processor and decoder), or the older vocab.json + merges.txt pair.
// The config files (tokenizer_config.json etc.) are applied by Tokenizer::from_hf_dir.
#pragma once
#include <string>

#include "tokenizer/tokenizer.h"

namespace strata {

struct HfTokenizerFiles {
  Tokenizer::Parts parts;
  bool has_template = false;  // the post-processor says what goes in front of a sequence
  int32_t template_bos = -1;  // ... and this is the token it puts there (-1: none)
};

// Both throw strata::Error naming the file for anything they cannot use.
HfTokenizerFiles read_tokenizer_json(const std::string& path);
HfTokenizerFiles read_vocab_and_merges(const std::string& vocab_path,
                                       const std::string& merges_path, bool add_prefix_space);

}  // namespace strata

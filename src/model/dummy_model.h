// Random-weight models of real shapes (like FlexGen's dummy weights), written as GGUF, so speed
// work needs no downloads: `strata gen-dummy --arch llama --shape 7b --type q4_0 OUT.gguf`.
// The tokenizer is a synthetic SentencePiece-style vocabulary (specials, 256 byte tokens, filler
// pieces), or copied from another GGUF.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace strata {

struct DummyShape {
  std::string arch, name;
  int64_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
  int64_t n_embd_io = 0;  // OPT-350m's word_embed_proj_dim
  bool pre_norm = true;
};

const std::vector<DummyShape>& dummy_shapes();
DummyShape find_dummy_shape(const std::string& arch, const std::string& shape);

struct DummyOptions {
  DType type = DType::F16;       // type of the matrices
  DType embd_type = DType::F16;  // token embedding and head (mixed policies keep these high)
  uint64_t seed = 1;
  int64_t layers = 0;      // override the layer count (smaller variants)
  std::string vocab_from;  // copy tokenizer.* metadata from this GGUF
  bool progress = true;
};

// Parameters and bytes the file will hold (for messages before writing).
int64_t dummy_parameter_count(const DummyShape& s);
void write_dummy_gguf(const DummyShape& shape, const DummyOptions& opts, const std::string& path);

}  // namespace strata

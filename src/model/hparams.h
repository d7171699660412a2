// Hyper-parameters of a model, read from GGUF metadata or a Hugging Face config.json, and checked
// for consistency (heads divide the width, KV heads divide heads, ...).
#pragma once
#include <cstdint>
#include <string>

#include "formats/model_files.h"
#include "model/arch.h"

namespace strata {

struct HParams {
  int64_t n_vocab = 0;
  int64_t n_embd = 0;     // residual stream width
  int64_t n_embd_io = 0;  // embedding / head width (OPT word_embed_proj_dim); = n_embd usually
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  int64_t n_ff = 0;
  int64_t n_ctx_train = 0;
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  int64_t rope_dim = 0;
  bool tied_head = false;  // set by the loader from what tensors exist

  int64_t q_dim() const { return n_head * head_dim; }
  int64_t kv_dim() const { return n_head_kv * head_dim; }
};

struct ModelSpec {
  ArchSpec arch;
  HParams hp;
};

// Reads architecture and hyper-parameters; the vocabulary size comes from the embedding tensor.
ModelSpec read_model_spec(const ModelFiles& files);

// Parameter count from the tensor index (elements of every tensor).
int64_t count_parameters(const ModelFiles& files);

}  // namespace strata

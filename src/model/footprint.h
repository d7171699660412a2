// Exact byte counts of what a run needs, computed from the tensor index and hyper-parameters
// before anything is loaded: weights, KV cache per token, activations per step.
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "formats/model_files.h"
#include "model/hparams.h"

namespace strata {

struct Footprint {
  uint64_t weight_bytes = 0;        // all tensors as stored
  uint64_t kv_bytes_per_token = 0;  // K and V, all layers
  uint64_t activation_bytes = 0;    // scratch of one forward step of `step_tokens` tokens
  uint64_t logits_bytes = 0;
  uint64_t total(int64_t kv_tokens) const {
    return weight_bytes + kv_bytes_per_token * static_cast<uint64_t>(kv_tokens) + activation_bytes +
           logits_bytes;
  }
};

Footprint compute_footprint(const ModelSpec& spec, const ModelFiles& files, DType kv_dtype,
                            int64_t step_tokens, int64_t logit_rows);

}  // namespace strata

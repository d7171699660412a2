// Named handles to one layer's weights (and the model-wide ones), bound from the WeightStore and
// checked against the hyper-parameters. Optional tensors (biases, a separate head, ...) are null
// when the model has none. Vectors (norm weights, biases) are always f32.
#pragma once
#include "core/tensor.h"
#include "memory/weight_store.h"
#include "model/hparams.h"

namespace strata {

struct GlobalWeights {
  const Tensor* tok_embd = nullptr;
  const Tensor* pos_embd = nullptr;
  const float* embd_norm = nullptr;
  const float* embd_norm_b = nullptr;
  const Tensor* proj_in = nullptr;
  const Tensor* proj_out = nullptr;
  const float* out_norm = nullptr;
  const float* out_norm_b = nullptr;
  const Tensor* output = nullptr;  // = tok_embd when tied
};

struct LayerWeights {
  const float* attn_norm = nullptr;
  const float* attn_norm_b = nullptr;
  const Tensor* wq = nullptr;
  const Tensor* wk = nullptr;
  const Tensor* wv = nullptr;
  const Tensor* wqkv = nullptr;
  const float* bq = nullptr;
  const float* bk = nullptr;
  const float* bv = nullptr;
  const float* bqkv = nullptr;
  const Tensor* wo = nullptr;
  const float* bo = nullptr;
  const float* ffn_norm = nullptr;
  const float* ffn_norm_b = nullptr;
  const Tensor* w_gate = nullptr;
  const float* b_gate = nullptr;
  const Tensor* w_up = nullptr;
  const float* b_up = nullptr;
  const Tensor* w_down = nullptr;
  const float* b_down = nullptr;
};

GlobalWeights bind_global(const ModelSpec& spec, const WeightStore& store);
LayerWeights bind_layer(const ModelSpec& spec, const WeightStore& store, int64_t layer);

// Canonical names of every tensor a layer uses (present in the store), for placement.
std::vector<std::string> layer_tensor_names(const WeightStore& store, int64_t layer);

}  // namespace strata

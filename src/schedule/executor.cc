#include "schedule/executor.h"

#include "model/forward.h"

namespace strata {

Executor::Executor(Model& model, ThreadPool& pool, KvPool& kv)
    : model_(model), pool_(pool), kv_(kv), global_(model.global()) {
  for (int64_t l = 0; l < model.hp().n_layer; ++l) layers_.push_back(model.layer(l));
}

void Executor::forward(const Batch& batch, std::vector<float>& logits) {
  ForwardPass fp(model_.spec(), pool_);
  fp.begin(batch, kv_);
  fp.embed(global_);
  for (int64_t l = 0; l < model_.hp().n_layer; ++l) fp.layer(l, layers_[static_cast<size_t>(l)], kv_);
  fp.head(global_, logits);
}

}  // namespace strata

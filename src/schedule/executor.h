// The executor runs batches through the model layer by layer. It is the only place that knows
// the schedule: where each layer's weights are when it runs, what is prefetched while it runs,
// and in which order micro-batches visit layers. Model code (model/forward.h) only computes.
//
// In-memory mode (every weight resident in RAM) is the plain loop embed -> layers -> head.
#pragma once
#include <memory>
#include <vector>

#include "core/thread_pool.h"
#include "memory/kv_pool.h"
#include "model/batch.h"
#include "model/model.h"

namespace strata {

class Executor {
 public:
  Executor(Model& model, ThreadPool& pool, KvPool& kv);

  // One step for one batch: logits [batch.n_logit_rows(), n_vocab].
  void forward(const Batch& batch, std::vector<float>& logits);

  Model& model() { return model_; }
  KvPool& kv() { return kv_; }
  ThreadPool& pool() { return pool_; }

 private:
  Model& model_;
  ThreadPool& pool_;
  KvPool& kv_;
  GlobalWeights global_;
  std::vector<LayerWeights> layers_;
};

}  // namespace strata

// Test helper: runs a loaded model directly through the executor (no sampling, no tokenizer) to
// get logits at every prompt position and greedy continuations with a KV cache.
#pragma once
#include <memory>
#include <vector>

#include "core/thread_pool.h"
#include "memory/kv_pool.h"
#include "model/model.h"
#include "schedule/executor.h"

namespace strata::test {

class ModelRunner {
 public:
  explicit ModelRunner(const std::string& path, int threads = 2, DType kv = DType::F32);
  Model& model() { return *model_; }
  int64_t n_vocab() const { return model_->hp().n_vocab; }
  // Logits for every position of `ids` ([ids.size(), n_vocab]), fresh cache.
  std::vector<float> all_logits(const std::vector<int32_t>& ids);
  // Greedy continuation: the prompt in one step, then one token per step through the cache.
  std::vector<int32_t> greedy(const std::vector<int32_t>& prompt, int n);

 private:
  std::unique_ptr<Model> model_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<KvPool> kv_;
  std::unique_ptr<Executor> exec_;
};

}  // namespace strata::test

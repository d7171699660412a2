// A model ready to generate under a memory policy: loads the model lazily, measures the baseline,
// decides the placement (explicit --percent, or fitted to --max-ram), checks the predicted peak
// against the budget before any weight is read, then places the weights (resident or streamed)
// and builds the engine. The CLI's run/bench/chat and the server all start here.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/thread_pool.h"
#include "engine/engine.h"
#include "model/model.h"
#include "policy/memory_model.h"
#include "policy/policy.h"
#include "policy/weight_plan.h"
#include "schedule/weight_streamer.h"
#include "tokenizer/tokenizer.h"

namespace strata {

struct RuntimeOptions {
  std::string model;
  int threads = 0;                 // 0: all cores
  int64_t ctx_size = 0;
  DType kv_dtype = DType::F32;
  std::optional<Policy> policy;    // explicit placement (--percent); otherwise fitted or all-RAM
  uint64_t max_ram = 0;            // 0: no budget
  std::string offload_dir;
  int64_t gpu_batch_size = 1, num_gpu_batches = 1;
  bool compress_weight = false, compress_cache = false;
  int64_t prompt_len = 512, gen_len = 128;  // workload the budget is checked for
  int64_t prefill_chunk = 512;
  int staging_depth = 2;
  bool progress = true;
};

class Runtime {
 public:
  static std::unique_ptr<Runtime> open(const RuntimeOptions& o);
  ~Runtime();

  Model& model() { return *model_; }
  const Tokenizer& tokenizer() const { return *tok_; }
  ThreadPool& pool() { return *pool_; }
  Engine& engine() { return *engine_; }
  WeightStreamer* streamer() { return streamer_.get(); }
  const Policy& policy() const { return policy_; }
  const WeightPlan& plan() const { return plan_; }
  const MemoryPrediction& predicted() const { return predicted_; }
  bool offloading() const { return offloading_; }

 private:
  Runtime() = default;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tok_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<WeightStreamer> streamer_;
  std::unique_ptr<Engine> engine_;
  Policy policy_;
  WeightPlan plan_;
  MemoryPrediction predicted_;
  bool offloading_ = false;
};

}  // namespace strata

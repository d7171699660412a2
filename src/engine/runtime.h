// A model ready to generate under a memory policy: loads the model lazily, measures the baseline,
// decides the placement (explicit --percent, or fitted to --max-ram), checks the predicted peak
// against the budget before any weight is read, then places the weights (resident or streamed)
// and builds the engine. run, bench, perplexity and plan start here; chat and serve do when a
// placement is asked for (--max-ram, --percent), otherwise they load the model straight into RAM.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/thread_pool.h"
#include "engine/engine.h"
#include "model/model.h"
#include "policy/cost_model.h"
#include "policy/memory_model.h"
#include "policy/policy.h"
#include "policy/policy_search.h"
#include "policy/profile.h"
#include "policy/weight_plan.h"
#include "schedule/weight_streamer.h"
#include "tokenizer/tokenizer.h"

namespace strata {

struct RuntimeOptions {
  std::string model;
  int threads = 0;  // 0: all cores
  int64_t ctx_size = 0;
  DType kv_dtype = DType::F32;
  std::optional<Policy> policy;  // explicit placement (--percent); otherwise fitted or all-RAM
  uint64_t max_ram = 0;          // 0: no budget
  std::string offload_dir;
  int64_t gpu_batch_size = 1, num_gpu_batches = 1;
  bool compress_weight = false, compress_cache = false;
  int64_t prompt_len = 512, gen_len = 128;  // workload the budget is checked for
  int64_t prefill_chunk = 512;
  int staging_depth = 2;
  bool progress = true;
  bool mmap = false;  // without placement: matrices stay in the mapped file (LoadOptions::mmap)
  // [policy-search] --policy auto (the default): with a budget and no explicit policy, the
  // placement is searched with the machine's hardware profile (policy/policy_search.h);
  // --policy manual keeps the simple fitter (most weights in RAM).
  bool auto_policy = true;
  Objective objective = Objective::Throughput;
  uint64_t max_vram = 0;                   // planning only: this build has no GPU executor
  bool search_batch = false;               // also choose gpu_batch_size x num_gpu_batches
  bool search_compression = false;         // also try compression on and off
  int64_t max_block = 256;                 // largest block the search tries
  std::optional<HardwareProfile> profile;  // injected (tests); otherwise cached or measured once
  bool predict = false;                    // predict the run's cost even for an explicit policy
  // What the memory and cost models are given for these options (`strata plan` and Runtime::open
  // must agree): the workload, a cache of kv_dtype, and the process's RSS measured now.
  Workload workload(DType kv_dtype) const;
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
  // [policy-search] What the search chose and how the cost model sees the run (when a profile was
  // used: --policy auto with a budget, or RuntimeOptions::predict).
  const std::optional<SearchResult>& search() const { return search_; }
  const std::optional<CostPrediction>& prediction() const { return prediction_; }
  const Workload& workload() const { return workload_; }

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
  std::optional<SearchResult> search_;
  std::optional<CostPrediction> prediction_;
  Workload workload_;
};

}  // namespace strata

// Automatic placement (--policy auto), FlexGen's search for strata's executor: for every batch
// shape (gpu_batch_size x num_gpu_batches, powers of two up to max_block) and compression
// setting, a small linear program (GLPK) chooses the fractions of weights, KV cache and
// activations kept in RAM (and on the GPU, when planning for one) that minimise the predicted
// time, with the max() of the overlapped pipeline linearised by auxiliary variables and the
// memory limits from the exact byte counts of memory_model.cc. The LP's fractions are then
// rounded to what the runtime can place (weights by the per-tensor midpoint rule, KV cache by
// whole layers, activations by whole micro-batches), re-checked with predict_memory and stepped
// down until they fit. Candidates are ranked by the exact cost model.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/model.h"
#include "policy/cost_model.h"
#include "policy/memory_model.h"
#include "policy/policy.h"
#include "policy/profile.h"

namespace strata {

enum class Objective { Throughput, Latency };
Objective parse_objective(const std::string& s);  // "throughput" | "latency"
const char* objective_name(Objective o);

struct SearchOptions {
  uint64_t max_ram = 0;   // 0: no RAM budget
  uint64_t max_vram = 0;  // > 0 with gpu: plan for a device
  std::optional<GpuModel> gpu;
  Objective objective = Objective::Throughput;
  int64_t max_block = 256;        // largest gpu_batch_size x num_gpu_batches tried
  int64_t latency_max_block = 4;  // batch sizes the latency objective considers
  // Fixed batch shape (run/serve take theirs from the command line); unset: searched.
  std::optional<int64_t> gpu_batch_size, num_gpu_batches;
  // Compression: unset means both off and on are tried.
  std::optional<bool> compress_weight, compress_cache;
  DType kv_dtype = DType::F32;  // KV cache type without compression
  int threads = 0;
  int runner_ups = 4;
};

struct PolicyChoice {
  Policy policy;
  CostPrediction cost;
  double lp_objective = 0;  // the LP's predicted seconds before rounding
  std::string note;         // how rounding changed it
};

struct SearchResult {
  PolicyChoice best;
  std::vector<PolicyChoice> runner_ups;
  int candidates = 0, feasible = 0;
};

// Throws strata::Error with the numbers when no batch shape fits the budget.
SearchResult search_policy(const Model& model, const Workload& w, const HardwareProfile& prof,
                           const SearchOptions& o);

// One LP for a fixed batch shape and compression (exposed for tests): the placement fractions,
// rounded and checked. nullopt when even everything on disk does not fit.
std::optional<PolicyChoice> solve_placement(const Model& model, const Policy& batch,
                                            const Workload& w, const HardwareProfile& prof,
                                            const SearchOptions& o);

}  // namespace strata

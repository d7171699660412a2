// Exact memory accounting of a run before anything is loaded: every buffer the executor, the
// weight streamer, the KV cache and the forward pass will hold, from the tensor index and the
// policy. `strata plan` prints it; --max-ram is checked against it up front; tests compare it
// with the measured peak RSS.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>

#include "core/dtype.h"
#include "model/model.h"
#include "policy/policy.h"
#include "policy/weight_plan.h"

namespace strata {

struct Workload {
  int64_t prompt_len = 512;
  int64_t gen_len = 32;
  int64_t prefill_chunk = 512;  // prompt tokens per sequence per step
  DType kv_dtype = DType::F32;
  int staging_depth = 2;
  uint64_t baseline_rss = 0;  // process RSS before weights are placed (measured)
  int64_t ctx() const { return prompt_len + gen_len; }
};

struct MemoryPrediction {
  uint64_t baseline = 0;          // process, metadata, tokenizer, norms
  uint64_t resident_weights = 0;  // weights kept in RAM
  uint64_t staging = 0;           // weight staging slots (disk tier)
  uint64_t kv_ram = 0;            // KV blocks of RAM layers
  uint64_t kv_arena = 0;          // staging for disk-tier KV blocks
  uint64_t workspace = 0;         // per-step scratch of the forward pass
  uint64_t hidden = 0;            // residual streams of the micro-batches kept in RAM
  uint64_t logits = 0;
  uint64_t slack = 0;      // allocator and thread overhead present from the start
  uint64_t run_slack = 0;  // per-thread GEMM tiles, OpenBLAS buffers, Q8 activations: the run only
  // [policy-search] Scratch of weight compression while loading: the largest converted tensor's
  // source bytes and one group of rows. Loading ends before the run's buffers exist, so the peak
  // is the larger of the two phases.
  uint64_t convert = 0;
  uint64_t disk_weights = 0, disk_kv = 0;  // on disk (not RAM)
  // The hidden states above are the prefill step's and the KV cache the whole context's, but a
  // step's hidden states are freed with the step: prefill holds its hidden states with the
  // prompt's KV rows, decode the full cache with one token per sequence. This is what the sum
  // counts beyond the larger of the two.
  uint64_t phase_credit = 0;
  uint64_t run_buffers() const {
    return staging + kv_ram + kv_arena + workspace + hidden + logits + run_slack - phase_credit;
  }
  uint64_t total() const {
    return baseline + resident_weights + slack + std::max(convert, run_buffers());
  }
  std::string describe() const;
};

MemoryPrediction predict_memory(const Model& model, const Policy& policy, const WeightPlan& plan,
                                const Workload& w);

// Layers whose KV cache stays in RAM under the policy (the first ones); the rest go to disk.
int64_t kv_ram_layers(const Model& model, const Policy& policy);

// With only a budget: the policy keeping the most weights in RAM (then KV, then activations)
// whose predicted peak fits. Throws strata::Error with the numbers when nothing fits.
Policy fit_policy(const Model& model, Policy base, uint64_t max_ram, const Workload& w);

}  // namespace strata

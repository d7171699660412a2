// The executor runs batches through the model layer by layer. It is the only place that knows
// the schedule: where each layer's weights are when it runs, what is prefetched while it runs,
// and in which order micro-batches visit layers. Model code (model/forward.h) only computes.
//
// FlexGen's zig-zag block schedule: a step's sequences are split into micro-batches; every
// micro-batch runs through layer j before any runs layer j+1, while the weight streamer brings
// layer j+1 up from disk. When every weight is resident this is the plain loop
// embed -> layers -> head with no copies.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "memory/kv_pool.h"
#include "model/batch.h"
#include "model/forward.h"
#include "model/model.h"
#include "schedule/weight_streamer.h"

namespace strata {

struct ExecutorOptions {
  int64_t micro_batch_seqs = 0;        // sequences per micro-batch (gpu_batch_size); 0: one
  WeightStreamer* streamer = nullptr;  // null: every weight resident
  double act_ram_percent = 100;        // micro-batches whose hidden states stay in RAM
  std::string offload_dir;             // for activations placed on disk
  bool progress = false;               // live line for slow (streamed) steps
};

struct StepStats {
  double total_s = 0;    // wall time of the step
  double io_wait_s = 0;  // time blocked waiting for weights
  double compute_s = 0;  // time computing
  uint64_t bytes_read = 0;
  int64_t tokens = 0;
  int64_t micro_batches = 0;
};

class Executor {
 public:
  Executor(Model& model, ThreadPool& pool, KvPool& kv, const ExecutorOptions& opts = {});

  // One step for one batch: logits [batch.n_logit_rows(), n_vocab], in batch order.
  void forward(const Batch& batch, std::vector<float>& logits);

  const StepStats& last_step() const { return last_; }
  Model& model() { return model_; }
  KvPool& kv() { return kv_; }
  ThreadPool& pool() { return pool_; }
  WeightStreamer* streamer() { return opts_.streamer; }
  uint64_t workspace_bytes() const { return ws_.bytes(); }

 private:
  Model& model_;
  ThreadPool& pool_;
  KvPool& kv_;
  ExecutorOptions opts_;
  GlobalWeights global_;
  std::vector<LayerWeights> layers_;
  Workspace ws_;
  StepStats last_;
  int64_t steps_ = 0;
  AlignedBuffer kv_arena_;
  int act_fd_ = -1;
  uint64_t act_bytes_io_ = 0;

  void spill(ForwardPass& fp, size_t k);
  void unspill(ForwardPass& fp, size_t k);
  void run_layer(int j, ForwardPass& fp);

 public:
  ~Executor();
  uint64_t activation_bytes_io() const { return act_bytes_io_; }
};

}  // namespace strata

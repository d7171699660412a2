// Predicted time of a block run (FlexGen's metric: a block of gpu_batch_size x num_gpu_batches
// sequences prefilled together, then decoded gen_len tokens) under a placement policy, from the
// hardware profile. It models what strata's executor does, unit by unit (layers, then the head):
//
//   - the weight streamer prefetches one unit ahead, so a unit's time is
//     max(compute of this unit, disk read of the next unit's streamed weights);
//   - KV-cache layers on disk are staged per micro-batch with synchronous reads and writes, and
//     activations on disk are spilled per micro-batch synchronously: both ADD to the unit;
//   - compute is the CPU path: each matmul at the profiled rate of its weight type for the
//     micro-batch's token count (decode n_tok = gpu_batch_size; prefill n_tok = batch x chunk),
//     attention at the profiled KV-read rate (decode, growing with the context) or FLOP rate
//     (prefill), the fixed cost of each parallel kernel call, elementwise work at RAM speed, and
//     the head (vocab x hidden) every step.
//
// With a GPU model (CostOptions::gpu) the same block runs on a device instead: FlexGen's overlapped
// model, per layer max(compute, host->device, device->host, disk read, disk write), which is for
// planning only — this build has no GPU executor.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "model/model.h"
#include "policy/memory_model.h"
#include "policy/policy.h"
#include "policy/profile.h"
#include "policy/weight_plan.h"

namespace strata {

struct CostOptions {
  int threads = 0;              // compute threads of the run; 0: those the profile measured with
  std::optional<GpuModel> gpu;  // plan for this device
  uint64_t max_vram = 0;
};

// One step's times (seconds). Disk and compute overlap; kv_io and act_io do not.
struct StepCost {
  double compute_s = 0;         // all micro-batches, all units (without synchronous I/O)
  double weight_read_s = 0;     // streamed weights, disk -> RAM
  double kv_io_s = 0;           // KV cache staging (synchronous)
  double act_io_s = 0;          // activation spills (synchronous)
  double h2d_s = 0, d2h_s = 0;  // GPU plans only
  double step_s = 0;            // predicted wall time
};

struct CostPrediction {
  int64_t seqs = 0, prompt_len = 0, gen_len = 0;
  int64_t prefill_steps = 0, decode_steps = 0;
  StepCost prefill;  // all prefill steps together
  StepCost decode;   // the mean decode step
  double prefill_s = 0;
  double decode_step_s = 0;   // = per-token latency of a sequence while decoding
  double total_s = 0;         // prefill + decode steps
  double throughput_tps = 0;  // generated tokens / s = seqs * gen / total
  double latency_s = 0;       // per generated token of one sequence: total / gen
  MemoryPrediction memory;
  uint64_t ram_peak = 0, vram_peak = 0, disk_bytes = 0;
};

// CPU-only (what strata runs here): exact per-unit bytes from the weight plan.
CostPrediction predict_cost(const Model& model, const Policy& policy, const WeightPlan& plan,
                            const Workload& w, const HardwareProfile& prof,
                            const CostOptions& o = {});

// The pieces the policy search linearises, per layer and step, for one batch shape and
// compression setting (placement-independent, or for everything of a kind on disk).
struct LinearCosts {
  double prefill_compute = 0, decode_compute = 0;  // per layer (head spread over the layers)
  double weight_read = 0;                          // per layer with every streamable weight on disk
  double prefill_kv_io = 0, decode_kv_io = 0;      // per layer whose KV cache is on disk
  double prefill_act_io = 0, decode_act_io = 0;    // per layer with every micro-batch spilled
  int64_t prefill_steps = 0, decode_steps = 0;
  int64_t n_layer = 0;
  // GPU plans: bytes per layer and step for the transfer terms.
  double weight_bytes = 0, kv_read_bytes_decode = 0, kv_write_bytes_decode = 0, act_bytes = 0;
  double prefill_gpu_compute = 0, decode_gpu_compute = 0, decode_cpu_attention = 0;
};
LinearCosts linear_costs(const Model& model, const Policy& batch, const Workload& w,
                         const HardwareProfile& prof, const CostOptions& o = {});

// Seconds of one ops::matmul on the CPU (exposed for tests and `strata profile`).
double matmul_seconds(const HardwareProfile& prof, DType type, int64_t rows, int64_t cols,
                      uint64_t bytes, int64_t n_tok, int threads = 0);

// GPU plan (nominal device): the policy's GPU/CPU/disk fractions as they are (not rounded to
// tensors, which this build cannot place on a device).
CostPrediction predict_cost_gpu(const Model& model, const Policy& policy, const Workload& w,
                                const HardwareProfile& prof, const CostOptions& o);

std::string describe(const CostPrediction& c);

}  // namespace strata

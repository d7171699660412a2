// Measurements behind `strata bench`: llama-bench's prompt processing (pp) and text generation
// (tg) rates, and FlexGen's block metric for offloaded runs (a block of sequences prefilled
// together, then decoded step by step, with per-step I/O, compute and overlap times).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/runtime.h"

namespace strata {

// Random prompt tokens that avoid special tokens.
std::vector<int32_t> random_prompt(const Runtime& rt, int64_t n, uint64_t seed);

// Seconds to prefill n tokens of one fresh sequence, `chunk` tokens per step.
double time_prompt(Runtime& rt, int64_t n, int64_t chunk, uint64_t seed);
// Seconds to generate n tokens in each of `seqs` sequences after a 1-token prompt (decode only).
double time_generation(Runtime& rt, int64_t n, int64_t seqs, uint64_t seed);

struct StepTiming {
  double total_s = 0, io_wait_s = 0, compute_s = 0;
  uint64_t bytes_read = 0;
};

struct BlockResult {
  int64_t seqs = 0, prompt_len = 0, gen_len = 0;
  double total_s = 0, prefill_s = 0, decode_s = 0;
  uint64_t disk_bytes = 0;        // weights read from disk over the run
  uint64_t kv_disk_bytes = 0;     // KV cache read + written on disk
  std::vector<StepTiming> steps;  // steps[0] is the prefill
  double throughput() const { return total_s > 0 ? double(seqs * gen_len) / total_s : 0; }
  double decode_throughput() const {
    return decode_s > 0 ? double(seqs * (gen_len - 1)) / decode_s : 0;
  }
  StepTiming mean_decode_step() const;
};

// FlexGen's run: `seqs` random prompts of prompt_len tokens prefilled together, then gen_len
// tokens each. `progress` prints a live line (step, tok/s, disk GB/s).
BlockResult run_block(Runtime& rt, int64_t seqs, int64_t prompt_len, int64_t gen_len,
                      bool progress);

// Bytes of weights a decode step reads (every matrix once; the token embedding only if it is the
// tied head), the numerator of the memory roofline.
uint64_t decode_bytes_per_step(const Model& model);

}  // namespace strata

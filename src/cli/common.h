// Options shared by the commands that load a model and generate.
#pragma once
#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "engine/runtime.h"
#include "engine/sampler.h"

namespace strata::cli {

struct ModelOptions {
  std::string model;
  int threads = 0;  // 0: all cores
  int64_t ctx_size = 0;
  std::string kv_type = "f32";
  bool quiet = false;
  bool mmap = false;  // matrices stay in the mapped file (LoadOptions::mmap)
  // Placement (tiered offloading).
  std::string max_ram, offload_dir;
  std::vector<double> percent;
  int64_t gpu_batch_size = 1, num_gpu_batches = 1;
  bool compress_weight = false, compress_cache = false;
  int staging_depth = 2;
  // [policy-search] --policy auto|manual, --objective, --max-vram, --max-block.
  std::string policy_mode = "auto", objective = "throughput", max_vram;
  int64_t max_block = 256;
  CLI::Option* gbs_opt = nullptr;  // to tell an explicit --gpu-batch-size from the default
  CLI::Option* ngb_opt = nullptr;
  bool batch_given() const {
    return (gbs_opt && gbs_opt->count() > 0) || (ngb_opt && ngb_opt->count() > 0);
  }
  void add(CLI::App* cmd, bool placement = true);
  RuntimeOptions runtime(int64_t prompt_len, int64_t gen_len) const;
  // Whether a placement was asked for (--max-ram or --percent).
  bool placed() const { return !max_ram.empty() || !percent.empty(); }
  // For interactive use (chat, serve): the budget is checked for sequences of the whole context,
  // -c or 2048 tokens, the last quarter of it (at most 256 tokens) generated.
  RuntimeOptions runtime_for_context() const;
};

struct SamplingOptions {
  SamplingParams p;
  int64_t seed = -1;  // -1: random
  void add(CLI::App* cmd);
  SamplingParams params() const;
};

// Keeps glibc from holding freed large buffers (memory budgets are measured as RSS).
void tune_allocator();

// The plain in-memory load (no placement): model, tokenizer, thread pool.
struct Loaded {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ThreadPool> pool;
};
Loaded load_model(const ModelOptions& o);
EngineOptions engine_options(const ModelOptions& o);

}  // namespace strata::cli

#include "cli/common.h"

#include <malloc.h>

#include <algorithm>
#include <random>

#include "core/error.h"
#include "core/progress.h"

namespace strata::cli {

void tune_allocator() {
  // A fixed mmap threshold: buffers over 1 MiB are mapped and returned to the OS on free, instead
  // of glibc raising the threshold and keeping them on the heap.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  mallopt(M_TRIM_THRESHOLD, 4 << 20);
}

void ModelOptions::add(CLI::App* cmd, bool placement) {
  cmd->add_option("-m,--model", model, "Model: a .gguf file or a Hugging Face folder")->required();
  cmd->add_option("-t,--threads", threads, "Threads (default: all cores)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("-c,--ctx-size", ctx_size,
                  "Context size in tokens (default: the model's, at most 4096)")
      ->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--kv-type", kv_type, "KV cache element type: f32 or f16")
      ->check(CLI::IsMember({"f32", "f16"}));
  cmd->add_flag("-q,--quiet", quiet, "No progress output");
  cmd->add_flag("--mmap", mmap,
                "Use the weights from the memory-mapped file instead of reading them into RAM "
                "(starts at once and shares the page cache, but decode is slower on 4 KiB pages)");
  if (!placement) return;
  const char* grp = "Placement (tiered offloading)";
  cmd->add_option("--max-ram", max_ram,
                  "RAM budget, e.g. 8G: peak RSS stays under it; the rest goes to disk")
      ->group(grp);
  cmd->add_option("--offload-dir", offload_dir,
                  "Directory for weights, KV cache and activations placed on disk")
      ->group(grp);
  cmd->add_option("--percent", percent,
                  "FlexGen placement WG WC CG CC AG AC: percent of weights, KV cache, activations "
                  "on GPU and CPU; "
                  "the rest is on disk")
      ->expected(6)
      ->group(grp);
  gbs_opt = cmd->add_option("--gpu-batch-size", gpu_batch_size, "Sequences per micro-batch")
                ->check(CLI::Range(1, 4096))
                ->group(grp);
  ngb_opt = cmd->add_option("--num-gpu-batches", num_gpu_batches,
                            "Micro-batches per block (zig-zag schedule)")
                ->check(CLI::Range(1, 4096))
                ->group(grp);
  cmd->add_flag("--compress-weight", compress_weight,
                "Group-wise 4-bit weights (FlexGen's compression)")
      ->group(grp);
  cmd->add_flag("--compress-cache", compress_cache, "Group-wise 4-bit KV cache")->group(grp);
  cmd->add_option("--staging-depth", staging_depth, "Weight staging slots (2 = double buffering)")
      ->check(CLI::Range(2, 16))
      ->group(grp);
  // [policy-search]
  cmd->add_option(
         "--policy", policy_mode,
         "auto: with --max-ram, search the placement with the machine's measured speeds (strata "
         "plan "
         "shows it); manual: keep the most weights in RAM. An explicit --percent always wins")
      ->check(CLI::IsMember({"auto", "manual"}))
      ->group(grp);
  cmd->add_option("--objective", objective, "What --policy auto optimises: throughput or latency")
      ->check(CLI::IsMember({"throughput", "latency"}))
      ->group(grp);
  cmd->add_option("--max-vram", max_vram,
                  "GPU memory budget, e.g. 16G (planning; needs a GPU build to run)")
      ->group(grp);
  cmd->add_option("--max-block", max_block,
                  "Largest block (gpu-batch-size x num-gpu-batches) the search tries")
      ->check(CLI::Range(1, 4096))
      ->group(grp);
}

RuntimeOptions ModelOptions::runtime(int64_t prompt_len, int64_t gen_len) const {
  if (quiet) Progress::set_enabled(false);
  RuntimeOptions r;
  r.model = model;
  r.threads = threads;
  r.ctx_size = ctx_size;
  r.kv_dtype = kv_type == "f16" ? DType::F16 : DType::F32;
  if (!max_ram.empty()) r.max_ram = parse_bytes(max_ram);
  r.offload_dir = offload_dir;
  if (!percent.empty()) r.policy = parse_percent(percent);
  r.gpu_batch_size = gpu_batch_size;
  r.num_gpu_batches = num_gpu_batches;
  r.compress_weight = compress_weight;
  r.compress_cache = compress_cache;
  r.staging_depth = staging_depth;
  r.prompt_len = prompt_len;
  r.gen_len = gen_len;
  r.progress = !quiet;
  r.mmap = mmap;
  // [policy-search]
  r.auto_policy = policy_mode == "auto";
  r.objective = parse_objective(objective);
  if (!max_vram.empty()) r.max_vram = parse_bytes(max_vram);
  r.max_block = max_block;
  // With a budget, the context is what the workload needs unless the user says otherwise.
  if ((r.max_ram > 0 || r.policy) && r.ctx_size == 0 && prompt_len > 0 && gen_len > 0)
    r.ctx_size = prompt_len + gen_len;
  return r;
}

RuntimeOptions ModelOptions::runtime_for_context() const {
  const int64_t ctx = ctx_size > 0 ? ctx_size : 2048;
  const int64_t gen = std::min<int64_t>(256, ctx / 4);
  RuntimeOptions r = runtime(ctx - gen, gen);
  r.ctx_size = ctx;
  return r;
}

Loaded load_model(const ModelOptions& o) {
  if (o.quiet) Progress::set_enabled(false);
  Loaded l;
  LoadOptions lo;
  lo.progress = !o.quiet;
  lo.mmap = o.mmap;
  l.model = Model::load(o.model, lo);
  l.tokenizer = Tokenizer::from_model_files(l.model->files());
  l.pool = std::make_unique<ThreadPool>(o.threads > 0 ? o.threads : ThreadPool::default_threads());
  return l;
}

EngineOptions engine_options(const ModelOptions& o) {
  EngineOptions e;
  e.ctx_size = o.ctx_size;
  e.kv_dtype = o.kv_type == "f16" ? DType::F16 : DType::F32;
  return e;
}

void SamplingOptions::add(CLI::App* cmd) {
  cmd->add_option("--temp", p.temperature, "Temperature; 0 = greedy")
      ->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--top-k", p.top_k, "Top-k (0 = off)")->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--top-p", p.top_p, "Top-p (1 = off)")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--min-p", p.min_p, "Min-p (0 = off)")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--repeat-penalty", p.repeat_penalty, "Repetition penalty (1 = off)")
      ->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--repeat-last-n", p.repeat_last_n, "Tokens the penalties look back (-1 = all)")
      ->check(CLI::Range(-1, 1 << 30));
  cmd->add_option("--presence-penalty", p.presence_penalty, "Presence penalty")
      ->check(CLI::Range(-2.0, 2.0));
  cmd->add_option("--frequency-penalty", p.frequency_penalty, "Frequency penalty")
      ->check(CLI::Range(-2.0, 2.0));
  cmd->add_option("-s,--seed", seed, "Random seed (-1 = random); same seed, same output");
}

SamplingParams SamplingOptions::params() const {
  SamplingParams out = p;
  out.seed = seed >= 0 ? static_cast<uint64_t>(seed) : std::random_device{}();
  return out;
}

}  // namespace strata::cli

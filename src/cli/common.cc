#include "cli/common.h"

#include <random>

#include "core/error.h"
#include "core/progress.h"

namespace strata::cli {

void ModelOptions::add(CLI::App* cmd) {
  cmd->add_option("-m,--model", model, "Model: a .gguf file or a Hugging Face folder")->required();
  cmd->add_option("-t,--threads", threads, "Threads (default: all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("-c,--ctx-size", ctx_size, "Context size in tokens (default: the model's)")->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--kv-type", kv_type, "KV cache element type: f32 or f16")->check(CLI::IsMember({"f32", "f16"}));
  cmd->add_flag("-q,--quiet", quiet, "No progress output");
}

void SamplingOptions::add(CLI::App* cmd) {
  cmd->add_option("--temp", p.temperature, "Temperature; 0 = greedy")->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--top-k", p.top_k, "Top-k (0 = off)")->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--top-p", p.top_p, "Top-p (1 = off)")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--min-p", p.min_p, "Min-p (0 = off)")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--repeat-penalty", p.repeat_penalty, "Repetition penalty (1 = off)")->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--repeat-last-n", p.repeat_last_n, "Tokens the penalties look back (-1 = all)")->check(CLI::Range(-1, 1 << 30));
  cmd->add_option("--presence-penalty", p.presence_penalty, "Presence penalty")->check(CLI::Range(-2.0, 2.0));
  cmd->add_option("--frequency-penalty", p.frequency_penalty, "Frequency penalty")->check(CLI::Range(-2.0, 2.0));
  cmd->add_option("-s,--seed", seed, "Random seed (-1 = random); same seed, same output");
}

SamplingParams SamplingOptions::params() const {
  SamplingParams out = p;
  out.seed = seed >= 0 ? static_cast<uint64_t>(seed) : std::random_device{}();
  return out;
}

Loaded load_model(const ModelOptions& o) {
  if (o.quiet) Progress::set_enabled(false);
  Loaded l;
  LoadOptions lo;
  lo.progress = !o.quiet;
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

}  // namespace strata::cli

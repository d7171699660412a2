// Options shared by the commands that load a model and generate.
#pragma once
#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "core/thread_pool.h"
#include "engine/engine.h"
#include "engine/sampler.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace strata::cli {

struct ModelOptions {
  std::string model;
  int threads = 0;  // 0: all cores
  int64_t ctx_size = 0;
  std::string kv_type = "f32";
  bool quiet = false;
  void add(CLI::App* cmd);
};

struct SamplingOptions {
  SamplingParams p;
  int64_t seed = -1;  // -1: random
  void add(CLI::App* cmd);
  SamplingParams params() const;
};

struct Loaded {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ThreadPool> pool;
};

Loaded load_model(const ModelOptions& o);
EngineOptions engine_options(const ModelOptions& o);

}  // namespace strata::cli

// strata gen-dummy: write a random-weight model of a real shape, for benchmarks.
#include <fmt/format.h>

#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "model/dummy_model.h"

namespace strata::cli {
namespace {

struct GenOptions {
  std::string arch = "llama", shape = "100m", type = "f16", embd_type, vocab_from, out;
  int64_t layers = 0;
  uint64_t seed = 1;
  bool quiet = false;
};

DType parse_type(const std::string& s) {
  auto t = dtype_from_name(s);
  if (!t || *t == DType::G4 || *t == DType::Q8_1 || *t == DType::Q8_K ||
      (!is_float_type(*t) && !dtype_info(*t).quantized))
    fail("unsupported weight type '{}'", s);
  return *t;
}

void gen(const GenOptions& o) {
  DummyShape s = find_dummy_shape(o.arch, o.shape);
  DummyOptions d;
  d.type = parse_type(o.type);
  // Default mixed policy: the embedding/head stay f16 unless the whole model is f32/bf16.
  d.embd_type = !o.embd_type.empty() ? parse_type(o.embd_type)
                                     : (is_float_type(d.type) ? d.type : DType::F16);
  d.layers = o.layers;
  d.seed = o.seed;
  d.vocab_from = o.vocab_from;
  d.progress = !o.quiet;
  if (o.layers > 0) s.n_layer = o.layers;
  std::fprintf(
      stderr, "%s\n",
      fmt::format("writing {} {}-{}: {} layers, {:.2f} B parameters, matrices {}, embeddings {}",
                  o.out, s.arch, s.name, s.n_layer, double(dummy_parameter_count(s)) / 1e9,
                  dtype_name(d.type), dtype_name(d.embd_type))
          .c_str());
  write_dummy_gguf(s, d, o.out);
}

}  // namespace

void register_gen_dummy(CLI::App& app) {
  auto o = std::make_shared<GenOptions>();
  CLI::App* cmd = app.add_subcommand(
      "gen-dummy", "Write a random-weight model of a real shape (GGUF) for benchmarks");
  cmd->add_option("--arch", o->arch, "Architecture: llama or opt")
      ->check(CLI::IsMember({"llama", "opt"}));
  cmd->add_option("--shape", o->shape,
                  "llama: 100m 1b 7b 13b 70b; opt: 125m 350m 1.3b 6.7b 13b 30b 66b 175b");
  cmd->add_option("--type", o->type,
                  "Matrix type: f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k");
  cmd->add_option("--embd-type", o->embd_type,
                  "Type of the embedding and head (default f16 for quantized models)");
  cmd->add_option("--layers", o->layers, "Override the number of layers")
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--seed", o->seed, "Random seed");
  cmd->add_option("--vocab-from", o->vocab_from, "Copy the tokenizer from this GGUF file");
  cmd->add_flag("-q,--quiet", o->quiet, "No progress output");
  cmd->add_option("out", o->out, "Output .gguf path")->required();
  cmd->callback([o] { gen(*o); });
}

}  // namespace strata::cli

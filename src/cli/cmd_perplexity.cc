// strata perplexity: llama.cpp-style perplexity of a model on a text file (see
// engine/perplexity.h for what is scored), under any placement the run command accepts
// (--compress-weight measures FlexGen's 4-bit weight compression).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "core/file.h"
#include "engine/perplexity.h"
#include "model/hparams.h"

namespace strata::cli {
namespace {

struct PplOptions {
  ModelOptions m;
  std::string file;
  int64_t chunks = 0, batch = 512;
  bool json = false;
};

void perplexity_cmd(const PplOptions& o) {
  const std::string text = read_text_file(o.file);
  int64_t ctx = o.m.ctx_size;
  {
    const ModelFiles files = open_model_files(o.m.model);
    const ModelSpec spec = read_model_spec(files);
    if (ctx == 0) ctx = std::min<int64_t>(512, spec.hp.n_ctx_train);
    if (ctx > spec.hp.n_ctx_train)
      std::fprintf(stderr, "warning: context %ld is longer than the model's trained %ld\n",
                   long(ctx), long(spec.hp.n_ctx_train));
  }
  RuntimeOptions ro = o.m.runtime(ctx, 1);
  ro.ctx_size = ctx;
  ro.prefill_chunk = std::min(o.batch, ctx);
  auto rt = Runtime::open(ro);
  const Tokenizer& tok = rt->tokenizer();
  const std::vector<int32_t> tokens = tok.encode(text, false, false);
  PerplexityOptions po;
  po.ctx = ctx;
  po.batch = o.batch;
  po.max_chunks = o.chunks;
  po.bos = tok.add_bos_default() ? tok.bos() : -1;
  if (!o.json)
    std::fprintf(
        stderr, "%s\n",
        fmt::format("perplexity: {} tokens, {} chunks of {} (scoring the last {} of each){}",
                    tokens.size(),
                    o.chunks > 0 ? std::min<int64_t>(o.chunks, int64_t(tokens.size()) / ctx)
                                 : int64_t(tokens.size()) / ctx,
                    ctx, ctx - 1 - ctx / 2, po.bos >= 0 ? ", BOS first" : "")
            .c_str());
  std::vector<double> chunk_ppl;
  Engine& e = rt->engine();
  const PerplexityResult r =
      compute_perplexity(e.executor(), e.kv(), tokens, po, [&](const PerplexityChunk& c) {
        chunk_ppl.push_back(c.chunk_ppl);
        if (o.json) return;
        std::printf("[%ld]%.4f%s", long(c.index + 1), c.running_ppl,
                    c.index + 1 == c.n_chunks ? "\n" : ",");
        std::fflush(stdout);
      });
  const double tps = r.seconds > 0 ? double(r.tokens_evaluated) / r.seconds : 0;
  if (o.json) {
    nlohmann::json j;
    j["model"] = o.m.model;
    j["file"] = o.file;
    j["ctx"] = ctx;
    j["batch"] = o.batch;
    j["bos_per_chunk"] = po.bos >= 0;
    j["compress_weight"] = o.m.compress_weight;
    j["tokens"] = r.n_tokens;
    j["chunks"] = r.n_chunks;
    j["scored_tokens"] = r.n_scored;
    j["nll_mean"] = r.nll_mean;
    j["ppl"] = r.ppl;
    j["ppl_stderr"] = r.ppl_stderr;
    j["running_ppl"] = r.running_ppl;
    j["chunk_ppl"] = chunk_ppl;
    j["seconds"] = r.seconds;
    j["tokens_per_second"] = tps;
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("Final estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_stderr);
  std::fprintf(stderr, "%s\n",
               fmt::format("{} chunks, {} scored tokens, {:.2f} s ({:.1f} tokens/s)", r.n_chunks,
                           r.n_scored, r.seconds, tps)
                   .c_str());
}

}  // namespace

void register_perplexity(CLI::App& app) {
  auto o = std::make_shared<PplOptions>();
  CLI::App* cmd =
      app.add_subcommand("perplexity", "Perplexity of a model on a text file (llama.cpp's method)");
  o->m.add(cmd, true);
  cmd->add_option("-f,--file", o->file, "Text file to score")->required();
  cmd->add_option("--chunks", o->chunks, "Score at most this many chunks (default: all)")
      ->check(CLI::Range(0, 1 << 30));
  cmd->add_option("-b,--batch-size", o->batch, "Tokens per forward step")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_flag("--json", o->json, "One JSON object instead of text");
  cmd->callback([o] { perplexity_cmd(*o); });
}

}  // namespace strata::cli

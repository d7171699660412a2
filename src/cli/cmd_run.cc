// strata run: generate a continuation of a prompt, streaming text to stdout and a summary to
// stderr (or one JSON object with --json).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "core/file.h"
#include "core/progress.h"

namespace strata::cli {
namespace {

struct RunOptions {
  ModelOptions m;
  SamplingOptions s;
  std::string prompt;
  std::string prompt_file;
  int64_t n_predict = 128;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  bool json = false;
  bool no_bos = false;
  bool no_special = false;
};

double secs_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

void run(const RunOptions& o) {
  std::string prompt = o.prompt;
  if (!o.prompt_file.empty()) prompt = read_text_file(o.prompt_file);
  // The prompt's length is needed to check a memory budget; tokenizing first costs little.
  RuntimeOptions ro = o.m.runtime(0, o.n_predict > 0 ? o.n_predict : 0);
  std::unique_ptr<Runtime> rt;
  {
    auto files = open_model_files(ro.model);
    auto t = Tokenizer::from_model_files(files);
    const bool b = t->add_bos_default() && !o.no_bos;
    const int64_t n_prompt = static_cast<int64_t>(t->encode(prompt, b, !o.no_special).size());
    ro = o.m.runtime(n_prompt, o.n_predict > 0 ? o.n_predict : 128);
  }
  rt = Runtime::open(ro);
  const Tokenizer& tok = rt->tokenizer();
  Engine& engine = rt->engine();

  Request req;
  const bool bos = tok.add_bos_default() && !o.no_bos;
  req.prompt = tok.encode(prompt, bos, !o.no_special);
  req.max_tokens = o.n_predict;
  req.sampling = o.s.params();
  req.stop = o.stop;
  req.ignore_eos = o.ignore_eos;
  engine.add(std::move(req));
  if (WeightStreamer* ws = rt->streamer()) (void)ws;

  const auto t0 = std::chrono::steady_clock::now();
  double t_prompt = 0;
  bool first = true;
  std::vector<int32_t> generated;
  std::string text;
  FinishReason reason = FinishReason::None;
  while (engine.has_work()) {
    for (const Event& ev : engine.step()) {
      if (first && !ev.tokens.empty()) {
        t_prompt = secs_since(t0);  // the step that produced the first token ran the prompt
        first = false;
      }
      for (const auto& t : ev.tokens) generated.push_back(t.token);
      text += ev.text;
      if (!o.json && !ev.text.empty()) {
        std::fwrite(ev.text.data(), 1, ev.text.size(), stdout);
        std::fflush(stdout);
      }
      if (ev.finished) reason = ev.reason;
    }
  }
  const double t_total = secs_since(t0);
  const int64_t n_prompt = static_cast<int64_t>(engine.stats().prompt_tokens);
  // The first token comes out of the prompt step; generation speed counts the tokens after it.
  const int64_t n_gen = static_cast<int64_t>(generated.size());
  const double t_gen = t_total - t_prompt;
  const double pp = t_prompt > 0 ? double(n_prompt) / t_prompt : 0;
  const double tg = n_gen > 1 && t_gen > 0 ? double(n_gen - 1) / t_gen : 0;
  const uint64_t rss = peak_rss_bytes();
  if (o.json) {
    nlohmann::json j;
    std::vector<int32_t> pids = tok.encode(prompt, bos, !o.no_special);
    j["prompt_ids"] = pids;
    j["generated_ids"] = generated;
    j["text"] = text;
    j["finish_reason"] = finish_reason_name(reason);
    j["timings"] = {{"prompt_tokens", n_prompt},      {"generated_tokens", n_gen},
                    {"prompt_seconds", t_prompt},     {"generation_seconds", t_gen},
                    {"prompt_tokens_per_second", pp}, {"generation_tokens_per_second", tg},
                    {"peak_rss_bytes", rss},          {"threads", rt->pool().size()}};
    std::string out = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::printf("%s\n", out.c_str());
  } else {
    std::printf("\n");
    std::fflush(stdout);
    std::fprintf(
        stderr, "%s\n",
        fmt::format(
            "prompt {} tok, generated {} tok, prompt {:.1f} tok/s, generation {:.1f} tok/s, "
            "peak RSS {}, {} threads, finish: {}",
            n_prompt, n_gen, pp, tg, human_bytes(double(rss)), rt->pool().size(),
            finish_reason_name(reason))
            .c_str());
  }
}

}  // namespace

void register_run(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand("run", "Generate text from a prompt");
  o->m.add(cmd);
  o->s.add(cmd);
  cmd->add_option("-p,--prompt", o->prompt, "Prompt text");
  cmd->add_option("-f,--file", o->prompt_file, "Read the prompt from a file");
  cmd->add_option("-n,--n-predict", o->n_predict,
                  "Tokens to generate (-1: until the context is full)")
      ->check(CLI::Range(int64_t(-1), int64_t(1) << 30));
  cmd->add_option("--stop", o->stop, "Stop when this text is generated (repeatable)");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Keep generating past end-of-sequence tokens");
  cmd->add_flag("--json", o->json,
                "Print one JSON object with ids, text, finish reason and timings");
  cmd->add_flag("--no-bos", o->no_bos, "Do not add the BOS token even if the model wants it");
  cmd->add_flag("--no-special", o->no_special,
                "Treat special-token text in the prompt as plain text");
  cmd->callback([o] { run(*o); });
}

}  // namespace strata::cli

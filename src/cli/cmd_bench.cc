// strata bench: llama-bench-style pp/tg rates with mean ± stddev next to the memory-bandwidth
// roofline, and (--block) FlexGen's metric for a block of sequences under a placement policy.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "core/file.h"
#include "core/progress.h"
#include "engine/benchmark.h"
#include "memory/bandwidth.h"
#include "model/hparams.h"

namespace strata::cli {
namespace {

struct BenchOptions {
  ModelOptions m;
  std::vector<int64_t> n_prompt{512}, n_gen{128}, parallel{1};
  std::vector<int> threads;
  int reps = 3;
  std::string output = "md";
  bool no_bandwidth = false;
  bool block = false;
  bool overlap = false;
  bool validate_plan = false, no_compress = false;  // [policy-search]
};

struct Stat {
  double mean = 0, sd = 0;
};
Stat stat(const std::vector<double>& v) {
  Stat s;
  for (double x : v) s.mean += x;
  s.mean /= double(v.size());
  for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
  s.sd = v.size() > 1 ? std::sqrt(s.sd / double(v.size() - 1)) : 0;
  return s;
}

std::string model_desc(Model& m) {
  std::map<std::string, uint64_t> by;
  for (const auto& n : m.store().names()) {
    const Tensor& t = m.store().get(n);
    if (t.shape.size() == 2) by[dtype_name(t.dtype)] += static_cast<uint64_t>(t.nbytes());
  }
  std::string main = "?";
  uint64_t best = 0;
  for (auto& [k, v] : by)
    if (v > best) best = v, main = k;
  return fmt::format("{} {}", m.arch().name, main);
}

void bench_pp_tg(const BenchOptions& o) {
  std::vector<int> threads = o.threads;  // --threads-list, else -t, else every core
  if (threads.empty())
    threads.push_back(o.m.threads > 0 ? o.m.threads : ThreadPool::default_threads());
  nlohmann::json results = nlohmann::json::array();
  double bw = 0;
  if (!o.no_bandwidth) {
    ThreadPool pool(*std::max_element(threads.begin(), threads.end()));
    if (o.output == "md") std::fprintf(stderr, "measuring memory read bandwidth...\n");
    bw = measure_memory_read_bandwidth(pool, size_t(1) << 30, 5) * 1e9;
  }
  bool header = false;
  for (int th : threads) {
    ModelOptions mo = o.m;
    mo.threads = th;
    const int64_t max_p = *std::max_element(o.n_prompt.begin(), o.n_prompt.end());
    RuntimeOptions ro = mo.runtime(max_p, *std::max_element(o.n_gen.begin(), o.n_gen.end()));
    ro.prefill_chunk = std::max<int64_t>(ro.prefill_chunk, max_p);
    if (ro.ctx_size == 0)
      ro.ctx_size =
          std::max<int64_t>(max_p, 1 + *std::max_element(o.n_gen.begin(), o.n_gen.end())) + 8;
    auto rt = Runtime::open(ro);
    if (rt->engine().options().max_seqs < *std::max_element(o.parallel.begin(), o.parallel.end())) {
      rt.reset();
      // Reopen with room for the parallel sequences.
    }
    Model& model = rt->model();
    const uint64_t step_bytes = decode_bytes_per_step(model);
    const double params = double(count_parameters(model.files()));
    const std::string desc = model_desc(model);
    if (o.output == "md" && !header) {
      if (bw > 0)
        std::printf("memory read bandwidth: %.1f GB/s; weights read per decode step: %s\n\n",
                    bw / 1e9, human_bytes(double(step_bytes)).c_str());
      std::printf(
          "| model | size | params | threads | test | t/s | roofline t/s | of roofline |\n");
      std::printf("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |\n");
      header = true;
    }
    // rep_bw: for decode, the read bandwidth measured just before each repetition. The machine's
    // bandwidth drifts on a shared host, so each repetition is set against its own measurement
    // (the fraction is the mean of the per-repetition ratios), not against the one taken at start.
    auto emit = [&](const std::string& test, const std::vector<double>& rates, bool decode,
                    int64_t seqs, const std::vector<double>& rep_bw) {
      const Stat s = stat(rates);
      const double bw_ref = rep_bw.empty() ? bw : stat(rep_bw).mean;
      const double roof = decode && bw_ref > 0 ? bw_ref / double(step_bytes) * double(seqs) : 0;
      auto bytes_per_s = [&](double rate) { return rate / double(seqs) * double(step_bytes); };
      std::vector<double> fractions;
      for (size_t i = 0; i < rep_bw.size(); ++i)
        fractions.push_back(bytes_per_s(rates[i]) / rep_bw[i]);
      const Stat f = fractions.empty() ? Stat{} : stat(fractions);
      const double fraction = fractions.empty() ? (roof > 0 ? s.mean / roof : 0) : f.mean;
      nlohmann::json j = {{"model", desc},
                          {"size_bytes", model.files().total_tensor_bytes()},
                          {"params", params},
                          {"threads", th},
                          {"test", test},
                          {"tokens_per_second", rates},
                          {"mean", s.mean},
                          {"stddev", s.sd},
                          {"bandwidth_gbps", bw / 1e9}};
      if (roof > 0) {
        j["roofline_tokens_per_second"] = roof;
        j["fraction_of_roofline"] = fraction;
        j["effective_bandwidth_gbps"] = bytes_per_s(s.mean) / 1e9;
      }
      if (!fractions.empty()) {
        std::vector<double> gbps;
        for (double b : rep_bw) gbps.push_back(b / 1e9);
        j["bandwidth_per_rep_gbps"] = gbps;
        j["fraction_of_roofline_per_rep"] = fractions;
        j["fraction_of_roofline_stddev"] = f.sd;
      }
      results.push_back(j);
      if (o.output == "md") {
        std::printf("| %s | %s | %.2f M | %d | %s | %.2f ± %.2f | %s | %s |\n", desc.c_str(),
                    human_bytes(double(model.files().total_tensor_bytes())).c_str(), params / 1e6,
                    th, test.c_str(), s.mean, s.sd,
                    roof > 0 ? fmt::format("{:.2f}", roof).c_str() : "",
                    roof > 0 ? fmt::format("{:.0f}%", 100 * fraction).c_str() : "");
        std::fflush(stdout);
      }
    };
    for (int64_t p : o.n_prompt) {
      if (p <= 0) continue;
      time_prompt(*rt, std::min<int64_t>(p, 16), p, 1);  // warm-up
      std::vector<double> rates;
      Progress prog(fmt::format("pp{} t{}", p, th), o.reps, "runs");
      for (int r = 0; r < o.reps; ++r) {
        rates.push_back(double(p) / time_prompt(*rt, p, p, 7 + static_cast<uint64_t>(r)));
        prog.update(r + 1);
      }
      prog.finish();
      emit(fmt::format("pp{}", p), rates, false, 1, {});
    }
    for (int64_t n : o.n_gen) {
      if (n <= 0) continue;
      for (int64_t par : o.parallel) {
        if (par > rt->engine().options().max_seqs) {
          ModelOptions mp = mo;
          mp.gpu_batch_size = par;
          RuntimeOptions rp = mp.runtime(max_p, n);
          rp.ctx_size = ro.ctx_size;
          rp.prefill_chunk = ro.prefill_chunk;
          rt = Runtime::open(rp);
        }
        time_generation(*rt, 4, par, 3);  // warm-up
        std::vector<double> rates, rep_bw;
        Progress prog(fmt::format("tg{} x{} t{}", n, par, th), o.reps, "runs");
        for (int r = 0; r < o.reps; ++r) {
          // 1 GiB more than the model while it runs, so not under a RAM budget.
          if (!o.no_bandwidth && ro.max_ram == 0)
            rep_bw.push_back(measure_memory_read_bandwidth(rt->pool(), size_t(1) << 30, 3) * 1e9);
          rates.push_back(double(n * par) /
                          time_generation(*rt, n, par, 11 + static_cast<uint64_t>(r)));
          prog.update(r + 1);
        }
        prog.finish();
        emit(par > 1 ? fmt::format("tg{} x{}", n, par) : fmt::format("tg{}", n), rates, true, par,
             rep_bw);
      }
    }
  }
  if (o.output == "json") std::printf("%s\n", results.dump(2).c_str());
}

void bench_block(const BenchOptions& o) {
  const int64_t p = o.n_prompt.front(), g = o.n_gen.front();
  RuntimeOptions ro = o.m.runtime(p, g);
  if (o.validate_plan && ro.max_ram == 0 && !ro.policy)
    fail("--validate-plan needs --max-ram (the plan's budget) or --percent");
  // [policy-search] With --policy auto (the default) and a budget, a block runs what `strata plan`
  // picks for the same budget and workload: the search chooses the batch shape and compression
  // too unless they are given.
  ro.predict = o.validate_plan;
  ro.search_batch = !o.m.batch_given();
  ro.search_compression = !ro.compress_weight && !ro.compress_cache && !o.no_compress;
  auto rt = Runtime::open(ro);
  const int64_t seqs = rt->policy().block_size();
  WeightStreamer* ws = rt->streamer();
  nlohmann::json j;
  j["policy"] = rt->policy().describe();
  j["predicted_peak_rss_bytes"] = rt->predicted().total();
  j["weights_on_disk_bytes"] = rt->plan().disk_bytes();
  j["weights_streamed_per_pass_bytes"] = rt->plan().streamed_bytes_per_pass();
  if (o.output == "md")
    std::fprintf(stderr, "policy %s; predicted peak %s\n", rt->policy().describe().c_str(),
                 rt->predicted().describe().c_str());
  BlockResult r = run_block(*rt, seqs, p, g, !o.m.quiet);
  const StepTiming d = r.mean_decode_step();
  j["seqs"] = seqs;
  j["prompt_len"] = p;
  j["gen_len"] = g;
  j["total_seconds"] = r.total_s;
  j["prefill_seconds"] = r.prefill_s;
  j["throughput_tokens_per_second"] = r.throughput();
  j["decode_tokens_per_second"] = r.decode_throughput();
  j["disk_read_bytes"] = r.disk_bytes;
  j["disk_read_gbps"] = double(r.disk_bytes) / 1e9 / r.total_s;
  j["kv_disk_bytes"] = r.kv_disk_bytes;
  j["decode_step_seconds"] = d.total_s;
  j["decode_step_io_wait_seconds"] = d.io_wait_s;
  j["decode_step_bytes_read"] = d.bytes_read;
  if (o.overlap && ws) {
    // The same decode steps with only one of the two links at work: 4 steps after a prompt of at
    // most 8 tokens (a decode step's cost is the weights and the batch, not the few KV rows the
    // shorter prompt saves; the full prefill would dominate these runs on a small CPU).
    auto alone = [&](StreamMode mode) {
      ws->set_mode(mode);
      BlockResult a = run_block(*rt, seqs, std::min<int64_t>(p, 8), std::min<int64_t>(g, 4), false);
      ws->set_mode(StreamMode::Normal);
      return a.mean_decode_step().total_s;
    };
    j["decode_step_io_alone_seconds"] = alone(StreamMode::IoOnly);
    j["decode_step_compute_alone_seconds"] = alone(StreamMode::ComputeOnly);
  }
  j["peak_rss_bytes"] = peak_rss_bytes();
  // [policy-search] Predicted (cost and memory model) against measured.
  const CostPrediction* pred = o.validate_plan && rt->prediction() ? &*rt->prediction() : nullptr;
  if (pred) {
    auto err = [](double p, double m) { return p > 0 ? (m - p) / p : 0.0; };
    j["validation"] = {{"policy", rt->policy().describe()},
                       {"predicted_throughput_tokens_per_second", pred->throughput_tps},
                       {"measured_throughput_tokens_per_second", r.throughput()},
                       {"throughput_error", err(pred->throughput_tps, r.throughput())},
                       {"predicted_decode_step_seconds", pred->decode_step_s},
                       {"measured_decode_step_seconds", d.total_s},
                       {"decode_step_error", err(pred->decode_step_s, d.total_s)},
                       {"predicted_prefill_seconds", pred->prefill_s},
                       {"measured_prefill_seconds", r.prefill_s},
                       {"predicted_total_seconds", pred->total_s},
                       {"measured_total_seconds", r.total_s},
                       {"predicted_peak_rss_bytes", pred->ram_peak},
                       {"measured_peak_rss_bytes", peak_rss_bytes()},
                       {"peak_rss_error", err(double(pred->ram_peak), double(peak_rss_bytes()))},
                       {"max_ram_bytes", ro.max_ram},
                       {"predicted_decode_compute_seconds", pred->decode.compute_s},
                       {"predicted_decode_disk_read_seconds", pred->decode.weight_read_s},
                       {"predicted_decode_kv_io_seconds", pred->decode.kv_io_s},
                       {"measured_decode_io_wait_seconds", d.io_wait_s}};
  }
  if (o.output == "json") {
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf(
      "| seqs | prompt | gen | total s | throughput t/s | decode t/s | disk GB/s | peak RSS | step "
      "s | I/O wait s |%s\n",
      o.overlap ? " I/O alone s | compute alone s |" : "");
  std::printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |%s\n",
              o.overlap ? " ---: | ---: |" : "");
  std::printf("| %ld | %ld | %ld | %.1f | %.3f | %.3f | %.2f | %s | %.2f | %.2f |",
              static_cast<long>(seqs), static_cast<long>(p), static_cast<long>(g), r.total_s,
              r.throughput(), r.decode_throughput(), double(r.disk_bytes) / 1e9 / r.total_s,
              human_bytes(double(peak_rss_bytes())).c_str(), d.total_s, d.io_wait_s);
  if (o.overlap && j.contains("decode_step_io_alone_seconds"))
    std::printf(" %.2f | %.2f |", j["decode_step_io_alone_seconds"].get<double>(),
                j["decode_step_compute_alone_seconds"].get<double>());
  std::printf("\n");
  if (pred) {
    // [policy-search]
    const uint64_t rss = peak_rss_bytes();
    auto pct = [](double p, double m) {
      return p > 0 ? fmt::format("{:+.1f}%", 100 * (m - p) / p) : std::string("-");
    };
    std::printf("\nplan %s\n| | predicted | measured | error |\n| --- | ---: | ---: | ---: |\n",
                rt->policy().describe().c_str());
    std::printf("| throughput tok/s | %.3f | %.3f | %s |\n", pred->throughput_tps, r.throughput(),
                pct(pred->throughput_tps, r.throughput()).c_str());
    std::printf("| decode step s | %.4f | %.4f | %s |\n", pred->decode_step_s, d.total_s,
                pct(pred->decode_step_s, d.total_s).c_str());
    std::printf("| prefill s | %.3f | %.3f | %s |\n", pred->prefill_s, r.prefill_s,
                pct(pred->prefill_s, r.prefill_s).c_str());
    std::printf("| peak RSS | %s | %s | %s |\n", human_bytes(double(pred->ram_peak)).c_str(),
                human_bytes(double(rss)).c_str(), pct(double(pred->ram_peak), double(rss)).c_str());
    if (ro.max_ram > 0)
      std::printf("budget --max-ram %s: measured peak RSS is %s it\n",
                  human_bytes(double(ro.max_ram)).c_str(), rss <= ro.max_ram ? "under" : "OVER");
  }
}

}  // namespace

void register_bench(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Measure prompt processing and generation speed (llama-bench style)");
  o->m.add(cmd);
  cmd->add_option("-p,--n-prompt", o->n_prompt, "Prompt lengths to test (pp)")->delimiter(',');
  cmd->add_option("-n,--n-gen", o->n_gen, "Generation lengths to test (tg)")->delimiter(',');
  cmd->add_option("--parallel", o->parallel, "Sequences generating at once (tg)")->delimiter(',');
  cmd->add_option("--threads-list", o->threads, "Thread counts to test, e.g. 1,2")->delimiter(',');
  cmd->add_option("-r,--repetitions", o->reps, "Repetitions of each test")
      ->check(CLI::Range(1, 100));
  cmd->add_option("-o,--output", o->output, "md or json")->check(CLI::IsMember({"md", "json"}));
  cmd->add_flag("--no-bandwidth", o->no_bandwidth, "Skip the memory bandwidth measurement");
  cmd->add_flag("--block", o->block,
                "FlexGen's metric: one block of gpu-batch-size x num-gpu-batches sequences, prompt "
                "-p, -n tokens each");
  cmd->add_flag("--overlap", o->overlap,
                "With --block: also time decode steps with I/O alone and compute alone");
  // [policy-search]
  cmd->add_flag("--validate-plan", o->validate_plan,
                "With --block and --max-ram: run the policy `strata plan` picks and print "
                "predicted vs measured "
                "throughput, decode step time and peak RSS");
  cmd->add_flag("--no-compress", o->no_compress,
                "With --block and --policy auto: do not let the search turn compression on");
  cmd->callback([o] {
    if (o->block)
      bench_block(*o);
    else
      bench_pp_tg(*o);
  });
}

}  // namespace strata::cli

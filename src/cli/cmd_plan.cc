// strata plan: before any weight is read, what a model needs (exact bytes of weights, KV cache,
// activations), which placement the search picks for a budget, what it will cost (throughput,
// per-token latency, peak memory per tier), and the runner-ups.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <map>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "core/file.h"
#include "core/progress.h"
#include "memory/kv_pool.h"
#include "policy/policy_search.h"
#include "policy/weight_plan.h"

namespace strata::cli {
namespace {

struct PlanOptions {
  ModelOptions m;
  int64_t prompt_len = 512, gen_len = 32;
  std::string gpu_model = "t4", output = "md";
  bool no_compress = false;
};

nlohmann::json policy_json(const Policy& p) {
  return {{"weights_percent", {{"gpu", p.w_gpu}, {"cpu", p.w_cpu}, {"disk", p.w_disk()}}},
          {"kv_cache_percent", {{"gpu", p.c_gpu}, {"cpu", p.c_cpu}, {"disk", p.c_disk()}}},
          {"activations_percent", {{"gpu", p.a_gpu}, {"cpu", p.a_cpu}, {"disk", p.a_disk()}}},
          {"gpu_batch_size", p.gpu_batch_size},
          {"num_gpu_batches", p.num_gpu_batches},
          {"block_size", p.block_size()},
          {"compress_weight", p.compress_weight},
          {"compress_cache", p.compress_cache},
          {"cpu_attention", p.cpu_cache_compute || (p.w_gpu == 0 && p.c_gpu == 0 && p.a_gpu == 0)},
          {"flags", p.describe()}};
}

nlohmann::json prediction_json(const CostPrediction& c) {
  auto step = [](const StepCost& s) {
    return nlohmann::json{{"seconds", s.step_s},
                          {"compute_seconds", s.compute_s},
                          {"disk_read_seconds", s.weight_read_s},
                          {"kv_io_seconds", s.kv_io_s},
                          {"activation_io_seconds", s.act_io_s},
                          {"h2d_seconds", s.h2d_s},
                          {"d2h_seconds", s.d2h_s}};
  };
  return {{"throughput_tokens_per_second", c.throughput_tps},
          {"per_token_latency_seconds", c.latency_s},
          {"decode_step_seconds", c.decode_step_s},
          {"prefill_seconds", c.prefill_s},
          {"total_seconds", c.total_s},
          {"sequences", c.seqs},
          {"prefill", step(c.prefill)},
          {"decode_step", step(c.decode)}};
}

nlohmann::json memory_json(const CostPrediction& c) {
  const MemoryPrediction& m = c.memory;
  return {{"ram_peak_bytes", c.ram_peak},
          {"vram_peak_bytes", c.vram_peak},
          {"disk_bytes", c.disk_bytes},
          {"ram",
           {{"baseline", m.baseline},
            {"resident_weights", m.resident_weights},
            {"weight_staging", m.staging},
            {"kv_cache", m.kv_ram},
            {"kv_staging", m.kv_arena},
            {"workspace", m.workspace},
            {"hidden_states", m.hidden},
            {"logits", m.logits},
            {"slack", m.slack + m.run_slack},
            {"not_held_at_once", m.phase_credit}}},
          {"disk", {{"weights", m.disk_weights}, {"kv_cache", m.disk_kv}}}};
}

nlohmann::json choice_json(const PolicyChoice& c) {
  return {{"policy", policy_json(c.policy)},
          {"prediction", prediction_json(c.cost)},
          {"memory", memory_json(c.cost)},
          {"note", c.note}};
}

std::string pct3(double g, double c, double d) {
  return fmt::format("{:g}/{:g}/{:g}", g, c, d);
}

void plan(const PlanOptions& o) {
  if (o.m.quiet) Progress::set_enabled(false);
  RuntimeOptions ro = o.m.runtime(o.prompt_len, o.gen_len);
  // The profile first (measured in a child process if it must be), then only metadata.
  ProfileOptions po;
  po.offload_dir = ro.offload_dir;
  po.progress = !o.m.quiet;
  po.isolate = true;
  const ProfileResult prof = load_or_measure_profile(po);
  LoadOptions lo;
  lo.progress = !o.m.quiet;
  lo.lazy_matrices = true;
  auto model = Model::load(ro.model, lo);
  auto tok = Tokenizer::from_model_files(model->files());
  ThreadPool pool(ro.threads > 0 ? ro.threads : ThreadPool::default_threads());
  const HParams& h = model->hp();

  Workload w = ro.workload(ro.kv_dtype);  // ro was made for o.prompt_len and o.gen_len

  SearchOptions so;
  so.max_ram = ro.max_ram;
  std::string budget_note;
  if (so.max_ram == 0) {
    so.max_ram = prof.profile.key.ram_bytes / 10 * 9;
    budget_note = fmt::format("no --max-ram: planning for 90% of this machine's RAM ({})",
                              human_bytes(double(so.max_ram)));
  }
  so.objective = ro.objective;
  so.max_block = ro.max_block;
  so.threads = ro.threads;
  so.kv_dtype = ro.kv_dtype;
  if (o.m.batch_given())
    so.gpu_batch_size = ro.gpu_batch_size, so.num_gpu_batches = ro.num_gpu_batches;
  // Same rule as bench --validate-plan: a compression flag (or --no-compress) fixes both settings.
  if (ro.compress_weight || ro.compress_cache || o.no_compress)
    so.compress_weight = ro.compress_weight, so.compress_cache = ro.compress_cache;
  if (ro.max_vram > 0) {
    so.gpu = prof.profile.gpu ? *prof.profile.gpu : nominal_gpu(o.gpu_model);
    so.max_vram = ro.max_vram;
  }

  SearchResult r;
  if (ro.policy) {
    // An explicit --percent: no search, the prediction for that policy.
    Policy p = *ro.policy;
    p.gpu_batch_size = ro.gpu_batch_size, p.num_gpu_batches = ro.num_gpu_batches;
    p.compress_weight = ro.compress_weight, p.compress_cache = ro.compress_cache;
    Workload wl = w;
    wl.kv_dtype = p.compress_cache ? DType::G4 : ro.kv_dtype;
    CostOptions co;
    co.threads = ro.threads;
    if (so.gpu) {
      co.gpu = so.gpu, co.max_vram = so.max_vram;
      r.best.cost = predict_cost_gpu(*model, p, wl, prof.profile, co);
    } else {
      p = p.for_cpu_only();
      r.best.cost = predict_cost(*model, p, plan_weights(*model, p), wl, prof.profile, co);
    }
    r.best.policy = p;
    if (r.best.cost.ram_peak > so.max_ram)
      fail("the policy ({}) needs {} but --max-ram is {}: {}", p.describe(),
           human_bytes(double(r.best.cost.ram_peak)), human_bytes(double(so.max_ram)),
           r.best.cost.memory.describe());
  } else {
    r = search_policy(*model, w, prof.profile, so);
  }
  const PolicyChoice& best = r.best;
  const Policy& bp = best.policy;

  // What the model needs, exactly.
  std::map<std::string, uint64_t> by_dtype;
  uint64_t weight_bytes = 0;
  for (const TensorInfo& t : model->files().tensors)
    by_dtype[dtype_name(t.dtype)] += t.nbytes, weight_bytes += t.nbytes;
  const DType kv_dtype = bp.compress_cache ? DType::G4 : ro.kv_dtype;
  const uint64_t kv_tok =
      uint64_t(KvPool::row_bytes_for(kv_dtype, h.kv_dim())) * 2 * uint64_t(h.n_layer);
  const int64_t ctx = w.ctx();
  const uint64_t kv_seq = kv_tok * uint64_t((ctx + 31) / 32 * 32);
  const uint64_t act_tok = uint64_t(h.n_embd) * 4;
  uint64_t policy_weight_bytes = 0;
  for (const auto& t : plan_weights(*model, bp.for_cpu_only()).tensors)
    policy_weight_bytes += t.bytes;

  if (o.output == "json") {
    nlohmann::json j;
    j["model"] = {{"path", ro.model},
                  {"arch", model->arch().name},
                  {"layers", h.n_layer},
                  {"hidden", h.n_embd},
                  {"vocab", h.n_vocab}};
    nlohmann::json bd = nlohmann::json::object();
    for (const auto& [k, v] : by_dtype) bd[k] = v;
    j["weights"] = {
        {"total_bytes", weight_bytes}, {"by_dtype", bd}, {"as_placed_bytes", policy_weight_bytes}};
    j["kv_cache"] = {{"dtype", dtype_name(kv_dtype)},
                     {"bytes_per_token", kv_tok},
                     {"bytes_per_sequence", kv_seq},
                     {"context_tokens", ctx}};
    j["activations"] = {{"bytes_per_token", act_tok},
                        {"hidden_states_bytes", best.cost.memory.hidden},
                        {"workspace_bytes", best.cost.memory.workspace},
                        {"logits_bytes", best.cost.memory.logits}};
    j["workload"] = {
        {"prompt_len", w.prompt_len}, {"gen_len", w.gen_len}, {"prefill_chunk", w.prefill_chunk}};
    j["budget"] = {{"max_ram_bytes", so.max_ram},
                   {"max_vram_bytes", so.max_vram},
                   {"gpu_model", so.gpu ? so.gpu->name : ""},
                   {"note", budget_note}};
    j["baseline_rss_bytes"] = w.baseline_rss;
    j["objective"] = objective_name(so.objective);
    j["policy"] = policy_json(bp);
    j["prediction"] = prediction_json(best.cost);
    j["memory"] = memory_json(best.cost);
    j["note"] = best.note;
    j["runner_ups"] = nlohmann::json::array();
    for (const auto& c : r.runner_ups) j["runner_ups"].push_back(choice_json(c));
    j["search"] = {{"candidates", r.candidates}, {"feasible", r.feasible}};
    j["profile"] = {
        {"path", prof.path}, {"from_cache", prof.from_cache}, {"quick", prof.profile.quick}};
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("model %s: %s, %ld layers, hidden %ld, vocab %ld\n", ro.model.c_str(),
              model->arch().name.c_str(), static_cast<long>(h.n_layer), static_cast<long>(h.n_embd),
              static_cast<long>(h.n_vocab));
  std::string dt;
  for (const auto& [k, v] : by_dtype)
    dt += fmt::format("{}{} {} ({} B)", dt.empty() ? "" : ", ", k, human_bytes(double(v)), v);
  std::printf("weights: %s (%lu B): %s; as placed: %s\n", human_bytes(double(weight_bytes)).c_str(),
              static_cast<unsigned long>(weight_bytes), dt.c_str(),
              human_bytes(double(policy_weight_bytes)).c_str());
  std::printf("KV cache (%s): %s per token, %s per sequence of %ld tokens\n", dtype_name(kv_dtype),
              human_bytes(double(kv_tok)).c_str(), human_bytes(double(kv_seq)).c_str(),
              static_cast<long>(ctx));
  std::printf("activations: %s per token; hidden states %s, scratch %s, logits %s for the block\n",
              human_bytes(double(act_tok)).c_str(),
              human_bytes(double(best.cost.memory.hidden)).c_str(),
              human_bytes(double(best.cost.memory.workspace)).c_str(),
              human_bytes(double(best.cost.memory.logits)).c_str());
  if (!budget_note.empty()) std::printf("%s\n", budget_note.c_str());
  std::printf("workload: prompt %ld + %ld generated tokens; objective %s; profile %s%s\n\n",
              static_cast<long>(w.prompt_len), static_cast<long>(w.gen_len),
              objective_name(so.objective), prof.path.c_str(),
              prof.profile.quick ? " (quick)" : "");
  std::printf("policy: weights %s, KV cache %s, activations %s (GPU/CPU/disk %%)\n",
              pct3(bp.w_gpu, bp.w_cpu, bp.w_disk()).c_str(),
              pct3(bp.c_gpu, bp.c_cpu, bp.c_disk()).c_str(),
              pct3(bp.a_gpu, bp.a_cpu, bp.a_disk()).c_str());
  std::printf(
      "        gpu batch size %ld x %ld batches = %ld sequences; compression weights %s, cache %s; "
      "CPU attention %s\n",
      static_cast<long>(bp.gpu_batch_size), static_cast<long>(bp.num_gpu_batches),
      static_cast<long>(bp.block_size()), bp.compress_weight ? "on" : "off",
      bp.compress_cache ? "on" : "off",
      policy_json(bp)["cpu_attention"].get<bool>() ? "on" : "off");
  std::printf("        %s\n", bp.describe().c_str());
  if (!best.note.empty()) std::printf("        (%s)\n", best.note.c_str());
  const CostPrediction& c = best.cost;
  std::printf(
      "predicted: %.3f tokens/s, per-token latency %.4f s (decode step), prefill %.3f s, total "
      "%.2f s\n",
      c.throughput_tps, c.latency_s, c.prefill_s, c.total_s);
  std::printf(
      "           decode step: compute %.4f s, disk reads %.4f s, KV I/O %.4f s, spills %.4f s\n",
      c.decode.compute_s, c.decode.weight_read_s, c.decode.kv_io_s, c.decode.act_io_s);
  std::printf("peak memory: RAM %s (%s), VRAM %s, disk %s\n",
              human_bytes(double(c.ram_peak)).c_str(), c.memory.describe().c_str(),
              human_bytes(double(c.vram_peak)).c_str(), human_bytes(double(c.disk_bytes)).c_str());
  if (!r.runner_ups.empty()) {
    std::printf(
        "\nrunner-ups:\n| weights | KV | act | batch | compress | tok/s | latency s | RAM | VRAM | "
        "disk |\n");
    std::printf("| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |\n");
    for (const auto& u : r.runner_ups) {
      const Policy& p = u.policy;
      std::printf(
          "| %s | %s | %s | %ldx%ld | %s | %.3f | %.4f | %s | %s | %s |\n",
          pct3(p.w_gpu, p.w_cpu, p.w_disk()).c_str(), pct3(p.c_gpu, p.c_cpu, p.c_disk()).c_str(),
          pct3(p.a_gpu, p.a_cpu, p.a_disk()).c_str(), static_cast<long>(p.gpu_batch_size),
          static_cast<long>(p.num_gpu_batches),
          p.compress_weight ? (p.compress_cache ? "w+c" : "w") : (p.compress_cache ? "c" : "-"),
          u.cost.throughput_tps, u.cost.latency_s, human_bytes(double(u.cost.ram_peak)).c_str(),
          human_bytes(double(u.cost.vram_peak)).c_str(),
          human_bytes(double(u.cost.disk_bytes)).c_str());
    }
  }
}

}  // namespace

void register_plan(CLI::App& app) {
  auto o = std::make_shared<PlanOptions>();
  CLI::App* cmd = app.add_subcommand("plan",
                                     "Show a model's memory needs and the placement, batch and "
                                     "predicted speed for a budget (reads no weights)");
  o->m.add(cmd);
  cmd->add_option("--prompt-len", o->prompt_len, "Prompt tokens per sequence")
      ->check(CLI::Range(1, 1 << 24));
  cmd->add_option("--gen-len", o->gen_len, "Generated tokens per sequence")
      ->check(CLI::Range(1, 1 << 24));
  cmd->add_option("--gpu-model", o->gpu_model,
                  "Nominal GPU for --max-vram without a measured one: t4, a100, h100")
      ->check(CLI::IsMember({"t4", "a100", "h100"}));
  cmd->add_flag("--no-compress", o->no_compress,
                "Do not consider compression (by default it is tried on and off)");
  cmd->add_option("-o,--output", o->output, "md or json")->check(CLI::IsMember({"md", "json"}));
  cmd->callback([o] { plan(*o); });
}

}  // namespace strata::cli

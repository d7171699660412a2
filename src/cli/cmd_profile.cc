// strata profile: measure this machine once (RAM, disk, CPU kernels) for the cost model and the
// automatic placement search, and cache it; later calls print the cached profile.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>

#include "cli/commands.h"
#include "core/progress.h"
#include "policy/profile.h"

namespace strata::cli {
namespace {

struct ProfileCliOptions {
  std::string offload_dir, output = "md";
  bool force = false, quick = false, quiet = false;
  int threads = 0;
};

void print_md(const ProfileResult& r) {
  const HardwareProfile& p = r.profile;
  std::printf("hardware profile %s (%s%s, %.1f s, %s)\n", r.path.c_str(),
              r.from_cache ? "cached" : "measured now", p.quick ? ", quick" : "", p.measure_seconds,
              p.measured_at.c_str());
  std::printf("machine: %s; %d compute threads\n", p.key.describe().c_str(), p.threads);
  std::string rd, wr;
  for (size_t i = 0; i < p.ram_read_gbps.size(); ++i) {
    rd += fmt::format("{}{}: {:.1f}", i ? ", " : "", i + 1, p.ram_read_gbps[i]);
    wr += fmt::format("{}{}: {:.1f}", i ? ", " : "", i + 1, p.ram_write_gbps[i]);
  }
  std::printf("RAM GB/s by threads: read %s; write %s\n", rd.c_str(), wr.c_str());
  std::printf(
      "disk (%s): read %.2f GB/s, write %.2f GB/s; one request at a time: read %.0f us + %.2f "
      "GB/s, "
      "write %.0f us + %.2f GB/s; page cache write %.1f GB/s, read %.1f GB/s\n",
      p.offload_dir.c_str(), p.disk_read_gbps, p.disk_write_gbps, p.disk_sync_read.latency_s * 1e6,
      p.disk_sync_read.gbps, p.disk_sync_write.latency_s * 1e6, p.disk_sync_write.gbps,
      p.page_cache_write_gbps, p.page_cache_read_gbps);
  std::printf(
      "thread pool dispatch: %.1f us per parallel call; compute while the disk streams: %.2fx the "
      "time "
      "alone\n\n",
      p.dispatch_s * 1e6, p.compute_under_io);
  std::printf("| matmul | decode GB/s |");
  const MatmulRate& first = p.matmul.front();
  for (const auto& [n, g] : first.batched_gbps) std::printf(" x%ld GB/s |", static_cast<long>(n));
  std::printf(" prefill x%ld GFLOP/s | same, %ld wide |\n| --- | ---: |",
              static_cast<long>(first.prefill_tokens), static_cast<long>(MatmulRate::kNarrowWidth));
  for (size_t i = 0; i < first.batched_gbps.size(); ++i) std::printf(" ---: |");
  std::printf(" ---: | ---: |\n");
  for (const auto& m : p.matmul) {
    std::printf("| %s | %.1f |", dtype_name(m.type), m.decode_gbps);
    for (const auto& [n, g] : m.batched_gbps) std::printf(" %.1f |", g);
    std::printf(" %.1f | %.1f |\n", m.prefill_gflops, m.narrow_prefill_gflops);
  }
  std::printf("\n| attention KV | decode GB/s | prefill GFLOP/s |\n| --- | ---: | ---: |\n");
  for (const auto& a : p.attention)
    std::printf("| %s | %.1f | %.1f |\n", dtype_name(a.kv), a.decode_gbps, a.prefill_gflops);
  if (p.gpu)
    std::printf("\nGPU %s: %s, host->device %.1f GB/s, device->host %.1f GB/s, %.0f TFLOP/s\n",
                p.gpu->name.c_str(), human_bytes(double(p.gpu->vram_bytes)).c_str(),
                p.gpu->h2d_gbps, p.gpu->d2h_gbps, p.gpu->tflops);
  else
    std::printf(
        "\nGPU: none (plans for --max-vram use a nominal device: strata plan --gpu-model "
        "t4|a100|h100)\n");
}

}  // namespace

void register_profile(CLI::App& app) {
  auto o = std::make_shared<ProfileCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "profile", "Measure this machine's RAM, disk and CPU kernel speeds once (cached)");
  cmd->add_option("--offload-dir", o->offload_dir,
                  "Directory whose disk is measured (where offloaded data goes)");
  cmd->add_flag("--force", o->force, "Measure again even if a valid cached profile exists");
  cmd->add_flag("--quick", o->quick, "Small sizes: a few seconds, rough numbers");
  cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("-o,--output", o->output, "md or json")->check(CLI::IsMember({"md", "json"}));
  cmd->add_flag("-q,--quiet", o->quiet, "No progress output");
  cmd->callback([o] {
    if (o->quiet) Progress::set_enabled(false);
    ProfileOptions po;
    po.offload_dir = o->offload_dir;
    po.quick = o->quick;
    po.threads = o->threads;
    po.progress = !o->quiet;
    const ProfileResult r = load_or_measure_profile(po, o->force);
    if (o->output == "json") {
      nlohmann::json j = {{"cache_path", r.path},
                          {"from_cache", r.from_cache},
                          {"rebuilt_because", r.rebuilt_because},
                          {"profile", profile_to_json(r.profile)}};
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      if (!r.rebuilt_because.empty() && r.rebuilt_because != "no cached profile")
        std::printf("the cached profile was rebuilt: %s\n", r.rebuilt_because.c_str());
      print_md(r);
    }
  });
}

}  // namespace strata::cli

// Hardware profile cache, cost model, policy search (GLPK) and the `strata profile` / `strata plan`
// commands. Rates come from a fixed synthetic profile, so no test depends on this machine's speed
// (except the one that runs the real quick measurement and only checks it produced numbers).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <cmath>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file.h"
#include "formats/model_files.h"
#include "memory/kv_pool.h"
#include "model/model.h"
#include "policy/cost_model.h"
#include "policy/memory_model.h"
#include "policy/policy_search.h"
#include "policy/profile.h"
#include "policy/weight_plan.h"
#include "test_support.h"

namespace strata {
namespace {

std::string fresh_dir(const std::string& name) {
  const std::string d = test::temp_dir() + "/" + name;
  ::mkdir(d.c_str(), 0755);
  return d;
}

// Round, fixed numbers: a 2-core machine with a slow disk.
HardwareProfile synthetic_profile(const std::string& dir) {
  HardwareProfile p;
  p.key = current_machine_key(dir);
  p.offload_dir = dir;
  p.threads = 2;
  p.measure_seconds = 1.5;
  p.measured_at = "2024-01-01T00:00:00Z";
  p.ram_read_gbps = {12, 20};
  p.ram_write_gbps = {8, 12};
  p.disk_read_gbps = 1.0;
  p.disk_write_gbps = 0.8;
  p.disk_sync_read = {100e-6, 0.8};
  p.disk_sync_write = {150e-6, 0.6};
  p.page_cache_write_gbps = 4;
  p.page_cache_read_gbps = 6;
  p.dispatch_s = 10e-6;
  for (DType t : {DType::F16, DType::BF16, DType::F32, DType::Q8_0, DType::Q4_0, DType::Q4_K,
                  DType::Q6_K, DType::G4}) {
    MatmulRate r;
    r.type = t;
    r.decode_gbps = 16;
    r.batched_gbps = {{2, 14}, {4, 12}, {8, 10}, {16, 6}, {32, 3}, {64, 1.6}};
    r.prefill_tokens = 256;
    r.prefill_gflops = 60;
    p.matmul.push_back(r);
  }
  for (DType kv : {DType::F32, DType::F16, DType::G4}) p.attention.push_back({kv, 8, 20});
  return p;
}

std::unique_ptr<Model> stories() {
  LoadOptions lo;
  lo.progress = false;
  lo.lazy_matrices = true;
  return Model::load(test::shared_path("models/stories260K-gguf/stories260K.gguf"), lo);
}

Workload workload() {
  Workload w;
  w.prompt_len = 32;
  w.gen_len = 16;
  w.prefill_chunk = 512;
  w.baseline_rss = 20 << 20;
  return w;
}

Policy percents(Policy b, double w, double c, double a) {
  b.w_cpu = w, b.c_cpu = c, b.a_cpu = a;
  return b;
}

uint64_t peak(const Model& m, const Policy& p, const Workload& w) {
  return predict_memory(m, p, plan_weights(m, p), w).total();
}

// ---------------------------------------------------------------- profile and its cache

TEST(Profile, JsonRoundTrip) {
  const HardwareProfile p = synthetic_profile(fresh_dir("rt"));
  const HardwareProfile q = profile_from_json(nlohmann::json::parse(profile_to_json(p).dump()));
  EXPECT_EQ(q.key, p.key);
  EXPECT_EQ(q.ram_read_gbps, p.ram_read_gbps);
  EXPECT_EQ(q.ram_write_gbps, p.ram_write_gbps);
  EXPECT_DOUBLE_EQ(q.disk_sync_write.latency_s, p.disk_sync_write.latency_s);
  ASSERT_EQ(q.matmul.size(), p.matmul.size());
  for (size_t i = 0; i < p.matmul.size(); ++i) {
    const MatmulRate& a = p.matmul[i];
    const MatmulRate& b = q.matmul_rate(a.type);
    EXPECT_EQ(b.type, a.type);
    EXPECT_EQ(b.batched_gbps, a.batched_gbps);
    EXPECT_DOUBLE_EQ(b.prefill_gflops, a.prefill_gflops);
    EXPECT_EQ(b.prefill_width, a.prefill_width);
    EXPECT_DOUBLE_EQ(b.narrow_prefill_gflops, a.narrow_prefill_gflops);
  }
  EXPECT_FALSE(q.gpu.has_value());
  // The GPU fields exist even without a device, empty.
  const nlohmann::json j = profile_to_json(p);
  EXPECT_FALSE(j["gpu"]["present"].get<bool>());
  EXPECT_TRUE(j["gpu"]["h2d_pinned_gbps"].is_null());
  EXPECT_TRUE(j["gpu"]["tflops"].is_null());
}

struct CacheFixture : ::testing::Test {
  std::string cache, offload;
  int measured = 0;
  ProfileMeasurer measurer = [this](const ProfileOptions& o) {
    ++measured;
    return synthetic_profile(o.offload_dir);
  };
  ProfileOptions opts() const {
    ProfileOptions o;
    o.offload_dir = offload;
    o.progress = false;
    return o;
  }
  void SetUp() override {
    static int n = 0;
    cache = fresh_dir("cache" + std::to_string(++n));
    offload = fresh_dir("off" + std::to_string(n));
  }
  ProfileResult load() { return load_or_measure_profile(opts(), false, measurer, cache); }
  std::string path() const { return profile_cache_path(offload, cache); }
  std::string text() const { return read_text_file(path()); }
  void write(const std::string& s) const {
    std::ofstream f(path(), std::ios::binary | std::ios::trunc);
    f << s;
  }
};

TEST_F(CacheFixture, MeasuredOnceThenReused) {
  const ProfileResult a = load();
  EXPECT_FALSE(a.from_cache);
  EXPECT_EQ(measured, 1);
  EXPECT_TRUE(file_exists(path()));
  const ProfileResult b = load();
  EXPECT_TRUE(b.from_cache);
  EXPECT_EQ(measured, 1);
  EXPECT_EQ(b.profile.ram_read_gbps, a.profile.ram_read_gbps);
  // --force measures again.
  load_or_measure_profile(opts(), true, measurer, cache);
  EXPECT_EQ(measured, 2);
}

TEST_F(CacheFixture, TruncatedFileIsRebuilt) {
  load();
  const std::string t = text();
  write(t.substr(0, t.size() / 2));
  const ProfileResult r = load();
  EXPECT_FALSE(r.from_cache);
  EXPECT_EQ(measured, 2);
  EXPECT_NE(r.rebuilt_because.find("not valid JSON"), std::string::npos) << r.rebuilt_because;
  EXPECT_TRUE(load().from_cache);  // and the rebuilt one is good
}

TEST_F(CacheFixture, FlippedByteIsDetected) {
  load();
  std::string t = text();
  // A digit of a measured number: still valid JSON, so only the checksum can tell.
  const size_t at = t.find("\"decode_gbps\": ");
  ASSERT_NE(at, std::string::npos);
  size_t d = at + 15;
  t[d] = t[d] == '1' ? '2' : '1';
  write(t);
  const ProfileResult r = load();
  EXPECT_FALSE(r.from_cache);
  EXPECT_NE(r.rebuilt_because.find("checksum"), std::string::npos) << r.rebuilt_because;
  // Any other flipped byte is caught too (as bad JSON or a checksum mismatch).
  for (size_t pos : {size_t(0), t.size() / 3, t.size() - 3}) {
    std::string u = text();
    u[pos] = char(u[pos] ^ 0x20);
    write(u);
    EXPECT_FALSE(load().from_cache) << "byte " << pos;
  }
  EXPECT_EQ(measured, 5);
}

TEST_F(CacheFixture, OtherVersionOrMachineOrMissingFieldIsStale) {
  load();
  nlohmann::json j = nlohmann::json::parse(text());
  j["version"] = HardwareProfile::kVersion + 1;
  write(j.dump());
  ProfileResult r = load();
  EXPECT_FALSE(r.from_cache);
  EXPECT_NE(r.rebuilt_because.find("format version"), std::string::npos) << r.rebuilt_because;

  HardwareProfile other = synthetic_profile(offload);
  other.key.cpu_model = "Some Other CPU";
  write(profile_to_json(other).dump());  // a valid checksum, another machine
  r = load();
  EXPECT_FALSE(r.from_cache);
  EXPECT_NE(r.rebuilt_because.find("another machine"), std::string::npos) << r.rebuilt_because;

  // A well-formed, correctly signed file that lacks a measurement. The checksum is FNV-1a 64 of
  // the compact JSON without the checksum field, computed here independently.
  nlohmann::json body = profile_to_json(synthetic_profile(offload));
  body.erase("checksum");
  body.erase("disk");
  uint64_t hsh = 0xcbf29ce484222325ull;
  for (unsigned char ch : body.dump()) hsh = (hsh ^ ch) * 0x100000001b3ull;
  char sum[40];
  std::snprintf(sum, sizeof sum, "fnv1a64:%016llx", static_cast<unsigned long long>(hsh));
  body["checksum"] = sum;
  write(body.dump());
  r = load();
  EXPECT_FALSE(r.from_cache);
  EXPECT_NE(r.rebuilt_because.find("missing"), std::string::npos) << r.rebuilt_because;
  EXPECT_THROW(profile_from_json(body), Error);
  EXPECT_EQ(measured, 4);
}

TEST(Profile, QuickMeasurementProducesEveryNumber) {
  ProfileOptions o;
  o.offload_dir = fresh_dir("quick");
  o.quick = true;
  o.progress = false;
  const HardwareProfile p = measure_profile(o);
  EXPECT_EQ(p.key, current_machine_key(o.offload_dir));
  ASSERT_EQ(int(p.ram_read_gbps.size()), p.threads);
  for (double x : p.ram_read_gbps) EXPECT_GT(x, 0);
  for (double x : p.ram_write_gbps) EXPECT_GT(x, 0);
  EXPECT_GT(p.disk_read_gbps, 0);
  EXPECT_GT(p.disk_write_gbps, 0);
  EXPECT_GT(p.disk_sync_read.gbps, 0);
  EXPECT_GT(p.page_cache_read_gbps, 0);
  EXPECT_GT(p.dispatch_s, 0);
  EXPECT_GE(p.compute_under_io, 1.0);
  EXPECT_EQ(p.matmul.size(), 8u);
  for (const auto& m : p.matmul) {
    EXPECT_GT(m.decode_gbps, 0) << dtype_name(m.type);
    EXPECT_GT(m.prefill_gflops, 0) << dtype_name(m.type);
    EXPECT_EQ(m.prefill_width, 1024) << dtype_name(m.type);
    EXPECT_GT(m.narrow_prefill_gflops, 0) << dtype_name(m.type);
    EXPECT_TRUE(m.batched_gbps.count(8) && m.batched_gbps.count(32)) << dtype_name(m.type);
  }
  EXPECT_EQ(p.attention.size(), 3u);
  // What was measured survives the cache format.
  EXPECT_EQ(profile_from_json(profile_to_json(p)).matmul.size(), 8u);
}

// ---------------------------------------------------------------- cost model

TEST(CostModel, MatmulInterpolatesTheProfiledPoints) {
  HardwareProfile p = synthetic_profile(fresh_dir("mm"));
  p.dispatch_s = 0;
  const uint64_t bytes = 4096ull * 4096 * 2;
  EXPECT_NEAR(matmul_seconds(p, DType::F16, 4096, 4096, bytes, 1), double(bytes) / 16e9, 1e-12);
  EXPECT_NEAR(matmul_seconds(p, DType::F16, 4096, 4096, bytes, 8), double(bytes) / 10e9, 1e-12);
  // Between 8 (10 GB/s) and 16 (6 GB/s): seconds per byte halfway.
  EXPECT_NEAR(matmul_seconds(p, DType::F16, 4096, 4096, bytes, 12),
              double(bytes) * (1 / 10e9 + 1 / 6e9) / 2, 1e-12);
  // Prefill: FLOPs at the profiled rate, linear beyond it.
  const double flops = 2.0 * 4096 * 4096 * 256;
  EXPECT_NEAR(matmul_seconds(p, DType::F16, 4096, 4096, bytes, 256), flops / 60e9, 1e-9);
  EXPECT_NEAR(matmul_seconds(p, DType::F16, 4096, 4096, bytes, 1024), 4 * flops / 60e9, 1e-9);
}

TEST(CostModel, NarrowMatricesPrefillAtTheirMeasuredRate) {
  HardwareProfile p = synthetic_profile(fresh_dir("narrow"));
  p.dispatch_s = 0;
  for (auto& r : p.matmul) r.prefill_width = 4096, r.narrow_prefill_gflops = 30;
  const MatmulRate& r = p.matmul_rate(DType::F16);
  EXPECT_DOUBLE_EQ(r.prefill_gflops_at(4096), 60);
  EXPECT_DOUBLE_EQ(r.prefill_gflops_at(8192), 60);  // flat outside the measurements
  EXPECT_DOUBLE_EQ(r.prefill_gflops_at(768), 30);
  EXPECT_DOUBLE_EQ(r.prefill_gflops_at(256), 30);
  // Halfway in log(width) between 768 and 4096.
  EXPECT_NEAR(r.prefill_gflops_at(int64_t(std::sqrt(768.0 * 4096.0) + 0.5)), 45, 0.01);
  // The smaller side sets the rate: 768 x 3072 (a small model's FFN) prefills at the narrow rate.
  const uint64_t bytes = 768ull * 3072 * 2;
  EXPECT_NEAR(matmul_seconds(p, DType::F16, 3072, 768, bytes, 256), 2.0 * 768 * 3072 * 256 / 30e9,
              1e-9);
  // Unmeasured (an older synthetic profile): the one prefill rate.
  HardwareProfile q = synthetic_profile(fresh_dir("narrow0"));
  EXPECT_DOUBLE_EQ(q.matmul_rate(DType::F16).prefill_gflops_at(768), 60);
}

TEST(CostModel, DiskBoundDecodeStepIsTheStreamedBytes) {
  auto m = stories();
  HardwareProfile p = synthetic_profile(fresh_dir("cm"));
  p.disk_read_gbps = 1e-4;  // 100 KB/s: the disk dominates everything else
  Policy pol;
  pol.w_cpu = 0;
  const WeightPlan plan = plan_weights(*m, pol);
  const Workload w = workload();
  const CostPrediction c = predict_cost(*m, pol, plan, w, p);
  const double stream = double(plan.streamed_bytes_per_pass()) / 1e5;
  ASSERT_GT(stream, 0);
  EXPECT_NEAR(c.decode_step_s, stream, stream * 0.02);
  EXPECT_NEAR(c.decode.weight_read_s, stream, stream * 1e-9);
  EXPECT_EQ(c.decode_steps, w.gen_len - 1);
  EXPECT_NEAR(c.total_s, c.prefill_s + double(w.gen_len - 1) * c.decode_step_s, 1e-9);
  EXPECT_NEAR(c.throughput_tps, double(w.gen_len) / c.total_s, 1e-9);
  // All in RAM: no disk term, and faster.
  const Policy ram;
  const CostPrediction r = predict_cost(*m, ram, plan_weights(*m, ram), w, p);
  EXPECT_EQ(r.decode.weight_read_s, 0);
  EXPECT_LT(r.decode_step_s, c.decode_step_s);
}

// Compute slowed by compute_under_io while weights stream: all of it when the disk outlasts the
// compute, only the overlap when the compute outlasts the disk; nothing without streaming.
TEST(CostModel, ComputeSlowsWhileTheDiskStreams) {
  auto m = stories();
  HardwareProfile p = synthetic_profile(fresh_dir("cio"));
  const Workload w = workload();
  Policy disk;
  disk.w_cpu = 0;
  const WeightPlan plan = plan_weights(*m, disk);
  const CostPrediction a = predict_cost(*m, disk, plan, w, p);
  p.compute_under_io = 1.5;
  const CostPrediction b = predict_cost(*m, disk, plan, w, p);
  EXPECT_GT(b.decode_step_s, a.decode_step_s);
  EXPECT_LE(b.decode_step_s, 1.5 * a.decode_step_s + 1e-12);
  EXPECT_NEAR(b.decode.compute_s, a.decode.compute_s, 1e-12);  // the work itself is the same
  const Policy ram;
  p.compute_under_io = 1.0;
  const CostPrediction c = predict_cost(*m, ram, plan_weights(*m, ram), w, p);
  p.compute_under_io = 1.5;
  const CostPrediction d = predict_cost(*m, ram, plan_weights(*m, ram), w, p);
  EXPECT_NEAR(c.decode_step_s, d.decode_step_s, 1e-12);  // nothing streams: no slowdown
}

TEST(CostModel, KvCacheOnDiskAddsSynchronousIo) {
  auto m = stories();
  const HardwareProfile p = synthetic_profile(fresh_dir("kv"));
  const Workload w = workload();
  Policy ram, disk;
  disk.c_cpu = 0;
  const CostPrediction a = predict_cost(*m, ram, plan_weights(*m, ram), w, p);
  const CostPrediction b = predict_cost(*m, disk, plan_weights(*m, disk), w, p);
  EXPECT_EQ(a.decode.kv_io_s, 0);
  EXPECT_GT(b.decode.kv_io_s, 0);
  // Synchronous: the step grows by exactly the I/O (compute is the same).
  EXPECT_NEAR(b.decode_step_s - a.decode_step_s, b.decode.kv_io_s, 1e-9);
}

// ---------------------------------------------------------------- the LP and rounding

TEST(PolicySearch, EverythingFitsMeansAllInRam) {
  auto m = stories();
  const HardwareProfile p = synthetic_profile(fresh_dir("fit"));
  SearchOptions o;
  o.max_ram = uint64_t(64) << 30;
  Policy b;
  b.gpu_batch_size = 4;
  const auto c = solve_placement(*m, b, workload(), p, o);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->policy.w_cpu, 100);
  EXPECT_EQ(c->policy.c_cpu, 100);
  EXPECT_EQ(c->policy.a_cpu, 100);
  EXPECT_EQ(c->policy.gpu_batch_size, 4);
}

TEST(PolicySearch, TightBudgetSplitsTheWeightsAndFits) {
  auto m = stories();
  const HardwareProfile p = synthetic_profile(fresh_dir("split"));
  const Workload w = workload();
  Policy b;
  const uint64_t all = peak(*m, percents(b, 100, 100, 100), w);
  const uint64_t none = peak(*m, percents(b, 0, 100, 100), w);
  ASSERT_GT(all, none);
  SearchOptions o;
  o.max_ram = (all + none) / 2;
  const auto c = solve_placement(*m, b, w, p, o);
  ASSERT_TRUE(c.has_value());
  EXPECT_GT(c->policy.w_cpu, 0);
  EXPECT_LT(c->policy.w_cpu, 100);
  EXPECT_LE(peak(*m, c->policy, w), o.max_ram);
  EXPECT_EQ(c->cost.ram_peak, peak(*m, c->policy, w));
  // The weights on disk are really streamed, and the prediction accounts for it.
  EXPECT_GT(plan_weights(*m, c->policy).streamed_bytes_per_pass(), 0u);
  EXPECT_GT(c->cost.decode.weight_read_s, 0);
}

TEST(PolicySearch, ImpossibleBudgetIsAnErrorWithTheNumbers) {
  auto m = stories();
  const HardwareProfile p = synthetic_profile(fresh_dir("imp"));
  const Workload w = workload();
  Policy b;
  SearchOptions o;
  o.max_ram = peak(*m, percents(b, 0, 0, 0), w) - 1;
  EXPECT_FALSE(solve_placement(*m, b, w, p, o).has_value());
  o.gpu_batch_size = 1, o.num_gpu_batches = 1;
  o.compress_weight = o.compress_cache = false;
  try {
    search_policy(*m, w, p, o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no placement fits"), std::string::npos) << e.what();
  }
}

TEST(PolicySearch, RoundingNeverExceedsTheBudget) {
  auto m = stories();
  const HardwareProfile p = synthetic_profile(fresh_dir("round"));
  const Workload w = workload();
  int solved = 0;
  for (int64_t gbs : {1, 4}) {
    for (int64_t ngb : {1, 2, 8}) {
      Policy b;
      b.gpu_batch_size = gbs, b.num_gpu_batches = ngb;
      const uint64_t lo = peak(*m, percents(b, 0, 0, 0), w),
                     hi = peak(*m, percents(b, 100, 100, 100), w);
      for (int k = 0; k <= 20; ++k) {
        SearchOptions o;
        o.max_ram = lo + (hi - lo) * uint64_t(k) / 20;
        const auto c = solve_placement(*m, b, w, p, o);
        ASSERT_TRUE(c.has_value()) << gbs << "x" << ngb << " budget " << o.max_ram;
        ++solved;
        EXPECT_LE(peak(*m, c->policy, w), o.max_ram) << c->policy.describe();
        // What the runtime can place: whole KV layers, whole micro-batches.
        const double layers = c->policy.c_cpu / 100 * double(m->hp().n_layer);
        EXPECT_NEAR(layers, std::round(layers), 1e-9);
        const double mbs = c->policy.a_cpu / 100 * double(ngb);
        EXPECT_NEAR(mbs, std::round(mbs), 1e-9);
      }
    }
  }
  EXPECT_EQ(solved, 6 * 21);
}

TEST(PolicySearch, SearchRanksCandidatesAndHonoursTheObjective) {
  auto m = stories();
  const HardwareProfile p = synthetic_profile(fresh_dir("rank"));
  const Workload w = workload();
  SearchOptions o;
  o.max_ram = uint64_t(8) << 30;
  o.max_block = 64;
  const SearchResult r = search_policy(*m, w, p, o);
  EXPECT_GT(r.candidates, 1);
  ASSERT_FALSE(r.runner_ups.empty());
  for (const auto& u : r.runner_ups) EXPECT_GE(r.best.cost.throughput_tps, u.cost.throughput_tps);
  EXPECT_LE(r.best.policy.block_size(), 64);
  // Batching helps throughput on a memory-bound decode.
  EXPECT_GT(r.best.policy.block_size(), 1);
  o.objective = Objective::Latency;
  const SearchResult l = search_policy(*m, w, p, o);
  EXPECT_LE(l.best.policy.block_size(), o.latency_max_block);
  for (const auto& u : l.runner_ups) EXPECT_LE(l.best.cost.decode_step_s, u.cost.decode_step_s);
}

TEST(PolicySearch, GpuPlanRespectsBothBudgets) {
  auto m = stories();
  const HardwareProfile p = synthetic_profile(fresh_dir("gpu"));
  const Workload w = workload();
  SearchOptions o;
  o.gpu = nominal_gpu("t4");
  o.max_ram = uint64_t(8) << 30;
  Policy b;
  const uint64_t weights = plan_weights(*m, Policy{}).resident_bytes();
  o.max_vram = uint64_t(64) << 20;  // the whole tiny model fits a device
  auto c = solve_placement(*m, b, w, p, o);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->policy.w_gpu, 100) << c->policy.describe();
  EXPECT_LE(c->cost.vram_peak, o.max_vram);
  // A device smaller than the weights gets only part of them.
  o.max_vram = c->cost.vram_peak - weights / 2;
  c = solve_placement(*m, b, w, p, o);
  ASSERT_TRUE(c.has_value());
  EXPECT_LT(c->policy.w_gpu, 100);
  EXPECT_LE(c->cost.vram_peak, o.max_vram);
  EXPECT_THROW(nominal_gpu("v100"), Error);
}

// ---------------------------------------------------------------- the commands

struct CliFixture : ::testing::Test {
  static std::string cache;
  static void SetUpTestSuite() {
    cache = fresh_dir("xdg");
    // The commands run with this cache directory, which holds a profile of this machine, so they
    // do not measure.
    ::setenv("XDG_CACHE_HOME", cache.c_str(), 1);
    const std::string dir = default_profile_dir("");
    write_cached_profile(profile_cache_path(""), synthetic_profile(dir));
  }
  static std::string env() { return "XDG_CACHE_HOME=" + cache + " STRATA_NO_PROGRESS=1 "; }
  static nlohmann::json plan_json(const std::string& args, int* rc = nullptr,
                                  std::string* err = nullptr) {
    std::string out;
    const int r = test::run_command(
        env() + test::strata_binary() + " plan " + args + " -o json 2>" + cache + "/err", &out);
    if (rc) *rc = r;
    if (err) *err = read_text_file(cache + "/err");
    if (r != 0) return nullptr;
    return nlohmann::json::parse(out);
  }
};
std::string CliFixture::cache;

TEST_F(CliFixture, PlanJsonHasEveryFieldAndExactBytes) {
  const std::string model = test::shared_path("models/stories260K-gguf/stories260K.gguf");
  const nlohmann::json j =
      plan_json("-m " + model + " --max-ram 2G --prompt-len 64 --gen-len 16 --no-compress");
  ASSERT_FALSE(j.is_null());
  // Exact weight bytes: the sum over the file's tensor index.
  const ModelFiles f = open_model_files(model);
  uint64_t total = 0;
  for (const auto& t : f.tensors) total += t.nbytes;
  EXPECT_EQ(j["weights"]["total_bytes"].get<uint64_t>(), total);
  uint64_t by = 0;
  for (const auto& [k, v] : j["weights"]["by_dtype"].items()) by += v.get<uint64_t>();
  EXPECT_EQ(by, total);
  // KV cache: K and V rows of n_head_kv * head_dim f32 per layer.
  auto m = stories();
  const HParams& h = m->hp();
  const uint64_t kv_tok = uint64_t(2 * h.n_layer * h.kv_dim() * 4);
  EXPECT_EQ(j["kv_cache"]["bytes_per_token"].get<uint64_t>(), kv_tok);
  EXPECT_EQ(j["kv_cache"]["bytes_per_sequence"].get<uint64_t>(),
            kv_tok * 96);  // 80 tokens in 32-token blocks
  EXPECT_EQ(j["activations"]["bytes_per_token"].get<uint64_t>(), uint64_t(h.n_embd * 4));
  for (const char* k : {"hidden_states_bytes", "workspace_bytes", "logits_bytes"})
    EXPECT_TRUE(j["activations"].contains(k));
  const auto& pol = j["policy"];
  for (const char* k : {"weights_percent", "kv_cache_percent", "activations_percent"})
    for (const char* t : {"gpu", "cpu", "disk"}) EXPECT_TRUE(pol[k].contains(t)) << k << t;
  for (const char* k :
       {"gpu_batch_size", "num_gpu_batches", "compress_weight", "compress_cache", "cpu_attention"})
    EXPECT_TRUE(pol.contains(k)) << k;
  EXPECT_EQ(pol["weights_percent"]["cpu"].get<double>(), 100);  // 2G holds it all
  for (const char* k : {"throughput_tokens_per_second", "per_token_latency_seconds",
                        "decode_step_seconds", "prefill_seconds", "total_seconds"})
    EXPECT_GT(j["prediction"][k].get<double>(), 0) << k;
  for (const char* k : {"ram_peak_bytes", "vram_peak_bytes", "disk_bytes"})
    EXPECT_TRUE(j["memory"].contains(k)) << k;
  EXPECT_LE(j["memory"]["ram_peak_bytes"].get<uint64_t>(), uint64_t(2) << 30);
  ASSERT_TRUE(j["runner_ups"].is_array());
  ASSERT_FALSE(j["runner_ups"].empty());
  for (const auto& u : j["runner_ups"]) {
    EXPECT_TRUE(u.contains("policy") && u.contains("prediction") && u.contains("memory"));
    EXPECT_LE(u["prediction"]["throughput_tokens_per_second"].get<double>(),
              j["prediction"]["throughput_tokens_per_second"].get<double>());
  }
  EXPECT_TRUE(j["profile"]["from_cache"].get<bool>());
}

TEST_F(CliFixture, PlanOnAGeneratedModelSplitsUnderATightBudget) {
  const std::string model = cache + "/dummy.gguf";
  std::string out;
  ASSERT_EQ(
      test::run_command(
          env() + test::strata_binary() +
              " gen-dummy -q --arch llama --shape 100m --layers 2 --type q4_0 --embd-type q4_0 " +
              model,
          &out, true),
      0)
      << out;
  const nlohmann::json all =
      plan_json("-m " + model + " --max-ram 4G --prompt-len 32 --gen-len 8 --gpu-batch-size 1");
  ASSERT_FALSE(all.is_null());
  EXPECT_EQ(all["policy"]["weights_percent"]["cpu"].get<double>(), 100);
  const uint64_t need = all["memory"]["ram_peak_bytes"].get<uint64_t>();
  const uint64_t weights = all["weights"]["total_bytes"].get<uint64_t>();
  // A budget an eighth of the weights short: part of them must stream from disk. (In this model
  // the head and the embedding are most of the bytes, and a streamed head needs two staging
  // slots, so little can be saved at all.)
  const uint64_t budget = need - weights / 8;
  const nlohmann::json j =
      plan_json("-m " + model + " --max-ram " + std::to_string(budget) +
                " --prompt-len 32 --gen-len 8 --gpu-batch-size 1 --offload-dir " + cache);
  ASSERT_FALSE(j.is_null());
  EXPECT_GT(j["policy"]["weights_percent"]["disk"].get<double>(), 0);
  EXPECT_LE(j["memory"]["ram_peak_bytes"].get<uint64_t>(), budget);
  EXPECT_GT(j["memory"]["disk_bytes"].get<uint64_t>(), 0u);
  EXPECT_GT(j["prediction"]["decode_step"]["disk_read_seconds"].get<double>(), 0);
  // Markdown output works too.
  ASSERT_EQ(
      test::run_command(
          env() + test::strata_binary() + " plan -m " + model + " --max-ram 4G --gen-len 8", &out),
      0);
  EXPECT_NE(out.find("predicted:"), std::string::npos) << out;
  EXPECT_NE(out.find("runner-ups"), std::string::npos) << out;
  // Nothing fits 10 MiB: a clear error with the numbers.
  int rc = 0;
  std::string err;
  plan_json("-m " + model + " --max-ram 10M", &rc, &err);
  EXPECT_NE(rc, 0);
  EXPECT_NE(err.find("no placement fits --max-ram 10.00 MiB"), std::string::npos) << err;
}

TEST_F(CliFixture, ProfileCommandReusesTheCache) {
  std::string out;
  ASSERT_EQ(test::run_command(env() + test::strata_binary() + " profile -o json", &out), 0) << out;
  const nlohmann::json j = nlohmann::json::parse(out);
  EXPECT_TRUE(j["from_cache"].get<bool>());
  EXPECT_EQ(j["profile"]["ram"]["read_gbps_by_threads"][1].get<double>(), 20);
}

}  // namespace
}  // namespace strata

#include "engine/runtime.h"

#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/file.h"
#include "core/progress.h"

namespace strata {

Runtime::~Runtime() = default;

Workload RuntimeOptions::workload(DType kv) const {
  Workload w;
  w.prompt_len = prompt_len;
  w.gen_len = gen_len;
  w.prefill_chunk = prefill_chunk;
  w.kv_dtype = kv;
  w.staging_depth = staging_depth;
  w.baseline_rss = current_rss_bytes();
  return w;
}

std::unique_ptr<Runtime> Runtime::open(const RuntimeOptions& o) {
  std::unique_ptr<Runtime> rt(new Runtime());
  // Placement is needed as soon as there is a budget, an explicit policy or compression;
  // otherwise the plain in-memory path reads the weights into RAM (or maps the file, --mmap) and
  // runs.
  const bool placed = o.max_ram > 0 || o.policy.has_value() || o.compress_weight ||
                      o.compress_cache || o.num_gpu_batches > 1;
  rt->offloading_ = placed;
  // [policy-search] The hardware profile comes first: when it must be measured, that happens in a
  // child process before anything is loaded, so this process's peak RSS never sees it.
  const bool auto_search = o.max_ram > 0 && !o.policy && o.auto_policy;
  std::optional<HardwareProfile> prof = o.profile;
  if ((auto_search || (o.predict && placed)) && !prof) {
    ProfileOptions po;
    po.offload_dir = o.offload_dir;
    po.progress = o.progress;
    po.isolate = true;
    prof = load_or_measure_profile(po).profile;
  }
  if (o.max_vram > 0) spdlog::warn("--max-vram is for planning only: this build runs on the CPU");
  LoadOptions lo;
  lo.progress = o.progress;
  lo.lazy_matrices = placed;
  lo.mmap = o.mmap;
  rt->model_ = Model::load(o.model, lo);
  rt->tok_ = Tokenizer::from_model_files(rt->model_->files());
  rt->pool_ =
      std::make_unique<ThreadPool>(o.threads > 0 ? o.threads : ThreadPool::default_threads());

  EngineOptions eo;
  eo.ctx_size = o.ctx_size;
  eo.kv_dtype = o.compress_cache ? DType::G4 : o.kv_dtype;
  eo.prefill_chunk = o.prefill_chunk;
  if (!placed) {
    rt->engine_ = std::make_unique<Engine>(*rt->model_, *rt->tok_, *rt->pool_, eo);
    return rt;
  }

  Workload w = o.workload(eo.kv_dtype);
  Policy base;
  base.gpu_batch_size = o.gpu_batch_size;
  base.num_gpu_batches = o.num_gpu_batches;
  base.compress_weight = o.compress_weight;
  base.compress_cache = o.compress_cache;
  if (o.policy) {
    Policy p = *o.policy;
    p.gpu_batch_size = o.gpu_batch_size;
    p.num_gpu_batches = o.num_gpu_batches;
    p.compress_weight = o.compress_weight;
    p.compress_cache = o.compress_cache;
    rt->policy_ = p.for_cpu_only();
  } else if (auto_search) {
    // [policy-search] Placement (and, when asked, batch shape and compression) from the LP search.
    SearchOptions so;
    so.max_ram = o.max_ram;
    so.objective = o.objective;
    so.max_block = o.max_block;
    so.threads = o.threads;
    so.kv_dtype = o.kv_dtype;
    if (!o.search_batch)
      so.gpu_batch_size = o.gpu_batch_size, so.num_gpu_batches = o.num_gpu_batches;
    if (!o.search_compression)
      so.compress_weight = o.compress_weight, so.compress_cache = o.compress_cache;
    rt->search_ = search_policy(*rt->model_, w, *prof, so);
    rt->policy_ = rt->search_->best.policy.for_cpu_only();
  } else if (o.max_ram > 0) {
    rt->policy_ = fit_policy(*rt->model_, base, o.max_ram, w);
  } else {
    rt->policy_ = base;
  }
  // [policy-search] The search may have turned cache compression on.
  eo.kv_dtype = rt->policy_.compress_cache ? DType::G4 : o.kv_dtype;
  w.kv_dtype = eo.kv_dtype;
  rt->workload_ = w;
  rt->plan_ = plan_weights(*rt->model_, rt->policy_);
  rt->predicted_ = predict_memory(*rt->model_, rt->policy_, rt->plan_, w);
  if (prof) {
    CostOptions co;
    co.threads = o.threads;
    rt->prediction_ = predict_cost(*rt->model_, rt->policy_, rt->plan_, w, *prof, co);
  }
  if (o.max_ram > 0 && rt->predicted_.total() > o.max_ram)
    fail("the policy ({}) needs {} but --max-ram is {}: {}", rt->policy_.describe(),
         human_bytes(double(rt->predicted_.total())), human_bytes(double(o.max_ram)),
         rt->predicted_.describe());
  spdlog::debug("policy {}; predicted peak {}", rt->policy_.describe(), rt->predicted_.describe());

  StreamerOptions so;
  so.offload_dir = o.offload_dir;
  so.depth = o.staging_depth;
  so.progress = o.progress;
  if (rt->plan_.disk_bytes() > 0 && o.offload_dir.empty() && rt->plan_.needs_offload_file())
    fail("weights on disk must be converted first: give --offload-dir");
  rt->streamer_ = std::make_unique<WeightStreamer>(*rt->model_, rt->plan_, *rt->pool_, so);

  eo.max_seqs = rt->policy_.block_size();
  eo.max_step_tokens =
      std::max<int64_t>(eo.max_step_tokens, eo.max_seqs * std::min(o.prompt_len, o.prefill_chunk));
  const int64_t ram_layers = kv_ram_layers(*rt->model_, rt->policy_);
  if (ram_layers < rt->model_->hp().n_layer) {
    eo.kv_disk_layers_from = ram_layers;
    if (o.offload_dir.empty()) fail("the KV cache is placed on disk: give --offload-dir");
  }
  eo.offload_dir = o.offload_dir;
  eo.exec.micro_batch_seqs = rt->policy_.gpu_batch_size;
  eo.exec.streamer = rt->streamer_.get();
  eo.exec.act_ram_percent = rt->policy_.a_cpu;
  eo.exec.offload_dir = o.offload_dir;
  eo.exec.progress = o.progress;
  if (rt->policy_.a_cpu < 100 && o.offload_dir.empty())
    fail("activations are placed on disk: give --offload-dir");
  rt->engine_ = std::make_unique<Engine>(*rt->model_, *rt->tok_, *rt->pool_, eo);
  return rt;
}

}  // namespace strata

#include "policy/memory_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "memory/kv_pool.h"
#include "ops/matmul.h"
#include "quant/panel_gemm.h"

namespace strata {

std::string MemoryPrediction::describe() const {
  return fmt::format(
      "baseline {}, weights in RAM {}, weight staging {}, KV cache {}, KV staging {}, scratch {}, "
      "hidden states {}, "
      "logits {}, slack {}{}{} = {}",
      human_bytes(double(baseline)), human_bytes(double(resident_weights)),
      human_bytes(double(staging)), human_bytes(double(kv_ram)), human_bytes(double(kv_arena)),
      human_bytes(double(workspace)), human_bytes(double(hidden)), human_bytes(double(logits)),
      human_bytes(double(slack + run_slack)),
      phase_credit ? fmt::format(", less {} never held at once (prefill's hidden states, decode's "
                                 "last KV rows)",
                                 human_bytes(double(phase_credit)))
                   : "",
      convert ? fmt::format(", conversion scratch {} (while loading)", human_bytes(double(convert)))
              : "",
      human_bytes(double(total())));
}

int64_t kv_ram_layers(const Model& model, const Policy& policy) {
  const Policy p = policy.for_cpu_only();
  return static_cast<int64_t>(std::floor(double(model.hp().n_layer) * p.c_cpu / 100.0 + 1e-9));
}

MemoryPrediction predict_memory(const Model& model, const Policy& policy, const WeightPlan& plan,
                                const Workload& w) {
  const Policy p = policy.for_cpu_only();
  const HParams& h = model.hp();
  const ArchSpec& a = model.arch();
  MemoryPrediction m;
  m.baseline = w.baseline_rss;
  auto page = [](uint64_t n) { return (n + 4095) / 4096 * 4096; };
  for (const auto& t : plan.tensors)
    if (t.tier == Tier::Host && t.shape.size() == 2) m.resident_weights += page(t.bytes);
  if (plan.streamed_bytes_per_pass() > 0)
    m.staging = static_cast<uint64_t>(w.staging_depth) * plan.max_unit_disk_bytes();
  m.disk_weights = plan.disk_bytes();

  const int64_t seqs = p.block_size();
  const int64_t bt = 32;
  const int64_t blocks_per_seq = (w.ctx() + bt - 1) / bt;
  const uint64_t row = static_cast<uint64_t>(KvPool::row_bytes_for(w.kv_dtype, h.kv_dim()));
  const uint64_t block = row * bt;
  const int64_t ram_layers = kv_ram_layers(model, policy);
  // [policy-search] RAM blocks are committed page by page as rows are written: the context's rows
  // plus at most a page at a block edge, never more than the whole blocks.
  const uint64_t kv_seq_layer = std::min<uint64_t>(static_cast<uint64_t>(blocks_per_seq) * block,
                                                   static_cast<uint64_t>(w.ctx()) * row + 4096);
  m.kv_ram = static_cast<uint64_t>(ram_layers * seqs * 2) * kv_seq_layer;
  m.disk_kv = static_cast<uint64_t>((h.n_layer - ram_layers) * seqs * blocks_per_seq * 2) * block;
  if (ram_layers < h.n_layer)
    m.kv_arena = static_cast<uint64_t>(p.gpu_batch_size * blocks_per_seq * 2) * page(block);

  // The largest step: every sequence of the block prefilling a chunk. Scratch is shared by the
  // micro-batches, so it is sized by one micro-batch; hidden states exist for all of them.
  const int64_t chunk = std::min(w.prompt_len, w.prefill_chunk);
  const int64_t mb_tokens = p.gpu_batch_size * chunk;
  // [policy-search] Exactly Workspace::reserve: xn, tmp, q, k, v, attn, up (+ gate, + fused qkv).
  int64_t per_tok =
      h.n_embd + std::max(h.n_embd, h.n_embd_io) + 2 * h.q_dim() + 2 * h.kv_dim() + h.n_ff;
  if (a.gated_ffn) per_tok += h.n_ff;
  if (a.qkv == QkvKind::Fused) per_tok += h.q_dim() + 2 * h.kv_dim();
  m.workspace = static_cast<uint64_t>(per_tok * mb_tokens) * 4;
  const double ram_mbs = std::ceil(double(p.num_gpu_batches) * p.a_cpu / 100.0 - 1e-9);
  m.hidden = static_cast<uint64_t>(std::max(1.0, ram_mbs) * double(mb_tokens * h.n_embd) * 4);
  // [policy-search] ForwardPass objects live for one step (schedule/executor.cc), so the peak is
  // the larger of prefill (its hidden states, the prompt's KV rows) and the last decode step (one
  // token per sequence, the whole context's rows). The 1B model at 1 GiB, 128 x 2 sequences with
  // a G4 cache, measured 7.0% under a prediction that held both at once.
  if (w.gen_len > 0) {
    const uint64_t kv_seq_layer_prompt =
        std::min<uint64_t>(static_cast<uint64_t>((w.prompt_len + bt - 1) / bt) * block,
                           static_cast<uint64_t>(w.prompt_len) * row + 4096);
    const uint64_t kv_prompt = static_cast<uint64_t>(ram_layers * seqs * 2) * kv_seq_layer_prompt;
    const uint64_t hidden_decode =
        static_cast<uint64_t>(std::max(1.0, ram_mbs) * double(p.gpu_batch_size * h.n_embd) * 4);
    const uint64_t both = m.kv_ram + m.hidden;
    const uint64_t peak = std::max(kv_prompt + m.hidden, m.kv_ram + hidden_decode);
    m.phase_credit = both > peak ? both - peak : 0;  // 0 only for an empty prompt
  }
  // The step's logits for every sequence plus one micro-batch's part being appended to them
  // (Executor::forward); the head's selected hidden rows.
  m.logits = static_cast<uint64_t>((seqs + p.gpu_batch_size) * h.n_vocab) * 4 +
             static_cast<uint64_t>(seqs * h.n_embd) * 8;
  // Thread stacks and allocator bookkeeping; per thread, the widened f32 row block the prefill
  // GEMM multiplies (prefill_tile_bytes, ops/matmul.h) and OpenBLAS's packing buffers; the
  // activations quantized to Q8 for the fused integer dot products.
  const uint64_t threads = static_cast<uint64_t>(ThreadPool::default_threads());
  const uint64_t widest = static_cast<uint64_t>(std::max(h.n_embd, h.n_ff));
  // [policy-search] The fixed part was 48 MiB; 8 MiB plus the per-thread terms covers what bench
  // --validate-plan measured over the buffers above (4-13 MiB, llama-100m f16, with and without
  // streaming, 1 to 64 sequences) and keeps the prediction within a few percent.
  // The per-thread part exists only once the run starts (loading does not multiply), so it
  // counts with the run's buffers, not against the conversion scratch of loading.
  m.slack = 8ull << 20;
  // The Q8 activations exist for fewer than kQuantGemmMinTokens tokens only (ops/matmul.h); the
  // 6.7B plan's 8192-token prefill step measured 9.5% under a prediction that sized them by the
  // whole step. Where the integer prefill runs (Q4_0/Q8_0 weights on an AVX-512 VNNI CPU), the
  // same buffer holds a Q8 panel of up to kQ8PanelTokens tokens instead, and each thread packs a
  // strip of weight rows (panel_strip_bytes).
  // G4 weights never go through sgemm (g4_matmul): no widened tile, no OpenBLAS buffers, only
  // the threads' stacks (the 100M model at 320 MiB measured 7.8% under the prediction with them).
  bool panel = false;
  for (const auto& t : plan.tensors) panel = panel || panel_gemm(t.dtype) != nullptr;
  const uint64_t per_thread =
      p.compress_weight
          ? (1ull << 20)
          : static_cast<uint64_t>(prefill_tile_bytes(widest)) + (8ull << 20) +
                (panel ? static_cast<uint64_t>(panel_strip_bytes(static_cast<int64_t>(widest)))
                       : 0);
  const uint64_t q8_rows =
      static_cast<uint64_t>(std::min(mb_tokens, kQuantGemmMinTokens) * widest) * 2;
  const uint64_t q8_panel =
      panel ? static_cast<uint64_t>(
                  q8_panel_bytes(static_cast<int64_t>(widest), std::min(mb_tokens, kQ8PanelTokens)))
            : 0;
  m.run_slack = threads * per_thread + std::max(q8_rows, q8_panel);
  // [policy-search] Compression while loading (schedule/offload_file.cc produce_tensor): the
  // source tensor and 64 rows widened to f32, plus the converted copy for the offload file.
  for (const auto& t : plan.tensors) {
    if (!t.converted || t.shape.size() != 2) continue;
    const Tensor& src = model.store().get(t.name);
    if (src.dtype == t.dtype) continue;  // a layout fix reads straight into place
    uint64_t c =
        page(static_cast<uint64_t>(src.nbytes())) + static_cast<uint64_t>(64 * t.shape[1]) * 4;
    if (t.tier == Tier::Disk) c += page(t.bytes);
    m.convert = std::max(m.convert, c);
  }
  return m;
}

Policy fit_policy(const Model& model, Policy base, uint64_t max_ram, const Workload& w) {
  auto fits = [&](const Policy& p, MemoryPrediction* out) {
    const MemoryPrediction m = predict_memory(model, p, plan_weights(model, p), w);
    if (out) *out = m;
    return m.total() <= max_ram;
  };
  Policy p = base.for_cpu_only();
  p.c_cpu = 100, p.a_cpu = 100;
  // Most weights in RAM first: binary search on the weight percentage (more RAM never hurts).
  p.w_cpu = 0;
  MemoryPrediction m;
  if (fits(p, &m)) {
    double lo = 0, hi = 100;
    Policy q = p;
    q.w_cpu = 100;
    if (fits(q, nullptr)) return q;
    for (int i = 0; i < 12; ++i) {
      q.w_cpu = (lo + hi) / 2;
      (fits(q, nullptr) ? lo : hi) = q.w_cpu;
    }
    p.w_cpu = std::floor(lo);
    return p;
  }
  // Weights all on disk still do not fit: move the KV cache, then activations, to disk.
  for (double c = 90; c >= 0; c -= 10) {
    p.c_cpu = c;
    if (fits(p, &m)) return p;
  }
  for (double a = 50; a >= 0; a -= 50) {
    p.a_cpu = a;
    if (fits(p, &m)) return p;
  }
  fail(
      "the budget --max-ram {} is too small for this model and batch even with everything on disk: "
      "{}",
      human_bytes(double(max_ram)), m.describe());
}

}  // namespace strata

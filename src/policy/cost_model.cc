#include "policy/cost_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/progress.h"
#include "memory/kv_pool.h"

namespace strata {
namespace {

constexpr int64_t kBlockTokens = 32;  // KV block size the engine uses

double kv_elem_bytes(DType kv) {
  if (kv == DType::G4) return 36.0 / 64;
  return kv == DType::F16 ? 2 : 4;
}

// A step's shape: every sequence adds `tok` tokens to `ctx` cached ones.
struct Phase {
  int64_t tok = 1;
  int64_t ctx = 0;
};

// What one step costs, unit by unit, for a plan.
struct UnitTimes {
  std::vector<double> compute;  // per unit 0..L (L = head, with embedding and sampling)
  std::vector<double> kv_io;    // per layer on disk; 0 for RAM layers
  std::vector<double> act_io;   // per layer
};

class Costing {
 public:
  Costing(const Model& m, const Policy& p, const WeightPlan& plan, const Workload& w,
          const HardwareProfile& prof, const CostOptions& o)
      : m_(m), h_(m.hp()), p_(p.for_cpu_only()), plan_(plan), w_(w), prof_(prof) {
    threads_ = o.threads > 0 ? o.threads : prof.threads;
    ram_gbps_ = prof.ram_read(threads_);
    units_.assign(size_t(plan.n_layers + 2), {});
    for (const auto& t : plan.tensors)
      if (t.unit >= 0) units_[size_t(t.unit)].push_back(&t);
    const int64_t row = KvPool::row_bytes_for(w.kv_dtype, h_.kv_dim());
    fbb_ = double((row * kBlockTokens + 4095) / 4096 * 4096);
  }

  double matmuls(int unit, int64_t n_tok) const {
    double s = 0;
    for (const PlannedTensor* t : units_[size_t(unit)])
      s += matmul_seconds(prof_, t->dtype, t->shape[0], t->shape[1], t->bytes, n_tok, threads_);
    return s;
  }

  // One layer, every micro-batch, no I/O.
  double layer_compute(int j, const Phase& ph) const {
    const int64_t gbs = p_.gpu_batch_size, n_tok = gbs * ph.tok;
    const AttentionRate& ar = prof_.attention_rate(w_.kv_dtype);
    const double head_elems = double(h_.n_head * h_.head_dim);
    double attn;
    if (ph.tok == 1) {
      const double bytes = double(ph.ctx + 1) * head_elems * kv_elem_bytes(w_.kv_dtype) * 2;
      attn = bytes / (ar.decode_gbps * 1e9);
    } else {
      const double keys = double(ph.tok) * double(ph.ctx) + double(ph.tok) * double(ph.tok + 1) / 2;
      attn = 4 * head_elems * keys / (ar.prefill_gflops * 1e9);
    }
    const double elem_bytes =
        4.0 * double(8 * h_.n_embd + 3 * h_.n_ff + 2 * h_.q_dim() + 2 * h_.kv_dim()) *
        double(n_tok);
    const double per_mb = matmuls(j, n_tok) + double(gbs) * (attn + prof_.dispatch_s) +
                          elem_bytes / (ram_gbps_ * 1e9) + 6 * prof_.dispatch_s;
    return per_mb * double(p_.num_gpu_batches);
  }

  // Head, embedding and sampling: the work between the last layer and the next step's layer 0.
  double head_compute(const Phase& ph) const {
    const int64_t gbs = p_.gpu_batch_size, n_tok = gbs * ph.tok;
    double per_mb = matmuls(plan_.head_unit(), gbs) + 2 * prof_.dispatch_s;
    const bool embd_on_disk = [&] {
      for (const PlannedTensor* t : units_[size_t(plan_.embd_unit())])
        if (t->tier == Tier::Disk) return true;
      return false;
    }();
    // Rows of a table on disk are single buffered reads, mostly from the page cache.
    const double row = double(h_.n_embd_io > 0 ? h_.n_embd_io : h_.n_embd) * 4;
    per_mb += embd_on_disk ? double(n_tok) * (5e-6 + row / (prof_.page_cache_read_gbps * 1e9))
                           : double(n_tok) * row * 2 / (ram_gbps_ * 1e9);
    const double sampling =
        double(p_.block_size()) * double(h_.n_vocab) * 4 * 3 / (prof_.ram_read(1) * 1e9);
    return per_mb * double(p_.num_gpu_batches) + sampling;
  }

  // Staging one disk layer's KV blocks for every micro-batch: a read of each block the sequences
  // hold, a write of each block that got new rows.
  double kv_io(const Phase& ph) const {
    const int64_t after = ph.ctx + ph.tok;
    const double reads = double((after + kBlockTokens - 1) / kBlockTokens);
    const double writes = reads - double(ph.ctx / kBlockTokens);
    const double per_seq = reads * prof_.disk_sync_read.seconds(2 * fbb_) +
                           writes * prof_.disk_sync_write.seconds(2 * fbb_);
    return per_seq * double(p_.block_size());
  }

  // Spilling and reloading one micro-batch's hidden states around a layer.
  double act_io_per_mb(const Phase& ph) const {
    const double bytes = double(p_.gpu_batch_size * ph.tok * h_.n_embd) * 4;
    return bytes / (prof_.page_cache_write_gbps * 1e9) + bytes / (prof_.page_cache_read_gbps * 1e9);
  }

  UnitTimes step(const Phase& ph) const {
    const int L = plan_.n_layers;
    UnitTimes u;
    u.compute.resize(size_t(L + 1));
    u.kv_io.assign(size_t(L), 0);
    u.act_io.assign(size_t(L), 0);
    const int64_t kv_ram = kv_ram_layers(m_, p_);
    const int64_t ngb = p_.num_gpu_batches;
    const int64_t ram_mbs =
        std::min<int64_t>(ngb, int64_t(std::ceil(double(ngb) * p_.a_cpu / 100.0 - 1e-9)));
    const double kv = kv_io(ph), act = act_io_per_mb(ph) * double(ngb - ram_mbs);
    for (int j = 0; j < L; ++j) {
      u.compute[size_t(j)] = layer_compute(j, ph);
      if (j >= kv_ram) u.kv_io[size_t(j)] = kv;
      if (L > 1) u.act_io[size_t(j)] = act * ((j > 0 ? 0.5 : 0) + (j + 1 < L ? 0.5 : 0));
    }
    u.compute[size_t(L)] = head_compute(ph);
    return u;
  }

  double unit_read(int unit) const {
    uint64_t b = 0;
    for (const PlannedTensor* t : units_[size_t(unit)])
      if (t->tier == Tier::Disk) b += t->bytes;
    return double(b) / (prof_.disk_read_gbps * 1e9);
  }

  // Compute of `c` seconds alone while a read of `r` seconds streams: slowed by the profile's
  // compute_under_io factor k for as long as the read lasts (all of it when the read outlasts it).
  double overlapped_compute(double c, double r) const {
    const double k = prof_.compute_under_io;
    if (r <= 0 || k <= 1) return c;
    return r >= c * k ? c * k : c + r * (1 - 1 / k);
  }

  // The pipelined step: unit u computes while unit u+1 streams in; after the head, layer 0 of the
  // next step streams in (cold: the first step waits for it).
  StepCost pipeline(const UnitTimes& u, bool cold) const {
    const int L = plan_.n_layers;
    StepCost c;
    std::vector<double> r(size_t(L + 1));
    for (int i = 0; i <= L; ++i) r[size_t(i)] = unit_read(i), c.weight_read_s += r[size_t(i)];
    double t = cold ? r[0] : 0;
    for (int j = 0; j < L; ++j) {
      const double x = u.kv_io[size_t(j)] + u.act_io[size_t(j)];
      t += x +
           std::max(overlapped_compute(u.compute[size_t(j)], r[size_t(j + 1)]), r[size_t(j + 1)]);
      c.kv_io_s += u.kv_io[size_t(j)];
      c.act_io_s += u.act_io[size_t(j)];
      c.compute_s += u.compute[size_t(j)];
    }
    t += std::max(overlapped_compute(u.compute[size_t(L)], r[0]), r[0]);
    c.compute_s += u.compute[size_t(L)];
    c.step_s = t;
    return c;
  }

  const HParams& hp() const { return h_; }

 private:
  const Model& m_;
  const HParams& h_;
  Policy p_;
  const WeightPlan& plan_;
  const Workload& w_;
  const HardwareProfile& prof_;
  int threads_ = 1;
  double ram_gbps_ = 10;
  double fbb_ = 0;
  std::vector<std::vector<const PlannedTensor*>> units_;
};

void add(StepCost& a, const StepCost& b, double k = 1) {
  a.compute_s += k * b.compute_s, a.weight_read_s += k * b.weight_read_s,
      a.kv_io_s += k * b.kv_io_s;
  a.act_io_s += k * b.act_io_s, a.h2d_s += k * b.h2d_s, a.d2h_s += k * b.d2h_s,
      a.step_s += k * b.step_s;
}

std::vector<Phase> prefill_phases(const Workload& w) {
  std::vector<Phase> v;
  const int64_t chunk = std::max<int64_t>(1, std::min(w.prompt_len, w.prefill_chunk));
  for (int64_t done = 0; done < w.prompt_len; done += chunk)
    v.push_back({std::min(chunk, w.prompt_len - done), done});
  return v;
}

// Decode steps to evaluate (at most 16, evenly spaced; each stands for `weight` steps).
std::vector<std::pair<Phase, double>> decode_phases(const Workload& w) {
  std::vector<std::pair<Phase, double>> v;
  const int64_t n = std::max<int64_t>(0, w.gen_len - 1);
  if (n == 0) return v;
  const int64_t k = std::min<int64_t>(n, 16);
  for (int64_t i = 0; i < k; ++i) {
    const int64_t s = (2 * i + 1) * n / (2 * k);  // middle of each stretch
    v.push_back({Phase{1, w.prompt_len + s}, double(n) / double(k)});
  }
  return v;
}

void finish(CostPrediction& c, const Policy& p, const Workload& w) {
  c.seqs = p.block_size();
  c.prompt_len = w.prompt_len, c.gen_len = w.gen_len;
  c.prefill_s = c.prefill.step_s;
  c.decode_step_s = c.decode.step_s;
  c.total_s = c.prefill_s + double(c.decode_steps) * c.decode_step_s;
  c.throughput_tps = c.total_s > 0 ? double(c.seqs * w.gen_len) / c.total_s : 0;
  c.latency_s = c.decode_steps > 0 ? c.decode_step_s : c.total_s;
}

}  // namespace

double matmul_seconds(const HardwareProfile& prof, DType type, int64_t rows, int64_t cols,
                      uint64_t bytes, int64_t n_tok, int threads) {
  const MatmulRate& r = prof.matmul_rate(type);
  const int t = threads > 0 ? std::min(threads, prof.threads) : prof.threads;
  // Fewer threads than measured: memory-bound decode scales with RAM bandwidth, the rest with
  // cores.
  const double mem_scale = prof.ram_read(prof.threads) / prof.ram_read(t);
  const double cpu_scale = double(prof.threads) / double(t);
  const double bpw = double(bytes) / (double(rows) * double(cols));
  // Seconds per weight byte at the measured token counts.
  std::vector<std::pair<double, double>> pts;
  pts.emplace_back(1.0, mem_scale / (r.decode_gbps * 1e9));
  for (const auto& [n, g] : r.batched_gbps)
    if (n < r.prefill_tokens) pts.emplace_back(double(n), cpu_scale / (g * 1e9));
  const double P = double(r.prefill_tokens);
  pts.emplace_back(P, cpu_scale * 2 * P / (r.prefill_gflops_at(std::min(rows, cols)) * 1e9 * bpw));
  const double n = double(std::max<int64_t>(n_tok, 1));
  double s;
  if (n >= P) {
    s = pts.back().second * n / P;  // compute-bound: linear in the tokens
  } else {
    size_t i = 1;
    while (i < pts.size() && pts[i].first < n) ++i;
    const auto& a = pts[i - 1];
    const auto& b = pts[std::min(i, pts.size() - 1)];
    s = b.first > a.first ? a.second + (b.second - a.second) * (n - a.first) / (b.first - a.first)
                          : a.second;
  }
  // Quantized types quantize the activations first: a second parallel call.
  const bool quant = !is_float_type(type) && type != DType::G4;
  return double(bytes) * s + prof.dispatch_s * (quant ? 2 : 1);
}

CostPrediction predict_cost(const Model& model, const Policy& policy, const WeightPlan& plan,
                            const Workload& w, const HardwareProfile& prof, const CostOptions& o) {
  const Policy p = policy.for_cpu_only();
  Costing c(model, p, plan, w, prof, o);
  CostPrediction out;
  bool cold = true;
  for (const Phase& ph : prefill_phases(w)) {
    add(out.prefill, c.pipeline(c.step(ph), cold));
    cold = false;
    ++out.prefill_steps;
  }
  const auto dec = decode_phases(w);
  out.decode_steps = std::max<int64_t>(0, w.gen_len - 1);
  for (const auto& [ph, k] : dec)
    add(out.decode, c.pipeline(c.step(ph), false), k / double(out.decode_steps));
  out.memory = predict_memory(model, p, plan, w);
  out.ram_peak = out.memory.total();
  const int64_t ngb = p.num_gpu_batches;
  const int64_t ram_mbs =
      std::min<int64_t>(ngb, int64_t(std::ceil(double(ngb) * p.a_cpu / 100.0 - 1e-9)));
  const uint64_t act_disk =
      uint64_t(std::max<int64_t>(0, ngb - ram_mbs)) * uint64_t(p.gpu_batch_size) *
      uint64_t(std::min(w.prompt_len, w.prefill_chunk)) * uint64_t(model.hp().n_embd) * 4;
  out.disk_bytes = out.memory.disk_weights + out.memory.disk_kv + act_disk;
  finish(out, p, w);
  return out;
}

LinearCosts linear_costs(const Model& model, const Policy& batch, const Workload& w,
                         const HardwareProfile& prof, const CostOptions& o) {
  LinearCosts lc;
  const HParams& h = model.hp();
  lc.n_layer = h.n_layer;
  const double L = double(h.n_layer);
  // Everything in RAM: compute; everything on disk: the I/O terms.
  Policy ram = batch.for_cpu_only();
  ram.w_cpu = ram.c_cpu = ram.a_cpu = 100;
  Policy disk = ram;
  disk.w_cpu = disk.c_cpu = disk.a_cpu = 0;
  const WeightPlan plan_ram = plan_weights(model, ram), plan_disk = plan_weights(model, disk);
  Costing cr(model, ram, plan_ram, w, prof, o), cd(model, disk, plan_disk, w, prof, o);
  auto sum_compute = [](const UnitTimes& u) {
    double s = 0;
    for (double x : u.compute) s += x;
    return s;
  };
  auto sum_vec = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return s;
  };
  for (const Phase& ph : prefill_phases(w)) {
    lc.prefill_compute += sum_compute(cr.step(ph)) / L;
    const UnitTimes ud = cd.step(ph);
    lc.prefill_kv_io += sum_vec(ud.kv_io) / L;
    lc.prefill_act_io += sum_vec(ud.act_io) / L;
    ++lc.prefill_steps;
  }
  const auto dec = decode_phases(w);
  lc.decode_steps = std::max<int64_t>(0, w.gen_len - 1);
  for (const auto& [ph, k] : dec) {
    const double f = k / double(lc.decode_steps);
    lc.decode_compute += f * sum_compute(cr.step(ph)) / L;
    const UnitTimes ud = cd.step(ph);
    lc.decode_kv_io += f * sum_vec(ud.kv_io) / L;
    lc.decode_act_io += f * sum_vec(ud.act_io) / L;
  }
  lc.weight_read = double(plan_disk.streamed_bytes_per_pass()) / (prof.disk_read_gbps * 1e9) / L;
  // Transfer terms for GPU plans (bytes per layer and step).
  lc.weight_bytes = double(plan_disk.streamed_bytes_per_pass()) / L;
  const double row = double(KvPool::row_bytes_for(w.kv_dtype, h.kv_dim()));
  const double seqs = double(batch.block_size());
  const double ctx_avg = double(w.prompt_len) + double(w.gen_len) / 2;
  lc.kv_read_bytes_decode = 2 * row * ctx_avg * seqs;
  lc.kv_write_bytes_decode = 2 * row * seqs;
  lc.act_bytes = double(batch.block_size() * h.n_embd) * 4;
  if (o.gpu) {
    const GpuModel& g = *o.gpu;
    double flops_tok = 0;  // per layer and token
    for (const auto& t : plan_ram.tensors)
      if (t.unit >= 0 && t.unit < plan_ram.n_layers)
        flops_tok += 2.0 * double(t.shape[0]) * double(t.shape[1]);
    flops_tok /= L;
    const double head_elems = double(h.n_head * h.head_dim);
    const double tok_p = seqs * double(w.prompt_len);
    const double attn_p =
        4 * head_elems * double(w.prompt_len) * double(w.prompt_len + 1) / 2 * seqs;
    lc.prefill_gpu_compute = (flops_tok * tok_p + attn_p) / (g.tflops * 1e12) +
                             double(batch.num_gpu_batches) * lc.weight_bytes / (g.mem_gbps * 1e9);
    const double kv_bytes_dec = 2 * head_elems * kv_elem_bytes(w.kv_dtype) * ctx_avg * seqs;
    lc.decode_gpu_compute =
        std::max(flops_tok * seqs / (g.tflops * 1e12),
                 double(batch.num_gpu_batches) * lc.weight_bytes / (g.mem_gbps * 1e9)) +
        kv_bytes_dec / (g.mem_gbps * 1e9);
    lc.decode_cpu_attention = kv_bytes_dec / (prof.attention_rate(w.kv_dtype).decode_gbps * 1e9);
  }
  return lc;
}

CostPrediction predict_cost_gpu(const Model& model, const Policy& p, const Workload& w,
                                const HardwareProfile& prof, const CostOptions& o) {
  if (!o.gpu) fail("predict_cost_gpu needs a GPU model");
  const GpuModel& g = *o.gpu;
  const LinearCosts lc = linear_costs(model, p, w, prof, o);
  const HParams& h = model.hp();
  const double L = double(h.n_layer);
  const double wg = p.w_gpu / 100, wc = p.w_cpu / 100, wd = p.w_disk() / 100;
  const double cg = p.c_gpu / 100, cc = p.c_cpu / 100, cd = p.c_disk() / 100;
  const double ag = p.a_gpu / 100, ac = p.a_cpu / 100, ad = p.a_disk() / 100;
  (void)ag;
  auto layer = [&](bool decode, StepCost& s) {
    const double kv_r = decode ? lc.kv_read_bytes_decode : 0;
    const double kv_w =
        decode ? lc.kv_write_bytes_decode : lc.kv_write_bytes_decode * double(w.prompt_len);
    const double act = lc.act_bytes * (decode ? 1 : double(w.prompt_len));
    const bool cpu_attn = p.cpu_cache_compute && decode;
    double comp = decode ? lc.decode_gpu_compute : lc.prefill_gpu_compute;
    if (cpu_attn) comp = std::max(comp, lc.decode_cpu_attention * (cc + cd));
    s.compute_s = comp;
    s.h2d_s = ((wc + wd) * lc.weight_bytes + (cpu_attn ? 0 : (cc + cd) * kv_r) + (ac + ad) * act) /
              (g.h2d_gbps * 1e9);
    s.d2h_s = ((cc + cd) * kv_w + (ac + ad) * act) / (g.d2h_gbps * 1e9);
    s.weight_read_s = wd * lc.weight_bytes / (prof.disk_read_gbps * 1e9);
    s.kv_io_s = (cd * (kv_r + kv_w)) / (prof.disk_read_gbps * 1e9);
    s.act_io_s = ad * act * 2 / (prof.disk_read_gbps * 1e9);
    s.step_s = std::max({s.compute_s, s.h2d_s, s.d2h_s, s.weight_read_s + s.kv_io_s + s.act_io_s});
  };
  CostPrediction out;
  StepCost sp, sd;
  layer(false, sp);
  layer(true, sd);
  out.prefill_steps = 1;
  out.decode_steps = std::max<int64_t>(0, w.gen_len - 1);
  add(out.prefill, sp, L);
  add(out.decode, sd, L);
  // RAM: the CPU share of everything, with staging for what streams through it.
  Policy cpu = p;
  cpu.w_gpu = cpu.c_gpu = cpu.a_gpu = 0;
  cpu.cpu_cache_compute = false;
  const WeightPlan plan = plan_weights(model, cpu);
  out.memory = predict_memory(model, cpu, plan, w);
  out.ram_peak = out.memory.total();
  const double wtot = double(plan_weights(model, Policy{}).resident_bytes());
  const double kvtot = double(out.memory.kv_ram + out.memory.disk_kv);
  const double acttot =
      double(p.block_size() * std::min(w.prompt_len, w.prefill_chunk) * h.n_embd) * 4;
  // VRAM: its share, two layers of streamed weights in flight, one micro-batch's scratch.
  out.vram_peak =
      uint64_t(wg * wtot + cg * kvtot + (p.a_gpu / 100) * acttot + 2 * (1 - wg) * lc.weight_bytes +
               double(out.memory.workspace) + double(out.memory.logits));
  out.disk_bytes = uint64_t(wd * wtot + cd * kvtot + ad * acttot);
  finish(out, p, w);
  return out;
}

std::string describe(const CostPrediction& c) {
  return fmt::format(
      "{} seqs: prefill {:.3f} s, decode step {:.4f} s (compute {:.4f}, disk {:.4f}, KV I/O "
      "{:.4f}, spills {:.4f}), "
      "total {:.2f} s, {:.3f} tok/s, peak RAM {}",
      c.seqs, c.prefill_s, c.decode_step_s, c.decode.compute_s, c.decode.weight_read_s,
      c.decode.kv_io_s, c.decode.act_io_s, c.total_s, c.throughput_tps,
      human_bytes(double(c.ram_peak)));
}

}  // namespace strata

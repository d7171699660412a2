#include "policy/policy_search.h"

#include <glpk.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"
#include "core/progress.h"
#include "policy/weight_plan.h"

namespace strata {
namespace {

// A small GLPK problem: minimise c.x subject to rows lo <= a.x <= hi.
class Lp {
 public:
  Lp() {
    glp_term_out(GLP_OFF);
    p_ = glp_create_prob();
    glp_set_obj_dir(p_, GLP_MIN);
  }
  ~Lp() { glp_delete_prob(p_); }
  Lp(const Lp&) = delete;
  Lp& operator=(const Lp&) = delete;

  int var(double lo, double hi, double cost, bool binary = false) {
    const int j = glp_add_cols(p_, 1);
    if (binary)
      glp_set_col_kind(p_, j, GLP_BV);
    else
      glp_set_col_bnds(p_, j, hi > lo ? GLP_DB : GLP_FX, lo, hi);
    if (!binary && std::isinf(hi)) glp_set_col_bnds(p_, j, GLP_LO, lo, 0);
    glp_set_obj_coef(p_, j, cost);
    binary_ |= binary;
    return j;
  }
  // sum(coef * var) >= lo  (or <= hi with upper = true)
  void row(const std::vector<std::pair<int, double>>& terms, double bound, bool upper) {
    const int i = glp_add_rows(p_, 1);
    glp_set_row_bnds(p_, i, upper ? GLP_UP : GLP_LO, bound, bound);
    for (const auto& [j, a] : terms) {
      if (a == 0) continue;
      ia_.push_back(i), ja_.push_back(j), ar_.push_back(a);
    }
  }
  void eq(const std::vector<std::pair<int, double>>& terms, double v) {
    const int i = glp_add_rows(p_, 1);
    glp_set_row_bnds(p_, i, GLP_FX, v, v);
    for (const auto& [j, a] : terms) ia_.push_back(i), ja_.push_back(j), ar_.push_back(a);
  }
  // Solution values (index by var id), or nullopt when infeasible.
  std::optional<std::vector<double>> solve() {
    std::vector<int> ia = {0}, ja = {0};
    std::vector<double> ar = {0};
    ia.insert(ia.end(), ia_.begin(), ia_.end());
    ja.insert(ja.end(), ja_.begin(), ja_.end());
    ar.insert(ar.end(), ar_.begin(), ar_.end());
    glp_load_matrix(p_, int(ia_.size()), ia.data(), ja.data(), ar.data());
    const int n = glp_get_num_cols(p_);
    std::vector<double> x(size_t(n + 1), 0.0);
    if (binary_) {
      glp_iocp parm;
      glp_init_iocp(&parm);
      parm.presolve = GLP_ON;
      parm.msg_lev = GLP_MSG_OFF;
      if (glp_intopt(p_, &parm) != 0 || glp_mip_status(p_) != GLP_OPT) return std::nullopt;
      for (int j = 1; j <= n; ++j) x[size_t(j)] = glp_mip_col_val(p_, j);
      obj_ = glp_mip_obj_val(p_);
    } else {
      glp_smcp parm;
      glp_init_smcp(&parm);
      parm.presolve = GLP_ON;
      parm.msg_lev = GLP_MSG_OFF;
      if (glp_simplex(p_, &parm) != 0 || glp_get_status(p_) != GLP_OPT) return std::nullopt;
      for (int j = 1; j <= n; ++j) x[size_t(j)] = glp_get_col_prim(p_, j);
      obj_ = glp_get_obj_val(p_);
    }
    return x;
  }
  double objective() const { return obj_; }

 private:
  glp_prob* p_ = nullptr;
  std::vector<int> ia_, ja_;
  std::vector<double> ar_;
  bool binary_ = false;
  double obj_ = 0;
};

constexpr double kGiB = 1024.0 * 1024 * 1024;

Policy with_percent(Policy p, double w, double c, double a) {
  p.w_gpu = p.c_gpu = p.a_gpu = 0;
  p.w_cpu = w, p.c_cpu = c, p.a_cpu = a;
  return p;
}

MemoryPrediction mem(const Model& m, const Policy& p, const Workload& w) {
  return predict_memory(m, p, plan_weights(m, p), w);
}

// RAM as a linear function of the fractions in RAM (w, c, a), read off predict_memory.
struct MemLinear {
  double fixed = 0, weights = 0, staging = 0, kv = 0, arena = 0, hidden_mb = 0;
  int64_t ngb = 1;
  double at(double w, double c, double a) const {
    return fixed + weights * w + staging * (1 - w) + kv * c + (c < 1 ? arena : 0) +
           hidden_mb * (1 + double(ngb - 1) * a);
  }
};

MemLinear linear_memory(const Model& m, const Policy& batch, const Workload& w) {
  const MemoryPrediction all = mem(m, with_percent(batch, 100, 100, 100), w);
  const MemoryPrediction w0 = mem(m, with_percent(batch, 0, 100, 100), w);
  const MemoryPrediction c0 = mem(m, with_percent(batch, 100, 0, 100), w);
  MemLinear l;
  l.ngb = batch.num_gpu_batches;
  l.weights = double(all.resident_weights) - double(w0.resident_weights);
  l.staging = double(w0.staging);
  l.kv = double(all.kv_ram);
  l.arena = double(c0.kv_arena);
  l.hidden_mb = double(all.hidden) / double(batch.num_gpu_batches);
  l.fixed = double(all.total()) - l.weights - l.kv - double(all.hidden) - double(all.staging) -
            double(all.kv_arena);
  return l;
}

double ranking_cost(const CostPrediction& c, Objective o) {
  return o == Objective::Latency ? c.decode_step_s
                                 : (c.throughput_tps > 0 ? 1.0 / c.throughput_tps : 1e30);
}

// Rounds the LP's fractions to what the runtime places, then steps down until predict_memory fits
// the budget, then back up on weights while it still fits.
std::optional<Policy> round_cpu(const Model& model, const Policy& batch, const Workload& w,
                                uint64_t budget, double wf, double cf, double af,
                                std::string* note) {
  const int64_t L = model.hp().n_layer, ngb = batch.num_gpu_batches;
  const double w0 = std::floor(std::clamp(wf, 0.0, 1.0) * 1000 + 1e-6) / 10;
  int64_t k0 = int64_t(std::floor(std::clamp(cf, 0.0, 1.0) * double(L) + 1e-6));
  int64_t m0 = int64_t(std::floor(std::clamp(af, 0.0, 1.0) * double(ngb) + 1e-6));
  auto policy = [&](double wp, int64_t k, int64_t m) {
    return with_percent(batch, wp, 100.0 * double(k) / double(L), 100.0 * double(m) / double(ngb));
  };
  auto fits = [&](const Policy& p) { return budget == 0 || mem(model, p, w).total() <= budget; };
  int steps = 0;
  for (int64_t m = m0; m >= 0; --m)
    for (int64_t k = k0; k >= 0; --k) {
      if (!fits(policy(0, k, m))) continue;  // weights all on disk is the least this (k, m) needs
      double wp = w0;
      while (wp > 0 && !fits(policy(wp, k, m))) wp = std::max(0.0, wp - 1), ++steps;
      while (wp < 100 && fits(policy(std::min(100.0, wp + 1), k, m))) wp = std::min(100.0, wp + 1);
      if (note && (k != k0 || m != m0 || std::abs(wp - w0) >= 1))
        *note =
            fmt::format("rounded from the LP's weights {:.1f}%, KV {:.1f}%, activations {:.1f}%",
                        wf * 100, cf * 100, af * 100);
      return policy(wp, k, m);
    }
  (void)steps;
  return std::nullopt;
}

std::optional<PolicyChoice> solve_cpu(const Model& model, const Policy& batch, const Workload& w,
                                      const HardwareProfile& prof, const SearchOptions& o) {
  CostOptions co;
  co.threads = o.threads;
  // Cheapest check first: everything on disk.
  if (o.max_ram > 0 && mem(model, with_percent(batch, 0, 0, 0), w).total() > o.max_ram)
    return std::nullopt;
  const LinearCosts lc = linear_costs(model, batch, w, prof, co);
  const MemLinear ml = linear_memory(model, batch, w);
  const double L = double(lc.n_layer), nP = double(lc.prefill_steps), nD = double(lc.decode_steps);
  const bool latency = o.objective == Objective::Latency;
  Lp lp;
  // Tie-break: with equal time, keep more in RAM (less disk traffic, less to go wrong).
  const double eps = 1e-6 * (lc.prefill_compute + lc.decode_compute + lc.weight_read + 1e-9) * L;
  const int vw = lp.var(0, 1, -eps), vc = lp.var(0, 1, -eps), va = lp.var(0, 1, -eps);
  const int tp = lp.var(0, INFINITY, latency ? 1e-3 * L : L);
  const int td = lp.var(0, INFINITY, latency ? L : L * nD);
  // Each phase's per-layer time is at least its compute and at least its disk traffic, plus the
  // synchronous KV and activation I/O of what is on disk.
  const double R = lc.weight_read;
  lp.row({{tp, 1}, {vc, lc.prefill_kv_io}, {va, lc.prefill_act_io}},
         lc.prefill_compute + lc.prefill_kv_io + lc.prefill_act_io, false);
  lp.row({{tp, 1}, {vw, nP * R}, {vc, lc.prefill_kv_io}, {va, lc.prefill_act_io}},
         nP * R + lc.prefill_kv_io + lc.prefill_act_io, false);
  lp.row({{td, 1}, {vc, lc.decode_kv_io}, {va, lc.decode_act_io}},
         lc.decode_compute + lc.decode_kv_io + lc.decode_act_io, false);
  lp.row({{td, 1}, {vw, R}, {vc, lc.decode_kv_io}, {va, lc.decode_act_io}},
         R + lc.decode_kv_io + lc.decode_act_io, false);
  if (o.max_ram > 0) {
    // KV staging exists only when some layer's cache is on disk: a binary switch.
    const int zc = lp.var(0, 1, 0, true);
    lp.row({{vc, 1}, {zc, 1}}, 1, false);
    const double rhs = double(o.max_ram) - ml.fixed - ml.staging - ml.hidden_mb;
    lp.row({{vw, (ml.weights - ml.staging) / kGiB},
            {vc, ml.kv / kGiB},
            {va, ml.hidden_mb * double(ml.ngb - 1) / kGiB},
            {zc, ml.arena / kGiB}},
           rhs / kGiB, true);
  }
  const auto x = lp.solve();
  if (!x) return std::nullopt;
  PolicyChoice pc;
  pc.lp_objective = lp.objective();
  const auto p = round_cpu(model, batch, w, o.max_ram, (*x)[size_t(vw)], (*x)[size_t(vc)],
                           (*x)[size_t(va)], &pc.note);
  if (!p) return std::nullopt;
  pc.policy = *p;
  pc.cost = predict_cost(model, pc.policy, plan_weights(model, pc.policy), w, prof, co);
  return pc;
}

std::optional<PolicyChoice> solve_gpu(const Model& model, const Policy& batch, const Workload& w,
                                      const HardwareProfile& prof, const SearchOptions& o) {
  CostOptions co;
  co.threads = o.threads;
  co.gpu = o.gpu;
  co.max_vram = o.max_vram;
  const LinearCosts lc = linear_costs(model, batch, w, prof, co);
  const MemLinear ml = linear_memory(model, batch, w);
  const GpuModel& g = *o.gpu;
  const double L = double(lc.n_layer), nD = double(lc.decode_steps);
  const bool latency = o.objective == Objective::Latency;
  std::optional<PolicyChoice> best;
  for (bool cpu_attn : {false, true}) {
    Lp lp;
    const double eps = 1e-6 * (lc.prefill_gpu_compute + lc.decode_gpu_compute + 1e-9) * L;
    int v[9];
    for (int i = 0; i < 9; ++i) v[i] = lp.var(0, 1, i % 3 == 0 ? -2 * eps : i % 3 == 1 ? -eps : 0);
    const int wg = v[0], wc = v[1], wd = v[2], cg = v[3], cc = v[4], cd = v[5], ag = v[6],
              ac = v[7], ad = v[8];
    for (int i = 0; i < 3; ++i) lp.eq({{v[3 * i], 1}, {v[3 * i + 1], 1}, {v[3 * i + 2], 1}}, 1);
    const int tp = lp.var(0, INFINITY, latency ? 1e-3 * L : L),
              td = lp.var(0, INFINITY, latency ? L : L * nD);
    for (bool decode : {false, true}) {
      const int t = decode ? td : tp;
      const double kv_r = decode ? lc.kv_read_bytes_decode : 0;
      const double kv_w =
          decode ? lc.kv_write_bytes_decode : lc.kv_write_bytes_decode * double(w.prompt_len);
      const double act = lc.act_bytes * (decode ? 1 : double(w.prompt_len));
      const bool ca = cpu_attn && decode;
      lp.row({{t, 1}}, decode ? lc.decode_gpu_compute : lc.prefill_gpu_compute, false);
      if (ca)
        lp.row({{t, 1}, {cc, -lc.decode_cpu_attention}, {cd, -lc.decode_cpu_attention}}, 0, false);
      const double h = g.h2d_gbps * 1e9, d = g.d2h_gbps * 1e9, disk = prof.disk_read_gbps * 1e9;
      lp.row({{t, 1},
              {wc, -lc.weight_bytes / h},
              {wd, -lc.weight_bytes / h},
              {cc, ca ? 0 : -kv_r / h},
              {cd, ca ? 0 : -kv_r / h},
              {ac, -act / h},
              {ad, -act / h}},
             0, false);
      lp.row({{t, 1}, {cc, -kv_w / d}, {cd, -kv_w / d}, {ac, -act / d}, {ad, -act / d}}, 0, false);
      lp.row({{t, 1},
              {wd, -lc.weight_bytes / disk},
              {cd, -(kv_r + kv_w) / disk},
              {ad, -2 * act / disk}},
             0, false);
    }
    const double wtot = ml.weights, kvtot = ml.kv, acttot = ml.hidden_mb * double(ml.ngb);
    lp.row({{wg, wtot / kGiB}, {cg, kvtot / kGiB}, {ag, acttot / kGiB}},
           (double(o.max_vram) - 2 * lc.weight_bytes - double(o.max_vram) * 0.05) / kGiB, true);
    if (o.max_ram > 0)
      lp.row({{wc, (ml.weights - ml.staging) / kGiB},
              {wg, -ml.staging / kGiB},
              {cc, ml.kv / kGiB},
              {ac, acttot / kGiB}},
             (double(o.max_ram) - ml.fixed - ml.staging - ml.arena) / kGiB, true);
    const auto x = lp.solve();
    if (!x) continue;
    auto pct = [&](int j) {
      return std::floor(std::clamp((*x)[size_t(j)], 0.0, 1.0) * 1000 + 1e-6) / 10;
    };
    Policy p = batch;
    p.w_gpu = pct(wg), p.w_cpu = pct(wc), p.c_gpu = pct(cg), p.c_cpu = pct(cc), p.a_gpu = pct(ag),
    p.a_cpu = pct(ac);
    p.cpu_cache_compute = cpu_attn;
    // Step down: device first (to RAM), then RAM (to disk), 1% at a time.
    CostPrediction c = predict_cost_gpu(model, p, w, prof, co);
    for (int guard = 0; guard < 400; ++guard) {
      const bool vram_over = c.vram_peak > o.max_vram,
                 ram_over = o.max_ram > 0 && c.ram_peak > o.max_ram;
      if (!vram_over && !ram_over) break;
      if (vram_over) {
        double* s[3] = {&p.w_gpu, &p.c_gpu, &p.a_gpu};
        double* t[3] = {&p.w_cpu, &p.c_cpu, &p.a_cpu};
        for (int i = 0; i < 3; ++i)
          if (*s[i] > 0) {
            const double dlt = std::min(1.0, *s[i]);
            *s[i] -= dlt, *t[i] += dlt;
            break;
          }
      } else {
        double* s[3] = {&p.w_cpu, &p.c_cpu, &p.a_cpu};
        for (int i = 0; i < 3; ++i)
          if (*s[i] > 0) {
            *s[i] = std::max(0.0, *s[i] - 1);
            break;
          }
      }
      c = predict_cost_gpu(model, p, w, prof, co);
    }
    if (c.vram_peak > o.max_vram || (o.max_ram > 0 && c.ram_peak > o.max_ram)) continue;
    PolicyChoice pc{p, c, lp.objective(), ""};
    if (!best || ranking_cost(pc.cost, o.objective) < ranking_cost(best->cost, o.objective))
      best = pc;
  }
  return best;
}

std::vector<int64_t> powers_upto(int64_t cap) {
  std::vector<int64_t> v;
  for (int64_t x = 1; x <= cap; x *= 2) v.push_back(x);
  return v;
}

}  // namespace

Objective parse_objective(const std::string& s) {
  if (s == "throughput") return Objective::Throughput;
  if (s == "latency") return Objective::Latency;
  fail("--objective must be throughput or latency, got '{}'", s);
}

const char* objective_name(Objective o) {
  return o == Objective::Latency ? "latency" : "throughput";
}

std::optional<PolicyChoice> solve_placement(const Model& model, const Policy& batch,
                                            const Workload& w, const HardwareProfile& prof,
                                            const SearchOptions& o) {
  Workload wl = w;
  wl.kv_dtype = batch.compress_cache ? DType::G4 : o.kv_dtype;
  if (o.gpu && o.max_vram > 0) return solve_gpu(model, batch, wl, prof, o);
  return solve_cpu(model, batch, wl, prof, o);
}

SearchResult search_policy(const Model& model, const Workload& w, const HardwareProfile& prof,
                           const SearchOptions& o) {
  const int64_t cap = std::max<int64_t>(1, o.objective == Objective::Latency
                                               ? std::min(o.max_block, o.latency_max_block)
                                               : o.max_block);
  const std::vector<int64_t> gbs =
      o.gpu_batch_size ? std::vector<int64_t>{*o.gpu_batch_size} : powers_upto(cap);
  const std::vector<int64_t> ngbs =
      o.num_gpu_batches ? std::vector<int64_t>{*o.num_gpu_batches} : powers_upto(cap);
  // Compressing weights that are already quantized only loses accuracy (G4 is no smaller than a
  // 4-bit block type): the search tries it for float models only.
  uint64_t float_bytes = 0, matrix_bytes = 0;
  for (const std::string& n : model.store().names()) {
    const Tensor& t = model.store().get(n);
    if (t.shape.size() != 2) continue;
    matrix_bytes += uint64_t(t.nbytes());
    if (is_float_type(t.dtype)) float_bytes += uint64_t(t.nbytes());
  }
  const bool float_model = 2 * float_bytes >= matrix_bytes;
  const std::vector<bool> cws = o.compress_weight ? std::vector<bool>{*o.compress_weight}
                                : float_model     ? std::vector<bool>{false, true}
                                                  : std::vector<bool>{false};
  const std::vector<bool> ccs =
      o.compress_cache ? std::vector<bool>{*o.compress_cache} : std::vector<bool>{false, true};
  SearchResult r;
  std::vector<PolicyChoice> all;
  for (int64_t g : gbs)
    for (int64_t n : ngbs) {
      if (!o.gpu_batch_size && !o.num_gpu_batches && g * n > cap) continue;
      for (bool cw : cws)
        for (bool cc : ccs) {
          Policy b;
          b.gpu_batch_size = g, b.num_gpu_batches = n, b.compress_weight = cw,
          b.compress_cache = cc;
          ++r.candidates;
          if (auto pc = solve_placement(model, b, w, prof, o)) {
            ++r.feasible;
            all.push_back(std::move(*pc));
          }
        }
    }
  if (all.empty()) {
    Policy b;
    b.gpu_batch_size = o.gpu_batch_size.value_or(1);
    b.num_gpu_batches = o.num_gpu_batches.value_or(1);
    b.compress_weight = o.compress_weight.value_or(true);
    b.compress_cache = o.compress_cache.value_or(true);
    Workload wl = w;
    wl.kv_dtype = b.compress_cache ? DType::G4 : o.kv_dtype;
    const MemoryPrediction m = mem(model, with_percent(b, 0, 0, 0), wl);
    fail(
        "no placement fits --max-ram {}: even with every weight, the KV cache and the activations "
        "on disk, {} "
        "sequence(s) need {} ({})",
        human_bytes(double(o.max_ram)), b.block_size(), human_bytes(double(m.total())),
        m.describe());
  }
  std::stable_sort(all.begin(), all.end(), [&](const PolicyChoice& a, const PolicyChoice& b) {
    const double ca = ranking_cost(a.cost, o.objective), cb = ranking_cost(b.cost, o.objective);
    if (ca != cb) return ca < cb;
    return a.cost.ram_peak < b.cost.ram_peak;
  });
  r.best = all.front();
  for (size_t i = 1; i < all.size() && int(r.runner_ups.size()) < o.runner_ups; ++i)
    r.runner_ups.push_back(all[i]);
  return r;
}

}  // namespace strata

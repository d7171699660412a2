#include "engine/benchmark.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <random>

#include "core/error.h"
#include "core/progress.h"

namespace strata {
namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

void drain(Engine& e) {
  while (e.has_work()) e.step();
}
}  // namespace

std::vector<int32_t> random_prompt(const Runtime& rt, int64_t n, uint64_t seed) {
  const Tokenizer& tok = rt.tokenizer();
  const int32_t hi = std::min<int32_t>(
      tok.n_vocab(), static_cast<int32_t>(const_cast<Runtime&>(rt).model().hp().n_vocab));
  std::mt19937_64 g(seed);
  std::uniform_int_distribution<int32_t> d(0, hi - 1);
  std::vector<int32_t> out;
  if (tok.bos() >= 0) out.push_back(tok.bos());
  while (static_cast<int64_t>(out.size()) < n) {
    const int32_t t = d(g);
    if (!tok.is_special(t) && !tok.is_eos(t)) out.push_back(t);
  }
  out.resize(static_cast<size_t>(n));
  return out;
}

double time_prompt(Runtime& rt, int64_t n, int64_t chunk, uint64_t seed) {
  Engine& e = rt.engine();
  Request r;
  r.prompt = random_prompt(rt, n, seed);
  r.max_tokens = 1;
  r.sampling.temperature = 0;
  r.ignore_eos = true;
  (void)chunk;
  e.add(r);
  const auto t0 = Clock::now();
  drain(e);
  return since(t0);
}

double time_generation(Runtime& rt, int64_t n, int64_t seqs, uint64_t seed) {
  Engine& e = rt.engine();
  for (int64_t s = 0; s < seqs; ++s) {
    Request r;
    r.prompt = random_prompt(rt, 1, seed + static_cast<uint64_t>(s));
    r.max_tokens = n + 1;
    r.sampling.temperature = 0;
    r.ignore_eos = true;
    e.add(r);
  }
  e.step();  // the one-token prompts
  const auto t0 = Clock::now();
  drain(e);
  return since(t0);
}

StepTiming BlockResult::mean_decode_step() const {
  StepTiming m;
  if (steps.size() < 2) return m;
  for (size_t i = 1; i < steps.size(); ++i) {
    m.total_s += steps[i].total_s;
    m.io_wait_s += steps[i].io_wait_s;
    m.compute_s += steps[i].compute_s;
    m.bytes_read += steps[i].bytes_read;
  }
  const double k = double(steps.size() - 1);
  m.total_s /= k, m.io_wait_s /= k, m.compute_s /= k;
  m.bytes_read = static_cast<uint64_t>(double(m.bytes_read) / k);
  return m;
}

BlockResult run_block(Runtime& rt, int64_t seqs, int64_t prompt_len, int64_t gen_len,
                      bool progress) {
  Engine& e = rt.engine();
  if (e.options().max_seqs < seqs)
    fail("the engine runs {} sequences at once but the block has {}", e.options().max_seqs, seqs);
  BlockResult res;
  res.seqs = seqs, res.prompt_len = prompt_len, res.gen_len = gen_len;
  for (int64_t s = 0; s < seqs; ++s) {
    Request r;
    r.prompt = random_prompt(rt, prompt_len, 1000 + static_cast<uint64_t>(s));
    r.max_tokens = gen_len;
    r.sampling.temperature = 0;
    r.ignore_eos = true;
    e.add(r);
  }
  const uint64_t kv0 = e.kv().disk_bytes_read() + e.kv().disk_bytes_written();
  const auto t0 = Clock::now();
  int64_t step = 0, generated = 0;
  while (e.has_work()) {
    const auto ts = Clock::now();
    for (const Event& ev : e.step()) generated += static_cast<int64_t>(ev.tokens.size());
    const StepStats& st = e.executor().last_step();
    StepTiming t{since(ts), st.io_wait_s, st.compute_s, st.bytes_read};
    res.steps.push_back(t);
    res.disk_bytes += st.bytes_read;
    if (step == 0) res.prefill_s = t.total_s;
    ++step;
    if (progress && Progress::enabled()) {
      const double el = since(t0);
      std::fprintf(
          stderr,
          "\r\033[Kstep %ld/%ld (%s), %.2f tok/s, disk %.2f GB/s, step %.2fs (I/O wait %.2fs)",
          static_cast<long>(step), static_cast<long>(gen_len), step == 1 ? "prefill" : "decode",
          double(generated) / el, double(res.disk_bytes) / 1e9 / el, t.total_s, t.io_wait_s);
      std::fflush(stderr);
    }
  }
  if (progress && Progress::enabled()) std::fprintf(stderr, "\n");
  res.total_s = since(t0);
  res.decode_s = res.total_s - res.prefill_s;
  res.kv_disk_bytes = e.kv().disk_bytes_read() + e.kv().disk_bytes_written() - kv0;
  return res;
}

uint64_t decode_bytes_per_step(const Model& model) {
  uint64_t n = 0;
  for (const std::string& name : model.store().names()) {
    const Tensor& t = model.store().get(name);
    if (t.shape.size() != 2) continue;
    if (name == "token_embd.weight" && !model.hp().tied_head) continue;  // rows only
    if (name == "position_embd.weight") continue;
    n += static_cast<uint64_t>(t.nbytes());
  }
  return n;
}

}  // namespace strata

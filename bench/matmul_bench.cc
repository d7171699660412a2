// The linear layer as the engine calls it (ops::matmul), per weight type, for the decode shape
// (one token: weight bytes per second, the memory-bound case) and prefill shapes (many tokens:
// GFLOP/s, the compute-bound case). 4096 x 4096 weights (32 MB in f16) stream from RAM.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "core/half.h"
#include "core/thread_pool.h"
#include "ops/matmul.h"
#include "quant/g4.h"
#include "quant/quant.h"

namespace strata {
namespace {

struct Weights {
  Tensor t;
  std::vector<uint8_t> bytes;
};

Weights make(DType type, int64_t n_out, int64_t n_in) {
  std::mt19937 g(1);
  std::normal_distribution<float> d(0, 0.02f);
  std::vector<float> f(static_cast<size_t>(n_out * n_in));
  for (auto& x : f) x = d(g);
  Weights w;
  w.t.dtype = type;
  w.t.shape = {n_out, n_in};
  w.bytes.resize(static_cast<size_t>(w.t.nbytes()));
  if (type == DType::F32) {
    std::memcpy(w.bytes.data(), f.data(), w.bytes.size());
  } else if (type == DType::F16 || type == DType::BF16) {
    auto* h = reinterpret_cast<uint16_t*>(w.bytes.data());
    for (size_t i = 0; i < f.size(); ++i)
      h[i] = type == DType::F16 ? f32_to_fp16(f[i]) : f32_to_bf16(f[i]);
  } else if (type == DType::G4) {
    g4_quantize_weight(f.data(), n_out, n_in, w.bytes.data());
  } else {
    const QuantKernels* q = quant_kernels(type);
    const int64_t rb = row_bytes(type, n_in);
    for (int64_t r = 0; r < n_out; ++r)
      q->quantize_row(f.data() + r * n_in, w.bytes.data() + r * rb, n_in);
  }
  w.t.data = w.bytes.data();
  return w;
}

void BM_Matmul(benchmark::State& st, DType type) {
  const int64_t n_tok = st.range(0), threads = st.range(1), n = 4096;
  // Several matrices so decode streams from RAM rather than the caches.
  const int copies = n_tok == 1 ? 8 : 1;
  std::vector<Weights> ws;
  for (int i = 0; i < copies; ++i) ws.push_back(make(type, n, n));
  ThreadPool pool(static_cast<int>(threads));
  std::vector<float> x(static_cast<size_t>(n_tok * n), 0.01f), y(static_cast<size_t>(n_tok * n));
  int i = 0;
  for (auto _ : st) {
    matmul(pool, ws[static_cast<size_t>(i++ % copies)].t, x.data(), n_tok, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  const double bytes = double(ws[0].t.nbytes());
  st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * bytes));
  st.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * double(n) * double(n) * double(n_tok) * double(st.iterations()) / 1e9,
      benchmark::Counter::kIsRate);
}

// Square F16 weights of other sizes: how the rates the profile measures at 4096 carry over to the
// smaller matrices of small models (the cost model's concern).
void BM_MatmulSize(benchmark::State& st) {
  const int64_t n = st.range(0), n_tok = st.range(1);
  const int copies = int(std::max<int64_t>(1, (int64_t(256) << 20) / (n * n * 2)));
  std::vector<Weights> ws;
  for (int i = 0; i < copies; ++i) ws.push_back(make(DType::F16, n, n));
  ThreadPool pool(2);
  std::vector<float> x(static_cast<size_t>(n_tok * n), 0.01f), y(static_cast<size_t>(n_tok * n));
  int i = 0;
  for (auto _ : st) {
    matmul(pool, ws[static_cast<size_t>(i++ % copies)].t, x.data(), n_tok, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * double(ws[0].t.nbytes())));
  st.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * double(n) * double(n) * double(n_tok) * double(st.iterations()) / 1e9,
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_MatmulSize)
    ->ArgsProduct({{768, 2048, 4096}, {1, 8, 16, 64, 256}})
    ->ArgNames({"n", "tokens"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

#define TYPES(X) X(F32) X(F16) X(BF16) X(Q8_0) X(Q4_0) X(Q4_K) X(Q6_K) X(G4)
#define REG(T)                                                     \
  BENCHMARK_CAPTURE(BM_Matmul, T, DType::T)                        \
      ->ArgsProduct({{1, 4, 8, 12, 16, 32, 64, 128, 256}, {1, 2}}) \
      ->ArgNames({"tokens", "threads"})                            \
      ->UseRealTime()                                              \
      ->Unit(benchmark::kMillisecond);
TYPES(REG)

}  // namespace
}  // namespace strata

// Quantized dot-product throughput in weight bytes per second, single thread, row length 4096.
//   <type>/<isa>/ram   a ~32 MiB weight matrix streamed from memory, one activation row (decode:
//                      vec_dot_rows over blocks of 64 rows, as the CPU matmul calls it)
//   <type>/<isa>/l2    a ~256 KiB matrix that stays in L2: the kernel's own speed
//   Q4_0/avx512vnni/l2row  the same with vec_dot one row at a time: what the four-row
//                      avx512vnni kernel saves over the single-row AVX-512 one
//   <type>/<isa>/tok4  the ~32 MiB matrix against 4 activation rows with vec_dot_tokens (prefill)
//   G4/<isa>/...       g4_matmul_groups on a ~32 MiB G4 matrix, 1 and 4 tokens
//   act/<Q8 type>/<isa>  quantize_act on one 4096-value activation row (f32 bytes per second):
//                      what decode spends per matrix before the dot products
// Run: build-quant/bench/quant_bench --benchmark_filter=... (bytes_per_second is the column).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "quant/g4.h"
#include "quant/quant.h"

namespace strata {
namespace {

constexpr int64_t kN = 4096;

std::vector<float> gaussian(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = nd(rng);
  return v;
}

// A weight matrix of `bytes` (rounded to whole rows) built by repeating one quantized row block
// (quantizing 32 MiB of weights would dominate start-up; the kernels do not care about values).
struct Matrix {
  std::vector<uint8_t> w;
  int64_t rows, row_bytes;
};

Matrix make_matrix(DType t, int64_t bytes) {
  Matrix m;
  m.row_bytes = row_bytes(t, kN);
  m.rows = bytes / m.row_bytes;
  const int64_t distinct = 16;
  std::vector<uint8_t> seed_rows(static_cast<size_t>(distinct * m.row_bytes));
  const std::vector<float> x = gaussian(distinct * kN, 1);
  quant_kernels(t)->quantize_row(x.data(), seed_rows.data(), distinct * kN);
  m.w.resize(static_cast<size_t>(m.rows * m.row_bytes));
  for (int64_t r = 0; r < m.rows; ++r)
    std::copy_n(seed_rows.data() + (r % distinct) * m.row_bytes, m.row_bytes,
                m.w.data() + r * m.row_bytes);
  return m;
}

// n_tok 0: one token through vec_dot row by row; 1: one token through vec_dot_rows.
void bench_dot(benchmark::State& state, DType t, Isa isa, int64_t bytes, int n_tok) {
  const bool by_row = n_tok == 0;
  if (by_row) n_tok = 1;
  const QuantKernels* k = quant_kernels(t);
  const Matrix m = make_matrix(t, bytes);
  const int64_t abytes = row_bytes(k->vec_dot_type, kN);
  std::vector<uint8_t> act(static_cast<size_t>(abytes * n_tok));
  const std::vector<float> x = gaussian(kN * n_tok, 2);
  quant_kernels(k->vec_dot_type)->quantize_row(x.data(), act.data(), kN * n_tok);
  std::vector<float> out(static_cast<size_t>(m.rows * n_tok));
  const VecDotFn dot = vec_dot_for_isa(t, isa);
  const VecDotTokensFn dot_tok = vec_dot_tokens_for_isa(t, isa);
  const VecDotRowsFn dot_rows = vec_dot_rows_for_isa(t, isa);
  constexpr int64_t kRowBlock = 64;
  for (auto _ : state) {
    if (by_row) {
      for (int64_t r = 0; r < m.rows; ++r)
        dot(kN, &out[r], m.w.data() + r * m.row_bytes, act.data());
    } else if (n_tok == 1) {
      for (int64_t r = 0; r < m.rows; r += kRowBlock)
        dot_rows(kN, std::min(kRowBlock, m.rows - r), m.w.data() + r * m.row_bytes, m.row_bytes,
                 act.data(), &out[r]);
    } else {
      for (int64_t r = 0; r < m.rows; ++r)
        dot_tok(kN, n_tok, m.w.data() + r * m.row_bytes, act.data(), abytes, &out[r], m.rows);
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * m.rows * m.row_bytes);
}

void bench_g4(benchmark::State& state, Isa isa, int n_tok) {
  set_isa_cap(isa);
  const int64_t in = kN, out = (32ll << 20) / (36 * in) * 64;  // whole groups, ~32 MiB
  std::vector<uint8_t> w(g4_weight_bytes(out, in));
  {
    const std::vector<float> rows = gaussian(64 * in, 3);
    for (int64_t g = 0; g < g4_groups(out); ++g)
      g4_quantize_weight_groups(rows.data(), out, in, g, g + 1, w.data());
  }
  const std::vector<float> x = gaussian(n_tok * in, 4);
  std::vector<float> y(static_cast<size_t>(n_tok * out));
  for (auto _ : state) {
    g4_matmul_groups(w.data(), out, in, x.data(), n_tok, y.data(), 0, g4_groups(out));
    benchmark::DoNotOptimize(y.data());
  }
  set_isa_cap(kTopIsa);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(w.size()));
}

void bench_act(benchmark::State& state, DType t, Isa isa) {
  const QuantizeRowFn f = quantize_act_for_isa(t, isa);
  const std::vector<float> x = gaussian(kN, 5);
  std::vector<uint8_t> q(static_cast<size_t>(row_bytes(t, kN)));
  for (auto _ : state) {
    f(x.data(), q.data(), kN);
    benchmark::DoNotOptimize(q.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * kN * 4);
}

bool runs_here(Isa isa) {
  return vec_dot_for_isa(DType::Q8_0, isa) != nullptr;
}

const bool kRegistered = [] {
  const DType types[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0,
                         DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni}) {
    if (!runs_here(isa)) continue;
    // avx512vnni has its own kernels only for decode of a few types; the rest repeats avx512.
    const bool vnni = isa == Isa::Avx512Vnni;
    for (DType t : types) {
      if (vnni && t != DType::Q4_0) continue;
      const std::string base = std::string(dtype_name(t)) + "/" + isa_name(isa);
      benchmark::RegisterBenchmark((base + "/ram").c_str(), bench_dot, t, isa, 32ll << 20, 1)
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark((base + "/l2").c_str(), bench_dot, t, isa, 256ll << 10, 1)
          ->Unit(benchmark::kMicrosecond);
      if (vnni) {
        benchmark::RegisterBenchmark((base + "/l2row").c_str(), bench_dot, t, isa, 256ll << 10, 0)
            ->Unit(benchmark::kMicrosecond);
        continue;
      }
      benchmark::RegisterBenchmark((base + "/tok4").c_str(), bench_dot, t, isa, 32ll << 20, 4)
          ->Unit(benchmark::kMillisecond);
    }
    if (vnni) continue;
    for (DType a : {DType::Q8_0, DType::Q8_1, DType::Q8_K})
      benchmark::RegisterBenchmark(
          (std::string("act/") + dtype_name(a) + "/" + isa_name(isa)).c_str(), bench_act, a, isa)
          ->Unit(benchmark::kMicrosecond);
    const std::string g4 = std::string("G4/") + isa_name(isa);
    benchmark::RegisterBenchmark((g4 + "/ram").c_str(), bench_g4, isa, 1)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark((g4 + "/tok4").c_str(), bench_g4, isa, 4)
        ->Unit(benchmark::kMillisecond);
  }
  return true;
}();

}  // namespace
}  // namespace strata

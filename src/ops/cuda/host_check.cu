// The kernels' bit-layout code, run on the host. quant_decode.cuh's decoders and
// quant_lanes.cuh's lane splits are __host__ __device__: compiled here by nvcc for the host, they
// are checked against the CPU dequantizers (quant/dequant.cc, quant/g4.cc) without a GPU, so the
// layout arithmetic the GPU kernels use is verified on any machine that builds the backend.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "ops/cuda/kernels.h"
#include "ops/cuda/quant_lanes.cuh"
#include "quant/g4.h"
#include "quant/quant.h"

namespace strata::cuda::kern {
namespace {

std::vector<float> random_row(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

std::string mismatch(const char* what, const char* type, int64_t i, float got, float want) {
  return std::string(what) + " " + type + ": element " + std::to_string(i) + " is " +
         std::to_string(got) + ", the CPU has " + std::to_string(want);
}

// Elem<T>::at against the CPU's dequantize_row (or plain conversion), bit for bit.
template <DType T>
std::string check_elem(int64_t n) {
  const auto src = random_row(static_cast<size_t>(n), 7 + static_cast<uint32_t>(T));
  std::vector<uint8_t> bytes(static_cast<size_t>(row_bytes(T, n)));
  std::vector<float> want(static_cast<size_t>(n));
  if constexpr (T == DType::F32) {
    std::memcpy(bytes.data(), src.data(), bytes.size());
    want = src;
  } else if constexpr (T == DType::F16 || T == DType::BF16) {
    auto* h = reinterpret_cast<uint16_t*>(bytes.data());
    for (int64_t i = 0; i < n; ++i) {
      h[i] = T == DType::F16 ? f32_to_fp16(src[size_t(i)]) : f32_to_bf16(src[size_t(i)]);
      want[size_t(i)] = T == DType::F16 ? fp16_to_f32(h[i]) : bf16_to_f32(h[i]);
    }
  } else {
    const QuantKernels* q = quant_kernels(T);
    q->quantize_row(src.data(), bytes.data(), n);
    q->dequantize_row(bytes.data(), want.data(), n);
  }
  for (int64_t i = 0; i < n; ++i) {
    const float got = dev::Elem<T>::at(bytes.data(), static_cast<int>(i));
    if (std::memcmp(&got, &want[size_t(i)], 4) != 0)
      return mismatch("decoder", dtype_name(T), i, got, want[size_t(i)]);
  }
  return "";
}

// The lane split of one block type: every part's lane_dot summed over the parts must equal the
// block's dot with the CPU-dequantized values, for one-hot activations (each element reached by
// exactly one lane, with the right value) and for random ones.
template <class Block, int kParts, class Unpack>
std::string check_lanes(DType t, int elems, Unpack unpack) {
  const int64_t n = 2 * elems;
  const auto src = random_row(static_cast<size_t>(n), 99 + static_cast<uint32_t>(t));
  std::vector<uint8_t> bytes(static_cast<size_t>(row_bytes(t, n)));
  std::vector<float> w(static_cast<size_t>(n));
  quant_kernels(t)->quantize_row(src.data(), bytes.data(), n);
  quant_kernels(t)->dequantize_row(bytes.data(), w.data(), n);
  const Block* blocks = reinterpret_cast<const Block*>(bytes.data());
  std::vector<float> x(static_cast<size_t>(elems));
  auto block_dot = [&](int b) {
    float s = 0.0f;
    for (int p = 0; p < kParts; ++p) s += dev::lane_dot(unpack(blocks[b], p), x.data());
    return s;
  };
  for (int b = 0; b < 2; ++b) {
    double amax = 0;
    for (int i = 0; i < elems; ++i)
      amax = std::max(amax, std::fabs(double(w[size_t(b * elems + i)])));
    for (int i = 0; i < elems; ++i) {
      std::fill(x.begin(), x.end(), 0.0f);
      x[size_t(i)] = 1.0f;
      const float got = block_dot(b), want = w[size_t(b * elems + i)];
      if (std::fabs(double(got) - want) > 1e-6 * amax)
        return mismatch("lane split", dtype_name(t), b * elems + i, got, want);
    }
    x = random_row(static_cast<size_t>(elems), 5 + static_cast<uint32_t>(b));
    double want = 0, scale = 0;
    for (int i = 0; i < elems; ++i) {
      want += double(w[size_t(b * elems + i)]) * x[size_t(i)];
      scale += std::fabs(double(w[size_t(b * elems + i)]) * x[size_t(i)]);
    }
    const float got = block_dot(b);
    if (std::fabs(got - want) > 1e-5 * scale)
      return std::string("lane split ") + dtype_name(t) + ": block dot " + std::to_string(got) +
             ", exact " + std::to_string(want);
  }
  return "";
}

std::string check_g4() {
  const int64_t out = 70, in = 96;  // a short last group
  const auto src = random_row(static_cast<size_t>(out * in), 3);
  std::vector<uint8_t> bytes(g4_weight_bytes(out, in));
  g4_quantize_weight(src.data(), out, in, bytes.data());
  std::vector<float> want(static_cast<size_t>(in));
  for (int64_t r = 0; r < out; ++r) {
    g4_dequantize_row(bytes.data(), out, in, r, want.data());
    for (int64_t i = 0; i < in; ++i) {
      const float got = dev::g4_weight_at(bytes.data(), in, r, static_cast<int>(i));
      if (std::memcmp(&got, &want[size_t(i)], 4) != 0)
        return mismatch("G4 weight decoder", ("row " + std::to_string(r)).c_str(), i, got,
                        want[size_t(i)]);
    }
  }
  for (int64_t n : {64, 160, 81}) {  // whole groups; a short last group; an odd length
    const auto row = random_row(static_cast<size_t>(n), 4);
    // One byte of offset: cache rows may start at odd addresses.
    std::vector<uint8_t> kv(static_cast<size_t>(g4_kv_row_bytes(n)) + 1);
    g4_quantize_kv_row(row.data(), n, kv.data() + 1);
    std::vector<float> dq(static_cast<size_t>(n));
    g4_dequantize_kv_row(kv.data() + 1, n, dq.data());
    for (int64_t i = 0; i < n; ++i) {
      const float got = dev::g4_kv_at(kv.data() + 1, static_cast<int>(i));
      if (std::memcmp(&got, &dq[size_t(i)], 4) != 0)
        return mismatch("G4 KV decoder", "row", i, got, dq[size_t(i)]);
    }
  }
  return "";
}

}  // namespace

std::string check_decoders_on_host() {
  std::string e;
  auto run = [&](std::string r) {
    if (e.empty()) e = std::move(r);
  };
  run(check_elem<DType::F32>(512));
  run(check_elem<DType::F16>(512));
  run(check_elem<DType::BF16>(512));
  run(check_elem<DType::Q4_0>(512));
  run(check_elem<DType::Q4_1>(512));
  run(check_elem<DType::Q5_0>(512));
  run(check_elem<DType::Q5_1>(512));
  run(check_elem<DType::Q8_0>(512));
  run(check_elem<DType::Q2_K>(512));
  run(check_elem<DType::Q3_K>(512));
  run(check_elem<DType::Q4_K>(512));
  run(check_elem<DType::Q5_K>(512));
  run(check_elem<DType::Q6_K>(512));
  run(check_lanes<BlockQ8_0, dev::kQ8_0Parts>(DType::Q8_0, kQK, dev::lane_q8_0));
  run(check_lanes<BlockQ4_0, dev::kQ4_0Parts>(DType::Q4_0, kQK, dev::lane_q4_0));
  run(check_lanes<BlockQ4_K, dev::kQ4_KParts>(DType::Q4_K, kQKK, dev::lane_q4_k));
  run(check_lanes<BlockQ6_K, dev::kQ6_KParts>(DType::Q6_K, kQKK, dev::lane_q6_k));
  run(check_g4());
  return e;
}

}  // namespace strata::cuda::kern

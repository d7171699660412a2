// CUDA backend against the CPU ops (the reference), on random inputs.
//
// Tolerances (stated once, used below):
//  - f32 element-wise and row ops (norms, activations, adds, softmax, RoPE): relative 1e-5, with
//    a floor of mean|ref| where results can cancel (layer norm's x - mean, GELU's 1 + erf(x),
//    RoPE's rotations);
//  - f32 attention: 1e-5 of the magnitude scale Σ_j p_j |v_j| (what float accumulation is
//    relative to; the output itself can be near zero), plus 4 unit roundoffs of every score
//    s_j weighted the same way, Σ_j p_j |v_j| |s_j| · 2^-22: both sides round each score once in
//    f32, and with ALiBi over thousands of positions |s_j| reaches the thousands (the CPU itself
//    is 3e-5 of the scale away from exact there);
//  - matmul, norm-wise: |y_gpu - y_ref| <= tol · Σ_i |w_i x_i| per output, with tol 1e-5 for f32
//    weights and for the quantized mat-vec against the exact dequantized weights, 1e-3 for the
//    quantized mat-vec against the CPU's vec_dot (which rounds the activations to 8 bits), and
//    1e-2 wherever the GPU multiplies in f16/bf16 (cuBLAS f16/bf16, the quantized prefill tiles);
//  - row gather: bit-identical to the CPU's get_row.
// Every GPU test skips, saying why, when no device is present; the checks that need no device
// (discovery, the VRAM budget's refusal, host-side argument checks, the kernels' block decoders
// run on the host) run everywhere.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/rope.h"
#include "quant/g4.h"
#include "quant/quant.h"

#if defined(STRATA_HAVE_CUDA) && STRATA_HAVE_CUDA
#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/device.h"
#include "ops/cuda/kernels.h"

namespace strata {
namespace {

#define REQUIRE_CUDA() \
  if (!cuda::cuda_available()) GTEST_SKIP() << "no CUDA device: " << cuda::cuda_unavailable_reason()

std::vector<float> uniform(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

double mean_abs(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += std::fabs(x);
  return v.empty() ? 0 : s / double(v.size());
}

// |got - want| <= rtol * (|want| + floor), element by element.
void expect_close(const std::vector<float>& got, const std::vector<float>& want, double rtol,
                  double floor, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < want.size() && bad < 5; ++i) {
    const double err = std::fabs(double(got[i]) - double(want[i]));
    if (!(err <= rtol * (std::fabs(double(want[i])) + floor))) {
      ADD_FAILURE() << what << ": element " << i << " is " << got[i] << ", want " << want[i]
                    << " (rtol " << rtol << ", floor " << floor << ")";
      ++bad;
    }
  }
}

// |got - want| <= tol * scale[i], element by element.
void expect_within_scale(const std::vector<float>& got, const std::vector<double>& want,
                         const std::vector<double>& scale, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < want.size() && bad < 5; ++i) {
    const double err = std::fabs(double(got[i]) - want[i]);
    if (!(err <= tol * scale[i] + 1e-30)) {
      ADD_FAILURE() << what << ": element " << i << " is " << got[i] << ", want " << want[i]
                    << " (error " << err << " > " << tol << " x " << scale[i] << ")";
      ++bad;
    }
  }
}

// Device copies of host data, and back, on device 0's compute stream.
struct Gpu {
  cudaStream_t s = cuda::compute_stream(0);

  template <class T>
  cuda::DeviceBuffer up(const std::vector<T>& v) {
    cuda::DeviceBuffer b(v.size() * sizeof(T), 0, "test data");
    cuda::copy_to_device(b.data(), v.data(), v.size() * sizeof(T), s);
    cuda::synchronize(s);
    return b;
  }
  cuda::DeviceBuffer zeros(size_t n_floats) {
    cuda::DeviceBuffer b(n_floats * 4, 0, "test output");
    cuda::check(cudaMemsetAsync(b.data(), 0, n_floats * 4, s), "cudaMemsetAsync");
    return b;
  }
  std::vector<float> down(const cuda::DeviceBuffer& b, size_t n) {
    std::vector<float> v(n);
    cuda::copy_to_host(v.data(), b.data(), n * 4, s);
    cuda::synchronize(s);
    return v;
  }
};

// ---- runs everywhere ------------------------------------------------------------------------

TEST(CudaDevice, DiscoveryNeverThrowsAndExplainsAbsence) {
  int n = -1;
  ASSERT_NO_THROW(n = cuda::device_count());
  EXPECT_GE(n, 0);
  EXPECT_EQ(cuda::cuda_available(), n > 0);
  if (n == 0)
    EXPECT_FALSE(cuda::cuda_unavailable_reason().empty());
  else
    EXPECT_TRUE(cuda::cuda_unavailable_reason().empty());
}

TEST(CudaDevice, VramBudgetRefusesBeforeCallingCudaMalloc) {
  // The refusal comes from the counter, before the driver is asked: it holds with or without a
  // GPU, and nothing is counted for the refused buffer.
  const uint64_t held = cuda::vram_allocated(), old_budget = cuda::vram_budget();
  cuda::set_vram_budget(held + (1u << 20));
  try {
    cuda::DeviceBuffer b(2u << 20, 0, "over-budget test buffer");
    ADD_FAILURE() << "an allocation over the budget was accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("budget"), std::string::npos) << msg;
    EXPECT_NE(msg.find("2097152 bytes"), std::string::npos) << msg;  // the request
    EXPECT_NE(msg.find(std::to_string(held + (1u << 20)) + " bytes"), std::string::npos)
        << msg;  // the cap
    EXPECT_NE(msg.find("over-budget test buffer"), std::string::npos) << msg;
  }
  EXPECT_EQ(cuda::vram_allocated(), held);
  cuda::set_vram_budget(old_budget);
}

TEST(CudaDevice, WithoutADeviceCudaFailuresAreStrataErrors) {
  if (cuda::cuda_available())
    GTEST_SKIP() << "a CUDA device is present: the kernel tests cover this path";
  const uint64_t held = cuda::vram_allocated();
  EXPECT_THROW(cuda::DeviceBuffer(1024, 0, "probe"), Error);
  EXPECT_EQ(cuda::vram_allocated(), held);  // the reservation was given back
  EXPECT_THROW(cuda::compute_stream(0), Error);
  // The matmul front-end sends a GPU weight to the CUDA backend, which reports the missing device.
  Tensor w;
  w.dtype = DType::F32;
  w.shape = {4, 4};
  static float fake[16];
  w.data = fake;
  w.tier = Tier::Device;
  ThreadPool pool(1);
  std::vector<float> x(4), y(4);
  try {
    matmul(pool, w, x.data(), 1, y.data());
    ADD_FAILURE() << "matmul on a GPU weight without a GPU did not fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CUDA device 0 does not exist"), std::string::npos)
        << e.what();
  }
}

TEST(CudaDevice, HostSideChecksRejectBadArguments) {
  // All of these are refused on the host, before any device work, so no GPU is needed.
  static uint8_t fake[64];
  Tensor w;
  w.shape = {8, 256};
  w.data = fake;
  w.tier = Tier::Device;
  w.dtype = DType::Q8_K;  // activation-only format: no matmul anywhere
  float* dummy = reinterpret_cast<float*>(fake);
  EXPECT_THROW(cuda::matmul(w, dummy, 1, dummy, nullptr, nullptr), Error);
  w.dtype = DType::F16;
  w.tier = Tier::Host;
  EXPECT_THROW(cuda::matmul(w, dummy, 1, dummy, nullptr, nullptr), Error);
  EXPECT_FALSE(cuda::matmul_supports(DType::Q8_K));
  for (DType t :
       {DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
        DType::Q8_0, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::G4})
    EXPECT_TRUE(cuda::matmul_supports(t)) << dtype_name(t);
  const int32_t* pos = reinterpret_cast<const int32_t*>(fake);
  EXPECT_THROW(cuda::rope(dummy, 1, pos, 1, 64, 63, 10000.0f, RopeLayout::Interleaved, nullptr),
               Error);
  EXPECT_THROW(cuda::rope(dummy, 1, pos, 1, 64, 66, 10000.0f, RopeLayout::Interleaved, nullptr),
               Error);
  AttentionParams p;
  p.n_head = 4;
  p.n_head_kv = 3;
  p.head_dim = 64;
  KvView kv;
  EXPECT_THROW(cuda::attention(p, kv, dummy, 1, 0, dummy, nullptr),
               Error);  // 4 heads over 3 KV heads
  p.n_head_kv = 2;
  p.head_dim = 512;
  EXPECT_THROW(cuda::attention(p, kv, dummy, 1, 0, dummy, nullptr), Error);  // head_dim > 256
  p.head_dim = 64;
  kv.dtype = DType::Q8_0;
  EXPECT_THROW(cuda::attention(p, kv, dummy, 1, 0, dummy, nullptr), Error);  // cache type
  kv.dtype = DType::F16;
  kv.block_tokens = 16;
  kv.n_blocks = 1;
  kv.row_elems = 128;
  kv.row_bytes = 256;
  EXPECT_THROW(cuda::attention(p, kv, dummy, 1, 16, dummy, nullptr),
               Error);  // position 16 needs 2 blocks
}

TEST(CudaDevice, KernelDecodersMatchCpuDequantizersOnTheHost) {
  // The kernels' element decoders and mat-vec lane splits are __host__ __device__; this runs
  // them, as nvcc compiled them for the host, against quant/dequant.cc and quant/g4.cc.
  EXPECT_EQ(cuda::kern::check_decoders_on_host(), "");
}

// ---- device: memory -------------------------------------------------------------------------

TEST(CudaDevice, VramBudgetCountsLiveBuffersAndRefusesOverBudget) {
  REQUIRE_CUDA();
  const uint64_t held = cuda::vram_allocated(), old_budget = cuda::vram_budget();
  {
    cuda::DeviceBuffer a(3u << 20, 0, "a");
    EXPECT_EQ(cuda::vram_allocated(), held + (3u << 20));
    cuda::set_vram_budget(held + (4u << 20));
    EXPECT_THROW(cuda::DeviceBuffer(2u << 20, 0, "b"), Error);
    EXPECT_EQ(cuda::vram_allocated(), held + (3u << 20));
    cuda::DeviceBuffer c(1u << 20, 0, "c");  // exactly up to the budget is allowed
    EXPECT_EQ(cuda::vram_allocated(), held + (4u << 20));
    cuda::DeviceBuffer moved = std::move(c);
    EXPECT_EQ(cuda::vram_allocated(), held + (4u << 20));
  }
  EXPECT_EQ(cuda::vram_allocated(), held);
  cuda::set_vram_budget(old_budget);
  // Pinned buffers and a round trip through both streams.
  Gpu g;
  const auto src = uniform(1000, 1);
  cuda::PinnedBuffer pin(4000);
  std::memcpy(pin.data(), src.data(), 4000);
  cuda::DeviceBuffer d(4000, 0);
  cuda::Event copied(0);
  cuda::copy_to_device(d.data(), pin.data(), 4000, cuda::copy_stream(0));
  copied.record(cuda::copy_stream(0));
  copied.wait(g.s);
  EXPECT_EQ(g.down(d, 1000), src);
  EXPECT_TRUE(copied.done());
}

// ---- device: row and element-wise ops ---------------------------------------------------------

TEST(CudaOps, NormsMatchCpu) {
  REQUIRE_CUDA();
  ThreadPool pool(2);
  Gpu g;
  for (int64_t dim : {1, 64, 1000, 4096}) {
    const int64_t n = 7;
    auto x = uniform(size_t(n * dim), 10 + dim, -3, 3), w = uniform(size_t(dim), 20),
         b = uniform(size_t(dim), 30);
    auto dx = g.up(x), dw = g.up(w), db = g.up(b);
    auto dout = g.zeros(static_cast<size_t>(n * dim));
    std::vector<float> ref(static_cast<size_t>(n * dim));
    for (bool with_w : {true, false}) {
      rms_norm(pool, x.data(), with_w ? w.data() : nullptr, n, dim, 1e-5f, ref.data());
      cuda::rms_norm(dx.as<float>(), with_w ? dw.as<float>() : nullptr, n, dim, 1e-5f,
                     dout.as<float>(), g.s);
      expect_close(g.down(dout, ref.size()), ref, 1e-5, 1e-7,
                   "rms_norm dim " + std::to_string(dim));
      layer_norm(pool, x.data(), with_w ? w.data() : nullptr, with_w ? b.data() : nullptr, n, dim,
                 1e-5f, ref.data());
      cuda::layer_norm(dx.as<float>(), with_w ? dw.as<float>() : nullptr,
                       with_w ? db.as<float>() : nullptr, n, dim, 1e-5f, dout.as<float>(), g.s);
      expect_close(g.down(dout, ref.size()), ref, 1e-5, mean_abs(ref),
                   "layer_norm dim " + std::to_string(dim));
    }
    // In place, as the forward pass does for the head.
    rms_norm(pool, x.data(), w.data(), n, dim, 1e-6f, ref.data());
    cuda::rms_norm(dx.as<float>(), dw.as<float>(), n, dim, 1e-6f, dx.as<float>(), g.s);
    expect_close(g.down(dx, ref.size()), ref, 1e-5, 1e-7, "rms_norm in place");
  }
}

TEST(CudaOps, ActivationsMatchCpu) {
  REQUIRE_CUDA();
  ThreadPool pool(2);
  Gpu g;
  const size_t n = 10007;
  const auto x = uniform(n, 3, -8, 8), up = uniform(n, 4, -2, 2);
  auto dup = g.up(up);
  for (Activation a :
       {Activation::SiLU, Activation::ReLU, Activation::GELU, Activation::GELUTanh}) {
    std::vector<float> ref = x;
    activate(pool, a, ref.data(), int64_t(n));
    auto dx = g.up(x);
    cuda::activate(a, dx.as<float>(), int64_t(n), g.s);
    // Floor mean|ref|: GELU's 1 + erf(x) cancels for negative x, where a 2-ulp erff is 4e-5 of
    // the (tiny) result.
    expect_close(g.down(dx, n), ref, 1e-5, mean_abs(ref), activation_name(a));
    ref = x;
    activate_gated(pool, a, ref.data(), up.data(), int64_t(n));
    dx = g.up(x);
    cuda::activate_gated(a, dx.as<float>(), dup.as<float>(), int64_t(n), g.s);
    expect_close(g.down(dx, n), ref, 1e-5, mean_abs(ref),
                 std::string("gated ") + activation_name(a));
  }
}

TEST(CudaOps, AddsAndSoftmaxMatchCpu) {
  REQUIRE_CUDA();
  Gpu g;
  const int64_t n = 5, dim = 777;
  const auto y = uniform(size_t(n * dim), 5), x = uniform(size_t(n * dim), 6),
             b = uniform(size_t(dim), 7);
  std::vector<float> ref = y;
  add_inplace(ref.data(), x.data(), n * dim);
  auto dy = g.up(y), dx = g.up(x), db = g.up(b);
  cuda::add_inplace(dy.as<float>(), dx.as<float>(), n * dim, g.s);
  expect_close(g.down(dy, ref.size()), ref, 1e-6, 1e-7, "add_inplace");
  add_bias_rows(ref.data(), b.data(), n, dim);
  cuda::add_bias_rows(dy.as<float>(), db.as<float>(), n, dim, g.s);
  expect_close(g.down(dy, ref.size()), ref, 1e-6, 1e-7, "add_bias_rows");
  auto s = uniform(size_t(n * dim), 8, -20, 20);
  auto ds = g.up(s);
  for (int64_t r = 0; r < n; ++r) softmax_inplace(s.data() + r * dim, dim);
  cuda::softmax_rows(ds.as<float>(), n, dim, g.s);
  expect_close(g.down(ds, s.size()), s, 1e-5, 1e-12, "softmax_rows");
}

TEST(CudaOps, RopeMatchesCpuInBothLayouts) {
  REQUIRE_CUDA();
  Gpu g;
  const int64_t n_tok = 9, n_heads = 6, head_dim = 128;
  std::vector<int32_t> pos(n_tok);
  for (int64_t t = 0; t < n_tok; ++t)
    pos[size_t(t)] = static_cast<int32_t>(t * 977 + 3);  // up to ~7800
  auto dpos = g.up(pos);
  for (RopeLayout layout : {RopeLayout::Interleaved, RopeLayout::HalfSplit})
    for (int64_t rope_dim : {int64_t(128), int64_t(64), int64_t(32)}) {
      auto x = uniform(size_t(n_tok * n_heads * head_dim), 11 + rope_dim);
      auto dx = g.up(x);
      rope(x.data(), n_tok, pos.data(), n_heads, head_dim, rope_dim, 500000.0f, layout);
      cuda::rope(dx.as<float>(), n_tok, dpos.as<int32_t>(), n_heads, head_dim, rope_dim, 500000.0f,
                 layout, g.s);
      expect_close(g.down(dx, x.size()), x, 1e-5, mean_abs(x),
                   std::string(layout == RopeLayout::Interleaved ? "interleaved" : "half-split") +
                       " rope_dim " + std::to_string(rope_dim));
    }
}

// ---- device: weights ---------------------------------------------------------------------------

const DType kQuantTypes[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0,
                             DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};

// A random [rows, cols] weight in type t, made with the reference quantizers.
struct HostWeight {
  std::vector<uint8_t> bytes;
  Tensor t;
};
HostWeight make_weight(DType type, int64_t rows, int64_t cols, uint64_t seed) {
  const auto f = uniform(size_t(rows * cols), seed);
  HostWeight w;
  w.t.dtype = type;
  w.t.shape = {rows, cols};
  w.t.tier = Tier::Host;
  if (type == DType::G4) {
    w.bytes.resize(g4_weight_bytes(rows, cols));
    g4_quantize_weight(f.data(), rows, cols, w.bytes.data());
  } else {
    const int64_t rb = row_bytes(type, cols);
    w.bytes.resize(static_cast<size_t>(rows * rb));
    for (int64_t r = 0; r < rows; ++r) {
      uint8_t* dst = w.bytes.data() + r * rb;
      if (type == DType::F32)
        std::memcpy(dst, f.data() + r * cols, size_t(cols) * 4);
      else if (type == DType::F16)
        for (int64_t i = 0; i < cols; ++i)
          reinterpret_cast<uint16_t*>(dst)[i] = f32_to_fp16(f[size_t(r * cols + i)]);
      else if (type == DType::BF16)
        for (int64_t i = 0; i < cols; ++i)
          reinterpret_cast<uint16_t*>(dst)[i] = f32_to_bf16(f[size_t(r * cols + i)]);
      else
        quant_kernels(type)->quantize_row(f.data() + r * cols, dst, cols);
    }
  }
  w.t.data = w.bytes.data();
  return w;
}

// Exact y = x · W'ᵀ + bias in double over the CPU-dequantized weights W', and Σ|w x| per output.
void exact_matmul(const Tensor& w, const std::vector<float>& x, int64_t n_tok,
                  const std::vector<float>& bias, std::vector<double>& y,
                  std::vector<double>& scale) {
  const int64_t n_out = w.shape[0], n_in = w.shape[1];
  y.assign(size_t(n_tok * n_out), 0);
  scale.assign(y.size(), 0);
  std::vector<float> row(static_cast<size_t>(n_in));
  for (int64_t r = 0; r < n_out; ++r) {
    get_row(w, r, row.data());
    for (int64_t t = 0; t < n_tok; ++t) {
      double s = 0, a = 0;
      for (int64_t i = 0; i < n_in; ++i) {
        const double p = double(row[size_t(i)]) * x[size_t(t * n_in + i)];
        s += p;
        a += std::fabs(p);
      }
      y[size_t(t * n_out + r)] = s + bias[size_t(r)];
      scale[size_t(t * n_out + r)] = a + std::fabs(bias[size_t(r)]);
    }
  }
}

TEST(CudaMatmul, FloatWeightsThroughTheFrontEndMatchCpu) {
  REQUIRE_CUDA();
  ThreadPool pool(2);
  Gpu g;
  const int64_t n_out = 300, n_in = 520;
  const auto bias = uniform(size_t(n_out), 99);
  auto dbias = g.up(bias);
  for (DType type : {DType::F32, DType::F16, DType::BF16}) {
    HostWeight hw = make_weight(type, n_out, n_in, 40);
    cuda::DeviceTensor dw = cuda::to_device(hw.t, 0, g.s);
    for (int64_t n_tok : {1, 5, 33}) {
      const auto x = uniform(size_t(n_tok * n_in), 50 + n_tok);
      auto dx = g.up(x);
      auto dy = g.zeros(static_cast<size_t>(n_tok * n_out));
      // The front-end: a Device weight sends device pointers to the CUDA backend.
      matmul(pool, dw.t, dx.as<float>(), n_tok, dy.as<float>(), dbias.as<float>());
      std::vector<double> ref, scale;
      exact_matmul(hw.t, x, n_tok, bias, ref, scale);
      const double tol = type == DType::F32 ? 1e-5 : 1e-2;
      expect_within_scale(
          g.down(dy, ref.size()), ref, scale, tol,
          std::string(dtype_name(type)) + " x " + std::to_string(n_tok) + " tokens");
    }
  }
}

TEST(CudaMatmul, QuantizedDecodeMatchesCpuVecDotAndExactDequant) {
  REQUIRE_CUDA();
  ThreadPool pool(2);
  Gpu g;
  // Partial row blocks; G4's last group is short. 4096 inputs, as in real layers: with 512 the
  // CPU's 8-bit activations alone reach 1.05e-3 of Σ|w x| (2-3e-4 at 4096).
  const int64_t n_out = 100, n_in = 4096;
  const auto bias = uniform(size_t(n_out), 98);
  auto dbias = g.up(bias);
  std::vector<DType> types(std::begin(kQuantTypes), std::end(kQuantTypes));
  types.push_back(DType::G4);
  for (DType type : types) {
    HostWeight hw = make_weight(type, n_out, n_in, 41);
    cuda::DeviceTensor dw = cuda::to_device(hw.t, 0, g.s);
    for (int64_t n_tok : {1, 3, 8}) {
      const std::string what =
          std::string(dtype_name(type)) + " x " + std::to_string(n_tok) + " tokens";
      const auto x = uniform(size_t(n_tok * n_in), 60 + n_tok);
      auto dx = g.up(x);
      auto dy = g.zeros(static_cast<size_t>(n_tok * n_out));
      cuda::matmul(dw.t, dx.as<float>(), n_tok, dy.as<float>(), dbias.as<float>(), g.s);
      const auto got = g.down(dy, size_t(n_tok * n_out));
      std::vector<double> exact, scale;
      exact_matmul(hw.t, x, n_tok, bias, exact, scale);
      expect_within_scale(got, exact, scale, 1e-5, what + " vs exact dequantized weights");
      std::vector<float> cpu(got.size());
      matmul(pool, hw.t, x.data(), n_tok, cpu.data(), bias.data());
      expect_within_scale(got, std::vector<double>(cpu.begin(), cpu.end()), scale, 1e-3,
                          what + " vs CPU vec_dot");
    }
  }
}

TEST(CudaMatmul, QuantizedPrefillTilesMatchExactDequant) {
  REQUIRE_CUDA();
  Gpu g;
  const int64_t n_out = 130, n_in = 768;  // partial 64-row tiles; 24 k-steps
  const auto bias = uniform(size_t(n_out), 97);
  auto dbias = g.up(bias);
  std::vector<DType> types(std::begin(kQuantTypes), std::end(kQuantTypes));
  types.push_back(DType::G4);
  for (DType type : types) {
    HostWeight hw = make_weight(type, n_out, n_in, 42);
    cuda::DeviceTensor dw = cuda::to_device(hw.t, 0, g.s);
    for (int64_t n_tok : {9, 70}) {  // one partial token tile; one full and one partial
      const auto x = uniform(size_t(n_tok * n_in), 70 + n_tok);
      auto dx = g.up(x);
      auto dy = g.zeros(static_cast<size_t>(n_tok * n_out));
      cuda::matmul(dw.t, dx.as<float>(), n_tok, dy.as<float>(), dbias.as<float>(), g.s);
      std::vector<double> exact, scale;
      exact_matmul(hw.t, x, n_tok, bias, exact, scale);
      expect_within_scale(
          g.down(dy, exact.size()), exact, scale, 1e-2,
          std::string(dtype_name(type)) + " x " + std::to_string(n_tok) + " tokens");
    }
  }
}

TEST(CudaOps, GetRowsIsBitIdenticalToCpu) {
  REQUIRE_CUDA();
  Gpu g;
  const int64_t rows = 70, cols = 512;
  std::vector<int32_t> ids = {0, 69, 5, 64, 63, 5, 31};
  auto dids = g.up(ids);
  std::vector<DType> types = {DType::F32, DType::F16, DType::BF16, DType::G4};
  types.insert(types.end(), std::begin(kQuantTypes), std::end(kQuantTypes));
  for (DType type : types) {
    HostWeight hw = make_weight(type, rows, cols, 43);
    cuda::DeviceTensor dw = cuda::to_device(hw.t, 0, g.s);
    auto dout = g.zeros(ids.size() * size_t(cols));
    cuda::get_rows(dw.t, dids.as<int32_t>(), int64_t(ids.size()), dout.as<float>(), g.s);
    const auto got = g.down(dout, ids.size() * size_t(cols));
    std::vector<float> want(got.size());
    for (size_t i = 0; i < ids.size(); ++i) get_row(hw.t, ids[i], want.data() + i * size_t(cols));
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * 4)) << dtype_name(type);
  }
  // An id outside the table gives NaN, not a stray read.
  HostWeight hw = make_weight(DType::F16, rows, cols, 44);
  cuda::DeviceTensor dw = cuda::to_device(hw.t, 0, g.s);
  auto bad = g.up(std::vector<int32_t>{70});
  auto dout = g.zeros(static_cast<size_t>(cols));
  cuda::get_rows(dw.t, bad.as<int32_t>(), 1, dout.as<float>(), g.s);
  EXPECT_TRUE(std::isnan(g.down(dout, size_t(cols))[0]));
}

// ---- device: attention
// ---------------------------------------------------------------------------

struct AttnCase {
  DType kv;
  int64_t n_head, n_head_kv, head_dim, n_q, pos0;
  bool alibi;
};

TEST(CudaAttention, PagedCacheMatchesCpu) {
  REQUIRE_CUDA();
  ThreadPool pool(2);
  Gpu g;
  const AttnCase cases[] = {
      {DType::F32, 8, 2, 64, 1, 200, false},   // decode, one block per head
      {DType::F32, 4, 1, 128, 1, 3000, true},  // long decode: keys split over blocks
      {DType::F16, 4, 4, 128, 1, 3000, false},
      {DType::F16, 6, 2, 96, 5, 500, true},  // a few queries, split
      {DType::G4, 8, 2, 80, 17, 40, true},   // prefill; G4 heads that cut across groups
      {DType::G4, 4, 2, 64, 3, 700, false},
      {DType::F32, 4, 1, 256, 33, 0, true},   // prefill from position 0, widest heads
      {DType::F16, 2, 1, 40, 64, 10, false},  // head_dim below a warp's width
  };
  const int64_t bt = 16;
  for (const AttnCase& c : cases) {
    const std::string what = std::string(dtype_name(c.kv)) + " heads " + std::to_string(c.n_head) +
                             "/" + std::to_string(c.n_head_kv) + " hd " +
                             std::to_string(c.head_dim) + " n_q " + std::to_string(c.n_q) +
                             " pos0 " + std::to_string(c.pos0);
    const int64_t re = c.n_head_kv * c.head_dim, n_pos = c.pos0 + c.n_q;
    const int64_t rb = c.kv == DType::G4 ? g4_kv_row_bytes(re) : re * (c.kv == DType::F32 ? 4 : 2);
    const int64_t n_blocks = (n_pos + bt - 1) / bt + 1;  // one spare, as a pool would have
    std::vector<std::vector<uint8_t>> kb(size_t(n_blocks), std::vector<uint8_t>(size_t(bt * rb))),
        vb = kb;
    // Rows as stored; the dense copies below are what the cache decodes to.
    for (int64_t j = 0; j < n_pos; ++j)
      for (int kv = 0; kv < 2; ++kv) {
        const auto row = uniform(size_t(re), uint64_t(1000 * j + kv));
        uint8_t* dst = (kv ? vb : kb)[size_t(j / bt)].data() + (j % bt) * rb;
        if (c.kv == DType::F32)
          std::memcpy(dst, row.data(), size_t(re) * 4);
        else if (c.kv == DType::F16)
          for (int64_t i = 0; i < re; ++i)
            reinterpret_cast<uint16_t*>(dst)[i] = f32_to_fp16(row[size_t(i)]);
        else
          g4_quantize_kv_row(row.data(), re, dst);
      }
    const auto q = uniform(size_t(c.n_q * c.n_head * c.head_dim), 77);
    std::vector<float> slopes;
    for (int64_t h = 0; h < c.n_head; ++h) slopes.push_back(std::pow(2.0f, -float(h + 1)));
    AttentionParams p;
    p.n_head = c.n_head;
    p.n_head_kv = c.n_head_kv;
    p.head_dim = c.head_dim;
    p.scale = 1.0f / std::sqrt(float(c.head_dim));
    p.alibi_slopes = c.alibi ? slopes.data() : nullptr;
    std::vector<const void*> hk, hv;
    for (int64_t b = 0; b < n_blocks; ++b)
      hk.push_back(kb[size_t(b)].data()), hv.push_back(vb[size_t(b)].data());
    KvView view;
    view.k_blocks = hk.data();
    view.v_blocks = hv.data();
    view.n_blocks = n_blocks;
    view.block_tokens = bt;
    view.dtype = c.kv;
    view.row_elems = re;
    view.row_bytes = rb;
    std::vector<float> ref(q.size());
    attention(pool, p, view, q.data(), c.n_q, c.pos0, ref.data());

    // Per output: scale = Σ_j p_j |v_j| and score_term = Σ_j p_j |v_j| |s_j|.
    std::vector<double> scale(ref.size()), score_term(ref.size());
    {
      std::vector<float> krow(static_cast<size_t>(re)), vrow(static_cast<size_t>(re));
      auto decode = [&](const std::vector<std::vector<uint8_t>>& blocks, int64_t j,
                        std::vector<float>& out) {
        const uint8_t* src = blocks[size_t(j / bt)].data() + (j % bt) * rb;
        if (c.kv == DType::F32)
          std::memcpy(out.data(), src, size_t(re) * 4);
        else if (c.kv == DType::F16)
          for (int64_t i = 0; i < re; ++i)
            out[size_t(i)] = fp16_to_f32(reinterpret_cast<const uint16_t*>(src)[i]);
        else
          g4_dequantize_kv_row(src, re, out.data());
      };
      const int64_t group = c.n_head / c.n_head_kv;
      for (int64_t t = 0; t < c.n_q; ++t)
        for (int64_t h = 0; h < c.n_head; ++h) {
          const int64_t nk = c.pos0 + t + 1, kvh = h / group;
          std::vector<double> s(static_cast<size_t>(nk));
          std::vector<double> raw(static_cast<size_t>(nk));
          double m = -1e300;
          for (int64_t j = 0; j < nk; ++j) {
            decode(kb, j, krow);
            double d = 0;
            for (int64_t i = 0; i < c.head_dim; ++i)
              d += double(krow[size_t(kvh * c.head_dim + i)]) *
                   q[size_t((t * c.n_head + h) * c.head_dim + i)];
            s[size_t(j)] = raw[size_t(j)] =
                d * p.scale + (c.alibi ? slopes[size_t(h)] * double(j) : 0.0);
            m = std::max(m, s[size_t(j)]);
          }
          double l = 0;
          for (auto& v : s) l += (v = std::exp(v - m));
          for (int64_t j = 0; j < nk; ++j) {
            decode(vb, j, vrow);
            for (int64_t i = 0; i < c.head_dim; ++i) {
              const double pv = s[size_t(j)] / l * std::fabs(vrow[size_t(kvh * c.head_dim + i)]);
              scale[size_t((t * c.n_head + h) * c.head_dim + i)] += pv;
              score_term[size_t((t * c.n_head + h) * c.head_dim + i)] +=
                  pv * std::fabs(raw[size_t(j)]);
            }
          }
        }
    }

    std::vector<cuda::DeviceBuffer> dk, dv;
    std::vector<void*> pk, pv;
    for (int64_t b = 0; b < n_blocks; ++b) {
      dk.push_back(g.up(kb[size_t(b)]));
      dv.push_back(g.up(vb[size_t(b)]));
      pk.push_back(dk.back().data());
      pv.push_back(dv.back().data());
    }
    auto dpk = g.up(pk), dpv = g.up(pv), dq = g.up(q), dslopes = g.up(slopes);
    auto dout = g.zeros(q.size());
    KvView dview = view;
    dview.k_blocks = static_cast<const void* const*>(dpk.data());
    dview.v_blocks = static_cast<const void* const*>(dpv.data());
    AttentionParams dp = p;
    dp.alibi_slopes = c.alibi ? dslopes.as<float>() : nullptr;
    cuda::attention(dp, dview, dq.as<float>(), c.n_q, c.pos0, dout.as<float>(), g.s);
    std::vector<double> bound(scale.size());
    for (size_t i = 0; i < bound.size(); ++i)
      bound[i] = 1e-5 * scale[i] + std::ldexp(score_term[i], -22);
    expect_within_scale(g.down(dout, q.size()), std::vector<double>(ref.begin(), ref.end()), bound,
                        1.0, what);
  }
}

}  // namespace
}  // namespace strata

#else  // no CUDA backend in this build

TEST(CudaDevice, BackendNotBuilt) {
  GTEST_SKIP()
      << "no CUDA device: this build has no CUDA backend (nvcc was not found at configure time, or "
         "STRATA_CUDA=OFF)";
}

#endif

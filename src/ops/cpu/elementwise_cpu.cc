#include <algorithm>
#include <cmath>

#include "ops/cpu/float_kernels.h"
#include "ops/elementwise.h"

namespace strata {

void rms_norm(ThreadPool& pool, const float* x, const float* w, int64_t n, int64_t dim, float eps,
              float* out) {
  pool.parallel_for(n, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      float* o = out + r * dim;
      // Eight partial sums: one chain of dim dependent double additions took ~3 us per row of
      // 2048 (twice per layer in decode).
      double part[8] = {};
      int64_t i = 0;
      for (; i + 8 <= dim; i += 8)
        for (int j = 0; j < 8; ++j) part[j] += double(xr[i + j]) * xr[i + j];
      for (; i < dim; ++i) part[0] += double(xr[i]) * xr[i];
      const double ss =
          ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
      const float inv = static_cast<float>(1.0 / std::sqrt(ss / double(dim) + double(eps)));
      if (w)
        for (int64_t i = 0; i < dim; ++i) o[i] = xr[i] * inv * w[i];
      else
        for (int64_t i = 0; i < dim; ++i) o[i] = xr[i] * inv;
    }
  });
}

void layer_norm(ThreadPool& pool, const float* x, const float* w, const float* b, int64_t n,
                int64_t dim, float eps, float* out) {
  pool.parallel_for(n, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      float* o = out + r * dim;
      double mean = 0;
      for (int64_t i = 0; i < dim; ++i) mean += xr[i];
      mean /= double(dim);
      double var = 0;
      for (int64_t i = 0; i < dim; ++i) var += (xr[i] - mean) * (xr[i] - mean);
      var /= double(dim);
      const float inv = static_cast<float>(1.0 / std::sqrt(var + double(eps)));
      const float m = static_cast<float>(mean);
      for (int64_t i = 0; i < dim; ++i) {
        float v = (xr[i] - m) * inv;
        if (w) v *= w[i];
        if (b) v += b[i];
        o[i] = v;
      }
    }
  });
}

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::SiLU:
      return "silu";
    case Activation::ReLU:
      return "relu";
    case Activation::GELU:
      return "gelu";
    case Activation::GELUTanh:
      return "gelu_tanh";
  }
  return "?";
}

namespace {

inline float act_one(Activation a, float x) {
  switch (a) {
    case Activation::SiLU:
      return x / (1.0f + std::exp(-x));
    case Activation::ReLU:
      return x > 0 ? x : 0.0f;
    case Activation::GELU:
      return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f));
    case Activation::GELUTanh:
      return 0.5f * x * (1.0f + std::tanh(0.7978845608028654f * (x + 0.044715f * x * x * x)));
  }
  return x;
}

}  // namespace

void activate(ThreadPool& pool, Activation a, float* x, int64_t count) {
  pool.parallel_for(count, 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) x[i] = act_one(a, x[i]);
  });
}

void activate_gated(ThreadPool& pool, Activation a, float* gate, const float* up, int64_t count) {
  if (a == Activation::SiLU) {
    const auto silu_mul = cpu::float_kernels().silu_mul;
    // Chunks of 1024: with 4096 an FFN of 5632 split 4096 / 1536 between two threads.
    return pool.parallel_for(count, 1024,
                             [&](int64_t b, int64_t e) { silu_mul(e - b, gate + b, up + b); });
  }
  pool.parallel_for(count, 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) gate[i] = act_one(a, gate[i]) * up[i];
  });
}

void add_inplace(float* y, const float* x, int64_t count) {
  for (int64_t i = 0; i < count; ++i) y[i] += x[i];
}

void add_bias_rows(float* y, const float* b, int64_t n, int64_t dim) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < dim; ++i) y[r * dim + i] += b[i];
}

void softmax_inplace(float* x, int64_t n) {
  if (n <= 0) return;
  const float m = *std::max_element(x, x + n);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    s += x[i];
  }
  const float inv = static_cast<float>(1.0 / s);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void to_f16(const float* x, int64_t count, uint16_t* out) {
  cpu::float_kernels().f32_to_f16(count, x, out);
}

}  // namespace strata

// Row-wise and element-wise ops on f32 activations: norms, activations, residual adds, softmax.
// Rows are `dim` floats; n rows are processed in parallel where it pays.
#pragma once
#include <cstdint>

#include "core/thread_pool.h"

namespace strata {

// out = x / rms(x) * w  (w may be null: no scale)
void rms_norm(ThreadPool& pool, const float* x, const float* w, int64_t n, int64_t dim, float eps,
              float* out);
// out = (x - mean) / sqrt(var + eps) * w + b  (w, b may be null)
void layer_norm(ThreadPool& pool, const float* x, const float* w, const float* b, int64_t n,
                int64_t dim, float eps, float* out);

enum class Activation { SiLU, ReLU, GELU, GELUTanh };
const char* activation_name(Activation a);
// In place: x = act(x) over n*dim values.
void activate(ThreadPool& pool, Activation a, float* x, int64_t count);
// Gated: gate = act(gate) * up, over count values (SwiGLU when act is SiLU).
void activate_gated(ThreadPool& pool, Activation a, float* gate, const float* up, int64_t count);

void add_inplace(float* y, const float* x, int64_t count);             // y += x
void add_bias_rows(float* y, const float* b, int64_t n, int64_t dim);  // y[i,:] += b
void softmax_inplace(float* x, int64_t n);
// out = x rounded to f16 (nearest even), vectorised where the CPU can.
void to_f16(const float* x, int64_t count, uint16_t* out);

}  // namespace strata
